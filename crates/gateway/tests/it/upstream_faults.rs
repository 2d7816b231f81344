//! Upstream faults: the upstream killed, restarted (SIGTERM) or frozen
//! (SIGSTOP) during handshakes and during sessions, cycle after cycle. Every
//! downstream client gets its answer within a bound: 1013 with
//! `UPSTREAM_UNAVAILABLE` and `retryAfterMs` at admission, 1012 for a live
//! session, and a request in the frozen upstream's hands gets a retryable
//! error first. Afterwards clawgate's open files, tasks and upstream links
//! are back at their baseline (measured from outside: `/proc/<pid>/fd` and
//! the admin `/metrics`).
//!
//! The upstream here is a stand-in that speaks the real protocol and starts
//! in milliseconds: a second `clawgate gateway run`, standalone, which admits
//! the relay's backend connection with its token. `upstream_faults_openclaw`
//! runs a few of the same faults against the real OpenClaw gateway.
//! `CLAWGATE_FAULT_CYCLES` sets the number of cycles (`scripts/upstream-faults`
//! runs 1,000 and prints the figures).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::admin_metrics::sample;
use crate::common::clawgate_process::ClawgateProcess;
use crate::common::{connect_params, RawConn, TOKEN};

const UPSTREAM_TOKEN: &str = "stand-in-upstream-token-0123456789abcdef";
/// clawgate's bounds in these tests: `handshakeTimeoutMs`, `livenessTimeoutMs`.
pub const BOUND_MS: u64 = 3_000;
/// Generous: a client must have its 1012 or 1013 well within this.
pub const ANSWER_BOUND: Duration = Duration::from_secs(30);
/// How long leftovers may take to go after the last cycle.
const SETTLE: Duration = Duration::from_secs(30);
const DEFAULT_CYCLES: usize = 40;
const CLIENTS_PER_CYCLE: usize = 2;

