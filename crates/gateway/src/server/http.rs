//! The HTTP side of the one port: read a request head, answer plain HTTP
//! routes and refusals, and complete a WebSocket upgrade by hand so the edge
//! sees every header before any WebSocket exists.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

pub use crate::http_head::{error_body, RequestHead};

/// Largest request head accepted (request line and headers).
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

#[derive(Debug)]
pub enum HeadError {
    Closed,
    TooLarge,
    Malformed(String),
    TimedOut,
    Io,
}

/// Read one request head. Returns it with any bytes read past its end.
/// Generic over the stream so the fuzz targets (`fuzz/`) read through it too.
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<(RequestHead, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        loop {
            let mut chunk = [0u8; 2048];
            let n = stream.read(&mut chunk).await.map_err(|_| HeadError::Io)?;
            if n == 0 {
                return Err(HeadError::Closed);
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let head = RequestHead {
                        method: req.method.unwrap_or("").to_owned(),
                        path: req.path.unwrap_or("/").to_owned(),
                        headers: req
                            .headers
                            .iter()
                            .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
                            .collect(),
                    };
                    return Ok((head, buf[len..].to_vec()));
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => return Err(HeadError::TooLarge),
                Ok(httparse::Status::Partial) => continue,
                Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
                Err(e) => return Err(HeadError::Malformed(e.to_string())),
            }
        }
    };
    tokio::time::timeout(timeout, read).await.unwrap_or(Err(HeadError::TimedOut))
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        421 => "Misdirected Request",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Write a complete HTTP response with a JSON body and close the exchange.
pub async fn respond_json<S: AsyncWrite + Unpin>(stream: &mut S, status: u16, body: &serde_json::Value) {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\ncache-control: no-store\r\n\r\n",
        reason_phrase(status),
        body.len()
    );
    // The peer may already be gone; nothing to do about a failed write.
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Why a WebSocket upgrade request could not be completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadUpgrade {
    NotGet,
    UnsupportedVersion,
    MissingKey,
    /// Writing the 101 response failed.
    Write(String),
}

/// Check the WebSocket handshake headers and write the 101 response.
pub async fn accept_upgrade<S: AsyncWrite + Unpin>(stream: &mut S, head: &RequestHead) -> Result<(), BadUpgrade> {
    if head.method != "GET" {
        return Err(BadUpgrade::NotGet);
    }
    if head.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(BadUpgrade::UnsupportedVersion);
    }
    let Some(key) = head.header("sec-websocket-key") else {
        return Err(BadUpgrade::MissingKey);
    };
    let accept = derive_accept_key(key.trim().as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await.map_err(|e| BadUpgrade::Write(e.to_string()))
}
