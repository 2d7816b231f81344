//! The HTTP relay: one plain HTTP request (or a WebSocket upgrade on a
//! route that is not the gateway's) whose head clawgate already read and
//! checked at its edge, relayed to the upstream, the answer streamed back.
//!
//! - One request per client connection (`Connection: close` after it): every
//!   request passes clawgate's edge checks, which ran on this head only.
//! - Headers and `Authorization` as [`super::http_rules`] says.
//! - Request bodies are bounded ([`HttpRelayOptions::max_body_bytes`]); a
//!   larger one is answered 413.
//! - Responses stream as they come (server-sent events, chunked bodies).
//! - After a `101 Switching Protocols` from the upstream both connections
//!   are joined as raw byte streams until either side ends.
//! - An unreachable upstream (or one whose TCP connect does not complete
//!   within the handshake timeout) is 503 `upstream_unavailable` with
//!   `Retry-After`; a broken exchange after connecting is 502
//!   `upstream_bad_response`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::config::UpstreamConfig;
use super::http_rules::{
    authorization_action, bearer, connection_tokens, drop_hop_header, drop_request_header, forwarded_for,
    is_secret_swap_path, AuthorizationAction, CredentialVerdict,
};
use super::transport::connect_tcp;
use crate::http_head::RequestHead;

/// Largest request body relayed by default.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct HttpRelayOptions {
    pub max_body_bytes: u64,
    /// More request headers (lower-case) never to pass, e.g. the trusted
    /// proxy's user header and required headers.
    pub strip_headers: Vec<String>,
}

impl Default for HttpRelayOptions {
    fn default() -> Self {
        HttpRelayOptions { max_body_bytes: DEFAULT_MAX_BODY_BYTES, strip_headers: Vec::new() }
    }
}

/// What the caller's verifier is asked about one request.
#[derive(Debug)]
pub struct CredentialQuery<'a> {
    pub peer: SocketAddr,
    /// The request target (path and query).
    pub target: &'a str,
    /// The target is one of the Control UI's credential routes
    /// ([`super::http_rules::is_secret_swap_path`]).
    pub swap_path: bool,
    /// The `Authorization: Bearer` credential, if any.
    pub bearer: Option<&'a str>,
    /// The request's headers, names lower-case.
    pub headers: &'a [(String, String)],
}

