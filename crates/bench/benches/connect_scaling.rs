//! A connect's cost as the number of open sessions grows: it must stay flat.
//!
//! An in-process gateway (token mode, loopback) holds N open scopeless `ui`
//! sessions (the attack that once made presence quadratic), one
//! `operator.read` listener receives presence, and then a listed `ui`
//! session with `operator.read` connects and disconnects, one at a time,
//! `--connects` times. Printed: N, then the median, p90 and mean of one
//! connect (open socket to hello-ok) and of one connect + close.
//!
//!     cargo bench -p clawgate-bench --bench connect_scaling
//!     cargo bench -p clawgate-bench --bench connect_scaling -- --sizes 10,2000 --connects 400
//!
//! No timing is asserted anywhere: the figures go into docs/benchmarks.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clawgate::config::{AuthMode, Config};
use clawgate::{serve, Gateway, ServerOptions};
use clawgate_client::{Client, ConnectOptions};

const TOKEN: &str = "bench-token-0123456789abcdef0123456789";

struct Args {
    sizes: Vec<usize>,
    connects: usize,
}

fn args() -> Args {
    let mut a = Args { sizes: vec![10, 500, 2000], connects: 300 };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            // `cargo test --benches` passes --test (criterion convention): a tiny run.
            "--test" => a = Args { sizes: vec![10, 50], connects: 5 },
            "--sizes" => {
                a.sizes = it.next().unwrap_or_default().split(',').filter_map(|s| s.trim().parse().ok()).collect()
            }
            "--connects" => a.connects = it.next().and_then(|s| s.parse().ok()).unwrap_or(a.connects),
            _ => {}
        }
    }
    a
}

fn options(url: &str, mode: &str, scopes: &[&str], name: &str) -> ConnectOptions {
    let mut o = ConnectOptions::new(url).token(TOKEN).client("gateway-client", mode).role("operator").scopes(scopes);
    o.instance_id = Some(name.to_owned());
    o
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

async fn measure(size: usize, connects: usize) -> (Vec<Duration>, Vec<Duration>) {
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.session_limits.max_per_address = size + 64;
    config.session_limits.max_per_principal = size + 64;
    let store = Arc::new(clawgate::store::SqliteStore::open_in_memory().expect("in-memory store"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let gateway = Gateway::new(config, ServerOptions::default(), store);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, gateway, async move {
        let _ = stopped.await;
    }));

    let mut held = Vec::with_capacity(size);
    for i in 0..size {
        let c = Client::connect(options(&url, "ui", &[], &format!("idle-{i}"))).await.expect("idle session");
        held.push(c);
    }
    let mut listener = Client::connect(options(&url, "ui", &["operator.read"], "listener")).await.expect("listener");
    let drain = tokio::spawn(async move { while listener.next_event().await.is_some() {} });

    let mut connect = Vec::with_capacity(connects);
    let mut round_trip = Vec::with_capacity(connects);
    for i in 0..connects + connects / 10 {
        let start = Instant::now();
        let c = Client::connect(options(&url, "ui", &["operator.read"], &format!("probe-{i}"))).await.expect("connect");
        let admitted = start.elapsed();
        c.close().await;
        // The first tenth warms up.
        if i >= connects / 10 {
            connect.push(admitted);
            round_trip.push(start.elapsed());
        }
    }
    drain.abort();
    for c in held {
        c.close().await;
    }
    let _ = stop.send(());
    let _ = server.await;
    connect.sort();
    round_trip.sort();
    (connect, round_trip)
}

fn main() {
    let args = args();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("open sessions | connect ms: median  p90  mean | connect+close ms: median  p90");
    for &size in &args.sizes {
        let (connect, round_trip) = rt.block_on(measure(size, args.connects));
        let mean = connect.iter().sum::<Duration>() / connect.len().max(1) as u32;
        println!(
            "{size:>13} | {:>14} {:>5} {:>5} | {:>22} {:>5}",
            ms(percentile(&connect, 0.5)),
            ms(percentile(&connect, 0.9)),
            ms(mean),
            ms(percentile(&round_trip, 0.5)),
            ms(percentile(&round_trip, 0.9)),
        );
    }
}
