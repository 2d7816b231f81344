//! The real `clawgate gateway run` binary as a separate process, for tests
//! that signal it (kill, SIGSTOP, restart) or measure it from outside: its
//! open files (`/proc/<pid>/fd`), its RSS, its admin `/metrics`, its log.
//!
//! By default a process gets a state directory of its own (kept across
//! restarts) holding the config file written by the test and its stderr in
//! `gateway.log`. [`Launch`] starts one on a given state directory instead
//! (the store fault tests own theirs, on a small disk or inside a mount
//! namespace), with extra environment, extra arguments or under a wrapper
//! command; its log is then kept outside that directory, so a full disk
//! there does not swallow the lines a test waits for.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clawgate::runtime_file::{self, Found};

/// How long a start may take until the listener answers.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`ClawgateProcess::wait_log`] waits for a line.
const LOG_TIMEOUT: Duration = Duration::from_secs(15);

/// The `clawgate` binary run with `state` as its state directory and every
/// inherited `CLAWGATE_`/`OPENCLAW_GATEWAY_`/`RUST_LOG` variable removed, so
/// the developer's environment cannot change what a test sees.
pub fn clawgate_command(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    clean_environment(&mut cmd, state);
    cmd
}

/// [`clawgate_command`]'s environment on `cmd` (the binary, or a wrapper that runs it).
fn clean_environment(cmd: &mut Command, state: &Path) {
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("CLAWGATE_STATE_DIR", state);
}

/// How to start a [`ClawgateProcess`]; see the module comment.
#[derive(Default)]
pub struct Launch {
    config: Option<String>,
    state: Option<PathBuf>,
    fixed_port: Option<u16>,
    with_admin: bool,
    env: Vec<(String, String)>,
    args: Vec<String>,
    wrapper: Vec<String>,
}

impl Launch {
    /// `config` (JSON5 text) written next to the log and passed with
    /// `--config`; without it the state directory's own `config.json5` is read.
    pub fn config(mut self, config: &str) -> Launch {
        self.config = Some(config.to_owned());
        self
    }

    /// Run on `state` (prepared and kept by the caller).
    pub fn state_dir(mut self, state: &Path) -> Launch {
        self.state = Some(state.to_owned());
        self
    }

    /// Always listen on `port` (a stand-in upstream restarted in place).
    pub fn port(mut self, port: Option<u16>) -> Launch {
        self.fixed_port = port;
        self
    }

