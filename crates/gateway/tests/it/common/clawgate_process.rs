//! The real `clawgate gateway run` binary as a separate process, for tests
//! that signal it (kill, SIGSTOP, restart) or measure it from outside: its
//! open files (`/proc/<pid>/fd`), its RSS, and its admin `/metrics`.
//!
//! Each process gets a state directory of its own (kept across restarts),
//! a config file written by the test, and its stderr in `gateway.log` there.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clawgate::runtime_file::{self, Found};

/// How long a start may take until the listener answers.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ClawgateProcess {
    dir: tempfile::TempDir,
    config: String,
    /// `Some(port)`: always this port (a stand-in upstream restarted in place).
    fixed_port: Option<u16>,
    with_admin: bool,
    child: Option<Child>,
    /// The gateway listener, once started.
    pub addr: SocketAddr,
    /// The admin listener, when asked for.
    pub admin: Option<SocketAddr>,
}

impl ClawgateProcess {
    /// Start `clawgate gateway run` with `config` (JSON5 text).
    pub async fn start(config: &str, fixed_port: Option<u16>, with_admin: bool) -> ClawgateProcess {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("clawgate-proc").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut p = ClawgateProcess {
            dir,
            config: config.to_owned(),
            fixed_port,
            with_admin,
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            admin: None,
        };
        p.restart().await;
        p
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("gateway.log")
    }

    /// Start again (after [`ClawgateProcess::kill`]): same state, config and port.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        let config_path = self.dir.path().join("config.json5");
        std::fs::write(&config_path, &self.config).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let log_start = log.metadata().unwrap().len() as usize;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
        for (k, _) in std::env::vars() {
            if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        let port = self.fixed_port.map_or("0".to_owned(), |p| p.to_string());
        cmd.env("CLAWGATE_STATE_DIR", self.dir.path()).args(["gateway", "run", "--port", &port]);
        if self.with_admin {
            cmd.args(["--admin", "127.0.0.1:0"]);
        }
        let child = cmd
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn clawgate");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        self.addr = loop {
            if let Ok(Some(Found::Live(info))) = runtime_file::read(self.dir.path()) {
                if info.pid == self.pid() {
                    break info.url.trim_start_matches("ws://").parse().expect("a ws://ip:port URL");
                }
            }
            assert!(Instant::now() < deadline, "clawgate did not start:\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        if self.with_admin {
            let line = loop {
                let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                if let Some(line) =
                    text[log_start.min(text.len())..].lines().find(|l| l.contains("admin listener on http://"))
                {
                    break line.to_owned();
                }
                assert!(Instant::now() < deadline, "no admin listener line:\n{}", self.log_tail());
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            self.admin =
                line.split("http://").nth(1).and_then(|r| r.split([' ', '"']).next()).and_then(|a| a.parse().ok());
        }
        while tokio::net::TcpStream::connect(self.addr).await.is_err() {
            assert!(Instant::now() < deadline, "clawgate does not accept:\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Send `signal` (SIGSTOP, SIGCONT, SIGTERM …).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.pid() as libc::pid_t, signal) }, 0);
    }

    /// SIGSTOP, and wait until every thread is stopped (kill(2) only queues
    /// the signal: a thread running on another core goes on for a moment).
    pub async fn freeze(&self) {
        self.signal(libc::SIGSTOP);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.stopped() {
            assert!(Instant::now() < deadline, "clawgate {} did not stop", self.pid());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Every thread in state `T` (stopped).
    fn stopped(&self) -> bool {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else { return false };
        tasks.filter_map(Result::ok).all(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // The state follows the parenthesised command name.
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        })
    }

    /// SIGKILL (works on a stopped process too) and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (a clean shutdown: sessions get 1012), reap within 10 s or SIGKILL.
    pub async fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Open file descriptors of the process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map(|d| d.count()).unwrap_or(0)
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The admin `/metrics` exposition.
    pub async fn metrics(&self) -> String {
        let admin = self.admin.expect("started with an admin listener");
        crate::admin_metrics::http(admin, "GET", "/metrics").await.1
    }

    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of its log (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for ClawgateProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
