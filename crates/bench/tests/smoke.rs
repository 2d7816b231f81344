//! Smoke run of every load kind with tiny counts against an in-process
//! clawgate on 127.0.0.1:0. Benchmarks are not tests: this only checks that
//! each load completes and returns sane figures — never how fast.

use std::sync::Arc;
use std::time::Duration;

use clawgate::config::{AuthMode, Config};
use clawgate::{serve, Gateway, ServerOptions};
use clawgate_bench::load::{self, Bounds, Credential, Trigger};
use clawgate_bench::{metrics, Target};

const TOKEN: &str = "smoke-token-0123456789abcdef0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_load_kind_completes_with_tiny_counts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = Arc::new(clawgate::store::SqliteStore::open_in_memory().unwrap());
    let gateway = Gateway::new(Config::new(AuthMode::Token, Some(TOKEN), None), ServerOptions::default(), store);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, gateway, async move {
        let _ = stopped.await;
    }));

    // The gateway runs in this process: its CPU per operation is ours.
    let target = Target::new(&format!("ws://{addr}"), TOKEN, 4).unwrap().with_pid(Some(std::process::id()));
    // Generous time bounds: the counts end each load; the time only stops a stuck one
    // (the suite runs in parallel with other tests on two cores).
    let bounds = Bounds { count: 12, duration: Duration::from_secs(30), warmup: 2 };
    let mut all = Vec::new();

    // Handshakes: token, then a paired device's proof plus its device token.
    let device = target.pair_device(("cli", "cli")).await.expect("pair a device locally");
    for (name, credential) in [("token", Credential::Token), ("device", Credential::Device(Box::new(device)))] {
        for in_flight in [1, 4] {
            let t = load::handshakes(&target, &credential, in_flight, bounds).await;
            assert_eq!(t.errors, 0, "{name} handshakes, {in_flight} in flight: {:?}", t.first_error);
            assert_eq!(t.completed, 12);
            assert!(t.per_sec > 0.0 && t.latency.p50_ms > 0.0 && t.latency.p99_ms >= t.latency.p50_ms);
            assert!(t.cpu_us_per_op.is_some_and(|c| c >= 0.0));
            all.extend(metrics::throughput(&format!("handshake.{name}.c{in_flight}"), name, "conn/s", &t));
        }
    }

    // RPC: health over 1 and over 3 connections.
    for conns in [1, 3] {
        let t = load::rpc(&target, conns, Bounds { count: 30, ..bounds }).await.expect("rpc");
        assert_eq!(t.errors, 0, "{:?}", t.first_error);
        assert_eq!(t.completed, 30);
        assert!(t.per_sec > 0.0 && t.latency.p50_ms > 0.0);
        all.extend(metrics::throughput(&format!("rpc.health.c{conns}"), "health", "req/s", &t));
    }

    // Memory: this process is the gateway here, so its RSS is the figure.
    let m = load::memory(&target, std::process::id(), 10, Duration::from_millis(50)).await.expect("memory");
    assert_eq!(m.connections, 10);
    assert!(m.idle_kib > 0 && m.loaded_kib > 0 && m.loaded_tree_kib >= m.loaded_kib);
    all.extend(metrics::memory(&m));

    // Fan-out: one presence broadcast to 8 listeners, twice.
    let f = load::fanout(&target, 8, 2, &Trigger::default(), Duration::from_secs(30)).await.expect("fanout");
    assert_eq!(f.listeners, 8);
    assert_eq!(f.trials.len(), 2);
    for t in &f.trials {
        assert_eq!(t.received, 8);
        assert!(t.first_ms > 0.0 && t.first_ms <= t.p50_ms && t.p50_ms <= t.last_ms);
    }
    all.extend(metrics::fanout(&f));

    // The figures survive the JSON lines and the side-by-side table.
    let lines: String = all.iter().map(|m| serde_json::to_string(m).unwrap() + "\n").collect();
    let parsed = metrics::parse_lines(&lines).unwrap();
    assert_eq!(parsed.len(), all.len());
    for (p, m) in parsed.iter().zip(&all) {
        assert_eq!(p.key, m.key);
        assert!((p.value - m.value).abs() <= 1e-9 * m.value.abs().max(1.0), "{p:?} vs {m:?}");
    }
    let table = metrics::table("clawgate", &parsed, "itself", &parsed);
    assert!(table.contains("1.00×"), "{table}");

    // Soak: a few idle connections with churn, health and broadcasts, sampled.
    let plan = clawgate_bench::soak::SoakPlan {
        connections: 12,
        churn_per_sec: 2,
        health_per_sec: 20,
        health_connections: 2,
        broadcast_every: Duration::from_secs(1),
        broadcast_deadline: Duration::from_secs(5),
        duration: Duration::from_secs(3),
        warmup: Duration::from_secs(1),
        sample_every: Duration::from_secs(1),
        witnesses: 4,
        ..Default::default()
    };
    let mut seen = 0;
    let soak = clawgate_bench::soak::run(&target, &plan, |_| seen += 1).await.expect("soak");
    assert_eq!(soak.error_count, 0, "{:?}", soak.errors);
    assert!(seen >= 2 && soak.samples.len() == seen);
    assert!(soak.broadcasts >= 2 && soak.churned >= 2 && soak.health_ok > 0, "{soak:?}");
    // The gateway runs in this process: its descriptors are ours, and come back.
    assert!(soak.after_open_files <= soak.baseline_open_files + 8, "{soak:?}");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("shutdown").unwrap().unwrap();
}
