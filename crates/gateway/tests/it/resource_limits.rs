//! Resource limits that keep the owner in (docs/operations.md, "Resource
//! limits"): the real binary under a low open-file limit, flooded with idle
//! sockets (silent, and slow-header) from many loopback addresses, still
//! admits a local client holding the token; its log stays bounded; other
//! loopback addresses cannot take the owner's budget.
//!
//! Everything here runs as one uid, so "another user's program on
//! 127.0.0.1" cannot be made in a test: what is tested is that other
//! loopback addresses (127.0.0.2 and on) cannot take the budget of the
//! owner's 127.0.0.1. The uid split itself is the same lookup as
//! `peer_uid.rs` tests, and the keying is unit-tested (server/limits.rs).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::admin_metrics::{http, sample};
use crate::common::{connect_params, RawConn, TestGateway, TOKEN};
use clawgate::runtime_file::{self, Found};

/// The gateway's open-file limit: soft below hard, so raising shows.
const SOFT_NOFILE: u64 = 128;
const HARD_NOFILE: u64 = 256;
/// Attacking addresses and sockets from each.
const ATTACK_ADDRESSES: u8 = 10;
const SOCKETS_PER_ADDRESS: usize = 30;

struct Gateway {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `clawgate gateway run` with RLIMIT_NOFILE soft 128, hard 256.
async fn start_limited() -> Gateway {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("clawgate-limits").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = dir.path().join("config.json5");
    std::fs::write(&config, format!("{{ gateway: {{ auth: {{ mode: \"token\", token: \"{TOKEN}\" }} }} }}\n")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("CLAWGATE_STATE_DIR", dir.path())
        .args(["gateway", "run", "--port", "0", "--admin", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child here.
    unsafe {
        cmd.pre_exec(|| {
            let r = libc::rlimit { rlim_cur: SOFT_NOFILE as libc::rlim_t, rlim_max: HARD_NOFILE as libc::rlim_t };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let (addr, admin) = loop {
        let admin = lines.lock().unwrap().iter().find_map(|l| {
            l.split("admin listener on http://").nth(1).and_then(|r| r.split([' ', '"']).next()?.parse().ok())
        });
        if let (Ok(Some(Found::Live(info))), Some(admin)) = (runtime_file::read(dir.path()), admin) {
            break (info.url.trim_start_matches("ws://").parse().unwrap(), admin);
        }
        assert!(Instant::now() < deadline, "the gateway did not start:\n{}", lines.lock().unwrap().join("\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    Gateway { child, addr, admin, lines, _dir: dir }
}

/// Open a socket from `source`; a slow-header one sends the start of a
/// request head and stops.
async fn idle_socket(source: &str, to: SocketAddr, slow_header: bool) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(format!("{source}:0").parse().unwrap()).ok()?;
    let mut stream = socket.connect(to).await.ok()?;
    if slow_header {
        // The gateway may already have closed it (over budget): that is fine.
        let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n").await;
    }
    Some(stream)
}

async fn metrics(admin: SocketAddr) -> String {
    http(admin, "GET", "/metrics").await.1
}

/// Poll /metrics until `done` holds (generous bound, no timing asserted).
async fn wait_metrics(admin: SocketAddr, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = metrics(admin).await;
        if done(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "never {what}:\n{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn owner_session(addr: SocketAddr) -> RawConn {
    let mut c = RawConn::open(addr).await;
    let res =
        c.handshake(connect_params("gateway-client", "backend", "operator", &["operator.read"], Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_from_many_addresses_under_a_low_file_limit_do_not_lock_the_owner_out() {
    // This process holds the attackers' ends: room for them.
    let _ = clawgate::fd_limit::raise_soft_to_hard();
    let gw = start_limited().await;
    let limit_line = gw.lines.lock().unwrap().iter().find(|l| l.contains("open-file limit")).cloned();
    let limit_line = limit_line.expect("the open-file limit is logged");
    assert!(limit_line.contains("soft 256 (was 128), hard 256"), "{limit_line}");
    let max = sample(&metrics(gw.admin).await, "clawgate_connections_max", &[]);
    assert_eq!(max, (HARD_NOFILE - 64) as f64, "the default leaves headroom for the store and listeners");

    // A session from another address, admitted before the flood.
    let mut earlier = RawConn::open_from("127.0.0.12", gw.addr, &[]).await.expect("upgrade");
    let res = earlier
        .handshake(connect_params("gateway-client", "backend", "operator", &["operator.read"], Some(TOKEN)))
        .await;
    assert_eq!(res["ok"], true, "{res}");

    let lines_before = gw.lines.lock().unwrap().len();
    let mut held = Vec::new();
    for a in 0..ATTACK_ADDRESSES {
        let source = format!("127.0.0.{}", a + 2);
        for i in 0..SOCKETS_PER_ADDRESS {
            if let Some(s) = idle_socket(&source, gw.addr, i % 2 == 1).await {
                held.push(s);
            }
        }
    }
    let attempted = ATTACK_ADDRESSES as usize * SOCKETS_PER_ADDRESS;
    assert!(held.len() > attempted / 2, "the flood itself could not open its sockets ({})", held.len());
    // Every socket is counted or closed at accept: none waits in the backlog.
    let m = wait_metrics(gw.admin, "all flood sockets counted or closed", |m| {
        let counted = sample(m, "clawgate_connections", &["state=\"unauthenticated\""]);
        let refused = sample(m, "clawgate_connections_refused_total", &[]);
        counted + refused >= held.len() as f64
    })
    .await;
    assert!(sample(&m, "clawgate_connections_refused_total", &["budget=\"unauthenticated\""]) > 0.0, "{m}");
    assert!(sample(&m, "clawgate_connections", &["state=\"unauthenticated\""]) < max / 2.0, "{m}");

    // The owner still gets in and is served; so is the earlier session.
    let mut owner = owner_session(gw.addr).await;
    assert_eq!(owner.call("h1", "health", None).await["ok"], true);
    assert_eq!(earlier.call("h2", "health", None).await["ok"], true);

    // Bounded log: the closes at accept are summarized, not one line each.
    let flood_lines = gw.lines.lock().unwrap()[lines_before..].to_vec();
    assert!(flood_lines.len() <= 20, "{} lines during the flood:\n{}", flood_lines.len(), flood_lines.join("\n"));

    // Everything is given back once the flood leaves.
    drop(held);
    wait_metrics(gw.admin, "the flood's places given back", |m| {
        sample(m, "clawgate_connections", &["state=\"unauthenticated\""]) == 0.0
            && sample(m, "clawgate_connections", &["state=\"owner\""]) == 0.0
    })
    .await;
    assert_eq!(owner.call("h3", "health", None).await["ok"], true);
}

#[tokio::test]
async fn slow_header_sockets_leave_at_the_head_deadline() {
    let options = clawgate::ServerOptions { head_timeout: Duration::from_millis(300), ..Default::default() };
    let gw = TestGateway::start(
        clawgate::config::Config::new(clawgate::config::AuthMode::Token, Some(TOKEN), None),
        options,
    )
    .await;
    let mut slow = idle_socket("127.0.0.2", gw.addr, true).await.expect("connect");
    // The gateway closes it after the head deadline: the read sees the end.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read(&mut slow, &mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "still open after the head deadline: {read:?}");
    gw.stop().await;
}

#[tokio::test]
async fn other_loopback_addresses_cannot_take_the_owners_budget() {
    let gw = TestGateway::token().await;
    let mut others = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        match RawConn::open_from("127.0.0.2", gw.addr, &[]).await {
            Ok(c) => others.push(c),
            Err(r) => {
                assert_eq!(r.status, 503, "{}", r.body);
                refused += 1;
            }
        }
    }
    assert_eq!(others.len(), clawgate::server::limits::MAX_PREAUTH_PER_IP);
    assert_eq!(refused, 40 - clawgate::server::limits::MAX_PREAUTH_PER_IP);
    let mut owner = owner_session(gw.addr).await;
    assert_eq!(owner.call("h1", "health", None).await["ok"], true);
    drop(others);
    gw.stop().await;
}

mod out_of_descriptors;
