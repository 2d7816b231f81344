//! Nodes against a real server: ids, listing, invoke routing, results bound
//! to the target connection.

use crate::common::{admitted, RawConn, TestGateway};
use serde_json::{json, Value};

use crate::common::node_session as node;

/// The next `node.invoke.request` event a node receives.
async fn next_invoke(node: &mut RawConn) -> Value {
    loop {
        let f = node.recv().await;
        if f["event"] == "node.invoke.request" {
            return f["payload"].clone();
        }
    }
}

#[tokio::test]
async fn deviceless_nodes_get_their_own_namespace_and_collisions_are_refused() {
    let gw = TestGateway::token().await;
    let (_n1, res) = node(&gw, "host-a", &["system.which"]).await;
    assert_eq!(res["ok"], true, "{res}");
    let (_n2, res) = node(&gw, "host-a", &["system.which"]).await;
    assert_eq!(res["error"]["details"]["code"], "NODE_ID_IN_USE", "the newcomer is refused: {res}");
    let mut op = admitted(&gw, &["operator.read"]).await;
    let list = op.call("l", "node.list", None).await;
    let nodes = list["payload"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "the incumbent stays: {list}");
    assert_eq!(nodes[0]["nodeId"], "local:node-host:host-a");
    assert_eq!(nodes[0]["connected"], true);
    assert_eq!(nodes[0]["deviceless"], true);
    assert_eq!(nodes[0]["commands"], json!(["system.which"]));
    let d = op.call("d", "node.describe", Some(json!({ "nodeId": "local:node-host:host-a" }))).await;
    assert_eq!(d["payload"]["caps"], json!(["system"]));
    let d = op.call("d2", "node.describe", Some(json!({ "nodeId": "nope" }))).await;
    assert_eq!(d["error"]["details"]["code"], "UNKNOWN_NODE");
    gw.stop().await;
}

#[tokio::test]
async fn invoke_reaches_the_node_and_its_answer_comes_back() {
    let gw = TestGateway::token().await;
    let (mut n, _) = node(&gw, "host-a", &["system.which"]).await;
    let mut op = admitted(&gw, &["operator.write"]).await;
    op.send(&json!({ "type": "req", "id": "inv", "method": "node.invoke", "params": {
        "nodeId": "local:node-host:host-a", "command": "system.which",
        "params": { "bins": ["sh"] }, "idempotencyKey": "k1", "timeoutMs": 5000 } }))
        .await;
    let request = next_invoke(&mut n).await;
    assert_eq!(request["command"], "system.which");
    assert_eq!(request["idempotencyKey"], "k1");
    let params: Value = serde_json::from_str(request["paramsJSON"].as_str().unwrap()).unwrap();
    assert_eq!(params, json!({ "bins": ["sh"] }));
    let ack = n
        .call(
            "r",
            "node.invoke.result",
            Some(json!({
            "id": request["id"], "nodeId": request["nodeId"], "ok": true,
            "payloadJSON": "{\"bins\":{\"sh\":\"/bin/sh\"}}" })),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let res = loop {
        let f = op.recv().await;
        if f["id"] == "inv" {
            break f;
        }
    };
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["payload"], json!({ "bins": { "sh": "/bin/sh" } }));
    assert_eq!(res["payload"]["nodeId"], "local:node-host:host-a");
    gw.stop().await;
}

#[tokio::test]
async fn only_the_target_connection_may_answer() {
    let gw = TestGateway::token().await;
    let (mut target, _) = node(&gw, "target", &["system.which"]).await;
    let (mut other, _) = node(&gw, "other", &["system.which"]).await;
    let mut op = admitted(&gw, &["operator.write"]).await;
    op.send(&json!({ "type": "req", "id": "inv", "method": "node.invoke", "params": {
        "nodeId": "local:node-host:target", "command": "system.which", "idempotencyKey": "k", "timeoutMs": 5000 } }))
        .await;
    let request = next_invoke(&mut target).await;
    // Another node claiming the target's id, or answering as itself, is refused.
    let forged = other
        .call("f", "node.invoke.result", Some(json!({ "id": request["id"], "nodeId": request["nodeId"], "ok": true })))
        .await;
    assert_eq!(forged["error"]["details"]["reason"], "not-this-node", "{forged}");
    let forged = other
        .call(
            "f2",
            "node.invoke.result",
            Some(json!({ "id": request["id"], "nodeId": "local:node-host:other", "ok": true })),
        )
        .await;
    assert_eq!(forged["error"]["details"]["reason"], "not-the-target", "{forged}");
    // The target's error reaches the caller as a node error.
    target
        .call(
            "r",
            "node.invoke.result",
            Some(json!({ "id": request["id"], "nodeId": request["nodeId"], "ok": false,
            "error": { "code": "NOT_FOUND", "message": "no such bin" } })),
        )
        .await;
    let res = loop {
        let f = op.recv().await;
        if f["id"] == "inv" {
            break f;
        }
    };
    assert_eq!(res["error"]["details"]["code"], "NODE_ERROR", "{res}");
    assert_eq!(res["error"]["details"]["nodeError"]["code"], "NOT_FOUND");
    gw.stop().await;
}

