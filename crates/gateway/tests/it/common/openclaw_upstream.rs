//! The real OpenClaw gateway (`openclaw gateway run`, openclaw@2026.9.6 on
//! Node 24) as an upstream for tests, started through
//! `interop/openclaw/upstream.sh`: HOME in a fresh temporary directory,
//! loopback on a free port, token auth (the token only in the environment),
//! `gateway.trustedProxies` listing loopback, the Control UI enabled, plugins,
//! cron, mDNS and update checks off.
//!
//! [`OpenclawUpstream::start`] returns once the gateway answers `health`
//! (start-up takes ~15–20 s on a small machine). The gateway runs in its own
//! process group; dropping the handle (or [`OpenclawUpstream::stop`]) ends the
//! whole group. Its spawn-broker helper runs in a group of its own but exits
//! when the gateway dies (checked with SIGKILL to the group).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use clawgate_client::{Client, ClientError, ConnectOptions};

/// How long the upstream may take to answer `health` after the spawn.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a SIGTERM'd gateway gets before its group is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub struct OpenclawUpstream {
    pub port: u16,
    pub token: String,
    home: tempfile::TempDir,
    child: Option<tokio::process::Child>,
    /// The process group of the gateway and its helpers (= the child's pid);
    /// 0 before the first spawn.
    pgid: i32,
}

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A fresh random token (hex of 24 random bytes).
fn fresh_token() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn group_alive(pgid: i32) -> bool {
    // Never spawned (0 would name this process's own group).
    if pgid <= 0 {
        return false;
    }
    // Signal 0 checks for existence; ESRCH once every member is gone (an
    // unreaped zombie still counts, hence `reap` before every check).
    unsafe { libc::kill(-pgid, 0) == 0 }
}

/// Whether every thread of every process in group `pgid` is stopped (`T`).
fn group_stopped(pgid: i32) -> bool {
    // `(comm) state ppid pgrp …`: the fields after the parenthesised name.
    let fields = |stat: &str| -> Vec<String> {
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().map(str::to_owned).collect()).unwrap_or_default()
    };
    let Ok(procs) = std::fs::read_dir("/proc") else { return false };
    procs.filter_map(Result::ok).filter(|p| p.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit())).all(
        |p| {
            let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
            if fields(&stat).get(2).and_then(|g| g.parse::<i32>().ok()) != Some(pgid) {
                return true;
            }
            let Ok(tasks) = std::fs::read_dir(p.path().join("task")) else { return true };
            tasks.filter_map(Result::ok).all(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                matches!(fields(&stat).first().map(String::as_str), Some("T") | Some("Z") | Some("X") | None)
            })
        },
    )
}

fn signal_group(pgid: i32, signal: i32) {
    if pgid <= 0 {
        return;
    }
    unsafe {
        libc::kill(-pgid, signal);
    }
}

impl OpenclawUpstream {
    /// Start the real gateway and wait until it answers `health`. Panics
    /// (never skips) when openclaw is not installed or the gateway does not come up.
    pub async fn start() -> OpenclawUpstream {
        let openclaw = interop_dir().join("openclaw/cli/node_modules/.bin/openclaw");
        assert!(openclaw.exists(), "openclaw is not installed: run interop/openclaw/install.sh (scripts/test does)");
        let home = tempfile::tempdir().expect("temp HOME");
        let port = free_port();
        let token = fresh_token();
        let mut upstream = OpenclawUpstream { port, token, home, child: None, pgid: 0 };
        upstream.spawn();
        upstream.wait_for_health().await;
        upstream
    }

    /// Start the gateway again after [`OpenclawUpstream::terminate`]: the same
    /// port, HOME (its pairings and sessions) and token.
    pub async fn start_again(&mut self) {
        assert!(!self.reap_and_check(), "the OpenClaw gateway is still running");
        self.spawn();
        self.wait_for_health().await;
    }

