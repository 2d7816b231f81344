//! The HTTP relay between a raw test client and a fake upstream (hyper).

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::*;
use crate::config::{ResolvedSecret, SecretSource};
use crate::upstream::config::{SecretKind, UpstreamSecret, UpstreamUrl};

const UPSTREAM_SECRET: &str = "upstream-secret";
const CLAWGATE_TOKEN: &str = "clawgate-token";

/// A fake upstream: `/sse` streams one event, waits for `release`, sends a
/// second; `/plugin-ws` upgrades and echoes bytes; anything else answers with
/// what it received.
async fn fake_upstream(release: Arc<Notify>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let release = release.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let release = release.clone();
                    async move { Ok::<_, Infallible>(answer(req, release).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn answer(mut req: Request<Incoming>, release: Arc<Notify>) -> Response<RelayBody> {
    let path = req.uri().path().to_owned();
    if path == "/sse" {
        let (tx, rx) = tokio::sync::mpsc::channel::<
            Result<hyper::body::Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>,
        >(4);
        tokio::spawn(async move {
            tx.send(Ok(hyper::body::Frame::data(Bytes::from_static(b"data: first\n\n")))).await.unwrap();
            release.notified().await;
            tx.send(Ok(hyper::body::Frame::data(Bytes::from_static(b"data: second\n\n")))).await.unwrap();
        });
        let body = http_body_util::StreamBody::new(tokio_stream_from(rx));
        let mut resp = Response::new(BodyExt::boxed(body));
        resp.headers_mut().insert("content-type", HeaderValue::from_static("text/event-stream"));
        return resp;
    }
    if path == "/plugin-ws" {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(on.await.unwrap());
            let mut buf = [0u8; 64];
            let n = io.read(&mut buf).await.unwrap();
            io.write_all(&buf[..n]).await.unwrap();
        });
        let mut resp = Response::new(Full::new(Bytes::new()).map_err(|never| match never {}).boxed());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("upgrade"));
        resp.headers_mut().insert(UPGRADE, HeaderValue::from_static("websocket"));
        return resp;
    }
    let headers: serde_json::Map<String, Value> =
        req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), Value::from(v.to_str().unwrap_or("")))).collect();
    let target = req.uri().to_string();
    let body = req.into_body().collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
    let text = json!({"target": target, "headers": headers, "bodyBytes": body}).to_string();
    Response::new(Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed())
}

/// An mpsc receiver as a stream of body frames.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn config(upstream: SocketAddr, forward: bool) -> Arc<UpstreamConfig> {
    Arc::new(UpstreamConfig {
        url: UpstreamUrl::parse(&format!("ws://{upstream}")).unwrap(),
        secret: UpstreamSecret {
            kind: SecretKind::Token,
            value: ResolvedSecret::new(UPSTREAM_SECRET.into(), SecretSource::Flag),
        },
        forward_client_address: forward,
        timeouts: crate::upstream::UpstreamTimeouts::default(),
    })
}

/// clawgate's side: read the head as the server does, then relay it. The
/// client address is made to look like `peer`.
async fn front(upstream: Arc<UpstreamConfig>, options: HttpRelayOptions, peer: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = Arc::new(options);
    let verify: CredentialVerifier = Arc::new(|q: &CredentialQuery<'_>| match q.bearer {
        Some(CLAWGATE_TOKEN) => CredentialVerdict::Clawgate,
        Some("refuse-me") => CredentialVerdict::Refuse,
        _ => CredentialVerdict::Foreign,
    });
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let (upstream, options, verify) = (upstream.clone(), options.clone(), verify.clone());
            tokio::spawn(async move {
                let (head, leftover) = crate::server::http::read_head(&mut tcp, Duration::from_secs(5)).await.unwrap();
                relay_http(upstream, options, head, leftover, tcp, peer, verify).await;
            });
        }
    });
    addr
}

fn local_peer() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

/// Send a raw request, read the whole response (the relay closes after one).
async fn exchange(front: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(front).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// The JSON the echo route answered, from a (possibly chunked) response.
fn echoed(response: &str) -> Value {
    let start = response.find('{').unwrap();
    let end = response.rfind('}').unwrap();
    serde_json::from_str(&response[start..=end]).unwrap()
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1:18789\r\n{extra}\r\n").into_bytes()
}

#[tokio::test]
async fn forwarding_headers_never_reach_the_upstream() {
    let up = fake_upstream(Arc::default()).await;
    let f = front(config(up, false), HttpRelayOptions::default(), local_peer()).await;
    let extra =
        "x-forwarded-for: 1.2.3.4\r\nx-forwarded-proto: https\r\nforwarded: for=1.2.3.4\r\nx-real-ip: 1.2.3.4\r\n\
                 via: 1.1 proxy\r\nconnection: keep-alive, x-hop\r\nx-hop: 1\r\ncookie: a=b\r\n";
    let (status, text) = exchange(f, &get("/api/things?x=1", extra)).await;
    assert_eq!(status, 200, "{text}");
    let seen = echoed(&text);
    let headers = seen["headers"].as_object().unwrap();
    for gone in ["x-forwarded-for", "x-forwarded-proto", "forwarded", "x-real-ip", "via", "x-hop"] {
        assert!(!headers.contains_key(gone), "{gone} reached the upstream: {headers:?}");
    }
    assert_eq!(headers["host"], "127.0.0.1:18789", "the downstream Host passes");
    assert_eq!(headers["cookie"], "a=b");
    assert_eq!(seen["target"], "/api/things?x=1");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "one request per connection");
}