#[tokio::test]
async fn invoke_gates() {
    let gw = TestGateway::token().await;
    let (mut n, _) = node(&gw, "host-a", &["system.which", "fs.listDir"]).await;
    let mut writer = admitted(&gw, &["operator.write"]).await;
    let mut reader = admitted(&gw, &["operator.read"]).await;
    let call = |nid: &str, cmd: &str| json!({ "nodeId": nid, "command": cmd, "idempotencyKey": "k", "timeoutMs": 300 });
    let r = reader.call("1", "node.invoke", Some(call("local:node-host:host-a", "system.which"))).await;
    assert_eq!(r["error"]["details"]["missingScope"], "operator.write");
    let r = writer.call("2", "node.invoke", Some(call("local:node-host:host-a", "fs.listDir"))).await;
    assert_eq!(r["error"]["details"]["missingScope"], "operator.admin", "admin-only command: {r}");
    let r = writer.call("3", "node.invoke", Some(call("local:node-host:host-a", "camera.snap"))).await;
    assert_eq!(r["error"]["details"]["reason"], "command-not-declared");
    let r = writer.call("4", "node.invoke", Some(call("local:node-host:gone", "system.which"))).await;
    assert_eq!(r["error"]["code"], "UNAVAILABLE");
    // A node that never answers: the caller gets a timeout, and a late answer is ignored.
    let r = writer.call("5", "node.invoke", Some(call("local:node-host:host-a", "system.which"))).await;
    assert_eq!(r["error"]["code"], "UNAVAILABLE");
    assert!(r["error"]["message"].as_str().unwrap().contains("timed out"), "{r}");
    let late = next_invoke(&mut n).await;
    let ack = n
        .call("late", "node.invoke.result", Some(json!({ "id": late["id"], "nodeId": late["nodeId"], "ok": true })))
        .await;
    assert_eq!(ack["payload"]["ignored"], true);
    gw.stop().await;
}

#[tokio::test]
async fn a_node_leaving_fails_its_pending_invocations() {
    let gw = TestGateway::token().await;
    let (mut n, _) = node(&gw, "host-a", &["system.which"]).await;
    let mut op = admitted(&gw, &["operator.write"]).await;
    op.send(&json!({ "type": "req", "id": "inv", "method": "node.invoke", "params": {
        "nodeId": "local:node-host:host-a", "command": "system.which", "idempotencyKey": "k", "timeoutMs": 10000 } }))
        .await;
    next_invoke(&mut n).await;
    drop(n);
    let res = loop {
        let f = op.recv().await;
        if f["id"] == "inv" {
            break f;
        }
    };
    assert_eq!(res["error"]["code"], "UNAVAILABLE");
    assert!(res["error"]["message"].as_str().unwrap().contains("disconnected"), "{res}");
    gw.stop().await;
}

/// What a real node host (`openclaw node run`) sends right after hello-ok;
/// each must be answered ok, not "not implemented".
#[tokio::test]
async fn a_node_reports_its_surface_and_gets_ok() {
    let gw = TestGateway::token().await;
    let (mut n, res) = node(&gw, "host-a", &["system.which"]).await;
    assert_eq!(res["ok"], true, "{res}");
    let calls = [
        (
            "node.runnerInventory.update",
            json!({ "protocolFeatures": ["node-worker-supervisor-v6"], "workerHost": { "enabled": false } }),
        ),
        ("node.skills.update", json!({ "skills": [] })),
        ("node.pluginTools.update", json!({ "tools": [] })),
    ];
    for (i, (method, params)) in calls.into_iter().enumerate() {
        let r = n.call(&format!("u{i}"), method, Some(params)).await;
        assert_eq!(r["ok"], true, "{method}: {r}");
        assert_eq!(r["payload"]["nodeId"], "local:node-host:host-a", "{method}: {r}");
    }
    gw.stop().await;
}
