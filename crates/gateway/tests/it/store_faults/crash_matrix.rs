//! SIGKILL during every store-writing gateway method (approve, reject,
//! remove, token rotate, token revoke) and during silent local pairing
//! under concurrent load. Each round sends a batch of writes at once and
//! kills the gateway after a random number of them were acknowledged (plus
//! a random pause), then checks the store file: every acknowledged write is
//! there, every other one is all or nothing, and the store is clean. The
//! gateway then starts again on it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use clawgate::server::now_ms;
use clawgate::store::{PairingStore, RequestState, Role, SqliteStore, TokenCheck};
use clawgate_client::DeviceIdentity;
use serde_json::{json, Value};

use super::harness::{
    check_store_clean, operator, proxied_config, restarts_and_serves, rounds, start_gateway, state_dir, store_path,
    Rng, PROXY_SOURCE, READ,
};
use crate::common::clawgate_process::ClawgateProcess;
use crate::common::{connect_params, RawConn, TOKEN};

/// Writes per round, and rounds per path (unless `CLAWGATE_FAULT_ROUNDS`).
const N: usize = 16;
const ROUNDS: usize = 5;
const ADMIN: &str = "operator.admin";
/// No trusted proxy on loopback: local devices with the token pair silently.
const LOCAL_CONFIG: &str = "{}\n";

/// A remote device (through the trusted proxy, from an address of its own)
/// asks to pair; returns it and its request id.
async fn remote_request(addr: SocketAddr, i: usize) -> (DeviceIdentity, String) {
    let id = DeviceIdentity::generate();
    let ip = format!("203.0.113.{}", i + 1);
    let headers = [("x-forwarded-for", ip.as_str()), ("host", "gateway.example")];
    let mut c = RawConn::open_from(PROXY_SOURCE, addr, &headers).await.expect("upgrade");
    let res =
        c.handshake_device(connect_params("gateway-client", "backend", "operator", &[READ], Some(TOKEN)), &id).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    (id, res["error"]["details"]["requestId"].as_str().unwrap().to_owned())
}

/// A local device with the shared token pairs silently; returns it and its device token.
async fn local_device(addr: SocketAddr) -> (DeviceIdentity, String) {
    let id = DeviceIdentity::generate();
    let mut c = RawConn::open(addr).await;
    let res = c.handshake_device(connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), &id).await;
    assert_eq!(res["ok"], true, "{res}");
    (id, res["payload"]["auth"]["deviceToken"].as_str().unwrap().to_owned())
}

/// Send `frames` (ids `op<i>`) at once on `conn`; SIGKILL the gateway once
/// `kill_after` of them were answered ok and a further `pause_us` passed.
/// Returns the indices answered ok, including answers already on the wire
/// at the kill (a response is sent only after its commit).
async fn send_then_kill(
    gw: &mut ClawgateProcess,
    conn: &mut RawConn,
    frames: &[Value],
    kill_after: usize,
    pause_us: u64,
) -> BTreeSet<usize> {
    for f in frames {
        conn.send(f).await;
    }
    let index = |frame: &Value| -> Option<usize> {
        if frame["type"] != "res" {
            return None;
        }
        frame["id"].as_str()?.strip_prefix("op")?.parse().ok()
    };
    let mut acked = BTreeSet::new();
    while acked.len() < kill_after {
        let frame = conn.recv().await;
        if let Some(i) = index(&frame) {
            assert_eq!(frame["ok"], true, "write {i} failed: {frame}");
            acked.insert(i);
        }
    }
    tokio::time::sleep(Duration::from_micros(pause_us)).await;
    gw.kill9();
    while let Ok(frame) = conn.recv_or_close().await {
        if let (Some(i), true) = (index(&frame), frame["ok"] == true) {
            acked.insert(i);
        }
    }
    acked
}

fn frame(i: usize, method: &str, params: Value) -> Value {
    json!({ "type": "req", "id": format!("op{i}"), "method": method, "params": params })
}

/// The kill point of one round: after 0..N acknowledgements, then 0..3 ms.
fn kill_point(rng: &mut Rng) -> (usize, u64) {
    (rng.below(N as u64) as usize, rng.below(3000))
}

