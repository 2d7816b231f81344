//! The store file removed, or replaced by another file (a restored
//! backup), under a running gateway: noticed (the file at the path is no
//! longer the one open), writes refused with `STORE_REPLACED`, one clear log
//! line, `/readyz` not ready, and no empty store ever created in its place.
//! After the operator's fix (stop, put the file back, start) the gateway
//! serves from the restored file (docs/operations.md).

use std::path::Path;
use std::time::Duration;

use clawgate::store::PairingStore;
use serde_json::{json, Value};

use super::crash_matrix::remote_requests;
use super::harness::{check_store_clean, operator, proxied_config, start_gateway, state_dir, store_path};
use crate::common::clawgate_process::ClawgateProcess;

const REFUSED: &str = "pairing store writes are refused";

fn side_file(store: &Path, suffix: &str) -> std::path::PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(suffix);
    p.into()
}

/// The running gateway refuses writes, says so once, and is not ready.
async fn refuses_writes(gw: &ClawgateProcess, op: &mut crate::common::RawConn, request_id: &str, what: &str) {
    // Noticed before anything writes: the store watch polls the file.
    gw.wait_log(&[REFUSED, "STORE_REPLACED", what]).await;
    for attempt in 0..3 {
        let r: Value =
            op.call(&format!("a{attempt}"), "device.pair.approve", Some(json!({ "requestId": request_id }))).await;
        assert_eq!(r["error"]["code"], "UNAVAILABLE", "{r}");
        assert_eq!(r["error"]["details"]["code"], "STORE_REPLACED", "{r}");
        assert!(r["error"]["message"].as_str().unwrap().contains(what), "{r}");
    }
    let (status, body) = gw.admin_get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("STORE_REPLACED"), "{body}");
    // Existing sessions carry on (reads go to the file still open).
    assert_eq!(op.call("h", "health", None).await["ok"], true);
    // Give the store watch a few ticks: it must not log per tick.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(gw.log_matching(&[REFUSED]).len(), 1, "{:#?}", gw.log_lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_store_file_is_noticed_and_never_recreated() {
    let dir = state_dir(&proxied_config());
    let store = store_path(dir.path());
    let gw = start_gateway(dir.path()).await;
    let requests = remote_requests(gw.addr, 1).await;
    let mut op = operator(&gw, &["operator.admin"]).await;
    assert_eq!(gw.admin_get("/readyz").await.0, 200);

    std::fs::remove_file(&store).unwrap();
    refuses_writes(&gw, &mut op, &requests[0].1, "removed").await;
    assert!(!store.exists(), "the gateway recreated an empty store");
    drop(gw);
    assert!(!store.exists(), "the gateway recreated an empty store on its way out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_store_file_is_noticed_and_the_restored_one_served_after_a_restart() {
    let dir = state_dir(&proxied_config());
    let store = store_path(dir.path());
    let mut gw = start_gateway(dir.path()).await;
    let requests = remote_requests(gw.addr, 2).await;
    // A backup holding both requests, restored over the live file.
    let backup = dir.path().join("backup.sqlite");
    rusqlite::Connection::open(&store).unwrap().execute("VACUUM INTO ?1", [backup.to_str().unwrap()]).unwrap();
    let mut op = operator(&gw, &["operator.admin"]).await;
    let r = op.call("first", "device.pair.approve", Some(json!({ "requestId": requests[0].1 }))).await;
    assert_eq!(r["ok"], true, "{r}");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::rename(&backup, &store).unwrap();
    let restored = std::fs::read(&store).unwrap();

    refuses_writes(&gw, &mut op, &requests[1].1, "replaced").await;
    assert_eq!(std::fs::read(&store).unwrap(), restored, "the restored file was written to");

    // The operator's fix: stop the gateway, drop the old file's WAL (it
    // belongs to the file that was replaced), start again.
    gw.kill9();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(side_file(&store, suffix));
    }
    let gw = start_gateway(dir.path()).await;
    assert_eq!(gw.admin_get("/readyz").await.0, 200);
    let mut op = operator(&gw, &["operator.admin"]).await;
    // The restored backup predates the first approval: both requests are open.
    let r = op.call("again", "device.pair.approve", Some(json!({ "requestId": requests[1].1 }))).await;
    assert_eq!(r["ok"], true, "{r}");
    drop(gw);
    let store = check_store_clean(&store);
    assert!(store.device(&requests[0].0.device_id()).unwrap().is_none(), "served from the restored file");
    assert!(store.device(&requests[1].0.device_id()).unwrap().is_some());
}
