//! The gateway serves paired devices from the store's in-memory copy: its
//! own revocations refuse the next connect at once, another process's close
//! the session within a poll and refuse the connect after it, and a
//! device-token reconnect's last-seen time reaches the file.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{connect_params, RawConn, TestGateway, TOKEN};
use clawgate::config::{AuthMode, Config};
use clawgate::store::{PairingStore, Role, SqliteStore};
use clawgate::ServerOptions;
use clawgate_client::DeviceIdentity;
use serde_json::{json, Value};

fn with_device_token(token: &str) -> Value {
    let mut p = connect_params("cli", "cli", "operator", &["operator.read"], None);
    p["auth"] = json!({ "token": token, "deviceToken": token });
    p
}

/// Pair `id` with the shared token; its device token.
async fn pair(gw: &TestGateway, id: &DeviceIdentity) -> String {
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake_device(connect_params("cli", "cli", "operator", &["operator.read"], Some(TOKEN)), id).await;
    res["payload"]["auth"]["deviceToken"].as_str().expect("paired silently, with a token").to_owned()
}

#[tokio::test]
async fn the_gateways_own_revocation_refuses_the_next_connect_at_once() {
    let gw = TestGateway::start(Config::new(AuthMode::Token, Some(TOKEN), None), ServerOptions::default()).await;
    assert!(gw.gateway.devices_in_memory);
    let id = DeviceIdentity::generate();
    let token = pair(&gw, &id).await;
    let mut c = RawConn::open(gw.addr).await;
    assert_eq!(c.handshake_device(with_device_token(&token), &id).await["ok"], true);

    assert!(gw.gateway.store.revoke_token(&id.device_id(), Role::Operator, clawgate::server::now_ms()).unwrap());
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake_device(with_device_token(&token), &id).await;
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH", "{res}");
    gw.stop().await;
}

#[tokio::test]
async fn another_process_revoking_closes_the_session_and_refuses_the_next_connect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clawgate.sqlite");
    let options = ServerOptions { store_poll_interval: Duration::from_millis(100), ..Default::default() };
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let gw = TestGateway::start_with_store(Config::new(AuthMode::Token, Some(TOKEN), None), options, store).await;
    let id = DeviceIdentity::generate();
    let token = pair(&gw, &id).await;
    let mut session = RawConn::open(gw.addr).await;
    assert_eq!(session.handshake_device(with_device_token(&token), &id).await["ok"], true);

    let other = SqliteStore::open(&path).unwrap();
    assert!(other.revoke_token(&id.device_id(), Role::Operator, clawgate::server::now_ms()).unwrap());
    let closed = tokio::time::timeout(Duration::from_secs(5), session.expect_close()).await.expect("closed in time");
    assert_eq!(closed, (4001, "client invalidated: device token revoked".into()));
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake_device(with_device_token(&token), &id).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH", "{res}");
    gw.stop().await;
}

#[tokio::test]
async fn a_reconnects_last_seen_reaches_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clawgate.sqlite");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let gw =
        TestGateway::start_with_store(Config::new(AuthMode::Token, Some(TOKEN), None), Default::default(), store).await;
    let id = DeviceIdentity::generate();
    let token = pair(&gw, &id).await;
    let before = clawgate::server::now_ms();
    let mut c = RawConn::open(gw.addr).await;
    assert_eq!(c.handshake_device(with_device_token(&token), &id).await["ok"], true);
    // Batched, then written at shutdown at the latest.
    gw.stop().await;
    let seen = SqliteStore::open(&path).unwrap().device(&id.device_id()).unwrap().unwrap().last_seen_at_ms;
    assert!(seen.is_some_and(|t| t >= before), "{seen:?}");
}
