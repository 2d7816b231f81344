//! Test harness: a real gateway on 127.0.0.1:0, raw WebSocket connections
//! that speak frames by hand, and validation of every frame the gateway sends
//! against `protocol.schema.json` from `@openclaw/gateway-protocol`.
#![allow(dead_code)]

pub mod clawgate_process;
pub mod cluster;
pub mod cut_link;
pub mod nats;
pub mod nginx;
pub mod openclaw_cli;
pub mod openclaw_upstream;
/// A real PostgreSQL server per test process (the store's own test harness).
#[allow(dead_code)]
#[path = "../../../src/store/pg/test_server.rs"]
pub mod postgres;
pub mod proxy;
pub mod records;
pub mod schema;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clawgate::config::{AuthMode, Config};
use clawgate::{serve, Gateway, ServerOptions};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TOKEN: &str = "test-token-0123456789abcdef0123456789";

pub struct TestGateway {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestGateway {
    pub async fn start(config: Config, options: ServerOptions) -> TestGateway {
        let store = clawgate::store::SqliteStore::open_in_memory().expect("in-memory store");
        Self::start_with_store(config, options, Arc::new(store)).await
    }

    /// [`TestGateway::start`] on a given store (e.g. a file the CLI opens too).
    pub async fn start_with_store(
        config: Config,
        options: ServerOptions,
        store: Arc<dyn clawgate::store::PairingStore>,
    ) -> TestGateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let gateway = clawgate::gateway(config, options, store);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, gateway.clone(), async move {
            let _ = rx.await;
        }));
        TestGateway { addr, gateway, shutdown: Some(tx), task: Some(task) }
    }

    /// [`TestGateway::start`] with a main (`local`) listener and one more
    /// listener per trust level given, all on 127.0.0.1:0; returns their
    /// addresses in the same order.
    pub async fn start_listeners(config: Config, extra: &[clawgate::config::Trust]) -> (TestGateway, Vec<SocketAddr>) {
        let store = Arc::new(clawgate::store::SqliteStore::open_in_memory().expect("in-memory store"));
        let main = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = main.local_addr().unwrap();
        let mut listeners = vec![(main, clawgate::config::Trust::Local)];
        let mut addrs = Vec::new();
        for trust in extra {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addrs.push(l.local_addr().unwrap());
            listeners.push((l, *trust));
        }
        let gateway = clawgate::gateway(config, ServerOptions::default(), store);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(clawgate::serve_listeners(listeners, gateway.clone(), async move {
            let _ = rx.await;
        }));
        (TestGateway { addr, gateway, shutdown: Some(tx), task: Some(task) }, addrs)
    }

    /// Token mode with [`TOKEN`], default options.
    pub async fn token() -> TestGateway {
        Self::start(Config::new(AuthMode::Token, Some(TOKEN), None), ServerOptions::default()).await
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task).await.expect("shutdown in time").unwrap().unwrap();
        }
    }
}

/// Connect params as a backend program would send them.
pub fn connect_params(client_id: &str, mode: &str, role: &str, scopes: &[&str], token: Option<&str>) -> Value {
    let mut p = json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": { "id": client_id, "version": "1.0.0", "platform": "linux", "mode": mode },
        "role": role,
        "scopes": scopes,
    });
    if let Some(t) = token {
        p["auth"] = json!({ "token": t });
    }
    p
}

pub struct RawConn {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Set once a connect succeeded.
    pub hello: Option<Value>,
    /// Check frames against the protocol schema (off for relayed frames of
    /// a newer upstream build, see [`RawConn::unchecked`]).
    checked: bool,
}

/// Why a raw connection could not be opened.
#[derive(Debug)]
pub struct HttpRefusal {
    pub status: u16,
    pub body: String,
}

impl RawConn {
    /// Open a WebSocket with extra upgrade headers (Host is set to localhost unless given).
    pub async fn open_with(addr: SocketAddr, headers: &[(&str, &str)]) -> Result<RawConn, HttpRefusal> {
        Self::open_from("127.0.0.1", addr, headers).await
    }

