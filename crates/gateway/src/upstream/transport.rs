//! The byte stream under an upstream WebSocket: TCP to the configured host,
//! with no headers of clawgate's own on the upgrade besides the required ones.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::WebSocketStream;

use super::config::{UpstreamScheme, UpstreamUrl};
use super::failure::UpstreamFailure;

/// The connection to the upstream, as the WebSocket runs over it.
pub struct UpstreamIo {
    inner: TcpStream,
    /// From the upgrade until the handshake is done: every byte read (up to
    /// [`RECORD_LIMIT`]), so that the WebSocket can be rebuilt afterwards
    /// without losing what it read ahead (`handshake_buffers.rs`).
    recorded: Option<Vec<u8>>,
}

/// Past this many bytes read, recording stops (and the rebuild is skipped).
const RECORD_LIMIT: usize = 4 * 1024 * 1024;

impl UpstreamIo {
    /// What was read while recording; recording ends.
    pub(super) fn take_recorded(&mut self) -> Option<Vec<u8>> {
        self.recorded.take()
    }

    pub(super) fn recorded(&self) -> Option<&[u8]> {
        self.recorded.as_deref()
    }
}

impl AsyncRead for UpstreamIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(recorded)) = (&read, this.recorded.as_mut()) {
            let new = &buf.filled()[before..];
            if recorded.len() + new.len() > RECORD_LIMIT {
                this.recorded = None;
            } else {
                recorded.extend_from_slice(new);
            }
        }
        read
    }
}

impl AsyncWrite for UpstreamIo {
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

pub type UpstreamWs = WebSocketStream<UpstreamIo>;

/// The link's WebSocket settings (also for its rebuild after the handshake).
pub(super) fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    // Frames after hello-ok may be as large as the upstream's own limit;
    // they are read 4 KiB at a time (as the downstream's are).
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .max_message_size(Some(26 * 1024 * 1024))
        .max_frame_size(Some(26 * 1024 * 1024))
}

/// Open a TCP connection to the upstream. Refused and unreachable are
/// "unavailable": the upstream may be restarting.
pub async fn connect_tcp(url: &UpstreamUrl) -> Result<TcpStream, UpstreamFailure> {
    if url.scheme == UpstreamScheme::Wss {
        // Refused at start-up already (see config); kept for direct callers.
        return Err(UpstreamFailure::Protocol("wss:// upstreams are not supported by this build".into()));
    }
    let stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| UpstreamFailure::unavailable(format!("cannot connect to {}: {e}", url.authority())))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The upgrade request: the URL's path, `Host` set to the downstream's (or
/// the upstream's own when there is none), a browser's `Origin` when given,
/// and nothing else of ours.
fn upgrade_request(url: &UpstreamUrl, host: Option<&str>, origin: Option<&str>) -> Result<Request, UpstreamFailure> {
    let mut request = format!("ws://{}{}", url.authority(), url.path)
        .into_client_request()
        .map_err(|e| UpstreamFailure::Protocol(format!("bad upstream URL: {e}")))?;
    if let Some(host) = host.map(str::trim).filter(|h| !h.is_empty()) {
        let value = HeaderValue::from_str(host)
            .map_err(|_| UpstreamFailure::Protocol("the downstream Host header is not a valid value".into()))?;
        request.headers_mut().insert("host", value);
    }
    if let Some(origin) = origin.map(str::trim).filter(|o| !o.is_empty()) {
        let value = HeaderValue::from_str(origin)
            .map_err(|_| UpstreamFailure::Protocol("the downstream Origin header is not a valid value".into()))?;
        request.headers_mut().insert("origin", value);
    }
    Ok(request)
}

/// Connect and upgrade, recording what is read until
/// [`UpstreamIo::take_recorded`]. An HTTP 503 (OpenClaw's answer when too many
/// handshakes from one address are unfinished) is "unavailable" with its
/// `Retry-After`.
pub async fn open_websocket(
    url: &UpstreamUrl,
    host: Option<&str>,
    origin: Option<&str>,
) -> Result<UpstreamWs, UpstreamFailure> {
    let request = upgrade_request(url, host, origin)?;
    let tcp = connect_tcp(url).await?;
    match tokio_tungstenite::client_async_with_config(
        request,
        UpstreamIo { inner: tcp, recorded: Some(Vec::new()) },
        Some(ws_config()),
    )
    .await
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let retry_after_ms = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| s.saturating_mul(1000));
            let body = resp.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            let reason = format!("upgrade answered HTTP {status}: {}", body.trim());
            if status == 503 || status == 429 {
                Err(UpstreamFailure::Unavailable {
                    retry_after_ms: retry_after_ms.unwrap_or(super::failure::DEFAULT_RETRY_AFTER_MS),
                    reason,
                })
            } else {
                Err(UpstreamFailure::Refused { code: format!("HTTP_{status}"), message: reason })
            }
        }
        Err(e) => Err(UpstreamFailure::unavailable(format!("WebSocket upgrade failed: {e}"))),
    }
}

/// The request id of clawgate's `connect` on an upstream connection.
pub const CONNECT_REQUEST_ID: &str = "clawgate-connect";
