//! The WebSocket type every connection stage shares, its configuration, and
//! what a received message means to a stage, in their own module so the
//! handshake and the session need not import the connection that creates
//! them (and the fuzz targets decode frames exactly as they do).

use futures_util::SinkExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::budget::Budgeted;

/// An accepted WebSocket over a budgeted TCP stream.
pub type Ws = WebSocketStream<Budgeted<TcpStream>>;

/// Read buffer of each WebSocket (measured in docs/benchmarks.md).
const WS_READ_BUFFER: usize = 1024;

/// The WebSocket layer's limits for a gateway whose largest frame after
/// hello-ok is `max_payload` (the pre-auth limit is the byte budget's).
///
/// tungstenite's default 128 KiB read buffer is allocated per connection
/// and zero-filled before every read: 128 KiB of RSS per idle connection
/// and a 128 KiB memset per frame. 1 KiB holds the usual request; a
/// larger frame (a `connect` with a device proof may be one) still gets its
/// full length reserved and is read 1 KiB per read call. Smaller is less memory
/// per idle connection, and less to zero each time the socket is polled
/// (tungstenite zero-fills the free part before every read, also one that
/// finds nothing), which every broadcast recipient pays.
pub fn ws_config(max_payload: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(Some(max_payload))
        .max_frame_size(Some(max_payload))
}

/// Write one text frame straight to the socket instead of through
/// tungstenite's write buffer: that buffer keeps the capacity of the
/// largest frame it ever held for the connection's whole life, and the
/// handshake's frames (hello-ok above all, a few KiB) are the largest an
/// idle connection ever sends. Whatever tungstenite still holds (a pong)
/// goes out first, so frames keep their order.
pub async fn send_text_unbuffered(ws: &mut Ws, text: &str) -> Result<(), WsError> {
    ws.flush().await?;
    let mut frame = Vec::with_capacity(text.len() + 10);
    push_text_frame(&mut frame, text.as_bytes());
    ws.get_mut().write_all(&frame).await?;
    Ok(())
}

/// Append `payload` as one unmasked, final text frame (RFC 6455 §5.2; a
/// server's frames are never masked).
fn push_text_frame(out: &mut Vec<u8>, payload: &[u8]) {
    const FIN_TEXT: u8 = 0x81;
    out.push(FIN_TEXT);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// What one received WebSocket message is to the protocol.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A text frame, or a binary one holding UTF-8 (decoded as text, as
    /// OpenClaw does): one protocol frame to parse.
    Text(String),
    /// A binary frame that is not UTF-8.
    NotUtf8,
    /// Ping, pong or a raw frame: nothing for the protocol.
    Control,
    /// The peer is closing.
    Close,
}

pub fn incoming(message: Message) -> Incoming {
    match message {
        Message::Text(t) => Incoming::Text(t.to_string()),
        Message::Binary(b) => match String::from_utf8(b.to_vec()) {
            Ok(t) => Incoming::Text(t),
            Err(_) => Incoming::NotUtf8,
        },
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Incoming::Control,
        Message::Close(_) => Incoming::Close,
    }
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

    use super::push_text_frame;

    /// Every length encoding reads back as the same text frame.
    #[test]
    fn unbuffered_frames_are_what_tungstenite_reads() {
        for len in [0usize, 1, 125, 126, 127, 0xFFFF, 0x10000, 70_000] {
            let payload = "x".repeat(len);
            let mut framed = Vec::new();
            push_text_frame(&mut framed, payload.as_bytes());
            let mut cursor = std::io::Cursor::new(&framed[..]);
            let (header, length) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert!(header.is_final);
            assert_eq!(
                header.opcode,
                tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
                    tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text
                )
            );
            assert!(header.mask.is_none());
            assert_eq!(length, len as u64);
            assert_eq!(&framed[cursor.position() as usize..], payload.as_bytes());
        }
    }
}