    /// Open from a chosen loopback source address (e.g. 127.0.0.2, to be a
    /// local client that is not the trusted proxy at 127.0.0.1).
    pub async fn open_from(source: &str, addr: SocketAddr, headers: &[(&str, &str)]) -> Result<RawConn, HttpRefusal> {
        let mut req = format!("ws://{addr}/").into_client_request().unwrap();
        for (k, v) in headers {
            let name: HeaderName = k.parse().unwrap();
            req.headers_mut().insert(name, HeaderValue::from_str(v).unwrap());
        }
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.headers_mut().insert("host", HeaderValue::from_str(&format!("localhost:{}", addr.port())).unwrap());
        }
        match Self::upgrade_from(source, addr, req).await {
            Ok(answer) => answer,
            Err(e) => panic!("cannot connect: {e}"),
        }
    }

    /// [`RawConn::open_from`] without headers, `None` when the gateway
    /// closes the socket before answering the upgrade (e.g. out of file
    /// descriptors, it closes new connections at accept).
    pub async fn open_from_unless_closed(source: &str, addr: SocketAddr) -> Option<Result<RawConn, HttpRefusal>> {
        let mut req = format!("ws://{addr}/").into_client_request().unwrap();
        req.headers_mut().insert("host", HeaderValue::from_str(&format!("localhost:{}", addr.port())).unwrap());
        Self::upgrade_from(source, addr, req).await.ok()
    }

    async fn upgrade_from(
        source: &str,
        addr: SocketAddr,
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Result<RawConn, HttpRefusal>, tokio_tungstenite::tungstenite::Error> {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).expect("bind the source address");
        let stream = socket.connect(addr).await.expect("tcp connect");
        match tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream)).await {
            Ok((ws, _)) => Ok(Ok(RawConn { ws, hello: None, checked: true })),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Ok(Err(HttpRefusal {
                status: resp.status().as_u16(),
                body: resp.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default(),
            })),
            Err(e) => Err(e),
        }
    }

    /// Frames are not checked against the schema: a real upstream's relayed
    /// frames carry fields newer than the schema this repository pins.
    pub fn unchecked(mut self) -> RawConn {
        self.checked = false;
        self
    }

    pub async fn open(addr: SocketAddr) -> RawConn {
        Self::open_with(addr, &[]).await.expect("upgrade accepted")
    }

    /// Next frame, validated against the protocol schema. Panics on close.
    pub async fn recv(&mut self) -> Value {
        match self.recv_or_close().await {
            Ok(v) => v,
            Err(close) => panic!("expected a frame, got close {close:?}"),
        }
    }

    /// Next frame, or the close (code, reason) if the server closed.
    pub async fn recv_or_close(&mut self) -> Result<Value, (u16, String)> {
        loop {
            let msg =
                tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await.expect("no frame within 10 s");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("server frames are JSON");
                    if self.checked {
                        schema::validate_server_frame(&v);
                    }
                    return Ok(v);
                }
                Some(Ok(Message::Close(c))) => {
                    return Err(c.map(|c| (u16::from(c.code), c.reason.to_string())).unwrap_or((1005, String::new())))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("unexpected message {other:?}"),
                Some(Err(e)) => return Err((1006, e.to_string())),
                None => return Err((1006, "stream ended".into())),
            }
        }
    }

    /// Skip frames until the close; return it.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            if let Err(close) = self.recv_or_close().await {
                return close;
            }
        }
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.expect("send");
    }

    /// Send, when the socket still takes frames (false once it is closed).
    pub async fn try_send(&mut self, v: &Value) -> bool {
        self.ws.send(Message::Text(v.to_string().into())).await.is_ok()
    }

    pub async fn send(&mut self, v: &Value) {
        self.send_text(v.to_string()).await
    }

    /// Send these frames, then a close frame if `then_close`, in one write:
    /// a pipelining client's burst.
    pub async fn send_pipelined(&mut self, frames: &[Value], then_close: bool) {
        for v in frames {
            self.ws.feed(Message::Text(v.to_string().into())).await.expect("feed");
        }
        if then_close {
            self.ws.feed(Message::Close(None)).await.expect("feed the close");
        }
        self.ws.flush().await.expect("flush");
    }

    /// Read the challenge, send connect, return the connect response frame.
    pub async fn handshake(&mut self, params: Value) -> Value {
        let challenge = self.recv().await;
        assert_eq!(challenge["event"], "connect.challenge");
        self.send(&json!({ "type": "req", "id": "c1", "method": "connect", "params": params })).await;
        loop {
            let frame = self.recv().await;
            if frame["type"] == "res" && frame["id"] == "c1" {
                if frame["ok"] == true {
                    if self.checked {
                        schema::validate_definition("HelloOk", &frame["payload"]);
                    }
                    self.hello = Some(frame["payload"].clone());
                }
                return frame;
            }
        }
    }

    /// Handshake proving `identity`: signs the params over this socket's challenge.
    pub async fn handshake_device(&mut self, params: Value, identity: &clawgate_client::DeviceIdentity) -> Value {
        let challenge = self.recv().await;
        assert_eq!(challenge["event"], "connect.challenge");
        let nonce = challenge["payload"]["nonce"].as_str().unwrap().to_owned();
        let ts = challenge["payload"]["ts"].as_u64().unwrap();
        self.send_connect_signed(params, identity, &nonce, ts).await
    }

    /// Send connect with a device block signed over `nonce` at `signed_at`; return the response.
    pub async fn send_connect_signed(
        &mut self,
        params: Value,
        identity: &clawgate_client::DeviceIdentity,
        nonce: &str,
        signed_at: u64,
    ) -> Value {
        let parsed = clawgate_protocol::ConnectParams::parse(Some(&params)).expect("valid params");
        let mut params = params;
        params["device"] = serde_json::to_value(identity.device_params(&parsed, nonce, signed_at)).unwrap();
        self.send(&json!({ "type": "req", "id": "c1", "method": "connect", "params": params })).await;
        loop {
            let frame = self.recv().await;
            if frame["type"] == "res" && frame["id"] == "c1" {
                if frame["ok"] == true {
                    if self.checked {
                        schema::validate_definition("HelloOk", &frame["payload"]);
                    }
                    self.hello = Some(frame["payload"].clone());
                }
                return frame;
            }
        }
    }

    /// A request after hello-ok; returns the response frame (events before it are skipped).
    pub async fn call(&mut self, id: &str, method: &str, params: Option<Value>) -> Value {
        let mut req = json!({ "type": "req", "id": id, "method": method });
        if let Some(p) = params {
            req["params"] = p;
        }
        self.send(&req).await;
        loop {
            let frame = self.recv().await;
            if frame["type"] == "res" && frame["id"] == id {
                return frame;
            }
        }
    }
}

