//! WebSocket bytes → messages → protocol frames → connect params: what a
//! client's socket carries after the upgrade, decoded as the handshake and
//! the session decode it.

use std::io::{self, Read, Write};

use clawgate_protocol::{ConnectParams, Frame, RequestFrame};
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};

use super::json_eq::same_json;
use crate::server::ws::{incoming, ws_config, Incoming};
use crate::server::ServerOptions;

/// A socket whose peer sent `input` and then went away; what the gateway
/// writes back (pongs, close replies) is dropped.
struct Replay<'a> {
    input: &'a [u8],
}

impl Read for Replay<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Replay<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Raw bytes after the upgrade, read by the WebSocket layer with the
/// gateway's configuration; every text (or UTF-8 binary) message goes on
/// to [`protocol_frame`].
pub fn ws_frame(data: &[u8]) {
    let config = ws_config(ServerOptions::default().max_payload);
    let mut ws = WebSocket::from_raw_socket(Replay { input: data }, Role::Server, Some(config));
    // Every read consumes input or fails; the input is finite.
    while let Ok(message) = ws.read() {
        match incoming(message) {
            Incoming::Text(text) => protocol_frame(&text),
            Incoming::NotUtf8 | Incoming::Control => {}
            Incoming::Close => {}
        }
    }
}

/// One WebSocket text message's bytes (the WebSocket layer has already
/// refused what is not UTF-8).
pub fn request_frame(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        protocol_frame(text);
    }
}

/// The `params` of a connect request, as JSON text.
pub fn connect_params(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    check_connect(Some(&value));
}

/// A text message as the handshake and the session parse it, and as a
/// client (and the upstream relay) reads any frame.
fn protocol_frame(text: &str) {
    let parsed = RequestFrame::parse(text);
    assert_eq!(parsed, RequestFrame::parse(text), "RequestFrame::parse is not deterministic");
    match parsed {
        Ok(frame) => {
            let written = serde_json::to_string(&frame).expect("a request frame serializes");
            let again = RequestFrame::parse(&written).expect("a parsed request frame, written again, parses");
            assert_eq!((&again.id, &again.method, &again.traceparent), (&frame.id, &frame.method, &frame.traceparent));
            assert!(same_params(frame.params.as_ref(), again.params.as_ref()), "params changed in a round trip");
            if frame.method == "connect" {
                check_connect(frame.params.as_ref());
            }
        }
        Err(e) => {
            assert!(!e.reason().is_empty(), "a refusal without a reason");
            assert!(e.id().is_none_or(|id| !id.is_empty()), "an empty id echoed");
        }
    }

    if let Ok(frame) = Frame::parse(text) {
        let written = frame.to_json();
        let again = Frame::parse(&written).expect("a parsed frame, written again, parses");
        let (a, b) = (json(&written), json(&again.to_json()));
        assert!(same_json(&a, &b), "a frame changed in a round trip: {written}");
    }
}

fn same_params(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_json(a, b),
        (a, b) => a.is_none() && b.is_none(),
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("the gateway's own output is JSON")
}

/// Connect params as the handshake checks them, then written and read back.
fn check_connect(params: Option<&Value>) {
    let parsed = ConnectParams::parse(params);
    assert_eq!(parsed, ConnectParams::parse(params), "ConnectParams::parse is not deterministic");
    let Ok(parsed) = parsed else { return };
    let written = serde_json::to_value(&parsed).expect("connect params serialize");
    let again = ConnectParams::parse(Some(&written)).expect("accepted connect params, written again, are accepted");
    let rewritten = serde_json::to_value(&again).expect("connect params serialize");
    assert!(same_json(&written, &rewritten), "connect params changed in a round trip");
    // What admission reads from them first.
    let _ = (parsed.role(), parsed.scopes(), crate::admission::may_read_store(&parsed));
}
