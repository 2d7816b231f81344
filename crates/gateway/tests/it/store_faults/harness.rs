//! The harness of the store fault tests: the real `clawgate` binary (a
//! [`ClawgateProcess`] on a state directory of the test's, so SIGKILL is
//! real), a seeded random source for the kill points, and the checks every
//! store must pass after a crash, read from the store file itself.

use std::path::{Path, PathBuf};
use std::process::Command;

use clawgate::server::now_ms;
use clawgate::store::schema::SCHEMA_VERSION;
use clawgate::store::{PairingStore, SqliteStore};

use crate::common::clawgate_process::{clawgate_command, ClawgateProcess, Launch};
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

/// The `clawgate` CLI on `state`, with a clean environment and the shared token.
pub fn clawgate(state: &Path) -> Command {
    let mut cmd = clawgate_command(state);
    cmd.env("OPENCLAW_GATEWAY_TOKEN", TOKEN);
    cmd
}

/// `clawgate gateway run` on `state` (its own config file), with an admin
/// listener and JSON logs at `info`, once it accepts connections.
pub async fn start_gateway(state: &Path) -> ClawgateProcess {
    gateway_launch(state).start().await
}

/// [`start_gateway`]'s launch, to adjust (e.g. under a wrapper command).
pub fn gateway_launch(state: &Path) -> Launch {
    ClawgateProcess::launch()
        .state_dir(state)
        .admin(true)
        .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
        .env("CLAWGATE_LOG", "info")
        .args(&["--log-format", "json"])
}

/// A local operator on `gw` with the shared token and `scopes`.
pub async fn operator(gw: &ClawgateProcess, scopes: &[&str]) -> RawConn {
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake(connect_params("cli", "cli", "operator", scopes, Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    c
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
    let gw = start_gateway(state).await;
    let mut c = operator(&gw, &[READ]).await;
    let health = c.call("h", "health", None).await;
    assert_eq!(health["ok"], true, "{health}");
}
