//! Self-reported connect fields that would deceive an approver (terminal
//! escapes, bidi overrides) or flood presence (huge names) are refused at
//! connect, before any rule or the pairing store sees them. Replays of the
//! attacks in docs/threat-model.md ("Approvers deceived by escapes").

use crate::common::{connect_params, with_trusted_loopback_proxy, RawConn, TestGateway, REMOTE, TOKEN};
use clawgate::config::{AuthMode, Config};
use clawgate::server::now_ms;
use clawgate::ServerOptions;
use clawgate_client::DeviceIdentity;
use clawgate_protocol::ConnectParams;
use serde_json::{json, Value};

const ESCAPED_PLATFORM: &str = "linux\u{1b}[1A\r\u{1b}[83C\u{1b}[Koperator.read                    ";

/// Connect proving `identity`, without the harness's own params check (the
/// point is to send params the gateway must refuse).
async fn connect_signed_raw(gw: &TestGateway, headers: &[(&str, &str)], params: Value, id: &DeviceIdentity) -> Value {
    let mut c = RawConn::open_with(gw.addr, headers).await.expect("upgrade");
    let challenge = c.recv().await;
    let nonce = challenge["payload"]["nonce"].as_str().unwrap().to_owned();
    let ts = challenge["payload"]["ts"].as_u64().unwrap();
    let unchecked: ConnectParams = serde_json::from_value(params.clone()).expect("shape");
    let mut params = params;
    params["device"] = serde_json::to_value(id.device_params(&unchecked, &nonce, ts)).unwrap();
    c.send(&json!({ "type": "req", "id": "c1", "method": "connect", "params": params })).await;
    loop {
        let frame = c.recv().await;
        if frame["type"] == "res" && frame["id"] == "c1" {
            return frame;
        }
    }
}

fn assert_field_refused(res: &Value, field: &str) {
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "INVALID_REQUEST", "{res}");
    assert_eq!(res["error"]["details"]["code"], "CONNECT_FIELD_INVALID", "{res}");
    assert_eq!(res["error"]["details"]["field"], field, "{res}");
}

#[tokio::test]
async fn a_remote_token_holder_cannot_plant_escapes_in_a_pairing_request() {
    let gw = with_trusted_loopback_proxy(Config::new(AuthMode::Token, Some(TOKEN), None)).await;
    let id = DeviceIdentity::generate();
    let mut p = connect_params("cli", "cli", "operator", &["operator.admin"], Some(TOKEN));
    p["client"]["platform"] = json!(ESCAPED_PLATFORM);
    let res = connect_signed_raw(&gw, REMOTE, p.clone(), &id).await;
    assert_field_refused(&res, "client.platform");
    // The same request with a bidi override in the device family.
    p["client"]["platform"] = json!("linux");
    p["client"]["deviceFamily"] = json!("desktop\u{202e}daer.rotarepo");
    let res = connect_signed_raw(&gw, REMOTE, p, &id).await;
    assert_field_refused(&res, "client.deviceFamily");
    assert!(gw.gateway.store.open_requests(now_ms()).unwrap().is_empty(), "nothing reached the approver");
    gw.stop().await;
}

#[tokio::test]
async fn a_read_only_device_token_cannot_plant_escapes_through_a_metadata_upgrade() {
    let gw = TestGateway::start(Config::new(AuthMode::Token, Some(TOKEN), None), ServerOptions::default()).await;
    let id = DeviceIdentity::generate();
    let p = connect_params("cli", "cli", "operator", &["operator.read"], Some(TOKEN));
    let res = connect_signed_raw(&gw, &[], p, &id).await;
    assert_eq!(res["ok"], true, "{res}");
    let device_token = res["payload"]["auth"]["deviceToken"].as_str().unwrap().to_owned();

    // Only the read-only device token, and a new platform full of escapes.
    let mut p = connect_params("cli", "cli", "operator", &["operator.read"], None);
    p["auth"] = json!({ "deviceToken": device_token });
    p["client"]["platform"] = json!(ESCAPED_PLATFORM);
    let res = connect_signed_raw(&gw, &[], p, &id).await;
    assert_field_refused(&res, "client.platform");
    assert!(gw.gateway.store.open_requests(now_ms()).unwrap().is_empty(), "no metadata-upgrade request");
    assert_eq!(gw.gateway.store.device(&id.device_id()).unwrap().unwrap().platform.as_deref(), Some("linux"));
    gw.stop().await;
}

#[tokio::test]
async fn every_self_reported_field_is_checked_and_names_are_capped() {
    let gw = TestGateway::token().await;
    let cases: [(&str, Value); 7] = [
        ("client.version", json!({"client": {"version": "1\u{7}"}})),
        ("client.displayName", json!({"client": {"displayName": "n".repeat(129)}})),
        ("client.displayName", json!({"client": {"displayName": "a\u{2066}b"}})),
        ("client.instanceId", json!({"client": {"instanceId": "i\u{200b}"}})),
        ("caps[0]", json!({"caps": ["x\u{1b}]0;title\u{7}"]})),
        ("commands[0]", json!({"commands": ["system.run\n"]})),
        ("userAgent", json!({"userAgent": "ua\u{9b}31m"})),
    ];
    for (field, patch) in cases {
        let mut p = connect_params("gateway-client", "backend", "operator", &[], Some(TOKEN));
        for (k, v) in patch.as_object().unwrap() {
            match v.as_object() {
                Some(inner) => inner.iter().for_each(|(ik, iv)| p[k][ik] = iv.clone()),
                None => p[k] = v.clone(),
            }
        }
        let mut c = RawConn::open(gw.addr).await;
        let res = c.handshake(p).await;
        assert_field_refused(&res, field);
        assert_eq!(c.expect_close().await.0, 1008);
    }
    // A long but printable, international name is fine.
    let mut p = connect_params("gateway-client", "backend", "operator", &[], Some(TOKEN));
    p["client"]["displayName"] = json!("Ünïcødé laptop 🙂 ".repeat(7));
    let res = RawConn::open(gw.addr).await.handshake(p).await;
    assert_eq!(res["ok"], true, "{res}");
    gw.stop().await;
}
