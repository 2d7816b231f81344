//! Abuse limits against a real server: lockouts for remote guessing, local
//! callers slowed but never locked out, the pre-auth socket cap.

use crate::common::{connect_params, with_trusted_loopback_proxy, RawConn, TestGateway, REMOTE, TOKEN};
use clawgate::config::{AuthMode, Config};
use serde_json::Value;

async fn attempt(gw: &TestGateway, headers: &[(&str, &str)], token: &str) -> Value {
    let mut c = RawConn::open_with(gw.addr, headers).await.expect("upgrade");
    c.handshake(connect_params("openclaw-probe", "probe", "operator", &[], Some(token))).await
}

#[tokio::test]
async fn remote_guessing_is_locked_out_after_ten_failures() {
    let gw = with_trusted_loopback_proxy(Config::new(AuthMode::Token, Some(TOKEN), None)).await;
    for _ in 0..10 {
        let res = attempt(&gw, REMOTE, "guess").await;
        assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    }
    // Even the right token is refused now.
    let res = attempt(&gw, REMOTE, TOKEN).await;
    let err = &res["error"];
    assert_eq!(err["details"]["code"], "AUTH_RATE_LIMITED", "{res}");
    assert_eq!(err["details"]["recommendedNextStep"], "wait_then_retry");
    assert_eq!(err["retryable"], true);
    let retry = err["retryAfterMs"].as_u64().unwrap();
    assert!(retry > 0 && retry <= 300_000);
    // Another address is not affected.
    let other = [("x-forwarded-for", "198.51.100.9"), ("host", "gateway.example")];
    assert_eq!(attempt(&gw, &other, TOKEN).await["ok"], true);
    gw.stop().await;
}

#[tokio::test]
async fn local_callers_are_never_locked_out() {
    let gw = TestGateway::start(Config::new(AuthMode::Token, Some(TOKEN), None), Default::default()).await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let res = attempt(&gw, &[], "typo").await;
        assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    }
    // Slowed: 250 + 500 + 1000 ms.
    assert!(started.elapsed().as_millis() >= 1_700);
    assert_eq!(attempt(&gw, &[], TOKEN).await["ok"], true);
    gw.stop().await;
}

#[tokio::test]
async fn the_33rd_unauthenticated_socket_from_one_address_gets_503() {
    let gw = TestGateway::token().await;
    let mut open = Vec::new();
    for _ in 0..32 {
        let mut c = RawConn::open(gw.addr).await;
        c.recv().await;
        open.push(c);
    }
    let refused = RawConn::open_with(gw.addr, &[]).await.err().expect("refused");
    assert_eq!(refused.status, 503);
    drop(open);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut c = RawConn::open(gw.addr).await;
    assert_eq!(c.handshake(connect_params("openclaw-probe", "probe", "operator", &[], Some(TOKEN))).await["ok"], true);
    gw.stop().await;
}
