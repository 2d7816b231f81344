//! Device identity, pairing and device tokens, end to end against a real server.

use crate::common::{admitted_from, connect_params, with_trusted_loopback_proxy, RawConn, TestGateway, REMOTE, TOKEN};
use clawgate::config::{AuthMode, Config};
use clawgate::store::ApprovedVia;
use clawgate::ServerOptions;
use clawgate_client::DeviceIdentity;
use serde_json::{json, Value};

const READ: &str = "operator.read";
const WRITE: &str = "operator.write";

fn cfg() -> Config {
    Config::new(AuthMode::Token, Some(TOKEN), None)
}

fn with_device_token(mut params: Value, token: &str) -> Value {
    params["auth"] = json!({ "token": token, "deviceToken": token });
    params
}

async fn connect(gw: &TestGateway, headers: &[(&str, &str)], params: Value, id: &DeviceIdentity) -> (RawConn, Value) {
    let mut c = RawConn::open_with(gw.addr, headers).await.expect("upgrade");
    let res = c.handshake_device(params, id).await;
    (c, res)
}

#[tokio::test]
async fn local_device_pairs_silently_and_reconnects_with_its_token() {
    let gw = TestGateway::start(cfg(), ServerOptions::default()).await;
    let id = DeviceIdentity::generate();
    let (mut c, res) =
        connect(&gw, &[], connect_params("cli", "cli", "operator", &[READ, WRITE], Some(TOKEN)), &id).await;
    assert_eq!(res["ok"], true, "{res}");
    let token = res["payload"]["auth"]["deviceToken"].as_str().expect("a device token").to_owned();
    assert_eq!(token.len(), 43);
    assert!(res["payload"]["auth"]["issuedAtMs"].as_u64().is_some());
    assert_eq!(res["payload"]["auth"]["scopes"], json!([READ, WRITE]));
    assert_eq!(c.call("s", "status", None).await["payload"]["you"]["rule"], "silent-local-pairing");
    let paired = gw.gateway.store.device(&id.device_id()).unwrap().expect("paired");
    assert_eq!(paired.approved_via, ApprovedVia::Silent);

    // Reconnect with only the device token: admitted, no new token minted;
    // its own token is echoed back, as the device-token method.
    let params = with_device_token(connect_params("cli", "cli", "operator", &[READ], None), &token);
    let (mut c2, res) = connect(&gw, &[], params, &id).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["deviceToken"], token.as_str());
    assert_eq!(res["payload"]["auth"]["method"], "device-token");
    assert_eq!(gw.gateway.store.tokens(&id.device_id()).unwrap().len(), 1, "nothing new was minted");
    assert_eq!(c2.call("s", "status", None).await["payload"]["you"]["rule"], "device-paired");

    // Asking for more than the token grants is a scope mismatch, never an upgrade.
    let params = with_device_token(connect_params("cli", "cli", "operator", &[READ, "operator.admin"], None), &token);
    let (_, res) = connect(&gw, &[], params, &id).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_SCOPE_MISMATCH", "{res}");
    assert_eq!(res["error"]["details"]["recommendedNextStep"], "review_auth_configuration");
    gw.stop().await;
}

#[tokio::test]
async fn device_token_failures_have_their_codes() {
    let gw = TestGateway::start(cfg(), ServerOptions::default()).await;
    let id = DeviceIdentity::generate();
    let (_, res) = connect(&gw, &[], connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), &id).await;
    assert_eq!(res["ok"], true);

    let mut params = connect_params("cli", "cli", "operator", &[READ], None);
    params["auth"] = json!({ "deviceToken": "not-the-token" });
    let (_, res) = connect(&gw, &[], params, &id).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH", "{res}");

    // A wrong value in auth.token with a device: the shared-token failure, and
    // the hint that a device token may be retried.
    let (_, res) = connect(&gw, &[], connect_params("cli", "cli", "operator", &[READ], Some("wrong")), &id).await;
    let d = &res["error"]["details"];
    assert_eq!(d["code"], "AUTH_TOKEN_MISMATCH");
    assert_eq!(d["canRetryWithDeviceToken"], true);
    assert_eq!(d["recommendedNextStep"], "retry_with_device_token");

    // Another device's token does not work for this one.
    let other = DeviceIdentity::generate();
    let (_, res) = connect(&gw, &[], connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), &other).await;
    let other_token = res["payload"]["auth"]["deviceToken"].as_str().unwrap().to_owned();
    let params = with_device_token(connect_params("cli", "cli", "operator", &[READ], None), &other_token);
    let (_, res) = connect(&gw, &[], params, &id).await;
    assert_eq!(res["ok"], false);
    assert_eq!(res["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH");

    // No credential at all with a device.
    let (_, res) = connect(&gw, &[], connect_params("cli", "cli", "operator", &[READ], None), &id).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISSING");
    gw.stop().await;
}

