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
}

impl AsyncRead for UpstreamIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
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

fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    // Frames after hello-ok may be as large as the upstream's own limit.
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .max_message_size(Some(26 * 1024 * 1024))
        .max_frame_size(Some(26 * 1024 * 1024))
}

/// Connect and upgrade. An HTTP 503 (OpenClaw's answer when too many
/// handshakes from one address are unfinished) is "unavailable" with its
/// `Retry-After`.
pub async fn open_websocket(
    url: &UpstreamUrl,
    host: Option<&str>,
    origin: Option<&str>,
) -> Result<UpstreamWs, UpstreamFailure> {
    let request = upgrade_request(url, host, origin)?;
    let tcp = connect_tcp(url).await?;
    match tokio_tungstenite::client_async_with_config(request, UpstreamIo { inner: tcp }, Some(ws_config())).await {
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
