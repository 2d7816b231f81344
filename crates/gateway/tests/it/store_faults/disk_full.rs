//! The store's disk full under a running gateway: store writes are refused
//! with `STORE_FULL` (UNAVAILABLE; a connect that needs a write gets
//! `STORE_UNAVAILABLE` with `storeCode: STORE_FULL`) and one log line;
//! existing sessions, shared-token connects and connects admitted by a
//! credential (a paired device's token, a service token) carry on, their
//! last-seen and last-used times kept for a later batch; once space is
//! freed, writes work again and the batch lands.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use clawgate::server::now_ms;
use clawgate::store::{PairingStore, Role, SqliteStore};
use clawgate_client::DeviceIdentity;
use serde_json::{json, Value};

use super::crash_matrix::remote_requests;
use super::harness::{check_store_clean, operator, proxied_config, PROXY_SOURCE, READ};
use super::small_disk::{fill, SmallDisk};
use crate::common::clawgate_process::ClawgateProcess;
use crate::common::{connect_params, RawConn, TOKEN};

const REFUSED: &str = "pairing store writes are refused";
const BATCH_KEPT: &str = "last-seen times not written yet";
const SERVICE: &str = "disk-full-probe";

/// A store file holding one service principal; returns its token.
fn store_with_service(path: &Path) -> String {
    let store = SqliteStore::open(path).unwrap();
    store.add_service(SERVICE, Role::Operator, &[READ.to_owned()], now_ms()).unwrap().token
}

fn shared_token_params() -> Value {
    connect_params("gateway-client", "backend", "operator", &[READ], Some(TOKEN))
}

fn with_device_token(token: &str) -> Value {
    let mut p = connect_params("gateway-client", "backend", "operator", &[READ], None);
    p["auth"] = json!({ "token": token, "deviceToken": token });
    p
}

/// `device` connects through the trusted proxy from the address it asked to pair from.
async fn remote_device_connect(addr: SocketAddr, device: &DeviceIdentity, params: Value) -> (RawConn, Value) {
    let headers = [("x-forwarded-for", "203.0.113.4"), ("host", "gateway.example")];
    let mut c = RawConn::open_from(PROXY_SOURCE, addr, &headers).await.expect("upgrade");
    let res = c.handshake_device(params, device).await;
    (c, res)
}

/// The device's last-seen and the service's last-used times in the store
/// file, as the gateway left it.
fn recorded_times(disk: &SmallDisk, gw: &ClawgateProcess, device_id: &str) -> (Option<i64>, Option<i64>) {
    let checked = disk.store_to_check(gw);
    let conn = rusqlite::Connection::open(&checked.path).unwrap();
    let seen =
        conn.query_row("SELECT last_seen_at_ms FROM devices WHERE device_id = ?1", [device_id], |r| r.get(0)).unwrap();
    let used = conn
        .query_row("SELECT last_used_at_ms FROM service_principals WHERE name = ?1", [SERVICE], |r| r.get(0))
        .unwrap();
    (seen, used)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_store_writes_and_recovers_when_space_frees() {
    let seed = tempfile::tempdir().unwrap();
    let seed_store = seed.path().join("clawgate.sqlite");
    let service_token = store_with_service(&seed_store);
    let mut disk = SmallDisk::new(&proxied_config());
    disk.seed_store(&seed_store);
    let gw = disk.start_gateway().await;
    let state = disk.state(&gw);
    let mut requests = remote_requests(gw.addr, 4).await;
    let mut op = operator(&gw, &["operator.admin"]).await;
    // A remote device paired before the disk fills, holding its device token.
    let (device, rid) = requests.pop().unwrap();
    let device_id = device.device_id();
    let r = op.call("pair", "device.pair.approve", Some(json!({ "requestId": rid }))).await;
    assert_eq!(r["ok"], true, "{r}");
    let (first, res) = remote_device_connect(gw.addr, &device, shared_token_params()).await;
    assert_eq!(res["ok"], true, "{res}");
    let device_token = res["payload"]["auth"]["deviceToken"].as_str().expect("a device token").to_owned();
    drop(first);

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

    // Connects admitted by a credential need no write: the paired device
    // with its device token, a service with its service token.
    let credential_use = i64::try_from(now_ms()).unwrap();
    let (mut paired, res) = remote_device_connect(gw.addr, &device, with_device_token(&device_token)).await;
    assert_eq!(res["ok"], true, "a device-token reconnect with the disk full: {res}");
    assert_eq!(paired.call("h3", "health", None).await["ok"], true);
    let mut service = RawConn::open(gw.addr).await;
    let res =
        service.handshake(connect_params("gateway-client", "backend", "operator", &[READ], Some(&service_token))).await;
    assert_eq!(res["ok"], true, "a service-token connect with the disk full: {res}");
    assert_eq!(service.call("h4", "health", None).await["ok"], true);

    // A write that must persist is still refused: a revoke.
    let r = op.call("revoke", "device.token.revoke", Some(json!({ "deviceId": device_id, "role": "operator" }))).await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["details"]["code"], "STORE_FULL", "{r}");

    // One log line for the whole episode, naming the code; the batch of
    // last-seen times that cannot be written is logged once too.
    gw.wait_log(&[REFUSED, "STORE_FULL"]).await;
    assert_eq!(gw.log_matching(&[REFUSED]).len(), 1, "{:#?}", gw.log_lines());
    gw.wait_log(&[BATCH_KEPT, "STORE_FULL"]).await;
    assert_eq!(gw.log_matching(&[BATCH_KEPT]).len(), 1, "{:#?}", gw.log_lines());

    // Space frees: the refused approval goes through, and the log says so.
    std::fs::remove_file(&junk).unwrap();
    let r = op.call("a-again", "device.pair.approve", Some(json!({ "requestId": requests[0].1 }))).await;
    assert_eq!(r["ok"], true, "{r}");
    gw.wait_log(&["writes work again"]).await;
    let mut c = RawConn::open_from(PROXY_SOURCE, gw.addr, &headers).await.expect("upgrade");
    let res =
        c.handshake_device(connect_params("gateway-client", "backend", "operator", &[READ], Some(TOKEN)), &id).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");

    // The kept batch lands: the times of the connects made while the disk was full.
    gw.wait_log(&["last-seen and last-used times written again"]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (seen, used) = recorded_times(&disk, &gw, &device_id);
        if seen.is_some_and(|t| t >= credential_use) && used.is_some_and(|t| t >= credential_use) {
            break;
        }
        assert!(Instant::now() < deadline, "the kept batch never landed: seen {seen:?}, used {used:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let checked = disk.store_to_check(&gw);
    let store = check_store_clean(&checked.path);
    assert!(store.device(&requests[0].0.device_id()).unwrap().is_some());
    assert!(store.device(&requests[1].0.device_id()).unwrap().is_none(), "the refused approval left nothing");
    assert_eq!(
        store.tokens(&device_id).unwrap().iter().filter(|t| t.revoked_at_ms.is_none()).count(),
        1,
        "the refused revoke left the token live"
    );
    drop(store);
    let recovered = [gw.log_matching(&["writes work again"]), gw.log_matching(&["written again"])].concat();
    for line in gw.log_matching(&["STORE_FULL"]).iter().chain(&recovered) {
        eprintln!("[gateway] {line}");
    }
    drop(gw);
}
