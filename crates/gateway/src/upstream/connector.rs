//! [`Upstream`]: opens one upstream connection per admitted session, through
//! the OpenClaw handshake (challenge → connect → hello-ok), with a bound on
//! handshakes in flight and one deadline for the slot wait and the handshake
//! together (a frozen upstream accepts TCP and then says nothing).
//!
//! OpenClaw allows 32 unfinished handshakes per source address (all of
//! 127/8 counts as one) and answers HTTP 503 beyond; every relayed session
//! comes from clawgate's address, so clawgate bounds its own handshakes in
//! flight below that and queues the rest.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use super::config::UpstreamConfig;
use super::failure::{UpstreamFailure, DEFAULT_RETRY_AFTER_MS};
use super::handshake_buffers::shed_handshake_buffers;
use super::open_request::OpenRequest;
use super::transport::{open_websocket, UpstreamWs, CONNECT_REQUEST_ID};

/// Upstream handshakes in flight at once, by default.
pub const DEFAULT_HANDSHAKES_IN_FLIGHT: usize = 16;

/// The upstream gateway, shared by every session.
pub struct Upstream {
    config: Arc<UpstreamConfig>,
    slots: Arc<Semaphore>,
    handshake_timeout: Duration,
    counts: Arc<LinkCounts>,
}

/// How many links were asked for, and how many are open now.
#[derive(Default)]
struct LinkCounts {
    opens: AtomicU64,
    open: AtomicUsize,
}

/// Counts a link as open until dropped.
struct OpenLink(Arc<LinkCounts>);

impl Drop for OpenLink {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An open, admitted upstream connection.
pub struct UpstreamLink {
    pub ws: UpstreamWs,
    /// The `payload` of the upstream's hello-ok response.
    pub hello_ok: Value,
    /// The longest silence of this link before it counts as gone.
    pub liveness: Duration,
    counted: Option<OpenLink>,
}

impl UpstreamLink {
    /// A link over a socket opened elsewhere (the unit tests), not counted.
    #[cfg(test)]
    pub(crate) fn uncounted(ws: UpstreamWs, hello_ok: Value) -> UpstreamLink {
        UpstreamLink { ws, hello_ok, liveness: super::timeouts::DEFAULT_LIVENESS_TIMEOUT, counted: None }
    }

    /// The same link with another liveness bound (the unit tests).
    #[cfg(test)]
    pub(crate) fn with_liveness(mut self, liveness: Duration) -> UpstreamLink {
        self.liveness = liveness;
        self
    }

    /// The socket, its liveness bound, and a guard that counts the link as
    /// open until dropped.
    pub fn into_parts(self) -> (UpstreamWs, Duration, impl Send + 'static) {
        (self.ws, self.liveness, self.counted)
    }
}

impl std::fmt::Debug for UpstreamLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamLink").field("hello_ok", &"…").finish_non_exhaustive()
    }
}

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Upstream {
        let handshake_timeout = config.timeouts.handshake;
        Upstream::with_limits(config, DEFAULT_HANDSHAKES_IN_FLIGHT, handshake_timeout)
    }

    pub fn with_limits(config: UpstreamConfig, handshakes_in_flight: usize, handshake_timeout: Duration) -> Upstream {
        Upstream {
            config: Arc::new(config),
            slots: Arc::new(Semaphore::new(handshakes_in_flight.max(1))),
            handshake_timeout,
            counts: Arc::default(),
        }
    }

    /// Links asked for since start (each [`Upstream::open`] call).
    pub fn opens_requested(&self) -> u64 {
        self.counts.opens.load(Ordering::Relaxed)
    }

    /// Links open now (opened and not yet dropped).
    pub fn links_open(&self) -> usize {
        self.counts.open.load(Ordering::Relaxed)
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// The configuration, shared (the HTTP relay takes it per request).
    pub fn shared_config(&self) -> Arc<UpstreamConfig> {
        self.config.clone()
    }

    /// Open and admit one upstream connection: wait for a handshake slot,
    /// then run the handshake, both within one handshake timeout.
    pub async fn open(&self, request: OpenRequest) -> Result<UpstreamLink, UpstreamFailure> {
        self.counts.opens.fetch_add(1, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + self.handshake_timeout;
        let wait = tokio::time::timeout_at(deadline, self.slots.acquire()).await;
        let _slot = match wait {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(UpstreamFailure::unavailable("the upstream connector is closed")),
            Err(_) => return Err(UpstreamFailure::unavailable("too many upstream connections are being opened")),
        };
        tokio::time::timeout_at(deadline, self.handshake(&request)).await.unwrap_or_else(|_| {
            Err(UpstreamFailure::unavailable(format!(
                "no hello-ok from the upstream within {} ms",
                self.handshake_timeout.as_millis()
            )))
        })
    }

    async fn handshake(&self, request: &OpenRequest) -> Result<UpstreamLink, UpstreamFailure> {
        let mut ws = open_websocket(&self.config.url, request.host.as_deref(), request.upgrade_origin()).await?;
        let challenge = read_challenge(&mut ws).await?;
        let mut params = request.connect_params(&self.config.secret);
        if let Some(identity) = request.class.identity() {
            let signed_at = challenge.ts.unwrap_or_else(crate::clock::now_ms);
            params.device = Some(identity.device_params(&params, &challenge.nonce, signed_at));
        }
        let frame = serde_json::json!({
            "type": "req", "id": CONNECT_REQUEST_ID, "method": "connect", "params": params,
        });
        ws.send(Message::text(frame.to_string()))
            .await
            .map_err(|e| UpstreamFailure::unavailable(format!("sending connect failed: {e}")))?;
        let hello_ok = read_connect_response(&mut ws).await?;
        let ws = shed_handshake_buffers(ws).await;
        self.counts.open.fetch_add(1, Ordering::Relaxed);
        let liveness = self.config.timeouts.liveness;
        Ok(UpstreamLink { ws, hello_ok, liveness, counted: Some(OpenLink(self.counts.clone())) })
    }
}

pub(super) struct Challenge {
    pub(super) nonce: String,
    pub(super) ts: Option<u64>,
}

/// What a frame-reading loop got instead of the frame it wanted.
fn closed(frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>, waiting_for: &str) -> UpstreamFailure {
    match frame {
        Some(c) if u16::from(c.code) == 1013 || u16::from(c.code) == 1012 => {
            UpstreamFailure::unavailable(format!("the upstream closed {} ({}) before {waiting_for}", c.code, c.reason))
        }
        Some(c) => {
            UpstreamFailure::Protocol(format!("the upstream closed {} ({}) before {waiting_for}", c.code, c.reason))
        }
        None => UpstreamFailure::unavailable(format!("the upstream closed the connection before {waiting_for}")),
    }
}

/// Next JSON frame, or why there is none. Read leniently as JSON: the
/// upstream may send fields newer than this build knows.
async fn next_frame(ws: &mut UpstreamWs, waiting_for: &str) -> Result<Value, UpstreamFailure> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text)
                    .map_err(|e| UpstreamFailure::Protocol(format!("unparsable frame before {waiting_for}: {e}")));
            }
            Some(Ok(Message::Close(frame))) => return Err(closed(frame, waiting_for)),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(UpstreamFailure::unavailable(format!("reading {waiting_for}: {e}"))),
            None => return Err(closed(None, waiting_for)),
        }
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

