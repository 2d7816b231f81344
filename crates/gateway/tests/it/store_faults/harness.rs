//! The harness of the store fault tests: the real `clawgate` binary as a
//! child process on a state directory of its own (so SIGKILL is real), its
//! log captured, a seeded random source, and the checks every store must
//! pass after a crash, read from the store file itself.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clawgate::server::now_ms;
use clawgate::store::schema::SCHEMA_VERSION;
use clawgate::store::{PairingStore, SqliteStore};

use crate::common::{connect_params, RawConn, TOKEN};

/// The trusted proxy's socket: remote devices come through it.
pub const PROXY_SOURCE: &str = "127.0.0.2";
pub const READ: &str = "operator.read";

/// Rounds per crash path: `CLAWGATE_FAULT_ROUNDS`, else `default`.
pub fn rounds(default: usize) -> usize {
    std::env::var("CLAWGATE_FAULT_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// A small, seeded random source (splitmix64): the kill points of a run are
/// reproducible from the printed seed.
pub struct Rng(u64);

impl Rng {
    /// From `CLAWGATE_FAULT_SEED` when set, else from the clock; printed
    /// either way so a failing run can be repeated.
    pub fn from_env(what: &str) -> Rng {
        let seed = std::env::var("CLAWGATE_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| now_ms() ^ u64::from(std::process::id()) << 20);
        eprintln!("{what}: seed {seed} (rerun with CLAWGATE_FAULT_SEED={seed})");
        // Each test draws its own sequence from the one seed.
        let salt =
            what.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Rng(seed ^ salt)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A private state directory (0700) with a config file.
pub fn state_dir(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    prepare_state(dir.path(), config);
    dir
}

/// Make `dir` a state directory (0700) with `config` as its config file.
pub fn prepare_state(dir: &Path, config: &str) {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(dir.join("config.json5")).unwrap();
    f.write_all(config.as_bytes()).unwrap();
}

/// A config whose trusted proxy lets devices look remote.
pub fn proxied_config() -> String {
    format!("{{ gateway: {{ trustedProxies: [\"{PROXY_SOURCE}\"] }} }}\n")
}

/// The gateway as a child process; killed on drop.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `clawgate` binary with a clean environment for `state`.
pub fn clawgate(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    command_in(&mut cmd, state);
    cmd
}

/// `cmd` (the binary, or a wrapper running it) with the state directory set
/// and every inherited CLAWGATE_/OPENCLAW_GATEWAY_ variable removed.
pub fn command_in(cmd: &mut Command, state: &Path) {
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CLAWGATE_STATE_DIR", state).env("OPENCLAW_GATEWAY_TOKEN", TOKEN);
}

impl Gateway {
    /// `clawgate gateway run` on `state`, with an admin listener, waiting
    /// until it accepts connections.
    pub fn start(state: &Path) -> Gateway {
        Gateway::start_wrapped(state, &[])
    }

    /// [`Gateway::start`] under `wrapper` (e.g. a namespace entering
    /// command that execs its arguments).
    pub fn start_wrapped(state: &Path, wrapper: &[String]) -> Gateway {
        for _ in 0..5 {
            let (port, admin_port) = (free_port(), free_port());
            let bin = env!("CARGO_BIN_EXE_clawgate");
            let mut cmd = match wrapper.split_first() {
                Some((first, rest)) => {
                    let mut c = Command::new(first);
                    c.args(rest).arg(bin);
                    c
                }
                None => Command::new(bin),
            };
            let admin = format!("127.0.0.1:{admin_port}");
            command_in(&mut cmd, state);
            let mut child = cmd
                .args(["gateway", "run", "--port", &port.to_string(), "--admin", &admin, "--log-format", "json"])
                .env("CLAWGATE_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn clawgate");
            let log = Arc::new(Mutex::new(Vec::new()));
            let stderr = child.stderr.take().unwrap();
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let admin: SocketAddr = admin.parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    std::thread::sleep(Duration::from_millis(50));
                    let lines = log.lock().unwrap().clone();
                    if lines.iter().any(|l| l.contains("cannot listen")) {
                        break; // a port was taken in between: try others
                    }
                    panic!("the gateway exited ({status}): {lines:#?}");
                }
                let up = |a| std::net::TcpStream::connect_timeout(a, Duration::from_millis(100)).is_ok();
                if up(&addr) && up(&admin) {
                    return Gateway { child, addr, admin, log };
                }
                assert!(Instant::now() < deadline, "the gateway did not listen within 10 s");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("no free ports after 5 tries");
    }

    /// SIGKILL, and reap it.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "killed, not exited: {status}");
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The log lines containing every one of `needles`.
    pub fn log_matching(&self, needles: &[&str]) -> Vec<String> {
        self.log().into_iter().filter(|l| needles.iter().all(|n| l.contains(n))).collect()
    }

    /// Wait (up to 10 s) for a log line containing every one of `needles`.
    pub fn wait_log(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self.log_matching(needles).into_iter().next() {
                return l;
            }
            assert!(Instant::now() < deadline, "no log line with {needles:?}: {:#?}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET /readyz` on the admin listener: (status, body).
    pub fn readyz(&self) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.admin).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        (status, body)
    }

    /// A local operator with the shared token and `scopes`.
    pub async fn operator(&self, scopes: &[&str]) -> RawConn {
        let mut c = RawConn::open(self.addr).await;
        let res = c.handshake(connect_params("cli", "cli", "operator", scopes, Some(TOKEN))).await;
        assert_eq!(res["ok"], true, "{res}");
        c
    }
}

/// The store file of a state directory.
pub fn store_path(state: &Path) -> PathBuf {
    state.join("clawgate.sqlite")
}

/// After a crash: the store passes a full integrity check, sits at the
/// latest schema version, has no dangling rows, no open request for a
/// (device, role) already approved for what it asks, and opens. Returns it.
pub fn check_store_clean(path: &Path) -> SqliteStore {
    {
        let conn = rusqlite::Connection::open(path).unwrap();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok", "integrity_check");
        let fk: i64 = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).unwrap();
        assert_eq!(fk, 0, "foreign key violations");
        let orphans: i64 = conn
            .query_row(
                "SELECT count(*) FROM device_tokens WHERE device_id NOT IN (SELECT device_id FROM devices)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0, "tokens of removed devices");
    }
    let store = SqliteStore::open(path).expect("the store opens after the crash");
    {
        let conn = rusqlite::Connection::open(path).unwrap();
        let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION, "migrated to the latest version");
    }
    for open in store.open_requests(now_ms()).unwrap() {
        if let Some(d) = store.device(&open.device_id).unwrap() {
            let covered = d.has_role(open.role) && open.scopes.iter().all(|s| d.approved_scopes.contains(s));
            assert!(!covered, "request {} is still open for an approved (device, role)", open.request_id);
        }
    }
    store
}

/// The gateway starts again on `state` and serves `health`.
pub async fn restarts_and_serves(state: &Path) {
    let gw = Gateway::start(state);
    let mut c = gw.operator(&[READ]).await;
    let health = c.call("h", "health", None).await;
    assert_eq!(health["ok"], true, "{health}");
}
