//! Failed-credential lockouts: no bucket hopping, no lockout of the owner,
//! a global budget. Replays of the attacks in docs/threat-model.md
//! ("Lockouts sidestepped and turned against the owner").

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::{connect_params, with_trusted_loopback_proxy, RawConn, TestGateway, TOKEN};
use clawgate::config::{AuthMode, Config};
use clawgate::ServerOptions;
use serde_json::{json, Value};

const PASSWORD: &str = "owner-password-0123456789abcdef";

fn remote(ip: &'static str) -> [(&'static str, &'static str); 2] {
    [("x-forwarded-for", ip), ("host", "gateway.example")]
}

async fn attempt_at(addr: SocketAddr, source: &str, headers: &[(&str, &str)], auth: Value) -> Value {
    let mut c = RawConn::open_from(source, addr, headers).await.expect("upgrade");
    let mut p = connect_params("openclaw-probe", "probe", "operator", &[], None);
    p["auth"] = auth;
    c.handshake(p).await
}

fn code(res: &Value) -> &str {
    res["error"]["details"]["code"].as_str().unwrap_or(if res["ok"] == true { "ok" } else { "?" })
}

#[tokio::test]
async fn a_bogus_device_token_or_origin_does_not_open_another_bucket() {
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.allowed_origins = vec!["https://ui.example".into()];
    let gw = with_trusted_loopback_proxy(config).await;
    let h = remote("203.0.113.5");
    // Ten guesses spread over "buckets" that used to be separate.
    for i in 0..10 {
        let auth = match i % 3 {
            0 => json!({ "token": "guess" }),
            1 => json!({ "token": "guess", "deviceToken": "x" }),
            _ => json!({ "token": "guess" }),
        };
        let mut headers = h.to_vec();
        if i % 3 == 2 {
            headers.push(("origin", "https://ui.example"));
        }
        assert_eq!(code(&attempt_at(gw.addr, "127.0.0.1", &headers, auth).await), "AUTH_TOKEN_MISMATCH");
    }
    // Locked, whatever comes with the right token.
    for auth in [json!({ "token": TOKEN }), json!({ "token": TOKEN, "deviceToken": "x" })] {
        assert_eq!(code(&attempt_at(gw.addr, "127.0.0.1", &h, auth).await), "AUTH_RATE_LIMITED");
    }
    let mut with_origin = h.to_vec();
    with_origin.push(("origin", "https://ui.example"));
    let res = attempt_at(gw.addr, "127.0.0.1", &with_origin, json!({ "token": TOKEN })).await;
    assert_eq!(code(&res), "AUTH_RATE_LIMITED", "{res}");
    gw.stop().await;
}

#[tokio::test]
async fn wrong_passwords_from_loopback_never_lock_the_owner_out() {
    let config = Config::new(AuthMode::Password, None, Some(PASSWORD));
    let gw = TestGateway::start(config, ServerOptions::default()).await;
    // Any local process: ten wrong passwords at once (slowed, answered in parallel).
    let guesses: Vec<_> = (0..10)
        .map(|_| {
            let addr = gw.addr;
            tokio::spawn(async move { attempt_at(addr, "127.0.0.1", &[], json!({ "password": "guess" })).await })
        })
        .collect();
    for g in guesses {
        assert_eq!(code(&g.await.unwrap()), "AUTH_PASSWORD_MISMATCH");
    }
    // The owner's correct password is admitted at once.
    let started = Instant::now();
    let res = attempt_at(gw.addr, "127.0.0.1", &[], json!({ "password": PASSWORD })).await;
    assert_eq!(res["ok"], true, "{res}");
    assert!(started.elapsed() < Duration::from_secs(2));
    gw.stop().await;
}

#[tokio::test]
async fn failures_from_other_local_callers_never_refuse_the_owners_control_ui() {
    let gw = TestGateway::token().await;
    let port = gw.addr.port();
    let own = format!("http://localhost:{port}");
    // Ten wrong tokens with the gateway's own origin from other 127.x
    // addresses, at once: slowed, but they lock nothing.
    let guesses: Vec<_> = (0..10)
        .map(|i| {
            let (addr, own) = (gw.addr, own.clone());
            tokio::spawn(async move {
                let source = format!("127.0.1.{}", i + 1);
                attempt_at(addr, &source, &[("origin", own.as_str())], json!({ "token": "guess" })).await
            })
        })
        .collect();
    for g in guesses {
        assert_eq!(code(&g.await.unwrap()), "AUTH_TOKEN_MISMATCH");
    }
    // The owner's own Control UI origin with the right token is not refused for it.
    let h = [("origin", own.as_str())];
    let res = attempt_at(gw.addr, "127.0.0.1", &h, json!({ "token": TOKEN })).await;
    assert_ne!(code(&res), "AUTH_RATE_LIMITED", "{res}");
    assert_ne!(code(&res), "AUTH_TOKEN_MISMATCH", "{res}");
    gw.stop().await;
}

#[tokio::test]
async fn spreading_guesses_over_many_addresses_meets_the_global_budget() {
    let gw = with_trusted_loopback_proxy(Config::new(AuthMode::Password, None, Some(PASSWORD))).await;
    let ips: Vec<String> = (0..=clawgate::server::limits::GLOBAL_MAX_FAILURES)
        .map(|i| format!("198.51.{}.{}", i / 200, i % 200 + 1))
        .collect();
    for (i, ip) in ips.iter().enumerate() {
        let h = [("x-forwarded-for", ip.as_str()), ("host", "gateway.example")];
        let started = Instant::now();
        let res = attempt_at(gw.addr, "127.0.0.1", &h, json!({ "password": "guess" })).await;
        assert_eq!(code(&res), "AUTH_PASSWORD_MISMATCH");
        if i == ips.len() - 1 {
            assert!(started.elapsed() >= Duration::from_millis(900), "the failure past the budget waits its turn");
        }
    }
    // A correct password from yet another address is not slowed.
    let h = [("x-forwarded-for", "192.0.2.77"), ("host", "gateway.example")];
    let started = Instant::now();
    let res = attempt_at(gw.addr, "127.0.0.1", &h, json!({ "password": PASSWORD })).await;
    assert_ne!(code(&res), "AUTH_PASSWORD_MISMATCH", "{res}");
    assert_ne!(code(&res), "AUTH_RATE_LIMITED", "{res}");
    assert!(started.elapsed() < Duration::from_millis(900));
    gw.stop().await;
}
