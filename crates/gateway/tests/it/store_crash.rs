//! A gateway killed with SIGKILL while it approves pairings loses nothing it
//! acknowledged, leaves a store that opens cleanly, and starts again on it.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{connect_params, RawConn, TOKEN};
use clawgate::server::now_ms;
use clawgate::store::{PairingStore, RequestState, Role, SqliteStore};
use clawgate_client::DeviceIdentity;
use serde_json::{json, Value};

const N: usize = 30;
const READ: &str = "operator.read";
const PAIRING: &str = "operator.pairing";
/// The trusted proxy's socket (the CLI-like operator connects from 127.0.0.1).
const PROXY_SOURCE: &str = "127.0.0.2";

/// The gateway as a child process; killed on drop so a failing test leaves nothing behind.
struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Start `clawgate gateway run --port <free port>` on `state` and wait until
/// it accepts connections. A port taken in between is retried.
fn start_gateway(state: &Path) -> Running {
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
        for (k, _) in std::env::vars() {
            if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .args(["gateway", "run", "--port", &port.to_string(), "--log-format", "json"])
            .env("CLAWGATE_STATE_DIR", state)
            .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
            .env("CLAWGATE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn clawgate");
        // Keep the log flowing (and visible on failure) without blocking the child.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[gateway] {line}");
                let _ = tx.send(line);
            }
        });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let log: Vec<String> = rx.try_iter().collect();
                if log.iter().any(|l| l.contains("cannot listen")) {
                    break; // the port was taken: try another
                }
                panic!("the gateway exited ({status}): {log:?}");
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Running { child, addr };
            }
            assert!(Instant::now() < deadline, "the gateway did not listen within 5 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("no free port after 5 tries");
}

fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A remote device (through the trusted proxy, from its own address) asks to pair.
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

fn approve_frame(i: usize, request_id: &str) -> Value {
    json!({ "type": "req", "id": format!("a{i}"), "method": "device.pair.approve", "params": { "requestId": request_id } })
}

/// The index of an approval response, if `frame` is one.
fn response_index(frame: &Value) -> Option<(usize, bool)> {
    if frame["type"] != "res" {
        return None;
    }
    let i = frame["id"].as_str()?.strip_prefix('a')?.parse().ok()?;
    Some((i, frame["ok"] == true))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_approvals_loses_no_acknowledged_pairing() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    write_private(
        &dir.path().join("config.json5"),
        &format!("{{ gateway: {{ trustedProxies: [\"{PROXY_SOURCE}\"] }} }}\n"),
    );
    let gw = start_gateway(dir.path());

    let mut requests = Vec::with_capacity(N);
    for i in 0..N {
        requests.push(remote_request(gw.addr, i).await);
    }

    // A local operator with the pairing scope approves them one by one.
    let mut op = RawConn::open(gw.addr).await;
    let res = op.handshake(connect_params("cli", "cli", "operator", &[PAIRING, READ], Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    let mut acked: BTreeSet<usize> = BTreeSet::new();
    let half = N / 2;
    for (i, (_, rid)) in requests.iter().enumerate().take(half) {
        op.send(&approve_frame(i, rid)).await;
        loop {
            let frame = op.recv().await;
            if let Some((j, ok)) = response_index(&frame) {
                assert_eq!(j, i);
                assert!(ok, "approval {i} failed: {frame}");
                acked.insert(i);
                break;
            }
        }
    }

    // Send the rest at once; kill the gateway as soon as the first of them is
    // acknowledged, so approvals are in flight when it dies.
    for (i, (_, rid)) in requests.iter().enumerate().skip(half) {
        op.send(&approve_frame(i, rid)).await;
    }
    loop {
        let frame = op.recv().await;
        if let Some((i, ok)) = response_index(&frame) {
            assert!(ok, "approval {i} failed: {frame}");
            acked.insert(i);
            break;
        }
    }
    let mut gw = gw;
    gw.child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
    let status = gw.child.wait().unwrap();
    assert!(!status.success(), "killed, not exited: {status}");
    // Responses already on the wire were sent after their commit: they count too.
    while let Ok(frame) = op.recv_or_close().await {
        if let Some((i, true)) = response_index(&frame) {
            acked.insert(i);
        }
    }
    drop(gw);
    assert!(acked.len() > half && acked.len() <= N, "acknowledged {}", acked.len());

    // The store opens cleanly (its open runs quick_check) and passes a full integrity check.
    let path = dir.path().join("clawgate.sqlite");
    let store = SqliteStore::open(&path).expect("the store opens after SIGKILL");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
    }
    let now = now_ms();
    let mut committed_unacked = 0;
    for (i, (id, rid)) in requests.iter().enumerate() {
        let device = store.device(&id.device_id()).unwrap();
        let request = store.request(rid, now).unwrap().expect("the request is remembered");
        if acked.contains(&i) {
            let device = device.unwrap_or_else(|| panic!("acknowledged approval {i} was lost"));
            assert!(device.has_role(Role::Operator));
            assert_eq!(device.approved_scopes, vec![READ.to_owned()]);
            assert_eq!(request.state, RequestState::Approved, "request {i}");
        } else {
            // Unacknowledged: all or nothing.
            match request.state {
                RequestState::Approved => {
                    assert!(device.is_some(), "request {i} approved but not paired");
                    committed_unacked += 1;
                }
                RequestState::Open => assert!(device.is_none(), "request {i} paired but still open"),
                other => panic!("request {i} is {other:?}"),
            }
        }
    }
    eprintln!(
        "{} of {N} approvals acknowledged before the kill, all kept; {committed_unacked} more committed unacknowledged",
        acked.len()
    );
    drop(store);

    // The gateway starts again on the same state and serves health.
    let gw = start_gateway(dir.path());
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake(connect_params("cli", "cli", "operator", &[READ], Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    let health = c.call("h", "health", None).await;
    assert_eq!(health["ok"], true, "{health}");
    // And a device approved before the kill connects with its pairing.
    let (id, _) = &requests[0];
    let headers = [("x-forwarded-for", "203.0.113.1"), ("host", "gateway.example")];
    let mut d = RawConn::open_from(PROXY_SOURCE, gw.addr, &headers).await.unwrap();
    let res =
        d.handshake_device(connect_params("gateway-client", "backend", "operator", &[READ], Some(TOKEN)), id).await;
    assert_eq!(res["ok"], true, "{res}");
    drop(gw);
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}
