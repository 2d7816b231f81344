//! A client for OpenClaw-protocol gateways (clawgate or OpenClaw itself).
//!
//! Connects, answers the challenge, sends `connect`, and then offers
//! request/response and an event stream. `skip_device_identity` connects
//! without loading any device identity (shared-secret local clients).

mod device;
mod options;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clawgate_protocol::gateway_identity;
use clawgate_protocol::{ConnectParams, ErrorShape, EventFrame, Frame, HelloOk, RequestFrame};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use device::DeviceIdentity;
pub use options::ConnectOptions;

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;
type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Result<Value, ErrorShape>>>>>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the gateway refused the connection: {} ({})", .0.message, .0.details_code().unwrap_or(&.0.code))]
    Refused(ErrorShape),
    #[error("request failed: {} ({})", .0.message, .0.details_code().unwrap_or(&.0.code))]
    Rpc(ErrorShape),
    #[error("the gateway closed the connection{}", .0.as_ref().map(|(c, r)| format!(" ({c}: {r})")).unwrap_or_default())]
    Closed(Option<(u16, String)>),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The listener did not prove it holds the expected gateway key; nothing
    /// secret was sent.
    #[error("the listener did not prove it is the expected gateway: {0}")]
    GatewayIdentity(String),
}

/// The WebSocket upgrade over a TCP socket bound to `local` first (`ws://` only).
async fn connect_from(
    local: std::net::IpAddr,
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Result<
    (WebSocketStream<MaybeTlsStream<TcpStream>>, tokio_tungstenite::tungstenite::handshake::client::Response),
    String,
> {
    let uri = request.uri();
    if uri.scheme_str() != Some("ws") {
        return Err("a local address can only be bound for ws:// URLs".into());
    }
    let host = uri.host().ok_or("URL without a host")?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let remote = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| e.to_string())?
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .ok_or_else(|| format!("{host} has no address of the family of {local}"))?;
    let socket = if local.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
        .map_err(|e| e.to_string())?;
    socket.bind(std::net::SocketAddr::new(local, 0)).map_err(|e| format!("bind {local}: {e}"))?;
    let stream = socket.connect(remote).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    tokio_tungstenite::client_async_with_config(request, MaybeTlsStream::Plain(stream), Some(ws_config()))
        .await
        .map_err(|e| upgrade_error(&e))
}

/// A refused upgrade says why: the gateway's HTTP status and its error body
/// (e.g. `403 proxy_attribution_required: …`), not only "HTTP error".
fn upgrade_error(e: &tokio_tungstenite::tungstenite::Error) -> String {
    let tokio_tungstenite::tungstenite::Error::Http(resp) = e else { return e.to_string() };
    let body = resp.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
    let parsed: Option<Value> = serde_json::from_str(&body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    match (
        error.and_then(|e| e.get("type")).and_then(Value::as_str),
        error.and_then(|e| e.get("message")).and_then(Value::as_str),
    ) {
        (Some(kind), Some(message)) => format!("HTTP {} {kind}: {message}", resp.status().as_u16()),
        _ if !body.trim().is_empty() => format!("HTTP {}: {}", resp.status().as_u16(), body.trim()),
        _ => format!("HTTP {}", resp.status()),
    }
}

/// tungstenite's default read buffer (128 KiB, zero-filled before every
/// read) costs each connection 128 KiB and each frame a 128 KiB memset; the
/// frames a client reads are small, and a large one is still read whole.
fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(8 * 1024)
}

/// Read frames until `pick` accepts one (or fails), the gateway closes, or
/// `timeout` passes; frames `pick` passes over are skipped.
async fn next_frame<T>(
    stream: &mut futures_util::stream::SplitStream<WebSocketStream<MaybeTlsStream<TcpStream>>>,
    timeout: Duration,
    what: &'static str,
    mut pick: impl FnMut(Frame) -> Option<Result<T, ClientError>>,
) -> Result<T, ClientError> {
    let read = async {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Text(t)) => {
                    if let Some(result) = Frame::parse(&t).ok().and_then(&mut pick) {
                        return result;
                    }
                }
                Ok(Message::Close(c)) => {
                    return Err(ClientError::Closed(c.map(|c| (c.code.into(), c.reason.to_string()))));
                }
                Ok(_) => {}
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
        }
        Err(ClientError::Closed(None))
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| ClientError::Timeout(what))?
}

