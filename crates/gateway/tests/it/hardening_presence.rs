//! Presence as an amplifier: huge names, scopeless sessions, unbounded
//! session counts and one broadcast per connect. Replays of the attack in
//! docs/threat-model.md ("Presence as an amplifier").

use std::time::Duration;

use crate::common::{admitted, connect_params, RawConn, TestGateway, TOKEN};
use clawgate::config::{AuthMode, Config};
use clawgate::ServerOptions;
use serde_json::{json, Value};

const READ: &str = "operator.read";

fn ui_params(name: &str, scopes: &[&str]) -> Value {
    let mut p = connect_params("gateway-client", "ui", "operator", scopes, Some(TOKEN));
    p["client"]["displayName"] = json!(name);
    p
}

/// Every presence event `c` receives within `window`.
async fn presence_events(c: &mut RawConn, window: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    let end = tokio::time::Instant::now() + window;
    while let Ok(Ok(f)) = tokio::time::timeout_at(end, c.recv_or_close()).await {
        if f["event"] == "presence" {
            got.push(f);
        }
    }
    got
}

#[tokio::test]
async fn huge_names_are_refused_and_scopeless_sessions_are_not_listed() {
    let gw = TestGateway::token().await;
    let mut reader = admitted(&gw, &[READ]).await;
    // The attack: scopeless ui sessions with 60 KB names.
    let res = RawConn::open(gw.addr).await.handshake(ui_params(&"x".repeat(60_000), &[])).await;
    assert_eq!(res["error"]["details"]["code"], "CONNECT_FIELD_INVALID", "{res}");
    assert_eq!(res["error"]["details"]["field"], "client.displayName");
    // Scopeless sessions with ordinary names are admitted, but not listed,
    // so their connects and disconnects cost the readers nothing.
    let mut quiet = Vec::new();
    for i in 0..20 {
        let mut c = RawConn::open(gw.addr).await;
        assert_eq!(c.handshake(ui_params(&format!("ui-{i}"), &[])).await["ok"], true);
        quiet.push(c);
    }
    drop(quiet);
    assert!(presence_events(&mut reader, Duration::from_millis(600)).await.is_empty());
    let listed = reader.call("p", "system-presence", None).await;
    assert_eq!(listed["payload"], json!([]), "{listed}");
    gw.stop().await;
}

#[tokio::test]
async fn presence_broadcasts_are_coalesced() {
    let gw = TestGateway::token().await;
    let mut reader = admitted(&gw, &[READ]).await;
    let mut listed = Vec::new();
    for i in 0..30 {
        let mut c = RawConn::open(gw.addr).await;
        assert_eq!(c.handshake(ui_params(&format!("ui-{i}"), &[READ])).await["ok"], true);
        listed.push(c);
    }
    let events = presence_events(&mut reader, Duration::from_millis(1_500)).await;
    assert!(!events.is_empty() && events.len() <= 8, "30 connects gave {} presence events", events.len());
    let last = &events.last().unwrap()["payload"];
    assert_eq!(last["presence"].as_array().unwrap().len(), 30, "the last event has the list as it stands");
    assert_eq!(last["stateVersion"], 30);
    gw.stop().await;
}

#[tokio::test]
async fn sessions_are_capped_per_address_and_per_principal() {
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.session_limits.max_per_address = 3;
    let gw = TestGateway::start(config, ServerOptions::default()).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(admitted(&gw, &[]).await);
    }
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake(connect_params("gateway-client", "backend", "operator", &[], Some(TOKEN))).await;
    assert_eq!(res["error"]["code"], "UNAVAILABLE", "{res}");
    assert_eq!(res["error"]["details"]["code"], "SESSION_LIMIT");
    assert_eq!(res["error"]["details"]["per"], "address");
    assert_eq!(c.expect_close().await.0, 1013);
    // Another address is not affected; a closed session frees its place.
    let _elsewhere = crate::common::admitted_from("127.0.0.2", &gw, &[]).await;
    drop(open.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut c = RawConn::open(gw.addr).await;
        let res = c.handshake(connect_params("gateway-client", "backend", "operator", &[], Some(TOKEN))).await;
        if res["ok"] == true {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the freed place is usable again");
    gw.stop().await;

    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.session_limits.max_per_principal = 2;
    let gw = TestGateway::start(config, ServerOptions::default()).await;
    let _a = crate::common::admitted_from("127.0.0.2", &gw, &[READ]).await;
    let _b = crate::common::admitted_from("127.0.0.3", &gw, &[READ]).await;
    let mut c = RawConn::open_from("127.0.0.4", gw.addr, &[]).await.unwrap();
    let res = c.handshake(connect_params("gateway-client", "backend", "operator", &[READ], Some(TOKEN))).await;
    assert_eq!(res["error"]["details"]["code"], "SESSION_LIMIT", "{res}");
    assert_eq!(res["error"]["details"]["per"], "principal");
    gw.stop().await;
}

#[tokio::test]
async fn hello_ok_shows_presence_and_auth_mode_only_to_whom_the_method_would() {
    let gw = TestGateway::token().await;
    let _listed = {
        let mut c = RawConn::open(gw.addr).await;
        assert_eq!(c.handshake(ui_params("listed-ui", &[READ])).await["ok"], true);
        c
    };
    let snapshot = |res: &Value| res["payload"]["snapshot"].clone();
    // Scopeless operator and node: no presence, no auth mode.
    let res = RawConn::open(gw.addr).await.handshake(ui_params("nobody", &[])).await;
    assert_eq!(snapshot(&res)["presence"], json!([]), "{res}");
    assert!(snapshot(&res).get("authMode").is_none());
    let mut p = connect_params("node-host", "node", "node", &[], Some(TOKEN));
    p["client"]["instanceId"] = json!("n1");
    let res = RawConn::open(gw.addr).await.handshake(p).await;
    assert_eq!(snapshot(&res)["presence"], json!([]), "{res}");
    assert!(snapshot(&res).get("authMode").is_none());
    // A reader sees presence, not the auth mode; an admin sees both.
    let res = RawConn::open(gw.addr).await.handshake(ui_params("reader", &[READ])).await;
    assert!(!snapshot(&res)["presence"].as_array().unwrap().is_empty(), "{res}");
    assert!(snapshot(&res).get("authMode").is_none());
    let res = RawConn::open(gw.addr).await.handshake(ui_params("admin", &["operator.admin"])).await;
    assert!(!snapshot(&res)["presence"].as_array().unwrap().is_empty(), "{res}");
    assert_eq!(snapshot(&res)["authMode"], "token");
    gw.stop().await;
}
