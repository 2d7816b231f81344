//! The real OpenClaw CLI and headless node host (`openclaw@2026.9.6` on
//! Node 24, installed by `interop/openclaw/install.sh`) against clawgate.
//! Every openclaw process runs with HOME in a fresh temporary directory and
//! talks to loopback only.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::openclaw_cli::Openclaw;
use crate::common::{
    admitted, admitted_from, connect_params, with_trusted_loopback_proxy, RawConn, TestGateway, REMOTE, TOKEN,
};
use clawgate::config::{AuthMode, Config};
use clawgate::ServerOptions;
use clawgate_client::DeviceIdentity;
use serde_json::json;

fn url(gw: &TestGateway) -> String {
    format!("ws://127.0.0.1:{}", gw.addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openclaw_gateway_call_health_and_status() {
    let gw = TestGateway::token().await;
    let oc = Openclaw::new();
    let url = url(&gw);
    let health = oc.json(&["gateway", "call", "health", "--url", &url, "--token", TOKEN, "--json"]).await;
    assert_eq!(health["ok"], true, "{health}");
    let status = oc.json(&["gateway", "call", "status", "--url", &url, "--token", TOKEN, "--json"]).await;
    assert_eq!(status["server"], "clawgate", "{status}");
    assert_eq!(status["you"]["rule"], "local-owner");
    // A wrong token fails the command.
    let (ok, _, _) = oc.run(&["gateway", "call", "health", "--url", &url, "--token", "wrong", "--json"]).await;
    assert!(!ok);
    assert!(Path::new(oc.home.path()).exists());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openclaw_devices_list_and_approve_a_remote_looking_device() {
    let gw = with_trusted_loopback_proxy(Config::new(AuthMode::Token, Some(TOKEN), None)).await;
    let id = DeviceIdentity::generate();
    let params = connect_params("cli", "cli", "operator", &["operator.read"], Some(TOKEN));
    let mut c = RawConn::open_with(gw.addr, REMOTE).await.unwrap();
    let res = c.handshake_device(params.clone(), &id).await;
    let request_id = res["error"]["details"]["requestId"].as_str().expect("pending request").to_owned();

    let oc = Openclaw::new();
    let url = url(&gw);
    let list = oc.json(&["devices", "list", "--url", &url, "--token", TOKEN, "--json"]).await;
    let pending = list["pending"].as_array().expect("pending list");
    assert!(pending.iter().any(|p| p["requestId"] == request_id.as_str() && p["deviceId"] == id.device_id()), "{list}");

    let (ok, stdout, stderr) =
        oc.run(&["devices", "approve", &request_id, "--url", &url, "--token", TOKEN, "--json"]).await;
    assert!(ok, "approve failed\nstdout: {stdout}\nstderr: {stderr}");
    let mut c = RawConn::open_with(gw.addr, REMOTE).await.unwrap();
    let res = c.handshake_device(params, &id).await;
    assert_eq!(res["ok"], true, "the approved device connects: {res}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openclaw_node_host_pairs_and_answers_an_invoke_through_clawgate() {
    // Ticks every 2 s keep the node host's watchdog fed quickly in tests.
    let options = ServerOptions { tick_interval: Duration::from_secs(2), ..Default::default() };
    let gw = TestGateway::start(Config::new(AuthMode::Token, Some(TOKEN), None), options).await;
    let oc = Openclaw::new();
    let port = gw.addr.port().to_string();
    let mut node = oc
        .command(&["node", "run", "--host", "127.0.0.1", "--port", &port])
        .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the node host");

    // The node host pairs silently on loopback and shows up in node.list.
    let mut op = admitted_from("127.0.0.2", &gw, &["operator.read"]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let listed = loop {
        let list = op.call("l", "node.list", None).await;
        let nodes = list["payload"]["nodes"].as_array().cloned().unwrap_or_default();
        if let Some(n) = nodes.into_iter().find(|n| n["connected"] == true && n["clientId"] == "node-host") {
            break n;
        }
        assert!(tokio::time::Instant::now() < deadline, "the node host did not connect: {list}");
        if let Ok(Some(status)) = node.try_wait() {
            panic!("the node host exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let node_id = listed["nodeId"].as_str().unwrap().to_owned();
    assert_eq!(listed["paired"], true, "{listed}");
    assert!(listed["commands"].as_array().unwrap().iter().any(|c| c == "system.which"), "{listed}");

    let identity = oc.json(&["node", "identity", "--json"]).await;
    assert_eq!(identity["deviceId"], node_id.as_str(), "node.list shows the node host's own device id");

    // The node session gets no operator-only events: a chat event reaches the reader only.
    assert_eq!(gw.gateway.registry.broadcast("chat", &json!({ "text": "operators only" })), 1);

    let url = url(&gw);
    let result = oc.which_sh(&node_id, &url, TOKEN).await;
    assert_eq!(result["ok"], true, "{result}");
    let sh = result["payload"]["bins"]["sh"].as_str().unwrap_or_default();
    assert!(sh.ends_with("/sh"), "the node host's real answer: {result}");

    let _ = node.kill().await;
    drop(op);
    let mut fresh = admitted(&gw, &["operator.read"]).await;
    assert_eq!(fresh.call("h", "health", None).await["ok"], true);
    gw.stop().await;
}
