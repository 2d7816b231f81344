//! The connector against a fake upstream written here: challenge → connect →
//! hello-ok, refusals, 503s, and OpenClaw's cap on unfinished handshakes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use clawgate_client::DeviceIdentity;
use clawgate_protocol::ConnectParams;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use super::*;
use crate::config::{ResolvedSecret, SecretSource};
use crate::upstream::config::{SecretKind, UpstreamSecret, UpstreamUrl};
use crate::upstream::open_request::{ConnectClass, DownstreamFields};

/// OpenClaw's cap on unfinished handshakes per source address.
const UPSTREAM_PREAUTH_CAP: usize = 32;

#[derive(Clone)]
enum Answer {
    HelloOk,
    Error(Value),
    Close(u16, &'static str),
    Http503,
}

#[derive(Default)]
struct Seen {
    headers: Mutex<Vec<Vec<(String, String)>>>,
    connects: Mutex<Vec<ConnectParams>>,
    unfinished: AtomicUsize,
    turned_away: AtomicUsize,
}

struct Fake {
    addr: SocketAddr,
    seen: Arc<Seen>,
}

/// A fake OpenClaw gateway: `delay` before the challenge (a slow upstream),
/// 503 beyond 32 unfinished handshakes, then `answer` to the connect.
async fn fake_upstream(answer: Answer, delay: Duration) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let (s, answer) = (s.clone(), answer.clone());
            tokio::spawn(async move {
                let unfinished = s.unfinished.fetch_add(1, Ordering::SeqCst) + 1;
                if unfinished > UPSTREAM_PREAUTH_CAP || matches!(answer, Answer::Http503) {
                    s.turned_away.fetch_add(1, Ordering::SeqCst);
                    s.unfinished.fetch_sub(1, Ordering::SeqCst);
                    let body = r#"{"error":{"type":"too_many_connections"}}"#;
                    let head = format!(
                        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 3\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(head.as_bytes()).await;
                    return;
                }
                let headers = s.clone();
                // The callback's signature is tungstenite's; its error type is large.
                #[allow(clippy::result_large_err)]
                let record = move |req: &Request, resp: Response| {
                    let h = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    headers.headers.lock().unwrap().push(h);
                    Ok(resp)
                };
                let mut ws = tokio_tungstenite::accept_hdr_async(tcp, record).await.unwrap();
                tokio::time::sleep(delay).await;
                let nonce = format!("nonce-{unfinished}");
                let challenge = json!({"type": "event", "event": "connect.challenge",
                    "payload": {"nonce": nonce, "ts": crate::clock::now_ms(), "capabilities": []}});
                ws.send(Message::text(challenge.to_string())).await.unwrap();
                let Some(Ok(Message::Text(text))) = ws.next().await else { panic!("no connect") };
                let frame: Value = serde_json::from_str(&text).unwrap();
                let params = ConnectParams::parse(frame.get("params")).unwrap();
                if params.device.is_some() {
                    crate::admission::device_proof::verify(&params, &nonce, crate::clock::now_ms())
                        .expect("a valid device proof");
                }
                s.connects.lock().unwrap().push(params.clone());
                let id = frame["id"].clone();
                s.unfinished.fetch_sub(1, Ordering::SeqCst);
                let reply = match answer {
                    Answer::HelloOk => json!({"type": "res", "id": id, "ok": true, "payload": {
                        "type": "hello-ok", "protocol": 4, "server": {"version": "2026.9.6", "connId": "c"},
                        "auth": {"role": params.role(), "scopes": params.scopes(), "deviceToken": "dt"}}}),
                    Answer::Error(e) => json!({"type": "res", "id": id, "ok": false, "error": e}),
                    Answer::Close(code, reason) => {
                        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                            code: code.into(),
                            reason: reason.into(),
                        };
                        let _ = ws.close(Some(frame)).await;
                        return;
                    }
                    Answer::Http503 => unreachable!("answered before the upgrade"),
                };
                ws.send(Message::text(reply.to_string())).await.unwrap();
                // Serve one request after hello-ok, then stay until the client goes.
                while let Some(Ok(Message::Text(text))) = ws.next().await {
                    let req: Value = serde_json::from_str(&text).unwrap();
                    let res = json!({"type": "res", "id": req["id"], "ok": true, "payload": {"echo": req["method"]}});
                    ws.send(Message::text(res.to_string())).await.unwrap();
                }
            });
        }
    });
    Fake { addr, seen }
}