    /// Spawn `upstream.sh` in a process group of its own; output is appended
    /// to `gateway.out` in its HOME.
    fn spawn(&mut self) {
        let script = interop_dir().join("openclaw/upstream.sh");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.path().join("gateway.out"))
            .expect("gateway.out");
        let err = out.try_clone().expect("gateway.out");
        let child = tokio::process::Command::new("bash")
            .arg(&script)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--home")
            .arg(self.home.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
            .env("OPENCLAW_GATEWAY_TOKEN", &self.token)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("spawn interop/openclaw/upstream.sh");
        self.pgid = child.id().expect("child pid") as i32;
        self.child = Some(child);
    }

    async fn wait_for_health(&mut self) {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("the OpenClaw gateway exited during start-up ({status}):\n{}", self.output_tail());
            }
            match self.client(&["operator.read"]).await {
                Ok(client) => match client.request("health", None).await {
                    Ok(_) => return,
                    Err(e) => last = e.to_string(),
                },
                // Not listening yet, or "gateway starting" (UNAVAILABLE + close 1013).
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "the OpenClaw gateway did not answer health within {START_TIMEOUT:?} (last: {last}):\n{}",
            self.output_tail()
        );
    }

    /// `ws://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port>/` (the Control UI).
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The upstream's HOME (its `.openclaw/openclaw.json`, `openclaw.log`).
    pub fn home(&self) -> &std::path::Path {
        self.home.path()
    }

    /// Connect as OpenClaw's local backend client (`gateway-client`/`backend`,
    /// the shared token, no device), which the upstream admits from loopback
    /// with exactly the requested scopes.
    pub async fn client(&self, scopes: &[&str]) -> Result<Client, ClientError> {
        Client::connect(ConnectOptions::new(self.url()).token(&self.token).scopes(scopes)).await
    }

    /// The last lines the gateway printed (for failure messages).
    pub fn output_tail(&self) -> String {
        let text = std::fs::read_to_string(self.home.path().join("gateway.out")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Whether any process of the gateway's group is still running.
    pub fn running(&mut self) -> bool {
        self.reap_and_check()
    }

    /// SIGTERM to the group (OpenClaw shuts down cleanly, clients see close
    /// 1012), SIGKILL after a grace period; returns once the group is gone.
    pub async fn stop(mut self) {
        self.terminate().await;
    }

    /// What [`OpenclawUpstream::stop`] does, keeping HOME and port for
    /// [`OpenclawUpstream::start_again`].
    pub async fn terminate(&mut self) {
        signal_group(self.pgid, libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        while self.reap_and_check() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.kill_now();
        assert!(!self.reap_and_check(), "the OpenClaw gateway's process group {} outlived SIGKILL", self.pgid);
    }

    /// Send `signal` to the whole group (SIGSTOP freezes the gateway with its
    /// sockets open, SIGCONT thaws it).
    pub fn signal(&self, signal: i32) {
        signal_group(self.pgid, signal);
    }

    /// SIGSTOP to the group, and wait until every thread of it is stopped
    /// (kill(2) only queues the signal).
    pub async fn freeze(&self) {
        self.signal(libc::SIGSTOP);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !group_stopped(self.pgid) {
            assert!(tokio::time::Instant::now() < deadline, "the OpenClaw gateway's group did not stop");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGKILL to the group, no grace; returns once it is gone. The HOME and
    /// port stay for [`OpenclawUpstream::start_again`].
    pub fn kill(&mut self) {
        self.kill_now();
        assert!(!self.reap_and_check(), "the OpenClaw gateway's process group {} outlived SIGKILL", self.pgid);
    }

    /// Reap the direct child if it exited, then whether the group is alive.
    fn reap_and_check(&mut self) -> bool {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
            }
        }
        group_alive(self.pgid)
    }

    fn kill_now(&mut self) {
        if self.reap_and_check() {
            signal_group(self.pgid, libc::SIGKILL);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.reap_and_check() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OpenclawUpstream {
    fn drop(&mut self) {
        self.kill_now();
    }
}