/// clawgate in front of the upstream at `url`, with `bound_ms` as both bounds.
pub fn front_config(url: &str, upstream_token: &str, bound_ms: u64) -> String {
    format!(
        "{{ gateway: {{ auth: {{ mode: \"token\", token: \"{TOKEN}\" }}, upstream: {{ url: \"{url}\", token: \
         \"{upstream_token}\", handshakeTimeoutMs: {bound_ms}, livenessTimeoutMs: {bound_ms} }} }} }}\n"
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What one downstream client got.
#[derive(Debug)]
pub enum Outcome {
    /// Admitted (the upstream was back in time); the session is dropped.
    Admitted,
    /// Refused at admission: 1013 with `UPSTREAM_UNAVAILABLE` (checked).
    Unavailable,
    /// A live session closed 1012 (checked), with how its request was answered.
    SessionLost { request_answered: Option<bool> },
}

/// Connect; a refusal must be `UNAVAILABLE`/`UPSTREAM_UNAVAILABLE`, retryable,
/// with `retryAfterMs`, then close 1013.
pub async fn connect(addr: SocketAddr) -> (Outcome, Option<RawConn>) {
    connect_checked(addr, true).await
}

/// [`connect`]; `checked: false` for a real upstream, whose relayed frames
/// are newer than the schema this repository pins.
pub async fn connect_checked(addr: SocketAddr, checked: bool) -> (Outcome, Option<RawConn>) {
    let c = RawConn::open(addr).await;
    let mut c = if checked { c } else { c.unchecked() };
    let res =
        c.handshake(connect_params("gateway-client", "backend", "operator", &["operator.read"], Some(TOKEN))).await;
    if res["ok"] == true {
        return (Outcome::Admitted, Some(c));
    }
    let e = &res["error"];
    assert_eq!(
        (e["code"].as_str(), e["details"]["code"].as_str()),
        (Some("UNAVAILABLE"), Some("UPSTREAM_UNAVAILABLE")),
        "{res}"
    );
    assert_eq!(e["retryable"], true, "{res}");
    assert!(e["retryAfterMs"].as_u64().is_some_and(|ms| ms > 0), "{res}");
    let (code, _) = c.expect_close().await;
    assert_eq!(code, 1013, "after {res}");
    (Outcome::Unavailable, None)
}

/// Connect, keeping only the outcome (an admitted session is dropped).
pub async fn admission(addr: SocketAddr) -> Outcome {
    connect(addr).await.0
}

/// [`admission`] without the schema check.
pub async fn admission_unchecked(addr: SocketAddr) -> Outcome {
    connect_checked(addr, false).await.0
}

/// A session that must be admitted now.
pub async fn session(addr: SocketAddr) -> RawConn {
    session_checked(addr, true).await
}

pub async fn session_checked(addr: SocketAddr, checked: bool) -> RawConn {
    match connect_checked(addr, checked).await {
        (Outcome::Admitted, Some(c)) => c,
        (other, _) => panic!("not admitted: {other:?}"),
    }
}

/// After a fault: send a relayed request (when the socket still takes it)
/// and read until the close, which must be 1012. An answer to the request
/// is an upstream answer or a retryable `UPSTREAM_UNAVAILABLE` error.
pub async fn lost(mut c: RawConn, id: &str) -> Outcome {
    let sent = c.try_send(&json!({ "type": "req", "id": id, "method": "health" })).await;
    let mut request_answered = None;
    loop {
        match c.recv_or_close().await {
            Ok(frame) if frame["type"] == "res" && frame["id"] == id => {
                assert!(sent && request_answered.is_none(), "one answer to a sent request: {frame}");
                if frame["ok"] != true {
                    assert_eq!(frame["error"]["details"]["code"], "UPSTREAM_UNAVAILABLE", "{frame}");
                    assert_eq!(frame["error"]["retryable"], true, "{frame}");
                }
                request_answered = Some(frame["ok"] == true);
            }
            Ok(_) => {}
            Err((code, reason)) => {
                assert_eq!(code, 1012, "a live session closed 1012 ({reason})");
                return Outcome::SessionLost { request_answered };
            }
        }
    }
}

/// Every future must finish within [`ANSWER_BOUND`]; the slowest took how long.
pub async fn all_within<T>(futures: Vec<impl std::future::Future<Output = T>>) -> (Vec<T>, Duration) {
    all_within_since(Instant::now(), futures).await
}

/// [`all_within`], timed from `started` (the fault, for clients already waiting).
async fn all_within_since<T>(
    started: Instant,
    futures: Vec<impl std::future::Future<Output = T>>,
) -> (Vec<T>, Duration) {
    let timed = futures.into_iter().map(|f| async move {
        let out = tokio::time::timeout(ANSWER_BOUND, f).await.expect("answered within the bound, never a hang");
        (out, started.elapsed())
    });
    let results = futures_util::future::join_all(timed).await;
    let slowest = results.iter().map(|(_, d)| *d).max().unwrap_or_default();
    (results.into_iter().map(|(o, _)| o).collect(), slowest)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    SessionKill,
    SessionTerm,
    SessionFreezeThaw,
    SessionFreezeKill,
    HandshakeDown,
    HandshakeFreezeTimeout,
    HandshakeFreezeKill,
    HandshakeRestart,
}

const FAULTS: [Fault; 8] = [
    Fault::SessionKill,
    Fault::HandshakeFreezeTimeout,
    Fault::SessionTerm,
    Fault::HandshakeDown,
    Fault::SessionFreezeThaw,
    Fault::HandshakeFreezeKill,
    Fault::SessionFreezeKill,
    Fault::HandshakeRestart,
];

/// The front (clawgate under test) and its stand-in upstream.
struct Rig {
    front: ClawgateProcess,
    upstream: ClawgateProcess,
}

/// Per fault kind: cycles, clients by outcome, the slowest answer.
#[derive(Default, Debug)]
struct Tally {
    cycles: usize,
    admitted: usize,
    unavailable: usize,
    lost: usize,
    errors_answered: usize,
    slowest: Duration,
}

impl Rig {
    async fn cycle(&mut self, fault: Fault, n: usize, tally: &mut Tally) {
        let addr = self.front.addr;
        let (outcomes, slowest) = match fault {
            Fault::SessionKill | Fault::SessionTerm | Fault::SessionFreezeThaw | Fault::SessionFreezeKill => {
                let mut sessions = Vec::new();
                for _ in 0..CLIENTS_PER_CYCLE {
                    sessions.push(session(addr).await);
                }
                match fault {
                    Fault::SessionKill => self.upstream.kill(),
                    Fault::SessionTerm => {
                        self.upstream.signal(libc::SIGTERM);
                    }
                    _ => self.upstream.freeze().await,
                }
                let ids: Vec<String> = (0..sessions.len()).map(|i| format!("c{n}-{i}")).collect();
                let waits = sessions.into_iter().zip(&ids).map(|(c, id)| lost(c, id)).collect();
                let answered = all_within(waits).await;
                if matches!(fault, Fault::SessionFreezeThaw | Fault::SessionFreezeKill) {
                    for o in &answered.0 {
                        let Outcome::SessionLost { request_answered } = o else { unreachable!() };
                        assert_eq!(*request_answered, Some(false), "the frozen upstream's request got its error");
                    }
                }
                answered
            }
            Fault::HandshakeDown => {
                self.upstream.kill();
                all_within((0..CLIENTS_PER_CYCLE).map(|_| admission(addr)).collect()).await
            }
            Fault::HandshakeFreezeTimeout | Fault::HandshakeFreezeKill => {
                self.upstream.freeze().await;
                let started = Instant::now();
                let clients: Vec<_> = (0..CLIENTS_PER_CYCLE).map(|_| tokio::spawn(admission(addr))).collect();
                if fault == Fault::HandshakeFreezeKill {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    self.upstream.kill();
                }
                let (outcomes, slowest) = all_within_since(started, clients).await;
                (outcomes.into_iter().map(|o| o.expect("client task")).collect(), slowest)
            }
            Fault::HandshakeRestart => {
                let started = Instant::now();
                let clients: Vec<_> = (0..CLIENTS_PER_CYCLE).map(|_| tokio::spawn(admission(addr))).collect();
                self.upstream.terminate().await;
                self.upstream.restart().await;
                let (outcomes, slowest) = all_within_since(started, clients).await;
                (outcomes.into_iter().map(|o| o.expect("client task")).collect(), slowest)
            }
        };
        // Back to a healthy upstream for the next cycle.
        match fault {
            Fault::SessionFreezeThaw | Fault::HandshakeFreezeTimeout => self.upstream.signal(libc::SIGCONT),
            Fault::SessionTerm => {
                self.upstream.terminate().await;
                self.upstream.restart().await;
            }
            Fault::HandshakeRestart => {}
            _ => {
                self.upstream.kill();
                self.upstream.restart().await;
            }
        }
        // Admission faults refuse every client: a dead or frozen upstream admits no one.
        if matches!(fault, Fault::HandshakeDown | Fault::HandshakeFreezeTimeout | Fault::HandshakeFreezeKill) {
            assert!(outcomes.iter().all(|o| matches!(o, Outcome::Unavailable)), "{fault:?}: {outcomes:?}");
        }
        tally.cycles += 1;
        tally.slowest = tally.slowest.max(slowest);
        for o in outcomes {
            match o {
                Outcome::Admitted => tally.admitted += 1,
                Outcome::Unavailable => tally.unavailable += 1,
                Outcome::SessionLost { request_answered } => {
                    tally.lost += 1;
                    tally.errors_answered += usize::from(request_answered == Some(false));
                }
            }
        }
    }
}

/// clawgate's figures, read from outside.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub fds: usize,
    pub rss_kib: u64,
    pub tasks: u64,
    pub links: u64,
    pub sessions: u64,
}

pub async fn figures(front: &ClawgateProcess) -> Figures {
    let m = front.metrics().await;
    Figures {
        fds: front.open_fds(),
        rss_kib: front.rss_kib(),
        tasks: sample(&m, "clawgate_runtime_alive_tasks", &[]) as u64,
        links: sample(&m, "clawgate_upstream_links_open", &[]) as u64,
        sessions: sample(&m, "clawgate_sessions", &[]) as u64
            + sample(&m, "clawgate_handshaking_connections", &[]) as u64,
    }
}

/// Wait (bounded) until files, tasks, links and sessions are back at `baseline`.
pub async fn settled(front: &ClawgateProcess, baseline: Figures) -> Figures {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = figures(front).await;
        if now.fds <= baseline.fds && now.tasks <= baseline.tasks && now.links == 0 && now.sessions == 0 {
            return now;
        }
        assert!(Instant::now() < deadline, "not back to the baseline {baseline:?} within {SETTLE:?}: {now:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_freeze_and_restart_cycles_answer_every_client_and_leave_nothing_behind() {
    let cycles: usize =
        std::env::var("CLAWGATE_FAULT_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CYCLES);
    let port = free_port();
    let upstream_config = format!("{{ gateway: {{ auth: {{ mode: \"token\", token: \"{UPSTREAM_TOKEN}\" }} }} }}\n");
    let upstream = ClawgateProcess::start(&upstream_config, Some(port), false).await;
    let front =
        ClawgateProcess::start(&front_config(&format!("ws://127.0.0.1:{port}"), UPSTREAM_TOKEN, BOUND_MS), None, true)
            .await;
    let mut rig = Rig { front, upstream };

    // A quiet session outlives several liveness bounds: the stand-in pongs.
    let mut quiet = session(rig.front.addr).await;
    tokio::time::sleep(Duration::from_millis(3 * BOUND_MS)).await;
    assert_eq!(quiet.call("q1", "health", None).await["ok"], true, "a quiet live link is kept");
    drop(quiet);

    // Warm-up: every fault once, so what is created on first use exists.
    let mut warmup = Tally::default();
    for (n, fault) in FAULTS.iter().enumerate() {
        rig.cycle(*fault, n, &mut warmup).await;
    }
    let baseline = settled(&rig.front, figures(&rig.front).await).await;
    let baseline = Figures { rss_kib: figures(&rig.front).await.rss_kib, ..baseline };

    let started = Instant::now();
    let mut tallies: BTreeMap<Fault, Tally> = BTreeMap::new();
    for n in 0..cycles {
        let fault = FAULTS[n % FAULTS.len()];
        rig.cycle(fault, n, tallies.entry(fault).or_default()).await;
        if (n + 1) % 100 == 0 {
            let f = figures(&rig.front).await;
            eprintln!("after {} cycles ({:?}): {f:?}", n + 1, started.elapsed());
        }
    }
    let ran_for = started.elapsed();

    // The upstream is healthy again: a new session works.
    let mut c = session(rig.front.addr).await;
    assert_eq!(c.call("h", "health", None).await["ok"], true);
    drop(c);
    let after = settled(&rig.front, baseline).await;

    eprintln!("upstream fault cycles: {cycles} in {ran_for:?}");
    for (fault, t) in &tallies {
        eprintln!("  {fault:?}: {t:?}");
    }
    eprintln!("  before: {baseline:?}");
    eprintln!("  after:  {after:?}");
    let lost: usize = tallies.values().map(|t| t.lost).sum();
    let unavailable: usize = tallies.values().map(|t| t.unavailable).sum();
    assert!(cycles < FAULTS.len() || (lost > 0 && unavailable > 0), "both kinds of answer were seen");
}