#[tokio::test]
async fn the_client_address_is_added_only_when_configured_and_remote() {
    let up = fake_upstream(Arc::default()).await;
    let remote: SocketAddr = "203.0.113.9:4000".parse().unwrap();
    let f = front(config(up, true), HttpRelayOptions::default(), remote).await;
    let (_, text) = exchange(f, &get("/x", "x-forwarded-for: 6.6.6.6\r\n")).await;
    assert_eq!(echoed(&text)["headers"]["x-forwarded-for"], "203.0.113.9");
    let f = front(config(up, true), HttpRelayOptions::default(), local_peer()).await;
    let (_, text) = exchange(f, &get("/x", "")).await;
    assert!(echoed(&text)["headers"].get("x-forwarded-for").is_none());
    let f = front(config(up, false), HttpRelayOptions::default(), remote).await;
    let (_, text) = exchange(f, &get("/x", "")).await;
    assert!(echoed(&text)["headers"].get("x-forwarded-for").is_none());
}

#[tokio::test]
async fn the_upstream_secret_replaces_clawgates_credential_only_on_ui_reads() {
    let up = fake_upstream(Arc::default()).await;
    let f = front(config(up, false), HttpRelayOptions::default(), local_peer()).await;
    let ours = format!("authorization: Bearer {CLAWGATE_TOKEN}\r\n");
    let auth = |text: &str| echoed(text)["headers"].get("authorization").cloned();

    let (_, text) = exchange(f, &get("/control-ui-config.json", &ours)).await;
    assert_eq!(auth(&text), Some(json!(format!("Bearer {UPSTREAM_SECRET}"))));
    let (_, text) = exchange(f, &get("/__openclaw__/catalog-icon/openai", &ours)).await;
    assert_eq!(auth(&text), Some(json!(format!("Bearer {UPSTREAM_SECRET}"))));

    // Elsewhere clawgate's credential is removed, never swapped.
    for path in ["/v1/models", "/avatar/../v1/models", "/api/users/u/profile"] {
        let (_, text) = exchange(f, &get(path, &ours)).await;
        assert_eq!(auth(&text), None, "{path}");
        assert!(!text.contains(UPSTREAM_SECRET) && !text.contains(CLAWGATE_TOKEN), "{path}");
    }
    let post = format!("POST /control-ui-config.json HTTP/1.1\r\nhost: h\r\n{ours}content-length: 0\r\n\r\n");
    let (_, text) = exchange(f, post.as_bytes()).await;
    assert_eq!(auth(&text), None);

    // Someone else's credential passes untouched, anywhere.
    let (_, text) = exchange(f, &get("/hooks/agent", "authorization: Bearer hook-token\r\n")).await;
    assert_eq!(auth(&text), Some(json!("Bearer hook-token")));
    let (_, text) = exchange(f, &get("/control-ui-config.json", "authorization: Bearer hook-token\r\n")).await;
    assert_eq!(auth(&text), Some(json!("Bearer hook-token")));

    // The verifier may refuse: nothing is relayed.
    let (status, text) = exchange(f, &get("/v1/models", "authorization: Bearer refuse-me\r\n")).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("\"unauthorized\""));
}

#[tokio::test]
async fn request_bodies_are_bounded() {
    let up = fake_upstream(Arc::default()).await;
    let options = HttpRelayOptions { max_body_bytes: 1024, ..Default::default() };
    let f = front(config(up, false), options, local_peer()).await;
    let small = format!("POST /v1/x HTTP/1.1\r\nhost: h\r\ncontent-length: 10\r\n\r\n{}", "a".repeat(10));
    let (status, text) = exchange(f, small.as_bytes()).await;
    assert_eq!((status, echoed(&text)["bodyBytes"].as_u64()), (200, Some(10)));

    let declared = format!("POST /v1/x HTTP/1.1\r\nhost: h\r\ncontent-length: 4096\r\n\r\n{}", "a".repeat(4096));
    let (status, text) = exchange(f, declared.as_bytes()).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("payload_too_large"));

    let chunk = "a".repeat(800);
    let chunked = format!(
        "POST /v1/x HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"
    );
    let (status, text) = exchange(f, chunked.as_bytes()).await;
    assert_eq!(status, 413, "{text}");
}

#[tokio::test]
async fn server_sent_events_stream_before_the_response_ends() {
    let release = Arc::new(Notify::new());
    let up = fake_upstream(release.clone()).await;
    let f = front(config(up, false), HttpRelayOptions::default(), local_peer()).await;
    let mut tcp = tokio::net::TcpStream::connect(f).await.unwrap();
    tcp.write_all(&get("/sse", "accept: text/event-stream\r\n")).await.unwrap();
    let mut seen = Vec::new();
    let read_first = async {
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains("data: first") {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the first event");
            seen.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_first)
        .await
        .expect("the first event arrives while the response is open");
    assert!(!String::from_utf8_lossy(&seen).contains("second"));
    release.notify_one();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&rest).contains("data: second"));
}

#[tokio::test]
async fn plugin_websocket_upgrades_become_raw_streams() {
    let up = fake_upstream(Arc::default()).await;
    let f = front(config(up, false), HttpRelayOptions::default(), local_peer()).await;
    let mut tcp = tokio::net::TcpStream::connect(f).await.unwrap();
    let req = "GET /plugin-ws HTTP/1.1\r\nhost: h\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
               sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    tcp.write_all(b"raw bytes").await.unwrap();
    let mut echoed = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut echoed)).await.unwrap().unwrap();
    assert_eq!(&echoed, b"raw bytes");
}

#[tokio::test]
async fn an_unreachable_upstream_is_503_with_a_stable_code() {
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    let f = front(config(addr, false), HttpRelayOptions::default(), local_peer()).await;
    let (status, text) = exchange(f, &get("/control-ui-config.json", "")).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("\"upstream_unavailable\""), "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after: 2"), "{text}");
}
