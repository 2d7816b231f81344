//! Wire behaviour around the handshake, each on a real server: a second
//! `connect`, an oversized frame after hello-ok, a public key of the wrong
//! length whose id matches, and a wrong device token in mode none.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clawgate::config::{AuthMode, Config};
use clawgate::ServerOptions;
use clawgate_client::DeviceIdentity;
use serde_json::json;

use crate::common::{admitted, connect_params, RawConn, TestGateway, TOKEN};

#[tokio::test]
async fn a_second_connect_is_an_invalid_request_and_the_socket_stays_usable() {
    let gw = TestGateway::token().await;
    let mut c = admitted(&gw, &["operator.read"]).await;
    let params = connect_params("gateway-client", "backend", "operator", &["operator.read"], Some(TOKEN));
    let res = c.call("again", "connect", Some(params)).await;
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert_eq!(res["error"]["message"], "connect is only valid as the first request");
    let health = c.call("h", "health", None).await;
    assert_eq!(health["ok"], true, "the socket still answers: {health}");
    gw.stop().await;
}

#[tokio::test]
async fn a_frame_over_max_payload_after_hello_closes_1009_with_a_close_frame() {
    let options = ServerOptions { max_payload: 64 * 1024, ..Default::default() };
    let gw = TestGateway::start(Config::new(AuthMode::Token, Some(TOKEN), None), options).await;
    let mut c = admitted(&gw, &["operator.read"]).await;
    let big =
        json!({ "type": "req", "id": "big", "method": "health", "params": { "pad": "x".repeat(8 * 1024 * 1024) } });
    c.send(&big).await;
    let (code, reason) = c.expect_close().await;
    assert_eq!(code, 1009, "a close frame, not a dropped socket: {reason}");
    gw.stop().await;
}

#[tokio::test]
async fn a_31_byte_key_whose_id_matches_is_an_invalid_public_key() {
    let gw = TestGateway::token().await;
    let mut c = RawConn::open(gw.addr).await;
    let challenge = c.recv().await;
    let nonce = challenge["payload"]["nonce"].as_str().unwrap().to_owned();
    let short = [9u8; 31];
    let mut params = connect_params("cli", "cli", "operator", &["operator.read"], Some(TOKEN));
    params["device"] = json!({
        "id": clawgate_protocol::device_key::fingerprint(&short),
        "publicKey": URL_SAFE_NO_PAD.encode(short),
        "signature": URL_SAFE_NO_PAD.encode([0u8; 64]),
        "signedAt": challenge["payload"]["ts"],
        "nonce": nonce,
    });
    c.send(&json!({ "type": "req", "id": "c1", "method": "connect", "params": params })).await;
    let res = c.recv().await;
    assert_eq!(res["error"]["details"]["code"], "DEVICE_AUTH_PUBLIC_KEY_INVALID", "{res}");
    gw.stop().await;
}

#[tokio::test]
async fn mode_none_refuses_a_wrong_device_token_and_takes_the_right_one() {
    let gw = TestGateway::start(Config::new(AuthMode::None, None, None), ServerOptions::default()).await;
    let identity = DeviceIdentity::generate();
    let mut first = RawConn::open(gw.addr).await;
    let res =
        first.handshake_device(connect_params("cli", "cli", "operator", &["operator.read"], None), &identity).await;
    assert_eq!(res["ok"], true, "paired silently in mode none: {res}");
    let token = res["payload"]["auth"]["deviceToken"].as_str().expect("a device token").to_owned();

    let with_device_token = |t: &str| {
        let mut p = connect_params("cli", "cli", "operator", &["operator.read"], None);
        p["auth"] = json!({ "deviceToken": t });
        p
    };
    let mut wrong = RawConn::open(gw.addr).await;
    let res = wrong.handshake_device(with_device_token("not-the-device-token"), &identity).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH", "{res}");

    let mut right = RawConn::open(gw.addr).await;
    let res = right.handshake_device(with_device_token(&token), &identity).await;
    assert_eq!(res["ok"], true, "{res}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    gw.stop().await;
}
