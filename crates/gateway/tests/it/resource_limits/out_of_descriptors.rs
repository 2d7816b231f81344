//! Out of file descriptors (docs/operations.md, "Resource limits"): the
//! real binary under an open-file limit of 64 with
//! `gateway.limits.maxConnections` far above it, so `accept()` itself fails
//! with EMFILE. Idle sessions from other loopback addresses take every
//! descriptor (sessions, not bare sockets: those would leave at the head
//! deadline and free descriptors by themselves); then more idle sockets
//! arrive. The accept loop gives up its spare descriptor to accept and close
//! each of them at once, so they are closed, not left hanging in the
//! kernel's backlog; the gateway stays up, logs the failures throttled (not
//! a line each), and once the sessions leave a client connects and is served.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::admin_metrics::sample;
use crate::common::clawgate_process::ClawgateProcess;
use crate::common::{connect_params, RawConn, TOKEN};

/// The gateway's open-file limit, soft and hard (so no start-up raise).
const NOFILE: u64 = 64;
/// Far above what [`NOFILE`] allows: the budget never refuses, accept fails.
const MAX_CONNECTIONS: usize = 1_000;
/// Sessions tried per source address, and at most in all.
const SESSIONS_PER_ADDRESS: usize = 8;
const MAX_SESSIONS: usize = NOFILE as usize;
/// Idle sockets opened once every descriptor is taken.
const LATE_SOCKETS: usize = 60;
/// The accept loop's log interval (server/accept.rs).
const LOG_EVERY: Duration = Duration::from_secs(10);
const ACCEPT_FAILED: &str = "accept failed";

async fn start_without_descriptors() -> ClawgateProcess {
    let config = format!(
        "{{ gateway: {{ auth: {{ mode: \"token\", token: \"{TOKEN}\" }}, limits: {{ maxConnections: {MAX_CONNECTIONS} }} }} }}\n"
    );
    ClawgateProcess::launch()
        .config(&config)
        .admin(true)
        .env("CLAWGATE_LOG", "info")
        .args(&["--log-format", "json"])
        .wrapped_in(vec!["prlimit".into(), format!("--nofile={NOFILE}:{NOFILE}"), "--".into()])
        .start()
        .await
}

/// An operator session from `source`; `None` when the gateway closed the
/// socket at accept (out of descriptors).
async fn session_from(source: &str, addr: SocketAddr) -> Option<RawConn> {
    let mut c = match RawConn::open_from_unless_closed(source, addr).await? {
        Ok(c) => c,
        Err(refused) => panic!("refused with {} instead of closed: {}", refused.status, refused.body),
    };
    let res =
        c.handshake(connect_params("gateway-client", "backend", "operator", &["operator.read"], Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    Some(c)
}

/// An idle TCP socket from `source`.
async fn idle_socket(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.expect("the kernel takes the connection into the backlog")
}

/// Wait until the gateway closes `stream` (end of stream or a reset);
/// false if it is still open at `deadline`.
async fn closed_by_gateway(mut stream: TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_new_sockets_are_closed_at_once_and_the_gateway_recovers() {
    // This process holds both ends' worth of sockets: room for them.
    let _ = clawgate::fd_limit::raise_soft_to_hard();
    let started = Instant::now();
    let gw = start_without_descriptors().await;
    let limit_line = gw.wait_log(&["open-file limit"]).await;
    assert!(limit_line.contains(&format!("soft {NOFILE}")), "{limit_line}");

    // Idle sessions from 127.0.0.2 on until one is closed at accept.
    let mut sessions = Vec::new();
    let mut ran_out = false;
    for i in 0..MAX_SESSIONS {
        let source = format!("127.0.0.{}", 2 + i / SESSIONS_PER_ADDRESS);
        match session_from(&source, gw.addr).await {
            Some(s) => sessions.push(s),
            None => {
                ran_out = true;
                break;
            }
        }
    }
    assert!(ran_out, "{} sessions did not take every descriptor:\n{}", sessions.len(), gw.log_tail());
    assert!(sessions.len() >= 8, "only {} sessions before running out:\n{}", sessions.len(), gw.log_tail());

    // More idle sockets: each is accepted and closed at once with the
    // spare descriptor, not left in the backlog (a generous bound: the
    // shedding takes milliseconds each; left in the backlog they would
    // stay open for as long as the sessions do).
    let late_from = 2 + MAX_SESSIONS / SESSIONS_PER_ADDRESS;
    let mut late = Vec::new();
    for i in 0..LATE_SOCKETS {
        late.push(idle_socket(&format!("127.0.0.{}", late_from + i % 10), gw.addr).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let closed = futures_util::future::join_all(late.into_iter().map(|s| closed_by_gateway(s, deadline))).await;
    let open = closed.iter().filter(|c| !**c).count();
    assert_eq!(open, 0, "{open} of {LATE_SOCKETS} sockets left hanging while out of descriptors:\n{}", gw.log_tail());

    // Still up, and the sessions are still served (they need no new descriptor).
    assert!(std::path::Path::new(&format!("/proc/{}", gw.pid())).exists(), "the gateway exited");
    for (i, s) in sessions.iter_mut().enumerate().step_by(7) {
        assert_eq!(s.call(&format!("h{i}"), "health", None).await["ok"], true);
    }

    // The failures are logged throttled: at most one line per interval
    // (each with the count left out since the last), naming the error.
    let failed = gw.log_matching(&[ACCEPT_FAILED]);
    assert!(!failed.is_empty(), "no accept failure logged:\n{}", gw.log_tail());
    assert!(failed.iter().all(|l| l.contains("os error 24")), "{failed:#?}");
    let intervals = started.elapsed().as_secs() / LOG_EVERY.as_secs() + 1;
    assert!(failed.len() as u64 <= intervals, "{} lines in {intervals} intervals:\n{failed:#?}", failed.len());

    // The sessions leave: everything is given back, and a client is served.
    drop(sessions);
    let admin_deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let m = gw.metrics().await;
        if sample(&m, "clawgate_connections", &["state=\"established\""]) == 0.0 {
            break m;
        }
        assert!(Instant::now() < admin_deadline, "the sessions' places never came back:\n{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let errors = sample(&metrics, "clawgate_accept_errors_total", &[]);
    assert!(errors >= LATE_SOCKETS as f64, "{errors} accept errors for {LATE_SOCKETS} late sockets");
    assert!(errors > failed.len() as f64, "one line per failure: {errors} errors, {} lines", failed.len());
    assert_eq!(sample(&metrics, "clawgate_connections_max", &[]), MAX_CONNECTIONS as f64);

    let mut owner = RawConn::open(gw.addr).await;
    let res =
        owner.handshake(connect_params("gateway-client", "backend", "operator", &["operator.read"], Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(owner.call("after", "health", None).await["ok"], true);
    let mut again = session_from("127.0.0.2", gw.addr).await.expect("accepted once descriptors are free");
    assert_eq!(again.call("after2", "health", None).await["ok"], true);
}
