//! The PostgreSQL store under the gateway: a change written through
//! another connection reaches live sessions (the store's generation is
//! polled), and the real binary and the offline CLI share one database
//! (`CLAWGATE_STORE_URL`), on a real server (common/postgres.rs).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{connect_params, postgres, RawConn, TOKEN};
use clawgate::config::{AuthMode, Config};
use clawgate::runtime_file::{self, Found};
use clawgate::store::{PairingStore, PgStore, Role};
use clawgate::{serve, Gateway, ServerOptions};
use clawgate_client::DeviceIdentity;
use serde_json::{json, Value};

const READ: &str = "operator.read";
/// The remote client's address, as the trusted proxy reports it.
const REMOTE_FROM_PROXY: &[(&str, &str)] = &[("x-forwarded-for", "203.0.113.5"), ("host", "gateway.example")];
/// The trusted proxy's socket address (never a direct-local client).
const PROXY_SOURCE: &str = "127.0.0.2";

/// The store opened off the async workers, as the gateway's start-up does.
async fn open(url: &str) -> PgStore {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || PgStore::open(&url).unwrap()).await.unwrap()
}

#[tokio::test]
async fn a_revocation_through_another_connection_closes_the_session() {
    let url = postgres::fresh_database_url();
    let store = open(&url).await;
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
    let res = first.handshake_device(connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), &id).await;
    let token = res["payload"]["auth"]["deviceToken"].as_str().unwrap().to_owned();
    let mut p = connect_params("cli", "cli", "operator", &[READ], None);
    p["auth"] = json!({ "token": token, "deviceToken": token });
    let mut with_token = RawConn::open(addr).await;
    assert_eq!(with_token.handshake_device(p, &id).await["ok"], true);

    // Another instance (another connection to the database) revokes the token.
    let other = open(&url).await;
    let device_id = id.device_id();
    let revoked = tokio::task::spawn_blocking(move || {
        other.revoke_token(&device_id, Role::Operator, clawgate::server::now_ms()).map(|r| (r, other))
    })
    .await
    .unwrap();
    let (revoked, other) = revoked.unwrap();
    assert!(revoked);
    let closed = tokio::time::timeout(Duration::from_secs(5), with_token.expect_close()).await.expect("closed in time");
    assert_eq!(closed, (4001, "client invalidated: device token revoked".into()));

    // The database refuses connections: a connect that needs the store is
    // refused with STORE_UNAVAILABLE, the admitted session carries on, and
    // the gateway recovers without a restart once the database is back.
    let pg = postgres::shared();
    let database = url.rsplit('/').next().unwrap().to_owned();
    pg.admin(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS false"));
    pg.cut_connections(&database);
    let someone = DeviceIdentity::generate();
    let mut refused = RawConn::open(addr).await;
    let res = refused.handshake_device(connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), &someone).await;
    assert_eq!(res["error"]["details"]["code"], "STORE_UNAVAILABLE", "{res}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(first.call("h1", "health", None).await["ok"], true, "an admitted session carries on");
    pg.admin(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"));
    let mut back = RawConn::open(addr).await;
    let res = back.handshake_device(connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), &someone).await;
    assert_eq!(res["ok"], true, "{res}");

    // The other instance's connection was cut too: it connects again.
    let device_id = id.device_id();
    let lost = tokio::task::spawn_blocking(move || other.list_devices().err()).await.unwrap();
    assert_eq!(lost.map(|e| e.code()), Some("STORE_UNAVAILABLE"));
    let other = open(&url).await;
    tokio::task::spawn_blocking(move || other.remove_device(&device_id, clawgate::server::now_ms()).unwrap())
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), first.expect_close()).await.expect("closed in time");
    assert_eq!(closed, (4001, "client invalidated: device removed".into()));

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// `clawgate` with a clean environment: the state directory, the store URL
/// and the variables given.
fn clawgate(state: &Path, store_url: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CLAWGATE_STATE_DIR", state).env("CLAWGATE_STORE_URL", store_url).args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

async fn run(state: &Path, store_url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = clawgate(state, store_url, args, env);
    tokio::task::spawn_blocking(move || cmd.output().expect("run clawgate")).await.unwrap()
}

fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Stops the gateway process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_gateway_and_the_offline_cli_share_one_database() {
    use std::os::unix::fs::PermissionsExt;
    let url = postgres::fresh_database_url();
    let dir = tempfile::Builder::new().prefix("clawgate-pg").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let state = dir.path();
    let config = state.join("gateway.json5");
    let file = json!({ "gateway": { "auth": { "mode": "token", "token": TOKEN }, "trustedProxies": [PROXY_SOURCE] } });
    std::fs::write(&config, file.to_string()).unwrap();

    // A service principal added offline, before the gateway ever ran.
    let out = run(state, &url, &["services", "add", "ci-bot", "--role", "operator", "--scopes", READ], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let service_token = stdout.split_whitespace().find(|w| w.starts_with("cgs_")).expect("a token").to_owned();

    let mut cmd = clawgate(state, &url, &["gateway", "run", "--port", "0", "--config"], &[]);
    cmd.arg(&config).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let gateway = Running(child);
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let log_writer = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log_writer.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let gateway_url = loop {
        if let Ok(Some(Found::Live(info))) = runtime_file::read(state) {
            break info.url;
        }
        assert!(Instant::now() < deadline, "the gateway never started: {}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let addr: std::net::SocketAddr = gateway_url.trim_start_matches("ws://").parse().unwrap();

    // The service token the offline CLI wrote admits a connect.
    let mut c = RawConn::open_from(PROXY_SOURCE, addr, REMOTE_FROM_PROXY).await.unwrap();
    let res = c.handshake(connect_params("gateway-client", "backend", "operator", &[READ], Some(&service_token))).await;
    assert_eq!(res["ok"], true, "{res}");
    drop(c);

    // A remote device asks to pair; it is approved through the gateway.
    let id = DeviceIdentity::generate();
    let params = connect_params("openclaw-macos", "ui", "operator", &[READ], Some(TOKEN));
    let mut c = RawConn::open_from(PROXY_SOURCE, addr, REMOTE_FROM_PROXY).await.unwrap();
    let res = c.handshake_device(params.clone(), &id).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    let request_id = res["error"]["details"]["requestId"].as_str().unwrap().to_owned();
    let env = [("OPENCLAW_GATEWAY_TOKEN", TOKEN)];
    let out = run(state, &url, &["devices", "approve", &request_id, "--url", &gateway_url], &env).await;
    assert!(out.status.success(), "{}", text(&out));

    // The offline CLI, on the database alone, sees the approval.
    let out = run(state, &url, &["devices", "list", "--offline"], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&id.device_id()[..16]), "{}", text(&out));
    // Nothing went to a SQLite file in the state directory.
    assert!(!state.join("clawgate.sqlite").exists());

    // The device connects, paired.
    let mut c = RawConn::open_from(PROXY_SOURCE, addr, REMOTE_FROM_PROXY).await.unwrap();
    let res: Value = c.handshake_device(params, &id).await;
    assert_eq!(res["ok"], true, "{res}");
    drop(gateway);
}