fn live_tokens(store_file: &std::path::Path, device_id: &str, role: Role) -> i64 {
    let conn = rusqlite::Connection::open(store_file).unwrap();
    conn.query_row(
        "SELECT count(*) FROM device_tokens WHERE device_id = ?1 AND role = ?2 AND revoked_at_ms IS NULL",
        [device_id, role.as_str()],
        |r| r.get(0),
    )
    .unwrap()
}

fn token_valid(store: &SqliteStore, device_id: &str, token: &str) -> bool {
    matches!(store.verify_token(device_id, Role::Operator, token, now_ms()).unwrap(), TokenCheck::Valid { .. })
}

/// What a round leaves to be checked: the state directory and the writes
/// acknowledged before the kill.
struct Round {
    dir: tempfile::TempDir,
    acked: BTreeSet<usize>,
}

impl Round {
    fn report(&self, path: &str, round: usize, kill: (usize, u64), committed_unacked: usize) {
        eprintln!(
            "{path} round {round}: kill after {} acks + {} µs; {} of {N} acknowledged, all kept; \
             {committed_unacked} more committed unacknowledged",
            kill.0,
            kill.1,
            self.acked.len()
        );
    }
}

/// `n` remote devices ask to pair; returns them with their request ids.
pub(super) async fn remote_requests(addr: SocketAddr, n: usize) -> Vec<(DeviceIdentity, String)> {
    let mut requests = Vec::with_capacity(n);
    for i in 0..n {
        requests.push(remote_request(addr, i).await);
    }
    requests
}

/// Pending requests, then `method` on each, killed at `kill`.
async fn pending_round(method: &str, kill: (usize, u64)) -> (Round, Vec<(DeviceIdentity, String)>) {
    let dir = state_dir(&proxied_config());
    let mut gw = start_gateway(dir.path()).await;
    let requests = remote_requests(gw.addr, N).await;
    let mut op = operator(&gw, &[ADMIN]).await;
    let frames: Vec<Value> =
        requests.iter().enumerate().map(|(i, (_, rid))| frame(i, method, json!({ "requestId": rid }))).collect();
    let acked = send_then_kill(&mut gw, &mut op, &frames, kill.0, kill.1).await;
    (Round { dir, acked }, requests)
}