#[tokio::test]
async fn remote_device_waits_for_approval_with_a_stable_request_id() {
    let gw = with_trusted_loopback_proxy(cfg()).await;
    let id = DeviceIdentity::generate();
    let params = connect_params("cli", "cli", "operator", &[READ], Some(TOKEN));
    let mut c = RawConn::open_with(gw.addr, REMOTE).await.unwrap();
    let res = c.handshake_device(params.clone(), &id).await;
    let err = &res["error"];
    assert_eq!(err["code"], "NOT_PAIRED");
    assert_eq!(err["details"]["code"], "PAIRING_REQUIRED");
    assert_eq!(err["details"]["reason"], "not-paired");
    assert_eq!(err["details"]["deviceId"], id.device_id());
    assert_eq!(err["details"]["rule"], "pairing-required");
    let request_id = err["details"]["requestId"].as_str().unwrap().to_owned();
    let (code, reason) = c.expect_close().await;
    assert_eq!(code, 1008);
    assert!(reason.starts_with("pairing required: device is not approved yet"), "{reason}");

    // The same (or narrower) retry keeps the id; a broader one supersedes it.
    let (_, res) = connect(&gw, REMOTE, params.clone(), &id).await;
    assert_eq!(res["error"]["details"]["requestId"], request_id.as_str());
    let broader = connect_params("cli", "cli", "operator", &[READ, WRITE], Some(TOKEN));
    let (_, res) = connect(&gw, REMOTE, broader.clone(), &id).await;
    let new_id = res["error"]["details"]["requestId"].as_str().unwrap().to_owned();
    assert_ne!(new_id, request_id);

    // Approving the old id is refused; the new one works.
    let now = clawgate::server::now_ms();
    assert!(gw.gateway.store.approve(&request_id, ApprovedVia::Cli, now).is_err());
    gw.gateway.store.approve(&new_id, ApprovedVia::Cli, now).unwrap();
    let (_, res) = connect(&gw, REMOTE, broader, &id).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["scopes"], json!([READ, WRITE]));
    assert!(res["payload"]["auth"]["deviceToken"].is_string());
    gw.stop().await;
}

#[tokio::test]
async fn scope_upgrades_are_silent_locally_and_pending_remotely() {
    // Local, with the owner's secret: approved silently (field report 3).
    let gw = TestGateway::start(cfg(), ServerOptions::default()).await;
    let id = DeviceIdentity::generate();
    let (_, res) = connect(&gw, &[], connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), &id).await;
    assert_eq!(res["ok"], true, "{res}");
    let wider = connect_params("cli", "cli", "operator", &[READ, WRITE], Some(TOKEN));
    let (_, res) = connect(&gw, &[], wider.clone(), &id).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["scopes"], json!([READ, WRITE]));
    let paired = gw.gateway.store.device(&id.device_id()).unwrap().unwrap();
    assert!(paired.approved_scopes.contains(&WRITE.to_owned()));
    gw.stop().await;

    // Remote asks for more than approved: pending, with what is approved so far.
    let gw = with_trusted_loopback_proxy(cfg()).await;
    let id = DeviceIdentity::generate();
    let now = clawgate::server::now_ms();
    let mut first = clawgate::store::NewRequest::new(
        id.device_id(),
        id.public_key_b64url(),
        clawgate::store::Role::Operator,
        &[READ],
    );
    first.platform = Some("linux".into());
    gw.gateway.store.pair_silently(&first, now).unwrap();
    let (_, res) = connect(&gw, REMOTE, wider.clone(), &id).await;
    assert_eq!(res["error"]["details"]["reason"], "scope-upgrade", "{res}");
    assert_eq!(res["error"]["details"]["approvedScopes"], json!([READ]));

    // With a trusted proxy on loopback, a local-looking caller may be a proxied
    // one: no silent approval for it either (docs/threat-model.md, H2).
    let mut local = RawConn::open_from("127.0.0.2", gw.addr, &[]).await.unwrap();
    let res = local.handshake_device(wider, &id).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    gw.stop().await;
}

