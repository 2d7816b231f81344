//! Reloading the config: a valid new one is in force at once and every live
//! session is judged again (those no longer admitted close with 4001 and
//! the rule); one that changes what is bound to sockets is refused whole.
//! In-process here through `clawgate::server::reload::apply`, which SIGHUP
//! calls in `clawgate gateway run`; the signal itself, and a broken file,
//! are driven through the real binary in `reload_binary.rs`.

use clawgate::config::{AuthMode, Config, TrustedProxyConfig};
use clawgate::server::reload;
use clawgate::ServerOptions;

use crate::common::{admitted, connect_params, RawConn, TestGateway, TOKEN};

const NEW_TOKEN: &str = "rotated-token-0123456789abcdef0123456789";
const READ: &str = "operator.read";
const WRITE: &str = "operator.write";

#[tokio::test]
async fn rotating_the_token_closes_old_token_sessions_and_admits_the_new_token() {
    let gw = TestGateway::token().await;
    let mut old = admitted(&gw, &[READ]).await;

    let done = reload::apply(&gw.gateway, Config::new(AuthMode::Token, Some(NEW_TOKEN), None)).await.unwrap();
    assert_eq!((done.checked, done.closed), (1, 1));
    let (code, reason) = old.expect_close().await;
    assert_eq!(code, 4001, "{reason}");
    assert!(reason.contains("shared-secret") || reason.contains("rule"), "{reason}");

    let mut refused = RawConn::open(gw.addr).await;
    let res = refused.handshake(connect_params("gateway-client", "backend", "operator", &[READ], Some(TOKEN))).await;
    assert_eq!(res["ok"], false, "{res}");
    let mut fresh = RawConn::open(gw.addr).await;
    let res = fresh.handshake(connect_params("gateway-client", "backend", "operator", &[READ], Some(NEW_TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(fresh.call("h", "health", None).await["ok"], true);
    gw.stop().await;
}

fn proxy_config(alice: &[&str]) -> Config {
    let mut c = Config::new(AuthMode::TrustedProxy, None, None);
    c.trusted_proxies = vec!["127.0.0.2".parse().unwrap()];
    let mut tp = TrustedProxyConfig::new("X-Forwarded-User", &[]);
    tp.allow_loopback = true;
    c.trusted_proxy = Some(tp);
    c.identity_scopes.insert("alice".into(), alice.iter().map(|s| (*s).to_owned()).collect());
    c.identity_scopes.insert("bob".into(), vec![READ.into()]);
    c
}

async fn proxy_user(gw: &TestGateway, user: &str, scopes: &[&str]) -> RawConn {
    let headers = [("x-forwarded-user", user), ("x-forwarded-for", "203.0.113.5"), ("host", "gateway.example")];
    let mut c = RawConn::open_from("127.0.0.2", gw.addr, &headers).await.unwrap();
    let res = c.handshake(connect_params("gateway-client", "backend", "operator", scopes, None)).await;
    assert_eq!(res["ok"], true, "{user}: {res}");
    c
}

#[tokio::test]
async fn narrowing_identity_scopes_closes_the_sessions_it_no_longer_covers() {
    let gw = TestGateway::start(proxy_config(&[READ, WRITE]), ServerOptions::default()).await;
    let mut alice = proxy_user(&gw, "alice", &[READ, WRITE]).await;
    let mut bob = proxy_user(&gw, "bob", &[READ]).await;

    let done = reload::apply(&gw.gateway, proxy_config(&[READ])).await.unwrap();
    assert_eq!((done.checked, done.closed), (2, 1));
    let (code, reason) = alice.expect_close().await;
    assert_eq!(code, 4001, "{reason}");
    assert!(reason.contains("trusted-proxy") && reason.contains("beyond-identity-scopes"), "{reason}");
    // Bob asked for nothing the new config takes away.
    assert_eq!(bob.call("h", "health", None).await["ok"], true);
    // Alice comes back within her new scopes.
    let mut again = proxy_user(&gw, "alice", &[READ]).await;
    assert_eq!(again.call("h", "health", None).await["ok"], true);
    gw.stop().await;
}

#[tokio::test]
async fn a_change_to_what_is_bound_is_refused_and_the_old_config_stays() {
    let gw = TestGateway::token().await;
    let mut c = admitted(&gw, &[READ]).await;
    let mut moved = Config::new(AuthMode::Token, Some(NEW_TOKEN), None);
    moved.port = 1;
    let refused = reload::apply(&gw.gateway, moved).await.unwrap_err();
    assert_eq!(refused.key, "gateway.port");
    assert_eq!(refused.code(), "RELOAD_NEEDS_RESTART");
    // Nothing changed: the session stays, the old token still admits.
    assert_eq!(c.call("h", "health", None).await["ok"], true);
    admitted(&gw, &[READ]).await;
    gw.stop().await;
}
