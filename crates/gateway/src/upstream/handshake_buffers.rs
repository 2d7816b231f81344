//! The upstream link's WebSocket rebuilt on the same socket once the
//! handshake is done, so that the session does not keep for its whole life
//! the read buffer that grew to the upstream's hello-ok (~15 KiB from
//! OpenClaw 2026.9.6 to a backend client: tungstenite keeps the capacity of
//! the largest frame it read; docs/benchmarks.md, "The relay's path").
//!
//! The socket recorded what it read since the upgrade; the HTTP response and
//! the frames up to the connect response are accounted for byte by byte, and
//! what was read past them goes into the new WebSocket as already read. When
//! the record cannot be accounted for exactly (a fragmented or masked
//! frame, a record that stopped at its limit) the WebSocket is kept as it is.

use serde::Deserialize;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::transport::{ws_config, UpstreamWs, CONNECT_REQUEST_ID};

/// `ws` after its handshake, with fresh buffers when that is safe; it
/// records nothing more either way.
pub async fn shed_handshake_buffers(mut ws: UpstreamWs) -> UpstreamWs {
    let consumed = ws.get_ref().recorded().and_then(consumed_through_connect_response);
    let Some(consumed) = consumed else {
        ws.get_mut().take_recorded();
        return ws;
    };
    let mut io = ws.into_inner();
    let recorded = io.take_recorded().unwrap_or_default();
    let read_ahead = recorded.get(consumed..).unwrap_or_default().to_vec();
    drop(recorded);
    WebSocketStream::from_partially_read(io, read_ahead, Role::Client, Some(ws_config())).await
}

/// How many recorded bytes the HTTP response and the frames through the
/// connect response take, or `None` when that cannot be said exactly.
fn consumed_through_connect_response(recorded: &[u8]) -> Option<usize> {
    let mut at = recorded.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    loop {
        let (payload, end) = frame_at(recorded, at)?;
        if is_connect_response(payload) {
            return Some(end);
        }
        at = end;
    }
}

/// The payload and end of the unfragmented, unmasked frame starting at `at`.
fn frame_at(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let (&first, &second) = (bytes.get(at)?, bytes.get(at + 1)?);
    let (fin, opcode, masked) = (first & 0x80 != 0, first & 0x0f, second & 0x80 != 0);
    if !fin || opcode == 0 || masked || first & 0x70 != 0 {
        return None;
    }
    let (length, header) = match second & 0x7f {
        126 => (u64::from(u16::from_be_bytes(bytes.get(at + 2..at + 4)?.try_into().ok()?)), 4),
        127 => (u64::from_be_bytes(bytes.get(at + 2..at + 10)?.try_into().ok()?), 10),
        short => (u64::from(short), 2),
    };
    let start = at + header;
    let end = start.checked_add(usize::try_from(length).ok()?)?;
    Some((bytes.get(start..end)?, end))
}

fn is_connect_response(payload: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(default)]
        id: Option<&'a str>,
    }
    serde_json::from_slice::<Head<'_>>(payload).is_ok_and(|h| h.kind == "res" && h.id == Some(CONNECT_REQUEST_ID))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &str) -> Vec<u8> {
        let mut out = vec![0x81];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n < 65536 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload.as_bytes());
        out
    }

    #[test]
    fn the_response_and_frames_through_the_connect_response_are_counted() {
        let hello = format!(
            r#"{{"type":"res","id":"{CONNECT_REQUEST_ID}","ok":true,"payload":{{"x":"{}"}}}}"#,
            "y".repeat(70_000)
        );
        let mut recorded = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        recorded.extend(frame(r#"{"type":"event","event":"connect.challenge","payload":{"nonce":"n"}}"#));
        recorded.extend(frame(r#"{"type":"res","id":"other","ok":true}"#));
        recorded.extend(frame(&hello));
        let through = recorded.len();
        recorded.extend(frame(r#"{"type":"event","event":"tick"}"#));
        recorded.extend_from_slice(&[0x81, 0x05, b'{']); // the start of a frame read ahead
        assert_eq!(consumed_through_connect_response(&recorded), Some(through));
    }

    #[test]
    fn anything_not_accounted_for_exactly_is_none() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
        let hello = format!(r#"{{"type":"res","id":"{CONNECT_REQUEST_ID}","ok":true}}"#);
        // Not yet read through the connect response.
        let mut short = head.clone();
        short.extend(&frame(&hello)[..10]);
        assert_eq!(consumed_through_connect_response(&short), None);
        // A fragment (no FIN) before it.
        let mut fragmented = head.clone();
        fragmented.extend([0x01, 0x01, b'{']);
        fragmented.extend(frame(&hello));
        assert_eq!(consumed_through_connect_response(&fragmented), None);
        // No end of the HTTP response.
        assert_eq!(consumed_through_connect_response(b"HTTP/1.1 101\r\n"), None);
    }
}