#[tokio::test]
async fn role_upgrades_are_never_silent() {
    let gw = TestGateway::start(cfg(), ServerOptions::default()).await;
    let id = DeviceIdentity::generate();
    let (_, res) = connect(&gw, &[], connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), &id).await;
    assert_eq!(res["ok"], true);
    let (_, res) = connect(&gw, &[], connect_params("node-host", "node", "node", &[], Some(TOKEN)), &id).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    assert_eq!(res["error"]["details"]["reason"], "role-upgrade");
    assert_eq!(res["error"]["details"]["approvedRoles"], json!(["operator"]));
    gw.stop().await;
}

#[tokio::test]
async fn changed_platform_needs_reapproval() {
    let gw = TestGateway::start(cfg(), ServerOptions::default()).await;
    let id = DeviceIdentity::generate();
    let mut p = connect_params("cli", "cli", "operator", &[READ], Some(TOKEN));
    p["client"]["platform"] = json!("macos");
    let (_, res) = connect(&gw, &[], p.clone(), &id).await;
    assert_eq!(res["ok"], true);
    p["client"]["platform"] = json!("darwin");
    let (_, res) = connect(&gw, &[], p.clone(), &id).await;
    assert_eq!(res["ok"], true, "runtime aliases are the same platform: {res}");
    p["client"]["platform"] = json!("linux");
    let (_, res) = connect(&gw, &[], p, &id).await;
    assert_eq!(res["error"]["details"]["reason"], "metadata-upgrade", "{res}");
    gw.stop().await;
}

#[tokio::test]
async fn local_pairing_can_be_turned_off() {
    let mut config = cfg();
    config.auto_approve_local = false;
    let gw = TestGateway::start(config, ServerOptions::default()).await;
    let id = DeviceIdentity::generate();
    let (_, res) = connect(&gw, &[], connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), &id).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    gw.stop().await;
}

#[tokio::test]
async fn proof_failures_have_device_auth_codes() {
    let gw = TestGateway::token().await;
    let id = DeviceIdentity::generate();
    let params = connect_params("cli", "cli", "operator", &[READ], Some(TOKEN));

    let mut c = RawConn::open(gw.addr).await;
    let ch = c.recv().await;
    let ts = ch["payload"]["ts"].as_u64().unwrap();
    let res = c.send_connect_signed(params.clone(), &id, "some-other-nonce", ts).await;
    assert_eq!(res["error"]["details"]["code"], "DEVICE_AUTH_NONCE_MISMATCH");
    assert_eq!(res["error"]["details"]["rule"], "device-proof");
    assert_eq!(c.expect_close().await.0, 1008);

    let mut c = RawConn::open(gw.addr).await;
    let ch = c.recv().await;
    let nonce = ch["payload"]["nonce"].as_str().unwrap().to_owned();
    let ts = ch["payload"]["ts"].as_u64().unwrap();
    let res = c.send_connect_signed(params, &id, &nonce, ts - 121_000).await;
    assert_eq!(res["error"]["details"]["code"], "DEVICE_AUTH_SIGNATURE_EXPIRED");
    assert_eq!(res["error"]["details"]["reason"], "device-signature-stale");
    gw.stop().await;
}

#[tokio::test]
async fn pairing_requests_reach_only_pairing_operators() {
    let gw = with_trusted_loopback_proxy(cfg()).await;
    // Local operators connect from 127.0.0.2: 127.0.0.1 is the trusted proxy.
    let mut pairing = admitted_from("127.0.0.2", &gw, &["operator.pairing"]).await;
    let mut reader = admitted_from("127.0.0.2", &gw, &[READ]).await;
    let id = DeviceIdentity::generate();
    let (_, res) = connect(&gw, REMOTE, connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), &id).await;
    let request_id = res["error"]["details"]["requestId"].clone();
    let event = loop {
        let f = pairing.recv().await;
        if f["event"] == "device.pair.requested" {
            break f;
        }
    };
    assert_eq!(event["payload"]["requestId"], request_id);
    assert_eq!(event["payload"]["deviceId"], id.device_id());
    assert!(event["seq"].as_u64().is_some());
    // The read-only operator gets nothing: its next frame is our own response.
    let res = reader.call("h", "health", None).await;
    assert_eq!(res["ok"], true);
    gw.stop().await;
}
