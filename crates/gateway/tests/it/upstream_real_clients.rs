//! Upstream mode with OpenClaw's own clients on the downstream side: the real
//! OpenClaw gateway (`openclaw gateway run`, started once: ~17 s) behind
//! clawgate, and in front of clawgate
//! - the real node host (`openclaw node run`): paired by clawgate, relayed
//!   with a relay identity, approved with `openclaw nodes approve` and invoked
//!   with `openclaw nodes invoke` through clawgate;
//! - the real Control UI in Chromium (`interop/browser/control-ui.mjs`),
//!   loaded from clawgate's port with clawgate's token (not the upstream's),
//!   showing the upstream's agents and sessions; screenshots are kept under
//!   `target/test-artifacts/`;
//! - the upstream restarting underneath: 1012 to the clients, then the CLI
//!   works again and the node host is back by itself.
//!
//! One test function runs the steps in order: they share the one upstream,
//! and the last step restarts it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::openclaw_cli::{openclaw_path, parse_json_output, Openclaw};
use crate::common::openclaw_upstream::OpenclawUpstream;
use crate::common::{TestGateway, TOKEN};
use clawgate::config::{AuthMode, Config, ResolvedSecret, SecretSource};
use clawgate::store::{browser_identity_key, node_identity_key, ApprovedVia, Role};
use clawgate::upstream::{SecretKind, UpstreamConfig, UpstreamSecret, UpstreamUrl};
use clawgate::ServerOptions;
use clawgate_client::{Client, ConnectOptions};
use serde_json::{json, Value};

async fn clawgate_in_front(upstream: &OpenclawUpstream) -> TestGateway {
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.upstream = Some(UpstreamConfig {
        url: UpstreamUrl::parse(&upstream.url()).unwrap(),
        secret: UpstreamSecret {
            kind: SecretKind::Token,
            value: ResolvedSecret::new(upstream.token.clone(), SecretSource::Flag),
        },
        forward_client_address: false,
        timeouts: clawgate::upstream::UpstreamTimeouts::default(),
    });
    TestGateway::start(config, ServerOptions::default()).await
}

/// A reference client through clawgate, as OpenClaw's local backend client.
async fn operator(gw: &TestGateway, scopes: &[&str]) -> Client {
    Client::connect(ConnectOptions::new(gw.url()).token(TOKEN).scopes(scopes)).await.expect("admitted through clawgate")
}

/// Where test artifacts go: `target/test-artifacts/` (gitignored).
fn artifact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target directory").join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir.join(name)
}

