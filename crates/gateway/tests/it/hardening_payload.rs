//! Large frames by what a session may do: a scopeless or read-only operator
//! is announced, and held to, 1 MiB; a writer keeps the server's 25 MiB.
//! Replay of docs/threat-model.md ("Large frames from anyone admitted").

use serde_json::{json, Value};

use crate::common::{connect_params, RawConn, TestGateway, TOKEN};

const MIB: usize = 1024 * 1024;

/// A `health` request padded to about `size` bytes.
fn big_request(size: usize) -> String {
    json!({ "type": "req", "id": "big", "method": "health", "params": { "pad": "x".repeat(size) } }).to_string()
}

async fn admitted(gw: &TestGateway, scopes: &[&str]) -> RawConn {
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake(connect_params("gateway-client", "backend", "operator", scopes, Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    c
}

fn announced(c: &RawConn) -> &Value {
    &c.hello.as_ref().unwrap()["policy"]["maxPayload"]
}

#[tokio::test]
async fn scopeless_and_read_only_sessions_are_closed_1009_above_1_mib() {
    let gw = TestGateway::token().await;
    for scopes in [&[][..], &["operator.read"], &["operator.read", "operator.sessions.read"]] {
        let mut c = admitted(&gw, scopes).await;
        assert_eq!(announced(&c), &json!(MIB), "{scopes:?}");
        // Just under the limit is served.
        c.send_text(big_request(MIB - 200)).await;
        let res = c.recv().await;
        assert_eq!((res["id"].as_str(), res["type"].as_str()), (Some("big"), Some("res")), "{res}");
        c.send_text(big_request(2 * MIB)).await;
        assert_eq!(c.expect_close().await, (1009, "payload too large".into()), "{scopes:?}");
    }
}

#[tokio::test]
async fn writers_and_admins_keep_the_full_limit() {
    let gw = TestGateway::token().await;
    for scopes in [&["operator.write"][..], &["operator.read", "operator.write"], &["operator.admin"]] {
        let mut c = admitted(&gw, scopes).await;
        assert_eq!(announced(&c), &json!(25 * MIB), "{scopes:?}");
        c.send_text(big_request(2 * MIB)).await;
        let res = c.recv().await;
        assert_eq!((res["id"].as_str(), res["ok"].as_bool()), (Some("big"), Some(true)), "{res}");
    }
}