/// The caller's check of a presented credential.
pub type CredentialVerifier = Arc<dyn Fn(&CredentialQuery<'_>) -> CredentialVerdict + Send + Sync>;

type RelayBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Relay one request. `head` and `leftover` are what `read_head` returned;
/// the exchange (and an upgraded stream) is over when this returns.
pub async fn relay_http(
    upstream: Arc<UpstreamConfig>,
    options: Arc<HttpRelayOptions>,
    head: RequestHead,
    leftover: Vec<u8>,
    client: TcpStream,
    peer: SocketAddr,
    verify: CredentialVerifier,
) {
    let io = Replayed { prefix: rebuild_head(&head, &leftover), at: 0, inner: client };
    let joined: JoinedSlot = Arc::default();
    let slot = joined.clone();
    let service = hyper::service::service_fn(move |req| {
        let (upstream, options, verify, slot) = (upstream.clone(), options.clone(), verify.clone(), slot.clone());
        async move { Ok::<_, Infallible>(relay_one(req, &upstream, &options, peer, &verify, &slot).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "relayed HTTP exchange ended with an error");
    }
    let upgraded = joined.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(streams) = upgraded {
        let _ = streams.await;
    }
}

/// The task joining an upgraded client and upstream stream, awaited before
/// [`relay_http`] returns so nothing outlives it.
type JoinedSlot = Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>;

/// The request head as bytes again, followed by what was read past it.
fn rebuild_head(head: &RequestHead, leftover: &[u8]) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", head.method, head.path).into_bytes();
    for (name, value) in &head.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(leftover);
    out
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response<RelayBody> {
    let body = crate::http_head::error_body(code, message).to_string();
    let mut resp = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert("retry-after", HeaderValue::from_static("2"));
    }
    resp
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    let has = |name: HeaderName, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    req.headers().contains_key(UPGRADE) && has(CONNECTION, "upgrade")
}

async fn relay_one(
    mut req: Request<Incoming>,
    upstream: &UpstreamConfig,
    options: &HttpRelayOptions,
    peer: SocketAddr,
    verify: &CredentialVerifier,
    joined: &JoinedSlot,
) -> Response<RelayBody> {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > options.max_body_bytes) {
        return json_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large");
    }
    let upgrade = is_upgrade(&req);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let presented = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer).map(str::to_owned);
    let swap = is_secret_swap_path(req.method().as_str(), &target);
    let verdict = if presented.is_some() || swap {
        verify(&CredentialQuery {
            peer,
            target: &target,
            swap_path: swap,
            bearer: presented.as_deref(),
            headers: &headers,
        })
    } else {
        CredentialVerdict::Foreign
    };
    let action = authorization_action(swap, presented.is_some(), verdict);
    if action == AuthorizationAction::Refuse {
        return json_error(StatusCode::UNAUTHORIZED, "unauthorized", "the presented credential was refused");
    }

    let (parts, body) = req.into_parts();
    let tokens = connection_tokens(parts.headers.get_all(CONNECTION).iter().filter_map(|v| v.to_str().ok()));
    let mut builder = Request::builder().method(parts.method).uri(target);
    for (name, value) in &parts.headers {
        if drop_request_header(name.as_str(), upgrade, &tokens, &options.strip_headers) {
            continue;
        }
        if name == AUTHORIZATION && action != AuthorizationAction::Keep {
            continue;
        }
        builder = builder.header(name, value);
    }
    if action == AuthorizationAction::UseUpstreamSecret {
        match HeaderValue::from_str(&format!("Bearer {}", upstream.secret.value.reveal())) {
            Ok(v) => builder = builder.header(AUTHORIZATION, v),
            Err(_) => {
                return json_error(StatusCode::BAD_GATEWAY, "upstream_bad_secret", "the upstream secret cannot be sent")
            }
        }
    }
    if let Some(ip) = forwarded_for(upstream.forward_client_address, peer.ip()) {
        builder = builder.header("x-forwarded-for", ip);
    }
    let too_large = Arc::new(AtomicBool::new(false));
    let flag = too_large.clone();
    let body: RelayBody = Limited::new(body, options.max_body_bytes as usize)
        .map_err(move |e| {
            if e.is::<LengthLimitError>() {
                flag.store(true, Ordering::SeqCst);
            }
            e
        })
        .boxed();
    let Ok(up_req) = builder.body(body) else {
        return json_error(StatusCode::BAD_REQUEST, "bad_request", "the request cannot be relayed");
    };

    // Only the connect is bounded (a frozen upstream with a full backlog
    // would hold it for minutes): an answer itself may legitimately take long.
    let connect = tokio::time::timeout(upstream.timeouts.handshake, connect_tcp(&upstream.url));
    let connected =
        connect.await.unwrap_or_else(|_| Err(super::failure::UpstreamFailure::unavailable("connect timed out")));
    let tcp = match connected {
        Ok(tcp) => tcp,
        Err(e) => {
            tracing::warn!(error = %e, "HTTP relay: upstream unreachable");
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                "the upstream gateway is unavailable",
            );
        }
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await {
        Ok(pair) => pair,
        Err(_) => {
            return json_error(StatusCode::BAD_GATEWAY, "upstream_bad_response", "the upstream gateway did not answer")
        }
    };
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut resp = match sender.send_request(up_req).await {
        Ok(resp) => resp,
        Err(_) if too_large.load(Ordering::SeqCst) => {
            return json_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
        }
        Err(e) => {
            tracing::warn!(error = %e, "HTTP relay: upstream exchange failed");
            return json_error(StatusCode::BAD_GATEWAY, "upstream_bad_response", "the upstream gateway did not answer");
        }
    };

    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(client_upgrade)) = (switching, client_upgrade) {
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let task = tokio::spawn(async move {
            if let (Ok(client), Ok(up)) = (client_upgrade.await, upstream_upgrade.await) {
                let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(up)).await;
            }
        });
        *joined.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }
    let (mut parts, body) = resp.into_parts();
    let tokens = connection_tokens(parts.headers.get_all(CONNECTION).iter().filter_map(|v| v.to_str().ok()));
    let names: Vec<HeaderName> = parts.headers.keys().cloned().collect();
    for name in names {
        if drop_hop_header(name.as_str(), switching, &tokens) {
            parts.headers.remove(&name);
        }
    }
    Response::from_parts(parts, body.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>).boxed())
}

/// The client connection with the already-read head put back in front.
struct Replayed {
    prefix: Vec<u8>,
    at: usize,
    inner: TcpStream,
}

impl AsyncRead for Replayed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = (self.prefix.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replayed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "http_relay_tests.rs"]
mod tests;
