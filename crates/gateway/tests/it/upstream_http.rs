//! Upstream mode's HTTP door against the real OpenClaw gateway
//! (tests/it/common/openclaw_upstream.rs) with clawgate in front: the Control
//! UI and its credential routes through clawgate (clawgate's token, not the
//! upstream's), clawgate's edge refusals that never reach the upstream,
//! clawgate's own /healthz and gateway WebSocket, and an upstream that is
//! down.
//!
//! The real gateway takes ~17 s of two cores to start, so one test starts it
//! once and runs every check against it in turn.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::openclaw_upstream::OpenclawUpstream;
use crate::common::{connect_params, TestGateway, TOKEN};
use bytes::Bytes;
use clawgate::config::{AuthMode, Config, ResolvedSecret, SecretSource};
use clawgate::upstream::{SecretKind, UpstreamConfig, UpstreamSecret, UpstreamUrl};
use clawgate::ServerOptions;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

fn upstream_config(port: u16, secret: &str) -> UpstreamConfig {
    UpstreamConfig {
        url: UpstreamUrl::parse(&format!("ws://127.0.0.1:{port}")).unwrap(),
        secret: UpstreamSecret {
            kind: SecretKind::Token,
            value: ResolvedSecret::new(secret.to_owned(), SecretSource::Env("CLAWGATE_UPSTREAM_TOKEN")),
        },
        forward_client_address: false,
        timeouts: clawgate::upstream::UpstreamTimeouts::default(),
    }
}

/// clawgate in token mode with [`TOKEN`], in front of the upstream at `port`.
async fn clawgate_in_front(port: u16, secret: &str) -> TestGateway {
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.upstream = Some(upstream_config(port, secret));
    let gw = TestGateway::start(config, ServerOptions::default()).await;
    assert!(gw.gateway.upstream.is_some(), "the gateway holds the upstream");
    gw
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One GET over a fresh connection, with extra headers.
async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect to clawgate");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.expect("HTTP handshake");
    let driver = tokio::spawn(conn);
    let mut req = hyper::Request::get(path).header("host", format!("127.0.0.1:{}", addr.port()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp =
        tokio::time::timeout(Duration::from_secs(30), sender.send_request(req.body(Empty::<Bytes>::new()).unwrap()))
            .await
            .expect("an answer in time")
            .expect("an HTTP answer");
    let status = resp.status().as_u16();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = resp.into_body().collect().await.expect("the body").to_bytes();
    driver.abort();
    Answer { status, content_type, body: String::from_utf8_lossy(&body).into_owned() }
}

/// Open a WebSocket on `path` and try to connect with `token`: the error's
/// `details.code`, or `None` for a hello-ok.
async fn ws_connect_error(addr: SocketAddr, path: &str, token: &str) -> Option<String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}")).await.expect("upgrade accepted");
    let challenge = next_json(&mut ws).await;
    assert_eq!(challenge["event"], "connect.challenge", "{challenge}");
    let params = connect_params("gateway-client", "backend", "operator", &["operator.read"], Some(token));
    let frame = serde_json::json!({ "type": "req", "id": "c1", "method": "connect", "params": params });
    ws.send(Message::text(frame.to_string())).await.unwrap();
    loop {
        let res = next_json(&mut ws).await;
        if res["type"] == "res" && res["id"] == "c1" {
            return (res["ok"] != true).then(|| res["error"]["details"]["code"].as_str().unwrap_or("?").to_owned());
        }
    }
}

async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a frame in time");
        match msg {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Close(c))) => panic!("closed: {c:?}"),
            Some(Ok(_)) => continue,
            other => panic!("no frame: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_ui_and_its_credential_routes_through_clawgate() {
    let upstream = OpenclawUpstream::start().await;
    assert_ne!(upstream.token, TOKEN, "clawgate's token differs from the upstream's");
    let gw = clawgate_in_front(upstream.port, &upstream.token).await;
    let addr = gw.addr;

    // The Control UI is served at `/`, from the upstream, through clawgate.
    let ui = get(addr, "/", &[]).await;
    assert_eq!(ui.status, 200, "{}", ui.body);
    assert!(ui.content_type.starts_with("text/html"), "{}", ui.content_type);
    assert!(ui.body.contains("<html") || ui.body.contains("<!doctype"), "{}", ui.body);
    // `/health` is the upstream's now; `/healthz` stays clawgate's.
    let health = get(addr, "/health", &[]).await;
    assert_eq!((health.status, health.json()["status"].as_str()), (200, Some("live")), "{}", health.body);
    let healthz = get(addr, "/healthz", &[]).await;
    assert_eq!(healthz.status, 200);
    assert_eq!(healthz.json()["version"], clawgate::server::VERSION, "{}", healthz.body);

    // The UI's config route: clawgate's token is verified by clawgate and
    // swapped for the upstream's; a wrong one or none is refused.
    let bearer = format!("Bearer {TOKEN}");
    let config = get(addr, "/control-ui-config.json", &[("authorization", &bearer)]).await;
    assert_eq!(config.status, 200, "{}", config.body);
    assert_eq!(config.json()["serverVersion"], "2026.9.6", "{}", config.body);
    let wrong = get(addr, "/control-ui-config.json", &[("authorization", "Bearer not-the-token")]).await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let none = get(addr, "/control-ui-config.json", &[]).await;
    assert_eq!(none.status, 401, "{}", none.body);

    // Forwarding headers from a socket that is no trusted proxy: clawgate's
    // own 403, never the upstream's (whose message differs).
    let forwarded = get(addr, "/", &[("x-forwarded-for", "203.0.113.5")]).await;
    assert_eq!(forwarded.status, 403, "{}", forwarded.body);
    let error = &forwarded.json()["error"];
    assert_eq!(error["type"], "proxy_attribution_required", "{}", forwarded.body);
    assert!(error["message"].as_str().unwrap().contains("not in gateway.trustedProxies"), "{}", forwarded.body);

    // The gateway WebSocket is clawgate's on `/` and on any other path: the
    // upstream's own token is not clawgate's and is refused there, while
    // clawgate's is admitted.
    for path in ["/", "/ws"] {
        assert_eq!(
            ws_connect_error(addr, path, &upstream.token).await.as_deref(),
            Some("AUTH_TOKEN_MISMATCH"),
            "{path}"
        );
        assert_eq!(ws_connect_error(addr, path, TOKEN).await, None, "{path}");
    }

    gw.stop().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_down_is_a_stable_json_error() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gw = clawgate_in_front(port, "upstream-secret").await;
    for path in ["/", "/control-ui-config.json"] {
        let answer = get(gw.addr, path, &[("authorization", &format!("Bearer {TOKEN}"))]).await;
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert_eq!(answer.content_type, "application/json");
        assert_eq!(answer.json()["error"]["type"], "upstream_unavailable", "{}", answer.body);
        assert!(!answer.body.contains("upstream-secret"));
    }
    // clawgate's own health check does not depend on the upstream.
    assert_eq!(get(gw.addr, "/healthz", &[]).await.status, 200);
    gw.stop().await;
}
