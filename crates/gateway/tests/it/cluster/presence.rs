//! Presence across instances: every instance serves the sessions of all
//! (`system-presence`, hello-ok's snapshot, `presence` events); a session
//! that leaves, an instance that stops and one that is cut off all leave the
//! others' lists, a restarted one replaces its old list; what a bad peer
//! publishes is dropped.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::cluster::{instance_config, open_store, Instances, CLUSTER};
use crate::common::cut_link::CutLink;
use crate::common::{admitted, connect_params, RawConn, TestGateway, TOKEN};
use clawgate::config::cluster::ClusterConfig;
use clawgate::config::Config;
use clawgate::ServerOptions;
use serde_json::{json, Value};

const READ: &str = "operator.read";
/// Heartbeats for the tests that wait for an instance to go silent.
const FAST: Duration = Duration::from_millis(200);
/// How long any expected state may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(15);

fn fast_heartbeats(_: &str, parts: &mut (Config, ServerOptions)) {
    parts.1.presence_heartbeat = FAST;
}

/// A session that shows in presence, its `host` being `name`.
async fn listed(gw: &TestGateway, name: &str) -> RawConn {
    let mut params = connect_params("gateway-client", "ui", "operator", &[READ], Some(TOKEN));
    params["client"]["displayName"] = json!(name);
    let mut c = RawConn::open(gw.addr).await;
    assert_eq!(c.handshake(params).await["ok"], true);
    c
}