pub(super) async fn read_challenge(ws: &mut UpstreamWs) -> Result<Challenge, UpstreamFailure> {
    loop {
        let frame = next_frame(ws, "connect.challenge").await?;
        if str_field(&frame, "type") != Some("event") {
            return Err(UpstreamFailure::Protocol("the upstream sent a non-event before connect.challenge".into()));
        }
        if str_field(&frame, "event") != Some("connect.challenge") {
            continue;
        }
        let payload = frame.get("payload").cloned().unwrap_or(Value::Null);
        let nonce = str_field(&payload, "nonce").map(str::trim).unwrap_or("");
        if nonce.is_empty() {
            return Err(UpstreamFailure::Protocol("connect.challenge without a nonce".into()));
        }
        return Ok(Challenge { nonce: nonce.to_owned(), ts: payload.get("ts").and_then(Value::as_u64) });
    }
}

async fn read_connect_response(ws: &mut UpstreamWs) -> Result<Value, UpstreamFailure> {
    loop {
        let mut frame = next_frame(ws, "the connect response").await?;
        if str_field(&frame, "type") != Some("res") || str_field(&frame, "id") != Some(CONNECT_REQUEST_ID) {
            continue;
        }
        if frame.get("ok").and_then(Value::as_bool) != Some(true) {
            return Err(refusal(frame.get("error").unwrap_or(&Value::Null)));
        }
        let payload = frame.get_mut("payload").map(Value::take).unwrap_or(Value::Null);
        if str_field(&payload, "type") != Some("hello-ok") {
            return Err(UpstreamFailure::Protocol("the connect response is not a hello-ok".into()));
        }
        return Ok(payload);
    }
}

/// An error answer to clawgate's connect: "starting" and rate limits are
/// temporary, everything else is a refusal of clawgate's own configuration.
fn refusal(error: &Value) -> UpstreamFailure {
    let code = str_field(error, "code").unwrap_or("UNKNOWN");
    let message = str_field(error, "message").unwrap_or("connect refused without a message").to_owned();
    let detail = error.get("details").and_then(|d| str_field(d, "code"));
    if code == "UNAVAILABLE" || detail == Some("AUTH_RATE_LIMITED") {
        return UpstreamFailure::Unavailable {
            retry_after_ms: error.get("retryAfterMs").and_then(Value::as_u64).unwrap_or(DEFAULT_RETRY_AFTER_MS),
            reason: format!("{}: {message}", detail.unwrap_or(code)),
        };
    }
    UpstreamFailure::Refused { code: detail.unwrap_or(code).to_owned(), message }
}

#[cfg(test)]
#[path = "connector_tests.rs"]
mod tests;
