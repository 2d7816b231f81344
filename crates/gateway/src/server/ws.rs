//! The WebSocket type every connection stage shares, its configuration, and
//! what a received message means to a stage, in their own module so the
//! handshake and the session need not import the connection that creates
//! them (and the fuzz targets decode frames exactly as they do).

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::budget::Budgeted;

/// An accepted WebSocket over a budgeted TCP stream.
pub type Ws = WebSocketStream<Budgeted<TcpStream>>;

/// Read buffer of each WebSocket (measured in docs/benchmarks.md).
const WS_READ_BUFFER: usize = 4 * 1024;

/// The WebSocket layer's limits for a gateway whose largest frame after
/// hello-ok is `max_payload` (the pre-auth limit is the byte budget's).
///
/// tungstenite's default 128 KiB read buffer is allocated per connection
/// and zero-filled before every read: 128 KiB of RSS per idle connection
/// and a 128 KiB memset per frame. 4 KiB covers every handshake and
/// request frame but the largest; a larger one still gets its full length
/// reserved and is read 4 KiB at a time.
pub fn ws_config(max_payload: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(Some(max_payload))
        .max_frame_size(Some(max_payload))
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