    /// An admin listener on a free loopback port.
    pub fn admin(mut self, with_admin: bool) -> Launch {
        self.with_admin = with_admin;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Further arguments to `gateway run`.
    pub fn args(mut self, args: &[&str]) -> Launch {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Run the binary as the last argument of `wrapper` (a command that
    /// execs its arguments, e.g. one entering a namespace).
    pub fn wrapped_in(mut self, wrapper: Vec<String>) -> Launch {
        self.wrapper = wrapper;
        self
    }

    pub async fn start(self) -> ClawgateProcess {
        use std::os::unix::fs::PermissionsExt;
        let files = tempfile::Builder::new().prefix("clawgate-proc").tempdir().unwrap();
        std::fs::set_permissions(files.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let state = self.state.clone().unwrap_or_else(|| files.path().to_owned());
        let mut p = ClawgateProcess {
            files,
            state,
            launch: self,
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            admin: None,
        };
        p.restart().await;
        p
    }
}

pub struct ClawgateProcess {
    /// The log and the written config (and the state, unless one was given).
    files: tempfile::TempDir,
    state: PathBuf,
    launch: Launch,
    child: Option<Child>,
    /// The gateway listener, once started.
    pub addr: SocketAddr,
    /// The admin listener, when asked for.
    pub admin: Option<SocketAddr>,
}

impl ClawgateProcess {
    /// Start `clawgate gateway run` with `config` (JSON5 text) on a state
    /// directory of its own.
    pub async fn start(config: &str, fixed_port: Option<u16>, with_admin: bool) -> ClawgateProcess {
        ClawgateProcess::launch().config(config).port(fixed_port).admin(with_admin).start().await
    }

    pub fn launch() -> Launch {
        Launch::default()
    }

    fn log_path(&self) -> PathBuf {
        self.files.path().join("gateway.log")
    }

    /// Start again (after [`ClawgateProcess::kill`]): same state, config and port.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        let launch = &self.launch;
        let config_path = self.files.path().join("config.json5");
        if let Some(config) = &launch.config {
            std::fs::write(&config_path, config).unwrap();
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let log_start = log.metadata().unwrap().len() as usize;
        let bin = env!("CARGO_BIN_EXE_clawgate");
        let mut cmd = match launch.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        clean_environment(&mut cmd, &self.state);
        cmd.envs(launch.env.iter().map(|(k, v)| (k, v)));
        let port = launch.fixed_port.map_or("0".to_owned(), |p| p.to_string());
        cmd.args(["gateway", "run", "--port", &port]);
        if launch.with_admin {
            cmd.args(["--admin", "127.0.0.1:0"]);
        }
        if launch.config.is_some() {
            cmd.arg("--config").arg(&config_path);
        }
        let child = cmd
            .args(&launch.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn clawgate");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        self.addr = loop {
            if let Ok(Some(Found::Live(info))) = runtime_file::read(&self.state_view()) {
                if info.pid == self.pid() {
                    break info.url.trim_start_matches("ws://").parse().expect("a ws://ip:port URL");
                }
            }
            self.assert_starting(deadline, "did not start");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        if self.launch.with_admin {
            let line = loop {
                let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                if let Some(line) =
                    text[log_start.min(text.len())..].lines().find(|l| l.contains("admin listener on http://"))
                {
                    break line.to_owned();
                }
                self.assert_starting(deadline, "has no admin listener line");
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            self.admin =
                line.split("http://").nth(1).and_then(|r| r.split([' ', '"']).next()).and_then(|a| a.parse().ok());
        }
        while tokio::net::TcpStream::connect(self.addr).await.is_err() {
            self.assert_starting(deadline, "does not accept");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Panic with the log when the process exited during its start or the
    /// start takes too long.
    fn assert_starting(&mut self, deadline: Instant, what: &str) {
        let child = self.child.as_mut().expect("running");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("clawgate exited during its start ({status}):\n{}", self.log_tail());
        }
        assert!(Instant::now() < deadline, "clawgate {what}:\n{}", self.log_tail());
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

    /// SIGKILL a process that is still running, and reap it: panics when
    /// it had exited by itself (a crash test must kill, not find it gone).
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
        let status = child.wait().unwrap();
        assert!(!status.success(), "killed, not exited: {status}");
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

    /// `GET path` on the admin listener: (status, body).
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let admin = self.admin.expect("started with an admin listener");
        crate::admin_metrics::http(admin, "GET", path).await
    }

    /// The admin `/metrics` exposition.
    pub async fn metrics(&self) -> String {
        self.admin_get("/metrics").await.1
    }

    /// The state directory, as this test process names it.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The state directory as the running process sees it (through
    /// `/proc/<pid>/root`: the same files unless it runs in a mount
    /// namespace of its own).
    pub fn state_view(&self) -> PathBuf {
        let inside = self.state.strip_prefix("/").expect("an absolute state directory");
        Path::new("/proc").join(self.pid().to_string()).join("root").join(inside)
    }

    /// The store file of a SQLite-backed process, as this test process names it.
    pub fn store_path(&self) -> PathBuf {
        self.state.join("clawgate.sqlite")
    }

    /// Every line it logged so far (across restarts).
    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.log_path()).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// The log lines containing every one of `needles`.
    pub fn log_matching(&self, needles: &[&str]) -> Vec<String> {
        self.log_lines().into_iter().filter(|l| needles.iter().all(|n| l.contains(n))).collect()
    }

    /// Wait for a log line containing every one of `needles`, and return it.
    pub async fn wait_log(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + LOG_TIMEOUT;
        loop {
            if let Some(line) = self.log_matching(needles).into_iter().next() {
                return line;
            }
            assert!(Instant::now() < deadline, "no log line with {needles:?}:\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last lines of its log (for failure messages).
    pub fn log_tail(&self) -> String {
        let lines = self.log_lines();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for ClawgateProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