fn upstream_for(fake: &Fake, in_flight: usize) -> Upstream {
    let config = UpstreamConfig {
        url: UpstreamUrl::parse(&format!("ws://{}", fake.addr)).unwrap(),
        secret: UpstreamSecret {
            kind: SecretKind::Token,
            value: ResolvedSecret::new("upstream-secret".into(), SecretSource::Flag),
        },
        forward_client_address: false,
        timeouts: crate::upstream::UpstreamTimeouts::default(),
    };
    Upstream::with_limits(config, in_flight, Duration::from_secs(10))
}

fn backend(scopes: &[&str]) -> OpenRequest {
    OpenRequest {
        class: ConnectClass::Backend,
        role: "operator".into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        fields: DownstreamFields { instance_id: Some("inst-1".into()), ..Default::default() },
        host: Some("gateway.example:18789".into()),
        origin: Some("http://gateway.example:18789".into()),
    }
}

#[tokio::test]
async fn backend_gets_hello_ok_and_the_link_carries_requests() {
    let fake = fake_upstream(Answer::HelloOk, Duration::ZERO).await;
    let up = upstream_for(&fake, DEFAULT_HANDSHAKES_IN_FLIGHT);
    let mut link = up.open(backend(&["operator.read", "operator.write"])).await.unwrap();
    assert_eq!(link.hello_ok["auth"]["scopes"], json!(["operator.read", "operator.write"]));

    let connect = fake.seen.connects.lock().unwrap()[0].clone();
    assert_eq!((connect.client.id.as_str(), connect.client.mode.as_str()), ("gateway-client", "backend"));
    assert_eq!(connect.auth.unwrap().token.as_deref(), Some("upstream-secret"));
    assert!(connect.device.is_none());
    assert_eq!(connect.client.instance_id.as_deref(), Some("inst-1"));

    // The downstream Host, and nothing that says "proxy".
    let headers = fake.seen.headers.lock().unwrap()[0].clone();
    assert!(headers.contains(&("host".into(), "gateway.example:18789".into())), "{headers:?}");
    for (name, _) in &headers {
        assert!(!crate::admission::ingress::is_proxy_evidence(name) && name != "origin", "{name} sent upstream");
    }

    link.ws.send(Message::text(r#"{"type":"req","id":"2","method":"sessions.list"}"#)).await.unwrap();
    let Some(Ok(Message::Text(text))) = link.ws.next().await else { panic!("no answer") };
    let res: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(res["payload"]["echo"], "sessions.list");
}

#[tokio::test]
async fn control_ui_and_nodes_prove_the_relay_identity() {
    let fake = fake_upstream(Answer::HelloOk, Duration::ZERO).await;
    let up = upstream_for(&fake, 4);
    let identity = DeviceIdentity::from_seed([9; 32]);
    let mut ui = backend(&["operator.read"]);
    ui.class = ConnectClass::ControlUi { identity: identity.clone() };
    up.open(ui).await.unwrap();
    let node = OpenRequest {
        class: ConnectClass::Node { identity: identity.clone() },
        role: "node".into(),
        scopes: vec![],
        fields: DownstreamFields { caps: vec!["system".into()], ..Default::default() },
        host: None,
        origin: None,
    };
    let link = up.open(node).await.unwrap();
    assert_eq!(link.hello_ok["auth"]["deviceToken"], "dt");
    let connects = fake.seen.connects.lock().unwrap().clone();
    assert_eq!(connects[0].client.id, "openclaw-control-ui");
    assert_eq!(connects[0].device.as_ref().unwrap().id, identity.device_id());
    assert_eq!((connects[1].role(), connects[1].caps.clone()), ("node", vec!["system".to_owned()]));
    // Without a downstream Host, the upstream's own authority.
    let headers = fake.seen.headers.lock().unwrap().clone();
    assert!(headers[0].contains(&("origin".into(), "http://gateway.example:18789".into())), "{headers:?}");
    assert!(headers[1].contains(&("host".into(), fake.addr.to_string())), "{headers:?}");
    assert!(!headers[1].iter().any(|(k, _)| k == "origin"));
}

#[tokio::test]
async fn refusals_and_unavailability_are_told_apart() {
    let mismatch = json!({"code": "INVALID_REQUEST", "message": "unauthorized: gateway token mismatch",
                          "details": {"code": "AUTH_TOKEN_MISMATCH"}});
    let fake = fake_upstream(Answer::Error(mismatch), Duration::ZERO).await;
    let err = upstream_for(&fake, 4).open(backend(&[])).await.unwrap_err();
    assert_eq!(
        err,
        UpstreamFailure::Refused {
            code: "AUTH_TOKEN_MISMATCH".into(),
            message: "unauthorized: gateway token mismatch".into()
        }
    );
    assert_eq!((err.code(), err.key_to_fix()), ("UPSTREAM_REFUSED", Some("gateway.upstream.token")));

    let starting = json!({"code": "UNAVAILABLE", "message": "gateway starting; retry shortly", "retryAfterMs": 700});
    let fake = fake_upstream(Answer::Error(starting), Duration::ZERO).await;
    let err = upstream_for(&fake, 4).open(backend(&[])).await.unwrap_err();
    assert!(matches!(err, UpstreamFailure::Unavailable { retry_after_ms: 700, .. }), "{err:?}");

    let fake = fake_upstream(Answer::Close(1013, "gateway starting"), Duration::ZERO).await;
    let err = upstream_for(&fake, 4).open(backend(&[])).await.unwrap_err();
    assert!(matches!(err, UpstreamFailure::Unavailable { .. }), "{err:?}");

    let fake = fake_upstream(Answer::Http503, Duration::ZERO).await;
    let err = upstream_for(&fake, 4).open(backend(&[])).await.unwrap_err();
    assert!(matches!(err, UpstreamFailure::Unavailable { retry_after_ms: 3000, .. }), "{err:?}");
    assert_eq!(err.code(), "UPSTREAM_UNAVAILABLE");
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let fake = Fake { addr, seen: Arc::default() };
    let err = upstream_for(&fake, 4).open(backend(&[])).await.unwrap_err();
    assert!(matches!(err, UpstreamFailure::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn a_silent_upstream_times_out_as_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut kept = Vec::new();
        loop {
            kept.push(listener.accept().await.unwrap());
        }
    });
    let fake = Fake { addr, seen: Arc::default() };
    let mut up = upstream_for(&fake, 4);
    up.handshake_timeout = Duration::from_millis(200);
    let err = up.open(backend(&[])).await.unwrap_err();
    assert!(matches!(err, UpstreamFailure::Unavailable { .. }), "{err:?}");
    hold.abort();
}

#[tokio::test]
async fn a_hundred_simultaneous_opens_stay_under_the_upstream_cap() {
    // A slow upstream: every handshake stays unfinished for 50 ms.
    let fake = fake_upstream(Answer::HelloOk, Duration::from_millis(50)).await;
    let up = Arc::new(upstream_for(&fake, DEFAULT_HANDSHAKES_IN_FLIGHT));
    let opens: Vec<_> = (0..100)
        .map(|_| {
            let up = up.clone();
            tokio::spawn(async move { up.open(backend(&["operator.read"])).await.map(|_link| ()) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    assert_eq!(fake.seen.turned_away.load(Ordering::SeqCst), 0);
    assert_eq!(fake.seen.connects.lock().unwrap().len(), 100);

    // The same without the bound loses connects to 503s: the test has teeth.
    let fake = fake_upstream(Answer::HelloOk, Duration::from_millis(50)).await;
    let up = Arc::new(upstream_for(&fake, 1000));
    let opens: Vec<_> = (0..100)
        .map(|_| {
            let up = up.clone();
            tokio::spawn(async move { up.open(backend(&[])).await.map(|_link| ()) })
        })
        .collect();
    let mut failed = 0;
    for open in opens {
        failed += usize::from(open.await.unwrap().is_err());
    }
    assert!(failed > 0 && fake.seen.turned_away.load(Ordering::SeqCst) > 0);
}
