//! Method gates, presence, the flood guard and the device management methods,
//! against a real server.

use crate::common::{
    admitted, admitted_from, connect_params, with_trusted_loopback_proxy, RawConn, TestGateway, REMOTE, TOKEN,
};
use clawgate::config::{AuthMode, Config};
use clawgate::ServerOptions;
use clawgate_client::DeviceIdentity;
use serde_json::{json, Value};

const READ: &str = "operator.read";

#[tokio::test]
async fn listed_but_unimplemented_methods_are_checked_first() {
    let gw = TestGateway::token().await;
    let mut reader = admitted(&gw, &[READ]).await;
    let r = reader.call("1", "config.set", Some(json!({}))).await;
    assert_eq!(r["error"]["code"], "FORBIDDEN");
    assert_eq!(
        r["error"]["details"],
        json!({ "code": "MISSING_SCOPE", "missingScope": "operator.admin", "requiredScopes": ["operator.admin"] })
    );
    let r = reader.call("2", "chat.history", None).await;
    assert_eq!(r["error"]["code"], "UNAVAILABLE", "authorized, then not implemented: {r}");
    assert_eq!(r["error"]["details"]["code"], "METHOD_NOT_IMPLEMENTED");
    gw.stop().await;
}

#[tokio::test]
async fn wrong_role_calls_are_refused_and_a_flood_is_closed() {
    let gw = TestGateway::token().await;
    let mut op = admitted(&gw, &[READ]).await;
    let r = op.call("n", "node.event", Some(json!({}))).await;
    assert_eq!(r["error"]["code"], "INVALID_REQUEST");
    assert_eq!(r["error"]["message"], "unauthorized role: operator");
    // One ordinary call resets the count; then 10 more are answered, the 11th closes.
    assert_eq!(op.call("h", "health", None).await["ok"], true);
    for i in 0..10 {
        let r = op.call(&format!("x{i}"), "node.event", Some(json!({}))).await;
        assert_eq!(r["error"]["message"], "unauthorized role: operator");
    }
    op.send(&json!({ "type": "req", "id": "last", "method": "node.event", "params": {} })).await;
    assert_eq!(op.expect_close().await, (1008, "repeated unauthorized calls".into()));
    gw.stop().await;
}

#[tokio::test]
async fn presence_lists_nodes_and_uis_not_short_lived_tools() {
    let gw = TestGateway::token().await;
    let mut op = admitted(&gw, &[READ]).await;
    let mut node = RawConn::open(gw.addr).await;
    let mut p = connect_params("node-host", "node", "node", &[], Some(TOKEN));
    p["client"]["instanceId"] = json!("host-1");
    assert_eq!(node.handshake(p).await["ok"], true);
    let event = loop {
        let f = op.recv().await;
        if f["event"] == "presence" {
            break f;
        }
    };
    let entries = event["payload"]["presence"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1, "the backend operator itself is not listed: {entries:?}");
    assert_eq!(entries[0]["roles"], json!(["node"]));
    assert_eq!(entries[0]["instanceId"], "host-1");
    crate::common::schema::validate_definition("PresenceEntry", &entries[0]);
    let listed = op.call("p", "system-presence", None).await;
    assert_eq!(listed["payload"].as_array().unwrap().len(), 1);
    // A node does not receive operator events such as presence.
    let r = node.call("h", "health", None).await;
    assert_eq!(r["ok"], true);
    gw.stop().await;
}

