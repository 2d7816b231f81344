//! After hello-ok: read requests, authorize and answer them, until the peer
//! leaves, the gateway shuts down, or the connection is killed.

use std::sync::Arc;
use std::time::Duration;

use clawgate_protocol::frame::FrameError;
use clawgate_protocol::{Frame, RequestFrame, ResponseFrame};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::handshake::Admitted;
use super::outbox::{close_message, Drained, Outbox, OutboxReceiver};
use super::wire::{self, RequestError};
use super::ws::{incoming, Incoming, Ws};
use super::{methods, Gateway};

/// The 11th consecutive "unauthorized role" answer closes the connection.
const MAX_CONSECUTIVE_ROLE_ERRORS: u32 = 10;

/// How long a closing connection may take to get its close frame out.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What the session leaves behind: the socket, when the peer may still be
/// sending and must be drained for it to read the close frame (see
/// [`super::connection`]).
pub enum Ended {
    Done,
    Drain(Box<Ws>),
}

/// Why the loop ended, which decides how the socket is closed.
enum Exit {
    /// The peer left or sent garbage: what is queued still goes out, then
    /// a normal close.
    Normal,
    /// Killed (revoked, slow consumer, oversized frame…): the kill's close
    /// frame, nothing queued.
    Killed,
    /// A queued close frame went out, or the socket failed: only close.
    Closed,
}

type KillWatch = watch::Receiver<Option<(u16, String)>>;

/// One task per connection: it reads requests and writes their answers
/// straight to the socket, and between requests writes what other tasks
/// queued in its outbox (`queue`). A write blocked on a peer that stopped
/// reading still ends at a kill.
pub async fn run(gw: &Arc<Gateway>, admitted: Admitted, mut ws: Ws, out: Outbox, mut queue: OutboxReceiver) -> Ended {
    let info = admitted.info;
    let _node_id = admitted.node_id;
    let _registration = admitted.registration;
    let relay = admitted.relay.map(|pending| pending.start(out.clone()));
    let mut killed = out.killed();
    let mut role_errors = 0u32;
    let mut too_large = false;
    // What hello-ok announced as policy.maxPayload for this session.
    let max_payload = super::payload_policy::max_payload(info.role, &info.scopes, gw.options.max_payload);
    let exit = loop {
        let woken = tokio::select! {
            biased;
            _ = killed.wait_for(Option::is_some) => break Exit::Killed,
            _ = queue.ready() => None,
            next = ws.next() => Some(next),
        };
        let Some(next) = woken else {
            match write_queued(&mut ws, &mut queue, &mut killed).await {
                Ok(()) => continue,
                Err(exit) => break exit,
            }
        };
        let text = match next.map(|n| n.map(incoming)) {
            None | Some(Ok(Incoming::Close)) => break Exit::Normal,
            Some(Ok(Incoming::Text(t))) => t,
            Some(Ok(Incoming::NotUtf8 | Incoming::Control)) => continue,
            Some(Err(WsError::Capacity(_))) => {
                out.kill(wire::CLOSE_TOO_LARGE, "payload too large");
                too_large = true;
                break Exit::Killed;
            }
            Some(Err(_)) => break Exit::Normal,
        };
        if text.len() > max_payload {
            out.kill(wire::CLOSE_TOO_LARGE, "payload too large");
            too_large = true;
            break Exit::Killed;
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
                        break Exit::Killed;
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
                            _ = killed.wait_for(Option::is_some) => break Exit::Killed,
                            forwarded = link.forward(&req.id, &req.method, text) => forwarded,
                        };
                        // The link is gone: it is closing the session with 1012;
                        // this request gets its error first.
                        if forwarded.is_err() {
                            let _ = out.text(crate::upstream::link_lost_answer(&req.id));
                            break Exit::Normal;
                        }
                        continue;
                    }
                    // Calls that wait on another party (a node) run beside the
                    // loop so this session keeps answering meanwhile; their
                    // answer comes back through the outbox.
                    Ok(()) if methods::is_long_running(&req.method) => {
                        let (gw, info, out) = (gw.clone(), info.clone(), out.clone());
                        tokio::spawn(async move {
                            let response = respond(methods::serve(&gw, &info, &req.method, req.params).await, req.id);
                            let _ = out.text(Frame::Res(response).to_json());
                        });
                        continue;
                    }
                    // Boxed: the method table's futures are large, and an
                    // idle connection should not carry their room.
                    Ok(()) => respond(Box::pin(methods::serve(gw, &info, &req.method, req.params)).await, req.id),
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
        // Our own answer: straight to the socket, no queue, no other task.
        let frame = Message::Text(Frame::Res(response).to_json().into());
        let written = tokio::select! {
            biased;
            _ = killed.wait_for(Option::is_some) => break Exit::Killed,
            written = ws.send(frame) => written,
        };
        if written.is_err() {
            break Exit::Closed;
        }
    };
    gw.invokes.connection_closed(&info.conn_id);
    if let Some(link) = relay {
        link.close().await;
    }
    close(&mut ws, &mut queue, &mut killed, exit).await;
    // The rest of an oversized frame is still on its way: closing now would
    // reset the connection and lose the close frame with it.
    if too_large {
        Ended::Drain(Box::new(ws))
    } else {
        Ended::Done
    }
}

/// Write what is queued, unless the connection is killed meanwhile.
async fn write_queued(ws: &mut Ws, queue: &mut OutboxReceiver, killed: &mut KillWatch) -> Result<(), Exit> {
    let drained = tokio::select! {
        biased;
        _ = killed.wait_for(Option::is_some) => return Err(Exit::Killed),
        drained = queue.write_queued(ws) => drained,
    };
    match drained {
        Drained::Open => Ok(()),
        Drained::Closed | Drained::Failed => Err(Exit::Closed),
    }
}

/// End the connection as `exit` says, within [`CLOSE_GRACE`] for the frames
/// that are the peer's to read.
async fn close(ws: &mut Ws, queue: &mut OutboxReceiver, killed: &mut KillWatch, exit: Exit) {
    let exit = match exit {
        Exit::Normal => {
            // What is queued goes out first, then the normal close.
            let normal = async {
                write_queued(ws, queue, killed).await?;
                let bye = async {
                    let _ = ws.send(close_message(wire::CLOSE_NORMAL, "")).await;
                    let _ = SinkExt::close(ws).await;
                };
                let _ = tokio::time::timeout(CLOSE_GRACE, bye).await;
                Ok(())
            };
            match normal.await {
                Ok(()) => return,
                Err(exit) => exit,
            }
        }
        other => other,
    };
    let reason = if matches!(exit, Exit::Killed) { queue.kill_reason() } else { None };
    let finish = async {
        if let Some((code, reason)) = reason {
            let _ = ws.send(close_message(code, &reason)).await;
        }
        let _ = SinkExt::close(ws).await;
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, finish).await;
}

fn respond(result: Result<serde_json::Value, RequestError>, id: String) -> ResponseFrame {
    match result {
        Ok(payload) => ResponseFrame::ok(id, payload),
        Err(e) => ResponseFrame::err(id, wire::request(&e)),
    }
}
