//! Failed-credential counters across instances (docs/cluster.md): wrong
//! tokens from one address spread over the instances meet one budget; the
//! owner's local path and other addresses are untouched; without NATS each
//! instance counts on its own, as a single instance does.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::cluster::Instances;
use crate::common::{connect_params, RawConn, TOKEN};
use clawgate::cluster::failures;
use clawgate::server::limits::MAX_ATTEMPTS;
use serde_json::Value;

const ATTACKER: &str = "203.0.113.5";
const NEIGHBOUR: &str = "198.51.100.7";

/// Instances behind a load balancer on loopback that forwards the client's
/// address, sharing their counts.
async fn behind_a_proxy(n: usize) -> Instances {
    let cluster =
        Instances::start_with(n, |_, (config, _)| config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    wait_shared(&cluster).await;
    cluster
}

/// Wait (≤ 15 s) until every instance has the shared bucket open: before
/// that each counts alone.
async fn wait_shared(cluster: &Instances) {
    let deadline = Instant::now() + Duration::from_secs(15);
    for g in &cluster.gateways {
        while !failures::is_shared(crate::common::cluster::bus(g)) {
            assert!(Instant::now() < deadline, "the failure-count bucket was not opened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One connect through the proxy from `client`; the outcome's code.
async fn attempt(addr: SocketAddr, client: &str, token: &str) -> String {
    attempt_with(addr, client, Some(token)).await
}

async fn attempt_with(addr: SocketAddr, client: &str, token: Option<&str>) -> String {
    let headers = [("x-forwarded-for", client), ("host", "gateway.example")];
    let mut c = RawConn::open_from("127.0.0.1", addr, &headers).await.expect("upgrade");
    code(&c.handshake(connect_params("openclaw-probe", "probe", "operator", &[], token)).await)
}

fn code(res: &Value) -> String {
    let fallback = if res["ok"] == true { "ok" } else { "?" };
    res["error"]["details"]["code"].as_str().unwrap_or(fallback).to_owned()
}

/// Connects without a token from `client` until the instance at `addr`
/// answers that the address is locked out: its mirror heard of it from the
/// bucket's watch (≤ 15 s). A missing token neither counts as a failure nor
/// clears the count, so the instance learns of the lockout from no one else.
async fn wait_locked(addr: SocketAddr, client: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = attempt_with(addr, client, None).await;
        if seen == "AUTH_RATE_LIMITED" {
            return;
        }
        // Without a token a remote client is asked for a device identity.
        assert_eq!(seen, "DEVICE_IDENTITY_REQUIRED");
        assert!(Instant::now() < deadline, "{addr} did not learn of the lockout");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn guesses_spread_over_instances_meet_one_budget() {
    let cluster = behind_a_proxy(3).await;
    let addrs: Vec<SocketAddr> = cluster.gateways.iter().map(|g| g.addr).collect();
    // As many wrong tokens as lock an address on one instance, in turn on
    // a, b, c: none is locked before the last.
    for i in 0..MAX_ATTEMPTS {
        assert_eq!(attempt(addrs[i % 3], ATTACKER, "guess").await, "AUTH_TOKEN_MISMATCH", "failure {}", i + 1);
    }
    // Then every instance refuses the right token, with the code one
    // instance uses (once it heard of the lockout).
    for addr in &addrs {
        wait_locked(*addr, ATTACKER).await;
        assert_eq!(attempt(*addr, ATTACKER, TOKEN).await, "AUTH_RATE_LIMITED");
    }
    // Another address, and a local client on each instance, get in.
    for (i, addr) in addrs.iter().enumerate() {
        assert_eq!(attempt(*addr, NEIGHBOUR, TOKEN).await, "ok");
        crate::common::admitted(&cluster.gateways[i], &["operator.read"]).await;
    }
    cluster.stop().await;
}

#[tokio::test]
async fn the_owners_local_path_is_never_locked_and_loopback_stays_per_instance() {
    // No proxy: a headerless local client with the token is the owner.
    // Other local programs (a page of an allowed origin) are lockable, but
    // their failures count on their own host only: loopback on another
    // instance is another machine.
    let cluster = Instances::start_with(3, |_, (config, _)| {
        config.allowed_origins = vec!["https://ui.example".into()];
    })
    .await;
    wait_shared(&cluster).await;
    let page = |addr: SocketAddr, token: &'static str| async move {
        let mut c = RawConn::open_from("127.0.0.5", addr, &[("origin", "https://ui.example")]).await.expect("upgrade");
        code(&c.handshake(connect_params("openclaw-probe", "probe", "operator", &[], Some(token))).await)
    };
    let addrs: Vec<SocketAddr> = cluster.gateways.iter().map(|g| g.addr).collect();
    for i in 0..MAX_ATTEMPTS {
        assert_eq!(page(addrs[i % 3], "guess").await, "AUTH_TOKEN_MISMATCH", "failure {}", i + 1);
    }
    // Instance a alone reaches its own budget: locked there only.
    for _ in 0..MAX_ATTEMPTS - MAX_ATTEMPTS.div_ceil(3) {
        assert_eq!(page(addrs[0], "guess").await, "AUTH_TOKEN_MISMATCH");
    }
    assert_eq!(page(addrs[0], TOKEN).await, "AUTH_RATE_LIMITED");
    assert_ne!(page(addrs[1], TOKEN).await, "AUTH_RATE_LIMITED");
    // The owner's direct-local path gets in everywhere, a included.
    for g in &cluster.gateways {
        crate::common::admitted(g, &["operator.read"]).await;
    }
    cluster.stop().await;
}

#[tokio::test]
async fn without_nats_each_instance_locks_out_on_its_own_count() {
    let mut cluster = behind_a_proxy(2).await;
    cluster.nats.stop();
    cluster.wait_connected(false).await;
    let (a, b) = (cluster.gateways[0].addr, cluster.gateways[1].addr);
    // One short of the budget on each: nobody is refused for failures the
    // other instance counted.
    for addr in [a, b] {
        for i in 0..MAX_ATTEMPTS - 1 {
            assert_eq!(attempt(addr, ATTACKER, "guess").await, "AUTH_TOKEN_MISMATCH", "{addr} failure {}", i + 1);
        }
    }
    // One more on a locks the address there, as on a single instance; b
    // still counts its own nine.
    assert_eq!(attempt(a, ATTACKER, "guess").await, "AUTH_TOKEN_MISMATCH");
    assert_eq!(attempt(a, ATTACKER, TOKEN).await, "AUTH_RATE_LIMITED");
    assert_eq!(attempt(b, ATTACKER, "guess").await, "AUTH_TOKEN_MISMATCH");
    assert_eq!(attempt(b, ATTACKER, TOKEN).await, "AUTH_RATE_LIMITED");
    // Nobody else is refused because NATS is down.
    for addr in [a, b] {
        assert_eq!(attempt(addr, NEIGHBOUR, TOKEN).await, "ok");
    }
    cluster.stop().await;
}

#[tokio::test]
async fn sharing_resumes_when_nats_is_back() {
    let mut cluster = behind_a_proxy(2).await;
    cluster.nats.stop();
    cluster.wait_connected(false).await;
    cluster.nats.start_again();
    cluster.wait_connected(true).await;
    wait_shared(&cluster).await;
    let (a, b) = (cluster.gateways[0].addr, cluster.gateways[1].addr);
    for i in 0..MAX_ATTEMPTS {
        let addr = if i % 2 == 0 { a } else { b };
        assert_eq!(attempt(addr, ATTACKER, "guess").await, "AUTH_TOKEN_MISMATCH", "failure {}", i + 1);
    }
    for addr in [a, b] {
        wait_locked(addr, ATTACKER).await;
        assert_eq!(attempt(addr, ATTACKER, TOKEN).await, "AUTH_RATE_LIMITED");
    }
    cluster.stop().await;
}
