//! The floor: a minimal server doing only the wire exchange the benchmark
//! measures, so every run can say how far a gateway is from the least any
//! server could spend on it. Per connection: WebSocket upgrade,
//! `connect.challenge`, one `connect` (parsed with the protocol's own
//! `ConnectParams`, its shared token compared in constant time), a
//! schema-valid `hello-ok`, then `health` requests until the client closes.
//! No devices, no sessions registry, no broadcasts, no logging: anything a
//! gateway spends beyond this is its own.
//!
//! Run it on the runtime to compare with: a 2-worker multi-thread runtime
//! (clawgate's shape) or a current-thread runtime (no cross-thread wake-ups).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clawgate_protocol::hello::{Features, HelloAuth, HelloKind, Policy, ServerInfo, Snapshot};
use clawgate_protocol::{
    ConnectParams, ErrorCode, ErrorShape, EventFrame, Frame, HelloOk, RequestFrame, ResponseFrame, PROTOCOL_VERSION,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// The same read buffer clawgate uses (docs/benchmarks.md, finding 1).
const READ_BUFFER: usize = 8 * 1024;
/// Largest frame accepted: the floor only ever needs a `connect`.
const MAX_FRAME: usize = 64 * 1024;

/// The floor's shared state: the token, and what makes ids unique.
pub struct Floor {
    token: String,
    started: Instant,
    next_id: AtomicU64,
    /// Mixed into ids so two runs do not repeat nonces.
    salt: u64,
}

impl Floor {
    pub fn new(token: &str) -> Arc<Floor> {
        let salt = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Arc::new(Floor { token: token.to_owned(), started: Instant::now(), next_id: AtomicU64::new(1), salt })
    }

    /// A UUID-shaped id, unique within this process. Not a secret: the
    /// floor signs nothing with its nonce.
    fn unique_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let x = (n ^ self.salt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", x >> 32, (x >> 16) & 0xffff, n & 0xfff, x & 0xfff, n)
    }

    /// The `hello-ok` payload the floor sends: every required field of the
    /// protocol schema, nothing more.
    pub fn hello_ok(&self, conn_id: String) -> Value {
        let hello = HelloOk {
            kind: HelloKind::HelloOk,
            protocol: PROTOCOL_VERSION,
            server: ServerInfo { version: env!("CARGO_PKG_VERSION").to_owned(), conn_id, boot_id: None },
            features: Features { methods: vec!["health".to_owned()], events: Vec::new() },
            snapshot: Snapshot {
                presence: Vec::new(),
                health: health_payload(),
                state_version: clawgate_protocol::frame::StateVersion { presence: 0, health: 0 },
                uptime_ms: self.started.elapsed().as_millis() as u64,
                auth_mode: None,
            },
            auth: HelloAuth {
                role: "operator".to_owned(),
                scopes: vec!["operator.read".to_owned()],
                method: None,
                device_token: None,
                issued_at_ms: None,
            },
            policy: Policy { max_payload: MAX_FRAME as u64, max_buffered_bytes: 1 << 20, tick_interval_ms: 30_000 },
        };
        serde_json::to_value(&hello).unwrap_or_default()
    }

    /// Is `presented` the token? Compared in constant time for its length.
    fn token_matches(&self, presented: &str) -> bool {
        let (a, b) = (self.token.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What clawgate answers to `health`, in shape and size.
fn health_payload() -> Value {
    json!({ "ok": true, "ts": now_ms(), "durationMs": 0 })
}

/// Accept connections until the listener fails.
pub async fn serve(listener: TcpListener, floor: Arc<Floor>) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, floor.clone()));
    }
}

fn text(frame: Frame) -> Message {
    Message::Text(frame.to_json().into())
}

/// One connection: challenge, connect, hello-ok, then `health` until closed.
async fn connection(stream: TcpStream, floor: Arc<Floor>) {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else { return };
    let challenge = json!({ "nonce": floor.unique_id(), "ts": now_ms() });
    if ws.send(text(Frame::Event(EventFrame::new("connect.challenge", Some(challenge), None)))).await.is_err() {
        return;
    }
    let mut admitted = false;
    while let Some(Ok(message)) = ws.next().await {
        let request = match &message {
            Message::Text(t) => RequestFrame::parse(t.as_str()),
            Message::Close(_) => break,
            _ => continue,
        };
        let Ok(request) = request else { break };
        let reply = if !admitted {
            let token = ConnectParams::parse(request.params.as_ref())
                .ok()
                .filter(|_| request.method == "connect")
                .and_then(|p| p.auth.and_then(|a| a.token));
            if !token.is_some_and(|t| floor.token_matches(&t)) {
                let refused = ErrorShape::new(ErrorCode::InvalidRequest, "unauthorized");
                let _ = ws.send(text(Frame::Res(ResponseFrame::err(&request.id, refused)))).await;
                break;
            }
            admitted = true;
            ResponseFrame::ok(&request.id, floor.hello_ok(floor.unique_id()))
        } else if request.method == "health" {
            ResponseFrame::ok(&request.id, health_payload())
        } else {
            ResponseFrame::err(&request.id, ErrorShape::new(ErrorCode::InvalidRequest, "unknown method"))
        };
        if ws.send(text(Frame::Res(reply))).await.is_err() {
            break;
        }
    }
    let _ = ws.close(None).await;
}
