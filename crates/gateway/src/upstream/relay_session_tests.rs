//! The relay pump against a fake upstream (a WebSocket server in the test):
//! event rules, re-sequencing, answers, URL rewrites and close propagation.

use std::convert::Infallible;

use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::*;
use crate::outbox::{outbox, run_writer};
use crate::upstream::config::UpstreamUrl;
use crate::upstream::transport::open_websocket;

type ServerWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A fake upstream accepting one connection; returns its address and the socket.
async fn fake_upstream() -> (UpstreamUrl, tokio::sync::oneshot::Receiver<ServerWs>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let _ = tx.send(ws);
    });
    (UpstreamUrl::parse(&format!("ws://127.0.0.1:{port}")).unwrap(), rx)
}

/// A session's outbox whose writer hands every frame to the returned receiver.
fn session_outbox() -> (Outbox, mpsc::UnboundedReceiver<Message>, JoinHandle<()>) {
    let (out, out_rx) = outbox(1 << 20);
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = futures_util::sink::unfold(tx, |tx, msg: Message| async move {
        let _ = tx.send(msg);
        Ok::<_, Infallible>(tx)
    });
    let writer = tokio::spawn(async move {
        let _ = run_writer(Box::pin(sink), out_rx).await;
    });
    (out, rx, writer)
}

async fn relay() -> (RelayLink, ServerWs, Outbox, mpsc::UnboundedReceiver<Message>, JoinHandle<()>, UpstreamUrl) {
    let (url, accepted) = fake_upstream().await;
    let ws = open_websocket(&url, None, None).await.unwrap();
    let server = accepted.await.unwrap();
    let (out, written, writer) = session_outbox();
    let rewrite = UrlRewrite::new(&url.authority(), "gw.example:8443", false);
    let link = RelayLink::start(UpstreamLink::uncounted(ws, json!({})), out.clone(), Some(rewrite));
    (link, server, out, written, writer, url)
}

async fn next_json(written: &mut mpsc::UnboundedReceiver<Message>) -> Value {
    let msg = tokio::time::timeout(Duration::from_secs(5), written.recv()).await.expect("a frame").expect("open");
    serde_json::from_str(msg.to_text().unwrap()).unwrap()
}

async fn send(server: &mut ServerWs, v: Value) {
    server.send(Message::text(v.to_string())).await.unwrap();
}

#[tokio::test]
async fn events_are_filtered_and_resequenced_with_the_sessions_broadcasts() {
    let (link, mut server, out, mut written, _writer, _) = relay().await;
    // One of clawgate's own broadcasts goes first: seq 1.
    out.push(Outbound::Event { name: "presence".into(), payload: "{}".into() }).unwrap();
    assert_eq!(next_json(&mut written).await["seq"], 1);
    for event in ["tick", "presence", "device.pair.requested", "device.pair.resolved"] {
        send(&mut server, json!({"type": "event", "event": event, "payload": {}, "seq": 40})).await;
    }
    send(
        &mut server,
        json!({"type": "event", "event": "chat", "payload": {"x": 1}, "seq": 41,
                              "stateVersion": {"presence": 2, "health": 3}}),
    )
    .await;
    send(&mut server, json!({"type": "event", "event": "voicewake.changed", "payload": {}})).await;
    send(&mut server, json!({"type": "event", "event": "health", "payload": {"ok": true}, "seq": 45})).await;

    let chat = next_json(&mut written).await;
    assert_eq!(
        chat,
        json!({"type": "event", "event": "chat", "payload": {"x": 1}, "seq": 2,
               "stateVersion": {"presence": 2, "health": 3}})
    );
    let voicewake = next_json(&mut written).await;
    assert_eq!(voicewake, json!({"type": "event", "event": "voicewake.changed", "payload": {}}), "no seq: as is");
    assert_eq!(next_json(&mut written).await["seq"], 3, "no gaps from the dropped ones");
    link.close().await;
}

#[tokio::test]
async fn requests_go_up_with_their_id_and_answers_come_back_unchanged_or_rewritten() {
    let (link, mut server, _out, mut written, _writer, url) = relay().await;
    let sent = r#"{"type":"req","id":"a-1","method":"sessions.list","params":{ "limit": 5 }}"#;
    link.forward("a-1", "sessions.list", sent.to_owned()).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), server.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(got.to_text().unwrap(), sent, "the client's frame text, byte for byte");
    let answer = format!(r#"{{"type":"res","id":"a-1","ok":true,"payload":{{"url":"http://{}/x"}}}}"#, url.authority());
    server.send(Message::text(answer.clone())).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), written.recv()).await.unwrap().unwrap();
    assert_eq!(msg.to_text().unwrap(), answer, "other methods' answers are not touched");

    link.forward("r-2", REWRITTEN_METHOD, r#"{"type":"req","id":"r-2","method":"plugin.surface.refresh"}"#.into())
        .await
        .unwrap();
    let _ = server.next().await;
    send(
        &mut server,
        json!({"type": "res", "id": "r-2", "ok": true,
               "payload": {"canvas": format!("http://{}/__openclaw__/cap/z", url.authority()), "expiresAtMs": 9}}),
    )
    .await;
    let refreshed = next_json(&mut written).await;
    assert_eq!(refreshed["payload"]["canvas"], "http://gw.example:8443/__openclaw__/cap/z");
    assert_eq!(refreshed["payload"]["expiresAtMs"], 9);
    link.close().await;
}

#[tokio::test]
async fn an_upstream_close_closes_the_session_with_1012() {
    let (link, mut server, _out, mut written, writer, _) = relay().await;
    let started = std::time::Instant::now();
    server
        .send(Message::Close(Some(CloseFrame { code: 1012u16.into(), reason: "service restart".into() })))
        .await
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(2), written.recv()).await.unwrap().unwrap();
    match msg {
        Message::Close(Some(c)) => {
            assert_eq!((u16::from(c.code), c.reason.as_str()), (1012, UPSTREAM_GONE_REASON))
        }
        other => panic!("expected a close, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    tokio::time::timeout(Duration::from_secs(2), writer).await.expect("the writer ends").unwrap();
    link.close().await;
}

#[tokio::test]
async fn an_upstream_that_dies_closes_the_session_even_if_the_client_does_not_read() {
    let (link, server, out, _written, _writer, _) = relay().await;
    let mut killed = out.killed();
    drop(server);
    // Either the close went out or the session was cut off; both end it.
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if killed.borrow().is_some() || out.push(Outbound::Text("{}".into())).is_err() {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), killed.changed()).await;
        }
    })
    .await;
    assert!(ended.is_ok(), "the session is ended within a second or so");
    link.close().await;
}

#[tokio::test]
async fn closing_the_session_closes_the_upstream_side_and_ends_the_task() {
    let (link, mut server, _out, _written, _writer, _) = relay().await;
    let started = std::time::Instant::now();
    link.close().await;
    assert!(started.elapsed() < Duration::from_millis(1500));
    let next = tokio::time::timeout(Duration::from_secs(2), server.next()).await.unwrap();
    assert!(matches!(next, Some(Ok(Message::Close(_))) | None | Some(Err(_))), "{next:?}");
}

#[test]
fn dropped_events() {
    for e in ["tick", "presence", "device.pair.requested", "device.pair.resolved"] {
        assert!(is_dropped_event(e), "{e}");
    }
    for e in ["health", "chat", "node.pair.requested", "shutdown", "device.token.rotated"] {
        assert!(!is_dropped_event(e), "{e}");
    }
}
