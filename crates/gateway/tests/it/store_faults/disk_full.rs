//! The store's disk full under a running gateway: store writes are refused
//! with `STORE_FULL` (UNAVAILABLE; a connect that needs a write gets
//! `STORE_UNAVAILABLE` with `storeCode: STORE_FULL`) and one log line;
//! existing sessions and shared-token connects carry on; once space is
//! freed, writes work again.

use clawgate::store::PairingStore;
use serde_json::json;

use super::crash_matrix::remote_requests;
use super::harness::{check_store_clean, operator, proxied_config, PROXY_SOURCE, READ};
use super::small_disk::{fill, SmallDisk};
use crate::common::{connect_params, RawConn, TOKEN};

const REFUSED: &str = "pairing store writes are refused";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_store_writes_and_recovers_when_space_frees() {
    let disk = SmallDisk::new(&proxied_config());
    let gw = disk.start_gateway().await;
    let state = disk.state(&gw);
    let requests = remote_requests(gw.addr, 3).await;
    let mut op = operator(&gw, &["operator.admin"]).await;

    let junk = fill(&state);

    // A write through a gateway method: refused with the store's code.
    for (i, (_, rid)) in requests.iter().enumerate().take(2) {
        let r = op.call(&format!("a{i}"), "device.pair.approve", Some(json!({ "requestId": rid }))).await;
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["error"]["code"], "UNAVAILABLE", "{r}");
        assert_eq!(r["error"]["details"]["code"], "STORE_FULL", "{r}");
    }
    // A connect that needs a write (a new device asking to pair).
    let id = clawgate_client::DeviceIdentity::generate();
    let headers = [("x-forwarded-for", "198.51.100.7"), ("host", "gateway.example")];
    let mut c = RawConn::open_from(PROXY_SOURCE, gw.addr, &headers).await.expect("upgrade");
    let res =
        c.handshake_device(connect_params("gateway-client", "backend", "operator", &[READ], Some(TOKEN)), &id).await;
    assert_eq!(res["error"]["details"]["code"], "STORE_UNAVAILABLE", "{res}");
    assert_eq!(res["error"]["details"]["storeCode"], "STORE_FULL", "{res}");

    // The existing session and a new shared-token connect carry on.
    assert_eq!(op.call("h1", "health", None).await["ok"], true);
    let mut fresh = operator(&gw, &[READ]).await;
    assert_eq!(fresh.call("h2", "health", None).await["ok"], true);
    let (status, body) = gw.admin_get("/readyz").await;
    assert_eq!(status, 200, "reads still work: {body}");

    // One log line for the whole episode, naming the code.
    gw.wait_log(&[REFUSED, "STORE_FULL"]).await;
    assert_eq!(gw.log_matching(&[REFUSED]).len(), 1, "{:#?}", gw.log_lines());

    // Space frees: the refused approval goes through, and the log says so.
    std::fs::remove_file(&junk).unwrap();
    let r = op.call("a-again", "device.pair.approve", Some(json!({ "requestId": requests[0].1 }))).await;
    assert_eq!(r["ok"], true, "{r}");
    gw.wait_log(&["writes work again"]).await;
    let mut c = RawConn::open_from(PROXY_SOURCE, gw.addr, &headers).await.expect("upgrade");
    let res =
        c.handshake_device(connect_params("gateway-client", "backend", "operator", &[READ], Some(TOKEN)), &id).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");

    let checked = disk.store_to_check(&gw);
    let store = check_store_clean(&checked.path);
    assert!(store.device(&requests[0].0.device_id()).unwrap().is_some());
    assert!(store.device(&requests[1].0.device_id()).unwrap().is_none(), "the refused approval left nothing");
    drop(store);
    for line in gw.log_matching(&["STORE_FULL"]).iter().chain(&gw.log_matching(&["writes work again"])) {
        eprintln!("[gateway] {line}");
    }
    drop(gw);
}