/// The Control UI in Chromium (`interop/browser/control-ui.mjs`) against
/// `url` with clawgate's token, watched for `observe_ms` once connected:
/// whether the driver was content (connected, no refresh required, no
/// reconnect, `expect` on the page) and its JSON report.
async fn run_control_ui(url: String, expect: &str, screenshot: PathBuf, observe_ms: u32) -> (bool, Value) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/browser/control-ui.mjs");
    let home = tempfile::tempdir().unwrap();
    let observe = observe_ms.to_string();
    let timeout = (observe_ms + 30_000).to_string();
    let screenshot = screenshot.to_str().expect("a UTF-8 artifact path");
    let args = ["--url", &url, "--token", TOKEN, "--screenshot", screenshot, "--expect", expect];
    let out = tokio::time::timeout(
        Duration::from_secs(u64::from(observe_ms) / 1000 + 60),
        tokio::process::Command::new("node")
            .arg(&script)
            .args(args)
            .args(["--observe-ms", &observe, "--timeout-ms", &timeout])
            .env_clear()
            .env("PATH", openclaw_path())
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser driver finished in time")
    .expect("run node interop/browser/control-ui.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = parse_json_output(&stdout).unwrap_or_else(|| {
        panic!("no JSON report from the browser driver: {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.success() && report["ok"] == true, report)
}

/// [`run_control_ui`], which must succeed.
async fn control_ui(url: String, expect: &str, screenshot: PathBuf, observe_ms: u32) -> Value {
    let (ok, report) = run_control_ui(url, expect, screenshot, observe_ms).await;
    assert!(ok, "the Control UI through clawgate failed: {report:#}");
    report
}

/// The browsers clawgate paired (each driver run is a fresh browser profile).
fn paired_browsers(gw: &TestGateway) -> usize {
    let devices = gw.gateway.store.list_devices().unwrap();
    devices.iter().filter(|d| d.client_id.as_deref() == Some("openclaw-control-ui")).count()
}

async fn poll<T>(what: &str, within: Duration, mut attempt: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = attempt().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The connected node host in a `node.list` answer.
fn connected_node_host(list: &Value) -> Option<Value> {
    list["nodes"].as_array()?.iter().find(|n| n["clientId"] == "node-host" && n["connected"] == true).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openclaw_node_host_and_control_ui_through_clawgate() {
    let started = Instant::now();
    let mut upstream = OpenclawUpstream::start().await;
    let gw = clawgate_in_front(&upstream).await;
    assert_ne!(upstream.token, TOKEN, "clawgate's token is not the upstream's");
    let url = gw.url();
    let cli = Openclaw::new();
    let through = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| a.to_string())
            .chain(["--url", &url, "--token", TOKEN, "--json"].map(String::from))
            .collect()
    };
    let call = async |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli.json(&args).await
    };

    // 1. The real node host connects to clawgate, which pairs it and relays it.
    let node_host = Openclaw::new();
    let node_log = std::fs::File::create(node_host.home.path().join("node.out")).unwrap();
    let port = gw.addr.port().to_string();
    let mut node = node_host
        .command(&["node", "run", "--host", "127.0.0.1", "--port", &port])
        .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
        .stdout(node_log.try_clone().unwrap())
        .stderr(node_log)
        .spawn()
        .expect("start the node host");
    let admin = operator(&gw, &["operator.read", "operator.admin", "operator.pairing"]).await;
    let listed = poll("the node host in the upstream's node.list", Duration::from_secs(60), async || {
        if let Ok(Some(status)) = node.try_wait() {
            let log = std::fs::read_to_string(node_host.home.path().join("node.out")).unwrap_or_default();
            panic!("the node host exited ({status}):\n{log}");
        }
        connected_node_host(&admin.request("node.list", Some(json!({}))).await.ok()?)
    })
    .await;
    let own_id = node_host.json(&["node", "identity", "--json"]).await["deviceId"].as_str().unwrap().to_owned();
    let paired = gw.gateway.store.device(&own_id).unwrap().expect("clawgate paired the node host");
    assert!(paired.has_role(Role::Node) && paired.approved_via == ApprovedVia::Silent, "{paired:?}");
    // The upstream knows the node by its relay identity, not by its own id.
    let relay = gw.gateway.store.relay_identity(&node_identity_key(&own_id), 0).unwrap();
    assert_eq!(listed["nodeId"], relay.device_id.as_str(), "{listed}");
    assert_ne!(relay.device_id, own_id);
    assert!(relay.device_token.is_some(), "the upstream's device token for the relay identity is kept");

    // What an operator sees with `openclaw nodes list` through clawgate: the
    // command approval pending, under the node's display name.
    let pending = poll("the node's pending command approval", Duration::from_secs(20), async || {
        let list = call(through(&["nodes", "list"])).await;
        list["pending"].as_array()?.iter().find(|p| p["nodeId"] == listed["nodeId"]).cloned()
    })
    .await;
    let request_id = pending["requestId"].as_str().unwrap().to_owned();
    let name = pending["displayName"].as_str().expect("a display name").to_owned();
    let approved = call(through(&["nodes", "approve", &request_id])).await;
    assert_eq!(approved["node"]["nodeId"], listed["nodeId"], "{approved}");

    // `nodes invoke --node <display name>` through clawgate: the node host's real answer.
    let which =
        through(&["nodes", "invoke", "--node", &name, "--command", "system.which", "--params", r#"{"bins":["sh"]}"#]);
    let answer = call(which.clone()).await;
    assert_eq!(answer["ok"], true, "{answer}");
    let sh = answer["payload"]["bins"]["sh"].as_str().unwrap_or_default();
    assert!(sh.ends_with("/sh"), "a path to sh from the node host: {answer}");
    eprintln!("step 1 (node host) done at {:?}", started.elapsed());

    // 2. The Control UI from clawgate's port, with clawgate's token.
    let writer = operator(&gw, &["operator.read", "operator.write"]).await;
    let created = writer.request("sessions.create", Some(json!({}))).await.expect("sessions.create through clawgate");
    assert!(created["key"].as_str().is_some_and(|k| k.starts_with("agent:main:")), "{created}");
    drop(writer);
    let shot = artifact("control-ui-agents.png");
    let report = control_ui(format!("http://{}/agents", gw.addr), "Assistant", shot.clone(), 10_000).await;
    eprintln!("Control UI screenshot (agents): {}", shot.display());
    assert_eq!((report["connected"].clone(), report["refreshRequired"].clone()), (json!(true), json!(false)));
    assert_eq!(report["reconnects"], 0, "{report:#}");
    assert_eq!(report["connectErrors"], json!([]), "{report:#}");
    assert_eq!(report["hello"]["server"]["version"], "2026.9.6", "the upstream's build: {report:#}");
    assert_eq!(report["hello"]["auth"]["deviceToken"], true, "clawgate's device token: {report:#}");
    // The config the UI asks for first with the gateway token, then with the
    // device token clawgate issued: both verified by clawgate and answered.
    let http = report["http"].as_object().unwrap();
    for auth in ["bearer-token", "bearer-other"] {
        let key = format!("GET /control-ui-config.json auth={auth} status=200");
        assert!(http.contains_key(&key), "{key} missing: {report:#}");
    }
    assert!(http.keys().all(|k| !k.contains("status=401") && !k.contains("status=403")), "{report:#}");
    // Paired by clawgate, silently, and relayed with a browser relay identity.
    let browser_id = report["connect"]["device"]["id"].as_str().unwrap().to_owned();
    let browser = gw.gateway.store.device(&browser_id).unwrap().expect("clawgate's store has the paired browser");
    assert_eq!(browser.client_id.as_deref(), Some("openclaw-control-ui"));
    assert!(browser.approved_via == ApprovedVia::Silent, "{browser:?}");
    let relay = gw.gateway.store.relay_identity(&browser_identity_key(&browser_id), 0).unwrap();
    assert!(relay.device_token.is_some(), "the upstream paired the browser's relay identity");

    let shot = artifact("control-ui-sessions.png");
    let report = control_ui(format!("http://{}/sessions", gw.addr), "Assistant (dashboard)", shot.clone(), 3_000).await;
    eprintln!("Control UI screenshot (sessions): {}", shot.display());
    assert_eq!(report["reconnects"], 0, "{report:#}");
    eprintln!("step 2 (Control UI) done at {:?}", started.elapsed());

    // 3. The upstream restarts underneath: clients get 1012, and once it is
    //    back the Control UI reconnects by itself, the CLI works through
    //    clawgate and the node host is back.
    let mut watcher = operator(&gw, &["operator.read"]).await;
    let shot = artifact("control-ui-after-restart.png");
    let browser = tokio::spawn(run_control_ui(format!("http://{}/agents", gw.addr), "Assistant", shot.clone(), 40_000));
    poll("a third browser paired and connected", Duration::from_secs(30), async || {
        (paired_browsers(&gw) == 3 && gw.gateway.registry.counts().sessions >= 4).then_some(())
    })
    .await;
    upstream.terminate().await;
    let ended =
        tokio::time::timeout(Duration::from_secs(5), async { while watcher.next_event().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the session through clawgate ended with the upstream");
    assert_eq!(watcher.close_info(), Some((1012, "upstream closed".to_owned())));
    upstream.start_again().await;
    let back = poll("the node host back in node.list", Duration::from_secs(60), async || {
        let (ok, stdout, _) =
            cli.run(&through(&["gateway", "call", "node.list"]).iter().map(String::as_str).collect::<Vec<_>>()).await;
        ok.then(|| parse_json_output(&stdout)).flatten().as_ref().and_then(connected_node_host)
    })
    .await;
    assert_eq!(back["nodeId"], listed["nodeId"], "the same relay identity: {back}");
    assert_eq!(back["approvalState"], "approved", "the upstream kept the approval: {back}");
    let answer = call(which).await;
    assert_eq!(answer["ok"], true, "invoke after the restart: {answer}");
    // The browser reconnected (retrying while clawgate answered
    // UPSTREAM_UNAVAILABLE) and ends connected, without "refresh required".
    let (_, report) = browser.await.unwrap();
    eprintln!("Control UI screenshot (after the restart): {}", shot.display());
    assert_eq!(report["statusText"], "Connected", "{report:#}");
    assert_eq!((report["connected"].clone(), report["refreshRequired"].clone()), (json!(true), json!(false)));
    assert!(report["wsOpens"].as_u64() >= Some(2), "it reconnected: {report:#}");
    let errors = report["connectErrors"].as_array().unwrap();
    assert!(errors.iter().all(|e| e["details"]["code"] == "UPSTREAM_UNAVAILABLE"), "{report:#}");
    eprintln!("step 3 (upstream restart) done at {:?}", started.elapsed());

    let _ = node.kill().await;
    drop(admin);
    gw.stop().await;
    upstream.stop().await;
}