fn hosts(list: &Value) -> BTreeSet<String> {
    list.as_array().expect("a presence list").iter().filter_map(|e| e["host"].as_str().map(str::to_owned)).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Ask `system-presence` until it lists exactly `names`.
async fn wait_for(reader: &mut RawConn, names: &[&str]) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let res = reader.call("p", "system-presence", None).await;
        let now = hosts(&res["payload"]);
        if now == set(names) {
            return;
        }
        assert!(Instant::now() < deadline, "system-presence lists {now:?}, expected {names:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Read `presence` events until one's list satisfies `wanted`.
async fn wait_for_event(watcher: &mut RawConn, wanted: impl Fn(&BTreeSet<String>) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let frame = tokio::time::timeout_at(deadline, watcher.recv()).await.expect("no such presence event in time");
        if frame["event"] == "presence" && wanted(&hosts(&frame["payload"]["presence"])) {
            return frame;
        }
    }
}

#[tokio::test]
async fn every_instance_lists_the_sessions_of_all_three_and_a_session_leaving_b_leaves_a() {
    let cluster = Instances::start_with(3, fast_heartbeats).await;
    let [a, b, c] = [&cluster.gateways[0], &cluster.gateways[1], &cluster.gateways[2]];
    let mut watcher = admitted(a, &[READ]).await;
    let _on_a = listed(a, "on-a").await;
    let on_b = listed(b, "on-b").await;
    let _on_c = listed(c, "on-c").await;
    let all = ["on-a", "on-b", "on-c"];
    for gw in &cluster.gateways {
        wait_for(&mut admitted(gw, &[READ]).await, &all).await;
    }
    wait_for_event(&mut watcher, |h| *h == set(&all)).await;
    let fresh = admitted(a, &[READ]).await;
    assert_eq!(hosts(&fresh.hello.unwrap()["snapshot"]["presence"]), set(&all));

    drop(on_b);
    let event = wait_for_event(&mut watcher, |h| !h.contains("on-b")).await;
    assert_eq!(hosts(&event["payload"]["presence"]), set(&["on-a", "on-c"]));
    wait_for(&mut admitted(a, &[READ]).await, &["on-a", "on-c"]).await;
    let fresh = admitted(a, &[READ]).await;
    assert_eq!(hosts(&fresh.hello.unwrap()["snapshot"]["presence"]), set(&["on-a", "on-c"]));
    cluster.stop().await;
}

#[tokio::test]
async fn a_stopped_instance_leaves_the_others_lists_at_once() {
    // Heartbeats far apart (a silent instance would stay for 90 s): only c's
    // goodbye at shutdown can take it out before the deadline.
    let mut cluster = Instances::start_with(3, |_, parts| parts.1.presence_heartbeat = Duration::from_secs(30)).await;
    let _on_a = listed(&cluster.gateways[0], "on-a").await;
    let _on_b = listed(&cluster.gateways[1], "on-b").await;
    let on_c = listed(&cluster.gateways[2], "on-c").await;
    let mut reader_a = admitted(&cluster.gateways[0], &[READ]).await;
    let mut reader_b = admitted(&cluster.gateways[1], &[READ]).await;
    wait_for(&mut reader_a, &["on-a", "on-b", "on-c"]).await;
    wait_for(&mut reader_b, &["on-a", "on-b", "on-c"]).await;
    let c = cluster.gateways.pop().unwrap();
    c.stop().await;
    drop(on_c);
    wait_for(&mut reader_a, &["on-a", "on-b"]).await;
    wait_for(&mut reader_b, &["on-a", "on-b"]).await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_cut_off_instance_drops_out_within_a_few_heartbeats_and_stops_listing_the_others() {
    // c reaches NATS through a link the test cuts: for a and b, c stops
    // publishing without a goodbye, as a killed instance does.
    let link = Mutex::new(None);
    let cluster = Instances::start_with(3, c_behind_a_link(&link, FAST)).await;
    let mut readers = Vec::new();
    for gw in &cluster.gateways {
        readers.push(admitted(gw, &[READ]).await);
    }
    let _sessions = [
        listed(&cluster.gateways[0], "on-a").await,
        listed(&cluster.gateways[1], "on-b").await,
        listed(&cluster.gateways[2], "on-c").await,
    ];
    for reader in &mut readers {
        wait_for(reader, &["on-a", "on-b", "on-c"]).await;
    }
    link.lock().unwrap().as_ref().unwrap().cut();
    wait_for(&mut readers[0], &["on-a", "on-b"]).await;
    wait_for(&mut readers[1], &["on-a", "on-b"]).await;
    // c, hearing no one, serves its own sessions and lets the others' expire.
    wait_for(&mut readers[2], &["on-c"]).await;
    cluster.stop().await;
}

async fn wait_connected(gw: &TestGateway, connected: bool) {
    let deadline = Instant::now() + DEADLINE;
    while crate::common::cluster::bus(gw).is_connected() != connected {
        assert!(Instant::now() < deadline, "the bus is not {}", if connected { "connected" } else { "cut" });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// For [`Instances::start_with`]: heartbeats every `heartbeat`, and `c`
/// reaching NATS through a link the test can cut (put in `link`).
fn c_behind_a_link(
    link: &Mutex<Option<CutLink>>,
    heartbeat: Duration,
) -> impl Fn(&str, &mut (Config, ServerOptions)) + '_ {
    move |name, parts| {
        parts.1.presence_heartbeat = heartbeat;
        if name == "c" {
            let nats = parts.0.cluster.as_ref().unwrap().nats.expose().trim_start_matches("nats://").to_owned();
            let cut_link = CutLink::start(nats.parse::<SocketAddr>().unwrap());
            parts.0.cluster = Some(ClusterConfig::new(&cut_link.nats_url(), "c", CLUSTER).unwrap());
            *link.lock().unwrap() = Some(cut_link);
        }
    }
}

#[tokio::test]
async fn a_restarted_instance_replaces_its_old_list_at_once() {
    // Heartbeats far apart: the old c's entries would stay 90 s; only the
    // new c's first message (another boot) can replace them in time.
    let link = Mutex::new(None);
    let mut cluster = Instances::start_with(3, c_behind_a_link(&link, Duration::from_secs(30))).await;
    let _on_a = listed(&cluster.gateways[0], "on-a").await;
    let _on_c = listed(&cluster.gateways[2], "on-c").await;
    let mut reader = admitted(&cluster.gateways[0], &[READ]).await;
    wait_for(&mut reader, &["on-a", "on-c"]).await;
    // c is killed (no goodbye reaches the others) and started again.
    link.lock().unwrap().as_ref().unwrap().cut();
    let old_c = cluster.gateways.pop().unwrap();
    wait_connected(&old_c, false).await;
    old_c.stop().await;
    let options = ServerOptions { presence_heartbeat: Duration::from_secs(30), ..Default::default() };
    let config = instance_config("c", &cluster.db_url, &cluster.nats.url());
    let c = TestGateway::start_with_store(config, options, open_store(&cluster.db_url).await).await;
    wait_connected(&c, true).await;
    let _on_c_again = listed(&c, "on-c-again").await;
    wait_for(&mut reader, &["on-a", "on-c-again"]).await;
    c.stop().await;
    cluster.stop().await;
}

#[tokio::test]
async fn malformed_presence_messages_are_dropped_and_a_silent_sender_expires() {
    let cluster = Instances::start_with(2, fast_heartbeats).await;
    let on_b = listed(&cluster.gateways[1], "on-b").await;
    let mut reader = admitted(&cluster.gateways[0], &[READ]).await;
    wait_for(&mut reader, &["on-b"]).await;
    // A peer that is not a clawgate instance, on instance x's subject.
    let bad_peer = async_nats::connect(cluster.nats.url()).await.unwrap();
    let subject = format!("clawgate.{CLUSTER}.presence.x");
    // Heartbeats of 2 s: x's entry stays 6 s after its one message, ample
    // time to see it before it expires.
    let from_x = |host: &str| json!({"from": "x", "boot": "1", "body": {"entries": [{"host": host, "ts": 1, "mode": "ui"}], "heartbeatMs": 2000}});
    let malformed = [
        "not json".to_owned(),
        "{}".to_owned(),
        json!({"from": "x", "boot": "1", "body": {"entries": "many", "heartbeatMs": 200}}).to_string(),
        json!({"from": "x", "boot": "1", "body": {"entries": [{"ts": "soon"}], "heartbeatMs": 200}}).to_string(),
        // b's name on x's subject: one instance cannot speak for another.
        json!({"from": "b", "boot": "1", "body": {"entries": [], "heartbeatMs": 200}}).to_string(),
    ];
    for payload in &malformed {
        bad_peer.publish(subject.clone(), payload.clone().into()).await.unwrap();
    }
    // Published after the malformed ones, on the same connection: once x's
    // entry shows, they have all been read (and dropped).
    bad_peer.publish(subject.clone(), from_x("from-x").to_string().into()).await.unwrap();
    for payload in &malformed {
        bad_peer.publish(subject.clone(), payload.clone().into()).await.unwrap();
    }
    bad_peer.flush().await.unwrap();
    wait_for(&mut reader, &["on-b", "from-x"]).await;
    // x sends nothing more: it drops out; b, still heard, stays.
    wait_for(&mut reader, &["on-b"]).await;
    drop(on_b);
    wait_for(&mut reader, &[]).await;
    assert_eq!(reader.call("h", "health", None).await["ok"], true);
    cluster.stop().await;
}

/// The time from a session's connect on b (socket opened) to a's
/// `presence` event listing it, and from its hello-ok on b to that event.
/// `CLAWGATE_PRESENCE_ROUNDS` rounds (default 5; docs/benchmarks.md used
/// 20), printed; no timing is asserted.
#[tokio::test]
async fn a_session_connecting_on_b_appears_on_a() {
    let rounds: usize = std::env::var("CLAWGATE_PRESENCE_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(5);
    let cluster = Instances::start(2).await;
    let mut watcher = admitted(&cluster.gateways[0], &[READ]).await;
    let mut sessions = Vec::new();
    let (mut from_connect, mut from_hello) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        // Past both instances' 250 ms coalescing window, so a round measures
        // the path, not the wait for the window.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let name = format!("m-{i}");
        let started = Instant::now();
        sessions.push(listed(&cluster.gateways[1], &name).await);
        let admitted = Instant::now();
        wait_for_event(&mut watcher, |h| h.contains(&name)).await;
        from_connect.push(started.elapsed());
        from_hello.push(admitted.elapsed());
    }
    for (what, took) in [("connect on b", &mut from_connect), ("hello-ok on b", &mut from_hello)] {
        took.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        eprintln!(
            "presence, {what} → event on a, {rounds} rounds: p50 {:.1} ms, p90 {:.1} ms, min {:.1} ms, max {:.1} ms",
            ms(took[took.len() / 2]),
            ms(took[took.len() * 9 / 10]),
            ms(took[0]),
            ms(took[took.len() - 1])
        );
    }
    cluster.stop().await;
}