/// A gateway whose socket peer (127.0.0.1) is a trusted proxy, so clients can
/// look remote honestly: `X-Forwarded-For: 203.0.113.5`.
pub async fn with_trusted_loopback_proxy(mut config: Config) -> TestGateway {
    config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    TestGateway::start(config, ServerOptions::default()).await
}

pub const REMOTE: &[(&str, &str)] = &[("x-forwarded-for", "203.0.113.5"), ("host", "gateway.example")];

/// Connect with the token as a local backend asking for `scopes`; assert admitted.
pub async fn admitted(gw: &TestGateway, scopes: &[&str]) -> RawConn {
    admitted_from("127.0.0.1", gw, scopes).await
}

/// [`admitted`], from a chosen loopback source address.
pub async fn admitted_from(source: &str, gw: &TestGateway, scopes: &[&str]) -> RawConn {
    let mut c = RawConn::open_from(source, gw.addr, &[]).await.expect("upgrade");
    let res = c.handshake(connect_params("gateway-client", "backend", "operator", scopes, Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    c
}

/// A device-less node session on `gw` (`node-host`, instance `instance`)
/// declaring `commands`, with its connect's answer.
pub async fn node_session(gw: &TestGateway, instance: &str, commands: &[&str]) -> (RawConn, Value) {
    let mut c = RawConn::open(gw.addr).await;
    let mut p = connect_params("node-host", "node", "node", &[], Some(TOKEN));
    p["client"]["instanceId"] = json!(instance);
    p["caps"] = json!(["system"]);
    p["commands"] = json!(commands);
    let res = c.handshake(p).await;
    (c, res)
}
