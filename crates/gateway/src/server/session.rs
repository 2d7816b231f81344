//! After hello-ok: read requests, authorize and answer them, until the peer
//! leaves, the gateway shuts down, or the connection is killed.

use std::sync::Arc;

use clawgate_protocol::frame::FrameError;
use clawgate_protocol::{Frame, RequestFrame, ResponseFrame};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::handshake::Admitted;
use super::outbox::Outbox;
use super::wire::{self, RequestError};
use super::ws::{incoming, Incoming, Ws};
use super::{methods, Gateway};

/// `writer` is the task draining `out` into the socket; when it ends (a close
/// was sent, or the peer stopped reading) the session ends too.
/// The 11th consecutive "unauthorized role" answer closes the connection.
const MAX_CONSECUTIVE_ROLE_ERRORS: u32 = 10;

/// What the session leaves behind: the socket, when the peer may still be
/// sending and must be drained for it to read the close frame (see
/// [`super::connection`]).
pub enum Ended {
    Done,
    Drain(Box<Ws>),
}

pub async fn run(
    gw: &Arc<Gateway>,
    admitted: Admitted,
    mut stream: SplitStream<Ws>,
    out: Outbox,
    mut writer: JoinHandle<SplitSink<Ws, Message>>,
) -> Ended {
    let info = admitted.info;
    let _node_id = admitted.node_id;
    let _registration = admitted.registration;
    let relay = admitted.relay.map(|pending| pending.start(out.clone()));
    let mut killed = out.killed();
    let mut role_errors = 0u32;
    let mut writer_done = false;
    let mut sink = None;
    let mut too_large = false;
    // What hello-ok announced as policy.maxPayload for this session.
    let max_payload = super::payload_policy::max_payload(info.role, &info.scopes, gw.options.max_payload);
    loop {
        let next = tokio::select! {
            _ = killed.changed() => break,
            done = &mut writer => {
                sink = done.ok();
                writer_done = true;
                break;
            }
            next = stream.next() => next,
        };
        let text = match next.map(|n| n.map(incoming)) {
            None | Some(Ok(Incoming::Close)) => break,
            Some(Ok(Incoming::Text(t))) => t,
            Some(Ok(Incoming::NotUtf8 | Incoming::Control)) => continue,
            Some(Err(WsError::Capacity(_))) => {
                out.kill(wire::CLOSE_TOO_LARGE, "payload too large");
                too_large = true;
                break;
            }
            Some(Err(_)) => break,
        };
        if text.len() > max_payload {
            out.kill(wire::CLOSE_TOO_LARGE, "payload too large");
            too_large = true;
            break;
        }
        let response = match RequestFrame::parse(&text) {
            // The session is admitted already: a second connect is answered,
            // not relayed or served, and the socket stays usable.
            Ok(req) if req.method == "connect" => {
                ResponseFrame::err(req.id, wire::request(&RequestError::ConnectAfterHello))
            }
            Ok(req) => {
                gw.metrics.rpc_request(&req.method);
                let authorized = methods::authorize(&req.method, &info);
                // The flood guard: a client that keeps calling methods of the
                // other role is misbehaving, not confused.
                if matches!(authorized, Err(RequestError::UnauthorizedRole { .. })) {
                    role_errors += 1;
                    if role_errors > MAX_CONSECUTIVE_ROLE_ERRORS {
                        out.kill(wire::CLOSE_POLICY, "repeated unauthorized calls");
                        break;
                    }
                } else {
                    role_errors = 0;
                }
                match authorized {
                    Err(e) => ResponseFrame::err(req.id, wire::request(&e)),
                    // Upstream mode: the upstream's methods go up as sent.
                    Ok(()) if relay.is_some() && methods::is_relayed(&req.method, true) => {
                        let Some(link) = relay.as_ref() else { continue };
                        let forwarded = tokio::select! {
                            _ = killed.changed() => break,
                            forwarded = link.forward(&req.id, &req.method, text) => forwarded,
                        };
                        // The link is gone: it is closing the session with 1012;
                        // this request gets its error first.
                        if forwarded.is_err() {
                            let _ = out.text(crate::upstream::link_lost_answer(&req.id));
                            break;
                        }
                        continue;
                    }
                    // Calls that wait on another party (a node) run beside the
                    // loop so this session keeps answering meanwhile.
                    Ok(()) if methods::is_long_running(&req.method) => {
                        let (gw, info, out) = (gw.clone(), info.clone(), out.clone());
                        tokio::spawn(async move {
                            let response = respond(methods::serve(&gw, &info, &req.method, req.params).await, req.id);
                            let _ = out.text(Frame::Res(response).to_json());
                        });
                        continue;
                    }
                    Ok(()) => respond(methods::serve(gw, &info, &req.method, req.params).await, req.id),
                }
            }
            // Unparsable JSON after auth is logged and ignored (as OpenClaw does).
            Err(FrameError::NotJson(e)) => {
                tracing::debug!(conn_id = %info.conn_id, error = %e, "ignoring unparsable frame");
                continue;
            }
            Err(e) => {
                let id = e.id().unwrap_or("invalid").to_owned();
                ResponseFrame::err(id, wire::request(&RequestError::InvalidFrame(e.reason().to_owned())))
            }
        };
        if out.text(Frame::Res(response).to_json()).is_err() {
            break;
        }
    }
    gw.invokes.connection_closed(&info.conn_id);
    if let Some(link) = relay {
        link.close().await;
    }
    // Let the writer finish what is queued and close the socket.
    if !writer_done {
        let _ = out.push(super::outbox::Outbound::Close { code: wire::CLOSE_NORMAL, reason: String::new() });
        sink = writer.await.ok();
    }
    // The rest of an oversized frame is still on its way: closing now would
    // reset the connection and lose the close frame with it.
    match sink.map(|sink| stream.reunite(sink)) {
        Some(Ok(ws)) if too_large => Ended::Drain(Box::new(ws)),
        _ => Ended::Done,
    }
}

fn respond(result: Result<serde_json::Value, RequestError>, id: String) -> ResponseFrame {
    match result {
        Ok(payload) => ResponseFrame::ok(id, payload),
        Err(e) => ResponseFrame::err(id, wire::request(&e)),
    }
}