/// A connected, admitted session.
pub struct Client {
    sink: tokio::sync::Mutex<Sink>,
    pending: Pending,
    next_id: AtomicU64,
    events: mpsc::UnboundedReceiver<EventFrame>,
    closed: Arc<Mutex<Option<(u16, String)>>>,
    pub hello: HelloOk,
}

impl Client {
    /// Connect and complete the handshake. A refusal is `ClientError::Refused`
    /// carrying the gateway's error shape.
    pub async fn connect(opts: ConnectOptions) -> Result<Client, ClientError> {
        let connect_err = |m: String| ClientError::Connect { url: opts.url.clone(), message: m };
        let mut request = opts.url.as_str().into_client_request().map_err(|e| connect_err(e.to_string()))?;
        for (name, value) in &opts.headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName =
                name.parse().map_err(|_| connect_err(format!("bad header name {name:?}")))?;
            let value =
                HeaderValue::from_str(value).map_err(|_| connect_err(format!("bad header value for {name}")))?;
            request.headers_mut().append(name, value);
        }
        let upgrade = async {
            match opts.local_addr {
                None => tokio_tungstenite::connect_async_with_config(request, Some(ws_config()), false)
                    .await
                    .map_err(|e| upgrade_error(&e)),
                Some(local) => connect_from(local, request).await,
            }
        };
        let (ws, _) = tokio::time::timeout(opts.timeout, upgrade)
            .await
            .map_err(|_| ClientError::Timeout("the WebSocket upgrade"))?
            .map_err(connect_err)?;
        let (mut sink, mut stream) = ws.split();

        // 1. The challenge.
        let challenge = next_frame(&mut stream, opts.timeout, "connect.challenge", |frame| match frame {
            Frame::Event(e) if e.event == "connect.challenge" => Some(Ok(e)),
            _ => None,
        })
        .await?;
        let nonce = challenge.payload.as_ref().and_then(|p| p.get("nonce")).and_then(Value::as_str).unwrap_or("");
        if nonce.trim().is_empty() {
            return Err(ClientError::Protocol("connect challenge missing nonce".into()));
        }
        if let Some(key) = &opts.gateway_key {
            let proof = challenge.payload.as_ref().and_then(|p| p.get(gateway_identity::PROOF_FIELD));
            check_gateway_proof(key, nonce, proof.and_then(Value::as_str))?;
        }

        // 2. connect → hello-ok or a refusal.
        let mut params: ConnectParams = opts.connect_params();
        if let (Some(identity), false) = (&opts.device, opts.skip_device_identity) {
            // Like the reference client: signedAt is the challenge's server time.
            let ts = challenge.payload.as_ref().and_then(|p| p.get("ts")).and_then(Value::as_u64).ok_or_else(|| {
                ClientError::Protocol("connect challenge missing ts (needed to sign the device proof)".into())
            })?;
            params.device = Some(identity.device_params(&params, nonce, ts));
        }
        let connect =
            RequestFrame::new("connect-1", "connect", Some(serde_json::to_value(&params).unwrap_or_default()));
        sink.send(Message::Text(Frame::Req(connect).to_json().into()))
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let hello = next_frame(&mut stream, opts.timeout, "hello-ok", |frame| match frame {
            Frame::Res(r) if r.id == "connect-1" && r.ok => Some(
                serde_json::from_value::<HelloOk>(r.payload.unwrap_or_default())
                    .map_err(|e| ClientError::Protocol(format!("bad hello-ok: {e}"))),
            ),
            Frame::Res(r) if r.id == "connect-1" => Some(Err(ClientError::Refused(
                r.error.unwrap_or_else(|| ErrorShape::new(clawgate_protocol::ErrorCode::Unavailable, "refused")),
            ))),
            _ => None,
        })
        .await?;

