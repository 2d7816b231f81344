//! Broadcasts: per-connection seq under concurrent senders, scope gating,
//! and a peer that stops reading is closed instead of growing memory; and
//! a session's frames in order when requests arrive together.

use std::time::Duration;

use crate::common::{admitted, connect_params, RawConn, TestGateway, TOKEN};
use clawgate::config::{AuthMode, Config};
use clawgate::ServerOptions;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seq_is_gapless_per_connection_under_concurrent_broadcasts() {
    let gw = TestGateway::token().await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(admitted(&gw, &["operator.read"]).await);
    }
    let mut senders = Vec::new();
    for t in 0..4 {
        let g = gw.gateway.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..50 {
                g.registry.broadcast("health", &json!({ "from": t, "i": i }));
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    for c in &mut clients {
        let mut last = 0u64;
        let mut seen = 0;
        while seen < 200 {
            let f = c.recv().await;
            if f["event"] == "health" {
                let seq = f["seq"].as_u64().unwrap();
                assert_eq!(seq, last + 1, "gapless and increasing");
                last = seq;
                seen += 1;
            }
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn unknown_events_are_dropped_and_gated_events_need_their_scope() {
    let gw = TestGateway::token().await;
    let mut reader = admitted(&gw, &["operator.read"]).await;
    let mut node = RawConn::open(gw.addr).await;
    assert_eq!(node.handshake(connect_params("node-host", "node", "node", &[], Some(TOKEN))).await["ok"], true);
    assert_eq!(gw.gateway.registry.broadcast("made.up.event", &json!({})), 0, "fail closed");
    let sent = gw.gateway.registry.broadcast("chat", &json!({ "text": "hi" }));
    assert_eq!(sent, 1, "only the reader may see chat");
    let chat = loop {
        let f = reader.recv().await;
        if f["event"] != "presence" {
            break f;
        }
    };
    assert_eq!(chat["event"], "chat");
    // The node got nothing: its next frame is its own response.
    assert_eq!(node.call("h", "health", None).await["ok"], true);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_closed_not_buffered() {
    let options = ServerOptions { max_buffered_bytes: 256 * 1024, ..Default::default() };
    let gw = TestGateway::start(Config::new(AuthMode::Token, Some(TOKEN), None), options).await;
    let mut stalled = admitted(&gw, &["operator.read"]).await;
    let big = json!({ "blob": "x".repeat(64 * 1024) });
    // Far more than socket buffers and the queue limit hold.
    for _ in 0..2_000 {
        gw.gateway.registry.broadcast("health", &big);
        if gw.gateway.registry.counts().sessions == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while gw.gateway.registry.counts().sessions > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the stalled session was not closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reading now: whatever was in flight, then the end of the connection.
    let started = std::time::Instant::now();
    let mut frames = 0;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), stalled.recv_or_close()).await {
            Ok(Ok(_)) => frames += 1,
            Ok(Err(close)) => break close,
            Err(_) => panic!("no end after {frames} frames in {:?}", started.elapsed()),
        }
    };
    assert!(ended.0 == 1008 || ended.0 == 1006, "{ended:?}");
    // The gateway is fine for everyone else.
    let mut fresh = admitted(&gw, &["operator.read"]).await;
    assert_eq!(fresh.call("h", "health", None).await["ok"], true);
    gw.stop().await;
}

/// Requests that arrive in one burst are answered together (one write):
/// every answer in request order, broadcasts meanwhile with gapless `seq`,
/// and a close right behind the burst still gets every answer before the
/// close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_and_before_a_close() {
    let gw = TestGateway::token().await;
    let mut c = admitted(&gw, &["operator.read"]).await;
    let burst = |prefix: &str, n: usize| -> Vec<serde_json::Value> {
        (0..n).map(|i| json!({ "type": "req", "id": format!("{prefix}{i}"), "method": "health" })).collect()
    };
    let g = gw.gateway.clone();
    let broadcasts = tokio::spawn(async move {
        for i in 0..20 {
            g.registry.broadcast("health", &json!({ "i": i }));
            tokio::task::yield_now().await;
        }
    });
    c.send_pipelined(&burst("p", 40), false).await;
    broadcasts.await.unwrap();
    let (mut answered, mut last_seq, mut events) = (0, 0u64, 0);
    while answered < 40 || events < 20 {
        let f = c.recv().await;
        if f["type"] == "res" {
            assert_eq!(f["id"], format!("p{answered}"), "answers in request order");
            assert_eq!(f["ok"], true);
            answered += 1;
        } else if f["event"] == "health" {
            let seq = f["seq"].as_u64().unwrap();
            assert_eq!(seq, last_seq + 1, "gapless and increasing");
            last_seq = seq;
            events += 1;
        }
    }

    c.send_pipelined(&burst("q", 5), true).await;
    let mut answers = Vec::new();
    let close = loop {
        match c.recv_or_close().await {
            Ok(f) if f["type"] == "res" => answers.push(f["id"].as_str().unwrap().to_owned()),
            Ok(_) => {}
            Err(close) => break close,
        }
    };
    assert_eq!(answers, ["q0", "q1", "q2", "q3", "q4"]);
    assert_eq!(close.0, 1005, "the close is echoed, after the answers");
    gw.stop().await;
}
