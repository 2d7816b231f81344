//! The relay pump against a fake upstream (a WebSocket server in the test):
//! event rules, re-sequencing, answers, URL rewrites and close propagation.

use std::convert::Infallible;

use futures_util::SinkExt;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
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
    relay_with_liveness(crate::upstream::DEFAULT_LIVENESS_TIMEOUT).await
}

async fn relay_with_liveness(
    liveness: Duration,
) -> (RelayLink, ServerWs, Outbox, mpsc::UnboundedReceiver<Message>, JoinHandle<()>, UpstreamUrl) {
    let (url, accepted) = fake_upstream().await;
    let ws = open_websocket(&url, None, None).await.unwrap();
    let server = accepted.await.unwrap();
    let (out, written, writer) = session_outbox();
    let rewrite = UrlRewrite::new(&url.authority(), "gw.example:8443", false);
    let link =
        RelayLink::start(UpstreamLink::uncounted(ws, json!({})).with_liveness(liveness), out.clone(), Some(rewrite));
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

/// Frames the session got until its close: the answers' ids and the close code.
async fn answers_until_close(written: &mut mpsc::UnboundedReceiver<Message>, within: Duration) -> (Vec<Value>, u16) {
    let mut answers = Vec::new();
    loop {
        let msg = tokio::time::timeout(within, written.recv()).await.expect("a frame in time").expect("open");
        match msg {
            Message::Close(c) => return (answers, c.map_or(1005, |c| u16::from(c.code))),
            Message::Text(t) => answers.push(serde_json::from_str(&t).unwrap()),
            _ => {}
        }
    }
}

#[tokio::test]
async fn requests_waiting_upstream_are_answered_with_an_error_when_the_link_dies() {
    let (link, mut server, _out, mut written, _writer, _) = relay().await;
    for id in ["w-1", "w-2", "w-1"] {
        link.forward(id, "agent.wait", format!(r#"{{"type":"req","id":"{id}","method":"agent.wait"}}"#)).await.unwrap();
    }
    link.forward("done", "health", r#"{"type":"req","id":"done","method":"health"}"#.into()).await.unwrap();
    for _ in 0..4 {
        let _ = server.next().await;
    }
    send(&mut server, json!({"type": "res", "id": "done", "ok": true, "payload": {}})).await;
    assert_eq!(next_json(&mut written).await["id"], "done");
    drop(server);
    let (answers, code) = answers_until_close(&mut written, Duration::from_secs(5)).await;
    assert_eq!(code, CLOSE_UPSTREAM_GONE);
    let mut ids: Vec<&str> = answers.iter().map(|a| a["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["w-1", "w-1", "w-2"], "each unanswered request once per send, the answered one not again");
    for a in &answers {
        assert_eq!(
            (a["ok"].as_bool(), a["error"]["details"]["code"].as_str()),
            (Some(false), Some("UPSTREAM_UNAVAILABLE"))
        );
        assert_eq!(a["error"]["retryable"], true);
    }
    link.close().await;
}

#[tokio::test]
async fn a_session_with_a_full_book_waits_for_an_answer_before_it_sends_more() {
    let (link, mut server, _out, mut written, _writer, _) = relay().await;
    for i in 0..crate::upstream::pending_answers::MAX_UNANSWERED {
        link.forward(&i.to_string(), "agent.wait", format!(r#"{{"type":"req","id":"{i}","method":"agent.wait"}}"#))
            .await
            .unwrap();
    }
    let extra = link.forward("extra", "health", r#"{"type":"req","id":"extra","method":"health"}"#.into());
    let mut extra = Box::pin(extra);
    assert!(tokio::time::timeout(Duration::from_millis(200), &mut extra).await.is_err(), "waits for room");
    send(&mut server, json!({"type": "res", "id": "7", "ok": true, "payload": {}})).await;
    assert_eq!(next_json(&mut written).await["id"], "7");
    tokio::time::timeout(Duration::from_secs(5), &mut extra).await.expect("sent once there is room").unwrap();
    drop(extra);
    drop(server);
    link.close().await;
}

#[tokio::test]
async fn a_request_after_the_link_ended_is_refused_unsent_for_the_session_to_answer() {
    let (link, mut server, _out, mut written, _writer, _) = relay().await;
    link.forward("before", "health", r#"{"type":"req","id":"before","method":"health"}"#.into()).await.unwrap();
    assert!(server.next().await.is_some());
    server.send(Message::Close(None)).await.unwrap();
    let (answers, code) = answers_until_close(&mut written, Duration::from_secs(5)).await;
    assert_eq!(code, CLOSE_UPSTREAM_GONE);
    assert_eq!(answers.iter().map(|a| a["id"].as_str().unwrap()).collect::<Vec<_>>(), ["before"]);
    // The link's task answered what it had; what comes now is the session's.
    let after = link.forward("after", "health", r#"{"type":"req","id":"after","method":"health"}"#.into()).await;
    assert_eq!(after, Err(LinkGone));
    link.close().await;
}

#[tokio::test]
async fn a_silent_upstream_is_found_by_its_missing_pongs_and_the_session_closed_1012() {
    let (link, server, _out, mut written, _writer, _) = relay_with_liveness(Duration::from_millis(600)).await;
    // The upstream keeps its socket open but reads nothing: it never pongs.
    link.forward("q", "health", r#"{"type":"req","id":"q","method":"health"}"#.into()).await.unwrap();
    let (answers, code) = answers_until_close(&mut written, Duration::from_secs(10)).await;
    assert_eq!(code, CLOSE_UPSTREAM_GONE);
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0]["id"].as_str(), answers[0]["ok"].as_bool()), (Some("q"), Some(false)));
    drop(server);
    link.close().await;
}

#[tokio::test]
async fn a_quiet_upstream_that_answers_pings_keeps_the_link() {
    let (link, mut server, _out, mut written, _writer, _) = relay_with_liveness(Duration::from_millis(600)).await;
    // The upstream reads (and so pongs) but sends nothing of its own.
    let reading = tokio::spawn(async move {
        let mut pings = 0;
        while let Some(Ok(msg)) = server.next().await {
            if msg.is_ping() {
                pings += 1;
                if pings == 6 {
                    break;
                }
            }
        }
        (server, pings)
    });
    let (mut server, pings) = tokio::time::timeout(Duration::from_secs(20), reading).await.unwrap().unwrap();
    assert_eq!(pings, 6, "pinged through three liveness bounds");
    assert!(written.try_recv().is_err(), "the session got nothing: no close");
    send(&mut server, json!({"type": "event", "event": "chat", "payload": {}})).await;
    assert_eq!(next_json(&mut written).await["event"], "chat");
    link.close().await;
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
