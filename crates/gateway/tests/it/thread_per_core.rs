//! The thread-per-core server (`serve_per_core`, server/per_core.rs): one
//! single-threaded runtime per core, each accepting on its own
//! `SO_REUSEPORT` socket of the same port. Sessions on every thread are
//! admitted, reached by broadcasts from other threads (the test's own, and
//! a presence change made by a session on one core), and all closed with
//! 1012 at shutdown; then the same through the real binary in both modes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clawgate::config::{AuthMode, Config, Trust};
use clawgate::{serve_per_core, Gateway, ReusePortGroup, ServerOptions};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::common::clawgate_process::ClawgateProcess;
use crate::common::{connect_params, RawConn, TOKEN};

const READ: &str = "operator.read";
const THREADS: usize = 2;
/// Sessions wanted on each thread before the broadcasts.
const PER_THREAD: i64 = 3;
/// Connects are spread by the kernel's hash of addresses and ports: this
/// many without reaching every thread would mean they are not spread.
const MAX_CLIENTS: usize = 64;

struct PerCoreGateway {
    addr: SocketAddr,
    gateway: Arc<Gateway>,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start() -> PerCoreGateway {
    let store = Arc::new(clawgate::store::SqliteStore::open_in_memory().expect("in-memory store"));
    let group = ReusePortGroup::bind("127.0.0.1:0".parse().unwrap(), THREADS).expect("bind");
    let addr = group.local_addr();
    let gateway = Gateway::new(Config::new(AuthMode::Token, Some(TOKEN), None), ServerOptions::default(), store);
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_per_core(vec![(group, Trust::Local)], gateway.clone(), async move {
        let _ = stopped.await;
    }));
    PerCoreGateway { addr, gateway, shutdown, task }
}

fn backend() -> Value {
    connect_params("gateway-client", "backend", "operator", &[READ], Some(TOKEN))
}

async fn admitted(addr: SocketAddr, params: Value) -> RawConn {
    let mut c = RawConn::open(addr).await;
    let res = c.handshake(params).await;
    assert_eq!(res["ok"], true, "{res}");
    c
}

/// The next event named `name`, skipping others.
async fn next_event(c: &mut RawConn, name: &str) -> Value {
    loop {
        let f = c.recv().await;
        if f["type"] == "event" && f["event"] == name {
            return f;
        }
    }
}

#[tokio::test]
async fn sessions_on_every_thread_are_admitted_reached_by_broadcasts_and_closed_with_1012() {
    let gw = start().await;
    let on_core = |core: usize| gw.gateway.metrics.core_connections(core).get();

    // Several clients at once, then more until every thread holds some.
    let together: Vec<_> = (0..8).map(|_| tokio::spawn(admitted(gw.addr, backend()))).collect();
    let mut clients = Vec::new();
    for c in together {
        clients.push(c.await.unwrap());
    }
    while (0..THREADS).any(|core| on_core(core) < PER_THREAD) {
        assert!(
            clients.len() < MAX_CLIENTS,
            "connections not spread: {:?}",
            (0..THREADS).map(on_core).collect::<Vec<_>>()
        );
        clients.push(admitted(gw.addr, backend()).await);
    }
    assert_eq!(gw.gateway.registry.counts().sessions, clients.len());
    let per_core: i64 = (0..THREADS).map(on_core).sum();
    assert_eq!(per_core, clients.len() as i64, "every connection lives on one thread");

    // A broadcast from a thread that serves no connection reaches them all.
    let sent = gw.gateway.registry.broadcast("chat", &json!({ "text": "to every core" }));
    assert_eq!(sent, clients.len());
    for c in &mut clients {
        assert_eq!(next_event(c, "chat").await["payload"]["text"], "to every core");
    }

    // A session on one core changes presence; the event reaches every core.
    let mut ui = connect_params("gateway-client", "ui", "operator", &[READ], Some(TOKEN));
    ui["client"]["displayName"] = json!("listed");
    let _listed = admitted(gw.addr, ui).await;
    for c in &mut clients {
        let presence = next_event(c, "presence").await;
        let hosts: Vec<&Value> =
            presence["payload"]["presence"].as_array().unwrap().iter().map(|e| &e["host"]).collect();
        assert!(hosts.iter().any(|h| *h == "listed"), "{presence}");
    }

    // Shutdown: every session on every thread is closed with 1012.
    gw.shutdown.send(()).unwrap();
    for c in &mut clients {
        assert_eq!(c.expect_close().await.0, 1012);
    }
    tokio::time::timeout(Duration::from_secs(10), gw.task).await.expect("stopped in time").unwrap().unwrap();
    assert_eq!(gw.gateway.registry.counts().sessions, 0);
    assert!((0..THREADS).all(|core| on_core(core) == 0));
}

#[tokio::test]
async fn groups_of_different_sizes_are_refused() {
    let store = Arc::new(clawgate::store::SqliteStore::open_in_memory().expect("in-memory store"));
    let gateway = Gateway::new(Config::new(AuthMode::Token, Some(TOKEN), None), ServerOptions::default(), store);
    let any = "127.0.0.1:0".parse().unwrap();
    let groups = vec![
        (ReusePortGroup::bind(any, 2).unwrap(), Trust::Local),
        (ReusePortGroup::bind(any, 1).unwrap(), Trust::Local),
    ];
    let err = serve_per_core(groups, gateway, std::future::pending()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

/// `clawgate gateway run` in `mode`: clients are served, `/metrics` says
/// where connections live, SIGTERM closes them with 1012.
async fn binary_in_mode(mode: &str) {
    let config = format!("{{ gateway: {{ auth: {{ mode: \"token\", token: \"{TOKEN}\" }}, runtime: \"{mode}\" }} }}\n");
    let mut gw = ClawgateProcess::start(&config, None, true).await;
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(admitted(gw.addr, backend()).await);
    }
    for c in &mut clients {
        assert_eq!(c.call("h", "health", None).await["ok"], true);
    }
    let metrics = gw.metrics().await;
    let on_cores: i64 = metrics
        .lines()
        .filter(|l| l.starts_with("clawgate_core_connections{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum();
    match mode {
        "threadPerCore" => assert_eq!(on_cores, clients.len() as i64, "{metrics}"),
        _ => assert_eq!(on_cores, 0, "no per-core threads in {mode}"),
    }
    let said = if mode == "threadPerCore" { "runtime: thread-per-core" } else { "runtime: work-stealing" };
    assert!(gw.log_tail().contains(said), "{}", gw.log_tail());
    gw.terminate().await;
    for c in &mut clients {
        assert_eq!(c.expect_close().await.0, 1012);
    }
}

#[tokio::test]
async fn the_binary_serves_and_shuts_down_in_thread_per_core_mode() {
    binary_in_mode("threadPerCore").await;
}

#[tokio::test]
async fn the_binary_serves_and_shuts_down_in_work_stealing_mode() {
    binary_in_mode("workStealing").await;
}
