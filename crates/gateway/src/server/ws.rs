//! The WebSocket type every connection stage shares, in its own module so
//! the handshake and the session need not import the connection that
//! creates them.

use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

use super::budget::Budgeted;

/// An accepted WebSocket over a budgeted TCP stream.
pub type Ws = WebSocketStream<Budgeted<TcpStream>>;
