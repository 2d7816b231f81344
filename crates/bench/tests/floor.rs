//! The floor server: its wire exchange is the protocol's (hello-ok valid
//! against `protocol.schema.json`), it refuses a wrong token, and the load
//! kinds it serves complete against it on both runtimes. Tiny counts, no
//! timings asserted.

use std::time::Duration;

use clawgate_bench::floor::{self, Floor};
use clawgate_bench::load::{self, Bounds, Credential};
use clawgate_bench::Target;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "floor-token-0123456789abcdef0123456789";

/// `protocol.schema.json` of `@openclaw/gateway-protocol`, installed by
/// `npm ci` in `interop/` (as for the gateway's own schema tests). A missing
/// schema fails the test: install it, never skip.
fn schema() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../interop/node_modules/@openclaw/gateway-protocol/protocol.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("protocol schema missing at {} ({e}): run `npm ci --prefix interop` first", path.display())
    });
    serde_json::from_str(&text).expect("schema is JSON")
}

fn check(name: &str, schema: &Value, instance: &Value) {
    let validator = jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("schema {name} does not compile: {e}"));
    let errors: Vec<String> =
        validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "does not match {name}: {errors:?}\n{instance}");
}

async fn start() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(floor::serve(listener, Floor::new(TOKEN)));
    addr
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(Message::Close(_))) | None => return Value::Null,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("{e}"),
        }
    }
}

/// Open a WebSocket, read the challenge, send `connect` with `token`, return
/// the challenge and the response.
async fn raw_connect(addr: std::net::SocketAddr, token: &str) -> (Ws, Value, Value) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp).await.unwrap();
    let challenge = next_json(&mut ws).await;
    let connect = json!({
        "type": "req", "id": "c1", "method": "connect",
        "params": {
            "minProtocol": 3, "maxProtocol": 4,
            "client": { "id": "gateway-client", "version": "1.0.0", "platform": "linux", "mode": "backend" },
            "role": "operator", "scopes": ["operator.read"],
            "auth": { "token": token },
        },
    });
    ws.send(Message::Text(connect.to_string().into())).await.unwrap();
    let response = next_json(&mut ws).await;
    (ws, challenge, response)
}

#[tokio::test]
async fn the_floor_speaks_the_protocol() {
    let schema = schema();
    let frames = json!({ "oneOf": [
        schema["definitions"]["RequestFrame"],
        schema["definitions"]["ResponseFrame"],
        schema["definitions"]["EventFrame"],
    ]});
    let addr = start().await;

    let (mut ws, challenge, hello) = raw_connect(addr, TOKEN).await;
    check("GatewayFrame", &frames, &challenge);
    assert_eq!(challenge["event"], "connect.challenge");
    assert!(challenge["payload"]["nonce"].as_str().is_some_and(|n| !n.is_empty()), "{challenge}");
    check("GatewayFrame", &frames, &hello);
    assert_eq!(hello["ok"], true, "{hello}");
    check("HelloOk", &schema["definitions"]["HelloOk"], &hello["payload"]);

    ws.send(Message::Text(json!({ "type": "req", "id": "h1", "method": "health" }).to_string().into())).await.unwrap();
    let health = next_json(&mut ws).await;
    check("GatewayFrame", &frames, &health);
    assert_eq!((health["id"].as_str(), health["ok"].as_bool()), (Some("h1"), Some(true)), "{health}");
    ws.send(Message::Text(json!({ "type": "req", "id": "x", "method": "status" }).to_string().into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["ok"], false, "the floor serves health only");

    // A wrong token (of the same length, too) is refused and the socket closed.
    let wrong = TOKEN.replace('0', "1");
    let (mut ws, _, refused) = raw_connect(addr, &wrong).await;
    assert_eq!(refused["ok"], false, "{refused}");
    check("GatewayFrame", &frames, &refused);
    assert_eq!(next_json(&mut ws).await, Value::Null, "closed after the refusal");
}

async fn loads_complete(addr: std::net::SocketAddr) {
    let target = Target::new(&format!("ws://{addr}"), TOKEN, 4).unwrap().with_pid(Some(std::process::id()));
    let bounds = Bounds { count: 12, duration: Duration::from_secs(30), warmup: 2 };
    for in_flight in [1, 4] {
        let t = load::handshakes(&target, &Credential::Token, in_flight, bounds).await;
        assert_eq!((t.errors, t.completed), (0, 12), "{:?}", t.first_error);
    }
    for conns in [1, 3] {
        let t = load::rpc(&target, conns, Bounds { count: 30, ..bounds }).await.expect("rpc");
        assert_eq!((t.errors, t.completed), (0, 30), "{:?}", t.first_error);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_complete_on_two_workers() {
    loads_complete(start().await).await;
}

#[tokio::test(flavor = "current_thread")]
async fn loads_complete_on_one_thread() {
    loads_complete(start().await).await;
}