        // 3. The session: a reader task routes responses and events.
        let pending: Pending = Arc::default();
        let closed: Arc<Mutex<Option<(u16, String)>>> = Arc::default();
        let (events_tx, events) = mpsc::unbounded_channel();
        {
            let pending = pending.clone();
            let closed = closed.clone();
            tokio::spawn(async move {
                while let Some(msg) = stream.next().await {
                    match msg {
                        Ok(Message::Text(t)) => match Frame::parse(&t) {
                            Ok(Frame::Res(r)) => {
                                let waiter = pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&r.id);
                                if let Some(w) = waiter {
                                    let result = if r.ok {
                                        Ok(r.payload.unwrap_or(Value::Null))
                                    } else {
                                        Err(r.error.unwrap_or_else(|| {
                                            ErrorShape::new(
                                                clawgate_protocol::ErrorCode::Unavailable,
                                                "error without shape",
                                            )
                                        }))
                                    };
                                    let _ = w.send(result);
                                }
                            }
                            Ok(Frame::Event(e)) => {
                                let _ = events_tx.send(e);
                            }
                            _ => {}
                        },
                        Ok(Message::Close(c)) => {
                            *closed.lock().unwrap_or_else(|p| p.into_inner()) =
                                c.map(|c| (u16::from(c.code), c.reason.to_string()));
                            break;
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                // Fail whatever is still waiting.
                pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
            });
        }
        Ok(Client { sink: tokio::sync::Mutex::new(sink), pending, next_id: AtomicU64::new(1), events, closed, hello })
    }

    /// Send a request and wait for its response.
    pub async fn request(&self, method: &str, params: Option<Value>) -> Result<Value, ClientError> {
        self.request_with_timeout(method, params, Duration::from_secs(30)).await
    }

    pub async fn request_with_timeout(
        &self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let id = format!("r{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), tx);
        let frame = Frame::Req(RequestFrame::new(id.clone(), method, params));
        self.sink
            .lock()
            .await
            .send(Message::Text(frame.to_json().into()))
            .await
            .map_err(|_| ClientError::Closed(self.close_info()))?;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => {
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                Err(ClientError::Timeout("the response"))
            }
            Ok(Err(_)) => Err(ClientError::Closed(self.close_info())),
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(ClientError::Rpc(e)),
        }
    }

    /// The next event (ticks, broadcasts); `None` once the connection ended.
    pub async fn next_event(&mut self) -> Option<EventFrame> {
        self.events.recv().await
    }

    /// The close code and reason, once the gateway closed the connection.
    pub fn close_info(&self) -> Option<(u16, String)> {
        self.closed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub async fn close(self) {
        let _ = self.sink.lock().await.close().await;
    }
}

/// The challenge's proof: a signature of `nonce` by the gateway key.
fn check_gateway_proof(key: &[u8; 32], nonce: &str, proof: Option<&str>) -> Result<(), ClientError> {
    let Some(proof) = proof else {
        return Err(ClientError::GatewayIdentity("its challenge carries no gateway proof".into()));
    };
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(key)
        .map_err(|_| ClientError::GatewayIdentity("the expected gateway key is not a valid Ed25519 key".into()))?;
    let signature = clawgate_protocol::device_key::decode_signature(proof)
        .map(|s| ed25519_dalek::Signature::from_bytes(&s))
        .ok_or_else(|| ClientError::GatewayIdentity("its gateway proof is not a signature".into()))?;
    verifying
        .verify_strict(gateway_identity::proof_message(nonce).as_bytes(), &signature)
        .map_err(|_| ClientError::GatewayIdentity("its gateway proof is signed by another key".into()))
}