/// Locally paired devices, then `method` on each (params from the device
/// id), killed at `kill`.
async fn paired_round(
    method: &str,
    params: impl Fn(&str) -> Value,
    kill: (usize, u64),
) -> (Round, Vec<(DeviceIdentity, String)>) {
    let dir = state_dir(LOCAL_CONFIG);
    let mut gw = start_gateway(dir.path()).await;
    let mut devices = Vec::with_capacity(N);
    for _ in 0..N {
        devices.push(local_device(gw.addr).await);
    }
    let mut op = operator(&gw, &[ADMIN]).await;
    let frames: Vec<Value> =
        devices.iter().enumerate().map(|(i, (id, _))| frame(i, method, params(&id.device_id()))).collect();
    let acked = send_then_kill(&mut gw, &mut op, &frames, kill.0, kill.1).await;
    (Round { dir, acked }, devices)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_approve() {
    let mut rng = Rng::from_env("crash: device.pair.approve");
    for round in 0..rounds(ROUNDS) {
        let kill = kill_point(&mut rng);
        let (r, requests) = pending_round("device.pair.approve", kill).await;
        let store = check_store_clean(&store_path(r.dir.path()));
        let mut extra = 0;
        for (i, (id, rid)) in requests.iter().enumerate() {
            let device = store.device(&id.device_id()).unwrap();
            let state = store.request(rid, now_ms()).unwrap().expect("the request is remembered").state;
            let approved = state == RequestState::Approved;
            assert_eq!(approved, device.as_ref().is_some_and(|d| d.has_role(Role::Operator)), "request {i}: {state:?}");
            if r.acked.contains(&i) {
                assert!(approved, "acknowledged approval {i} lost");
            } else if approved {
                extra += 1;
            } else {
                assert_eq!(state, RequestState::Open, "request {i}");
            }
        }
        r.report("approve", round, kill, extra);
        drop(store);
        restarts_and_serves(r.dir.path()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_reject() {
    let mut rng = Rng::from_env("crash: device.pair.reject");
    for round in 0..rounds(ROUNDS) {
        let kill = kill_point(&mut rng);
        let (r, requests) = pending_round("device.pair.reject", kill).await;
        let store = check_store_clean(&store_path(r.dir.path()));
        let cooling: BTreeSet<String> = store.rejections(now_ms()).unwrap().into_iter().map(|c| c.device_id).collect();
        let mut extra = 0;
        for (i, (id, rid)) in requests.iter().enumerate() {
            let state = store.request(rid, now_ms()).unwrap().expect("the request is remembered").state;
            let rejected = state == RequestState::Rejected;
            assert_eq!(rejected, cooling.contains(&id.device_id()), "request {i}: {state:?} without its cool-down");
            assert!(store.device(&id.device_id()).unwrap().is_none());
            if r.acked.contains(&i) {
                assert!(rejected, "acknowledged rejection {i} lost");
            } else if rejected {
                extra += 1;
            } else {
                assert_eq!(state, RequestState::Open, "request {i}");
            }
        }
        r.report("reject", round, kill, extra);
        drop(store);
        restarts_and_serves(r.dir.path()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_remove() {
    let mut rng = Rng::from_env("crash: device.pair.remove");
    for round in 0..rounds(ROUNDS) {
        let kill = kill_point(&mut rng);
        let (r, devices) = paired_round("device.pair.remove", |d| json!({ "deviceId": d }), kill).await;
        let path = store_path(r.dir.path());
        let store = check_store_clean(&path);
        let mut extra = 0;
        for (i, (id, token)) in devices.iter().enumerate() {
            let d = id.device_id();
            let removed = store.device(&d).unwrap().is_none();
            if removed {
                assert_eq!(live_tokens(&path, &d, Role::Operator), 0, "device {i} removed, its token left");
                extra += usize::from(!r.acked.contains(&i));
            } else {
                assert!(!r.acked.contains(&i), "acknowledged removal {i} lost");
                assert!(token_valid(&store, &d, token), "device {i} kept, its token gone");
            }
        }
        r.report("remove", round, kill, extra);
        drop(store);
        restarts_and_serves(r.dir.path()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_token_rotate() {
    let mut rng = Rng::from_env("crash: device.token.rotate");
    for round in 0..rounds(ROUNDS) {
        let kill = kill_point(&mut rng);
        let params = |d: &str| json!({ "deviceId": d, "role": "operator" });
        let (r, devices) = paired_round("device.token.rotate", params, kill).await;
        let path = store_path(r.dir.path());
        let store = check_store_clean(&path);
        let mut extra = 0;
        for (i, (id, old)) in devices.iter().enumerate() {
            let d = id.device_id();
            // Rotated or not, exactly one live token: never none, never both.
            assert_eq!(live_tokens(&path, &d, Role::Operator), 1, "device {i}");
            let rotated = !token_valid(&store, &d, old);
            if r.acked.contains(&i) {
                assert!(rotated, "acknowledged rotation {i} lost: the old token still verifies");
            } else {
                extra += usize::from(rotated);
            }
        }
        r.report("rotate", round, kill, extra);
        drop(store);
        restarts_and_serves(r.dir.path()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_token_revoke() {
    let mut rng = Rng::from_env("crash: device.token.revoke");
    for round in 0..rounds(ROUNDS) {
        let kill = kill_point(&mut rng);
        let params = |d: &str| json!({ "deviceId": d, "role": "operator" });
        let (r, devices) = paired_round("device.token.revoke", params, kill).await;
        let path = store_path(r.dir.path());
        let store = check_store_clean(&path);
        let mut extra = 0;
        for (i, (id, old)) in devices.iter().enumerate() {
            let d = id.device_id();
            let live = live_tokens(&path, &d, Role::Operator);
            let valid = token_valid(&store, &d, old);
            assert_eq!(live == 1, valid, "device {i}: {live} live tokens, its own valid: {valid}");
            if r.acked.contains(&i) {
                assert_eq!(live, 0, "acknowledged revocation {i} lost");
            } else {
                extra += usize::from(live == 0);
            }
        }
        r.report("revoke", round, kill, extra);
        drop(store);
        restarts_and_serves(r.dir.path()).await;
    }
}

/// Clients pairing at once in the silent-pairing round.
const CLIENTS: usize = 24;

/// One client's connect, sent; its answer read by [`answer`].
async fn send_pairing_connect(addr: SocketAddr) -> (DeviceIdentity, RawConn) {
    let id = DeviceIdentity::generate();
    let mut c = RawConn::open(addr).await;
    let challenge = c.recv().await;
    let nonce = challenge["payload"]["nonce"].as_str().unwrap().to_owned();
    let ts = challenge["payload"]["ts"].as_u64().unwrap();
    let params = connect_params("cli", "cli", "operator", &[READ], Some(TOKEN));
    let parsed = clawgate_protocol::ConnectParams::parse(Some(&params)).unwrap();
    let mut params = params;
    params["device"] = serde_json::to_value(id.device_params(&parsed, &nonce, ts)).unwrap();
    c.send(&json!({ "type": "req", "id": "c1", "method": "connect", "params": params })).await;
    (id, c)
}

/// The device token of a hello-ok, or `None` when the gateway died first.
async fn answer(mut c: RawConn) -> Option<String> {
    loop {
        let frame = c.recv_or_close().await.ok()?;
        if frame["type"] == "res" && frame["id"] == "c1" {
            assert_eq!(frame["ok"], true, "{frame}");
            return Some(frame["payload"]["auth"]["deviceToken"].as_str().unwrap().to_owned());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_silent_pairing() {
    let mut rng = Rng::from_env("crash: silent local pairing");
    for round in 0..rounds(ROUNDS) {
        let kill = (rng.below(CLIENTS as u64) as usize, rng.below(3000));
        let dir = state_dir(LOCAL_CONFIG);
        let mut gw = start_gateway(dir.path()).await;
        // Every connect is on the wire before any answer is awaited, so the
        // gateway works on many pairings at once when it dies.
        let mut sent = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            sent.push(send_pairing_connect(gw.addr).await);
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut ids = Vec::with_capacity(CLIENTS);
        for (i, (id, c)) in sent.into_iter().enumerate() {
            ids.push(id);
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send((i, answer(c).await));
            });
        }
        drop(tx);
        let mut acked = std::collections::BTreeMap::new();
        let mut answered = 0;
        while acked.len() < kill.0 {
            let (i, token) = rx.recv().await.expect("an answer");
            answered += 1;
            acked.insert(i, token.expect("no kill yet"));
        }
        tokio::time::sleep(Duration::from_micros(kill.1)).await;
        gw.kill9();
        while let Some((i, token)) = rx.recv().await {
            answered += 1;
            if let Some(t) = token {
                acked.insert(i, t);
            }
        }
        assert_eq!(answered, CLIENTS);

        let path = store_path(dir.path());
        let store = check_store_clean(&path);
        let mut extra = 0;
        for (i, id) in ids.iter().enumerate() {
            let d = id.device_id();
            let paired = store.device(&d).unwrap().is_some();
            if let Some(token) = acked.get(&i) {
                assert!(paired, "acknowledged pairing {i} lost");
                assert!(token_valid(&store, &d, token), "acknowledged pairing {i}: its token does not verify");
            } else if paired {
                // Paired and minted in one transaction: never one without the other.
                assert_eq!(live_tokens(&path, &d, Role::Operator), 1, "device {i} paired without its token");
                extra += 1;
            }
        }
        eprintln!(
            "silent pairing round {round}: kill after {} hello-oks + {} µs; {} of {CLIENTS} acknowledged, \
             all kept; {extra} more committed unacknowledged",
            kill.0,
            kill.1,
            acked.len()
        );
        drop(store);
        restarts_and_serves(dir.path()).await;
    }
}
