//! A real PostgreSQL server for tests: Debian's `initdb` and `pg_ctl`
//! (installed by interop/cluster/install.sh) on a loopback port, in a
//! temporary directory, its socket in that directory too. One server per
//! test process, shared by every test, each test with a database of its
//! own (`CREATE DATABASE` is fast); stopped and removed when dropped, and
//! the shared one when the process exits.
//!
//! Tests run as root here and in CI, and `initdb` refuses root: the server
//! then runs as the `postgres` user the Debian package creates.
//!
//! Used by the store's unit tests and, through `#[path]`, by the
//! integration tests (tests/it/common/postgres.rs), so it depends on
//! nothing but std, libc, tempfile and the postgres client.

use std::ffi::CString;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::OnceLock;

/// One running PostgreSQL server.
pub struct PgServer {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    /// The user the server runs as, when this process is root.
    run_as: Option<(u32, u32)>,
    stopped: AtomicBool,
    databases: AtomicU32,
}

static SHARED: OnceLock<PgServer> = OnceLock::new();

extern "C" fn stop_shared_at_exit() {
    if let Some(server) = SHARED.get() {
        server.stop();
        // The temporary directory of a static is never dropped: remove it.
        let _ = std::fs::remove_dir_all(server.dir.path());
    }
}

/// The server shared by this test process, started on first use.
pub fn shared() -> &'static PgServer {
    SHARED.get_or_init(|| {
        let server = PgServer::start();
        // SAFETY: registering a plain function with no captured state.
        unsafe { libc::atexit(stop_shared_at_exit) };
        server
    })
}

/// A URL of a fresh, empty database on the shared server.
pub fn fresh_database_url() -> String {
    shared().fresh_database_url()
}

impl PgServer {
    /// Initialise a cluster in a new temporary directory and start it.
    pub fn start() -> PgServer {
        let bindir = bindir();
        let dir = tempfile::Builder::new().prefix("clawgate-pg-").tempdir().expect("a temporary directory");
        let run_as = if unsafe { libc::geteuid() } == 0 { Some(postgres_user()) } else { None };
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the temporary directory");
        }
        let data = dir.path().join("data");
        let out = run(
            Command::new(bindir.join("initdb")).arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]),
            dir.path(),
            run_as,
        );
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut server =
            PgServer { dir, bindir, port: 0, run_as, stopped: AtomicBool::new(false), databases: AtomicU32::new(0) };
        // A port found free may be taken before the server binds it: retry.
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port();
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
                 -c full_page_writes=off -c max_connections=300",
                server.port,
                server.dir.path().display()
            );
            let out = run(
                Command::new(server.bindir.join("pg_ctl"))
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(server.dir.path().join("server.log"))
                    .args(["-w", "-t", "60", "-o", &options, "start"]),
                server.dir.path(),
                run_as,
            );
            if out.status.success() {
                return server;
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            last.push_str(&std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default());
        }
        panic!("pg_ctl start failed: {last}");
    }

    /// The URL of the server's `postgres` database (as the superuser).
    pub fn admin_url(&self) -> String {
        self.url_of("postgres")
    }

    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Run SQL statements on the `postgres` database, on a thread of their
    /// own (the synchronous client cannot run inside an async test).
    pub fn admin(&self, sql: &str) {
        let url = self.admin_url();
        let sql = sql.to_owned();
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect to the test server");
            client.batch_execute(&sql).expect("admin SQL");
        })
        .join()
        .expect("admin thread");
    }

    /// Create an empty database; returns its URL.
    pub fn fresh_database_url(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{n}");
        self.admin(&format!("CREATE DATABASE {name}"));
        self.url_of(&name)
    }

    /// Cut every connection to `database` (the server stays up): what a
    /// store sees when its database server restarts.
    pub fn cut_connections(&self, database: &str) {
        self.admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        ));
    }

    /// Stop the server at once (idempotent).
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = run(
            Command::new(self.bindir.join("pg_ctl")).arg("-D").arg(self.dir.path().join("data")).args([
                "-m",
                "immediate",
                "-w",
                "stop",
            ]),
            self.dir.path(),
            self.run_as,
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(cmd: &mut Command, cwd: &Path, run_as: Option<(u32, u32)>) -> Output {
    cmd.current_dir(cwd).env_remove("PGDATA").env_remove("PGPORT").env_remove("PGHOST");
    if let Some((uid, gid)) = run_as {
        cmd.gid(gid).uid(uid);
    }
    cmd.output().unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// The uid and gid of the `postgres` user (created by Debian's package).
fn postgres_user() -> (u32, u32) {
    let name = CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam returns NULL or a pointer to a static record, read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!pw.is_null(), "no `postgres` user: run interop/cluster/install.sh (apt-get install postgresql)");
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}

/// Where `initdb` and `pg_ctl` are: `pg_config --bindir`, else the newest
/// of Debian's /usr/lib/postgresql/<version>/bin, else the PATH.
fn bindir() -> PathBuf {
    let has_initdb = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_initdb(&dir) {
            return dir;
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_initdb(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if has_initdb(&dir) {
            return dir;
        }
    }
    panic!("PostgreSQL's initdb and pg_ctl not found: run interop/cluster/install.sh (apt-get install postgresql)")
}
