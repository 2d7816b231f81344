//! Changes another process makes to the store (the CLI with `--offline`)
//! reach live sessions within one poll.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{connect_params, RawConn, TOKEN};
use clawgate::config::{AuthMode, Config};
use clawgate::store::{PairingStore, Role, SqliteStore};
use clawgate::{serve, Gateway, ServerOptions};
use clawgate_client::DeviceIdentity;
use serde_json::json;

#[tokio::test]
async fn a_revocation_written_by_another_process_closes_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clawgate.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    let options = ServerOptions { store_poll_interval: Duration::from_millis(100), ..Default::default() };
    let gw = Gateway::new(Config::new(AuthMode::Token, Some(TOKEN), None), options, Arc::new(store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, gw.clone(), async move {
        let _ = stopped.await;
    }));

    let id = DeviceIdentity::generate();
    let mut first = RawConn::open(addr).await;
    let res =
        first.handshake_device(connect_params("cli", "cli", "operator", &["operator.read"], Some(TOKEN)), &id).await;
    let token = res["payload"]["auth"]["deviceToken"].as_str().unwrap().to_owned();
    let mut p = connect_params("cli", "cli", "operator", &["operator.read"], None);
    p["auth"] = json!({ "token": token, "deviceToken": token });
    let mut with_token = RawConn::open(addr).await;
    assert_eq!(with_token.handshake_device(p, &id).await["ok"], true);

    // Another process (a second connection to the same file) revokes the token.
    let other = SqliteStore::open(&path).unwrap();
    assert!(other.revoke_token(&id.device_id(), Role::Operator, clawgate::server::now_ms()).unwrap());
    let closed = tokio::time::timeout(Duration::from_secs(5), with_token.expect_close()).await.expect("closed in time");
    assert_eq!(closed, (4001, "client invalidated: device token revoked".into()));

    // Removing the device ends its shared-secret session too.
    other.remove_device(&id.device_id(), clawgate::server::now_ms()).unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), first.expect_close()).await.expect("closed in time");
    assert_eq!(closed, (4001, "client invalidated: device removed".into()));

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