async fn pair_remotely(gw: &TestGateway, id: &DeviceIdentity, scopes: &[&str]) -> String {
    let mut c = RawConn::open_with(gw.addr, REMOTE).await.unwrap();
    let res = c.handshake_device(connect_params("cli", "cli", "operator", scopes, Some(TOKEN)), id).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    res["error"]["details"]["requestId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn operators_list_approve_and_reject_pairing_requests() {
    let gw = with_trusted_loopback_proxy(Config::new(AuthMode::Token, Some(TOKEN), None)).await;
    let mut admin = admitted_from("127.0.0.2", &gw, &["operator.pairing", READ]).await;
    let id = DeviceIdentity::generate();
    let request_id = pair_remotely(&gw, &id, &[READ]).await;

    let list = admin.call("l", "device.pair.list", None).await;
    let pending = list["payload"]["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["requestId"], request_id.as_str());
    assert_eq!(pending[0]["publicKey"], id.public_key_b64url());
    assert_eq!(pending[0]["remoteIp"], "203.0.113.5");

    // An approver cannot grant what it does not hold.
    let greedy = DeviceIdentity::generate();
    let greedy_id = pair_remotely(&gw, &greedy, &["operator.admin"]).await;
    let r = admin.call("g", "device.pair.approve", Some(json!({ "requestId": greedy_id }))).await;
    assert_eq!(r["error"]["message"], "device pairing approval denied: missing scope: operator.admin", "{r}");

    let r = admin.call("a", "device.pair.approve", Some(json!({ "requestId": request_id }))).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["payload"]["deviceId"], id.device_id());
    let list = admin.call("l2", "device.pair.list", None).await;
    assert_eq!(list["payload"]["pending"].as_array().unwrap().len(), 1, "only the greedy request is left");
    assert_eq!(list["payload"]["paired"][0]["deviceId"], id.device_id());

    let r = admin.call("r", "device.pair.reject", Some(json!({ "requestId": greedy_id }))).await;
    assert_eq!(r["ok"], true, "{r}");
    let mut c = RawConn::open_with(gw.addr, REMOTE).await.unwrap();
    let res =
        c.handshake_device(connect_params("cli", "cli", "operator", &["operator.admin"], Some(TOKEN)), &greedy).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REJECTED", "a rejected device waits: {res}");
    assert!(res["error"]["retryAfterMs"].as_u64().unwrap() > 0);

    let r = admin.call("u", "device.pair.approve", Some(json!({ "requestId": "no-such-request" }))).await;
    assert_eq!(r["error"]["details"]["code"], "PAIRING_UNKNOWN_REQUEST");
    gw.stop().await;
}

async fn local_device(gw: &TestGateway, id: &DeviceIdentity, scopes: &[&str]) -> (RawConn, String) {
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake_device(connect_params("cli", "cli", "operator", scopes, Some(TOKEN)), id).await;
    assert_eq!(res["ok"], true, "{res}");
    let token = res["payload"]["auth"]["deviceToken"].as_str().unwrap().to_owned();
    (c, token)
}

async fn token_session(gw: &TestGateway, id: &DeviceIdentity, token: &str, scopes: &[&str]) -> Result<RawConn, Value> {
    let mut p = connect_params("cli", "cli", "operator", scopes, None);
    p["auth"] = json!({ "token": token, "deviceToken": token });
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake_device(p, id).await;
    if res["ok"] == true {
        Ok(c)
    } else {
        Err(res)
    }
}

#[tokio::test]
async fn rotating_a_token_delivers_it_in_band_and_ends_old_sessions() {
    let gw = TestGateway::token().await;
    let id = DeviceIdentity::generate();
    let (_, token) = local_device(&gw, &id, &[READ, "operator.pairing"]).await;
    let mut old = token_session(&gw, &id, &token, &[READ]).await.unwrap();
    let mut me = token_session(&gw, &id, &token, &[READ, "operator.pairing"]).await.unwrap();

    let r =
        me.call("rot", "device.token.rotate", Some(json!({ "deviceId": id.device_id(), "role": "operator" }))).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["payload"]["tokenDelivery"], "in-band");
    let new_token = r["payload"]["token"].as_str().unwrap().to_owned();
    assert_ne!(new_token, token);
    assert_eq!(old.expect_close().await, (4001, "client invalidated: device token rotated".into()));
    assert!(token_session(&gw, &id, &token, &[READ]).await.is_err(), "the old token is dead");
    token_session(&gw, &id, &new_token, &[READ]).await.expect("the new token works");

    // Another device cannot rotate or revoke this one's token without admin.
    let other = DeviceIdentity::generate();
    let (_, other_token) = local_device(&gw, &other, &[READ, "operator.pairing"]).await;
    let mut other_session = token_session(&gw, &other, &other_token, &[READ, "operator.pairing"]).await.unwrap();
    let r = other_session
        .call("x", "device.token.revoke", Some(json!({ "deviceId": id.device_id(), "role": "operator" })))
        .await;
    assert_eq!(r["error"]["details"]["reason"], "cross-device-needs-admin", "{r}");
    gw.stop().await;
}

#[tokio::test]
async fn an_admin_revokes_and_removes_devices() {
    let gw = TestGateway::token().await;
    let mut admin = admitted(&gw, &["operator.admin"]).await;
    let id = DeviceIdentity::generate();
    let (_, token) = local_device(&gw, &id, &[READ]).await;
    let mut using_token = token_session(&gw, &id, &token, &[READ]).await.unwrap();

    let r =
        admin.call("rv", "device.token.revoke", Some(json!({ "deviceId": id.device_id(), "role": "operator" }))).await;
    assert_eq!(r["payload"]["revoked"], true, "{r}");
    assert_eq!(using_token.expect_close().await.0, 4001);
    let refused = token_session(&gw, &id, &token, &[READ]).await.err().unwrap();
    assert_eq!(refused["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH");

    // Cross-device rotation by an admin mints a token but does not hand it over.
    let r =
        admin.call("rt", "device.token.rotate", Some(json!({ "deviceId": id.device_id(), "role": "operator" }))).await;
    assert_eq!(r["payload"]["tokenDelivery"], "withheld-cross-device");
    assert!(r["payload"].get("token").is_none());

    let (mut live, _) = local_device(&gw, &id, &[READ]).await;
    let r = admin.call("rm", "device.pair.remove", Some(json!({ "deviceId": id.device_id() }))).await;
    assert_eq!(r["payload"]["removed"], true, "{r}");
    assert_eq!(live.expect_close().await, (4001, "client invalidated: device removed".into()));
    let list = admin.call("l", "device.pair.list", None).await;
    assert_eq!(list["payload"]["paired"], json!([]));
    gw.stop().await;
}

#[tokio::test]
async fn rename_is_limited_and_visible() {
    let gw = TestGateway::start(Config::new(AuthMode::Token, Some(TOKEN), None), ServerOptions::default()).await;
    let mut admin = admitted(&gw, &["operator.admin"]).await;
    let id = DeviceIdentity::generate();
    local_device(&gw, &id, &[READ]).await;
    let r = admin
        .call("n", "device.pair.rename", Some(json!({ "deviceId": id.device_id(), "label": "kitchen laptop" })))
        .await;
    assert_eq!(r["payload"]["device"]["displayName"], "kitchen laptop", "{r}");
    let r = admin
        .call("n2", "device.pair.rename", Some(json!({ "deviceId": id.device_id(), "label": "x".repeat(65) })))
        .await;
    assert_eq!(r["ok"], false, "labels are limited to 64 characters: {r}");
    gw.stop().await;
}
