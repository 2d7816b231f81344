//! After hello-ok: read requests, authorize and answer them, until the peer
//! leaves, the gateway shuts down, or the connection is killed.

use std::sync::Arc;
use std::time::Duration;

use clawgate_protocol::frame::FrameError;
use clawgate_protocol::{Frame, RequestFrame, ResponseFrame};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::handshake::Admitted;
use super::outbox::{close_message, Drained, Outbox, OutboxReceiver};
use super::registry::SessionInfo;
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

/// At most this many requests are answered before their answers go out:
/// a client pipelining many requests still gets answers while it sends.
const MAX_BATCH: usize = 32;

/// What one received message asks of the session.
enum Step {
    /// Write this answer.
    Answer(String),
    /// Nothing to write now (ignored frame, relayed or long-running call).
    Quiet,
    /// End the session.
    End(Exit),
}

/// What serving a request needs besides the socket and the queue.
struct Serving<'a> {
    gw: &'a Arc<Gateway>,
    info: &'a Arc<SessionInfo>,
    out: &'a Outbox,
    relay: Option<&'a crate::upstream::RelayLink>,
    role_errors: u32,
    too_large: bool,
    /// What hello-ok announced as policy.maxPayload for this session.
    max_payload: usize,
}

/// One task per connection: it reads requests and writes their answers
/// straight to the socket, and between requests writes what other tasks
/// queued in its outbox (`queue`). Requests that arrived together are
/// answered together: their answers, and what was queued meanwhile, leave
/// in one write. A write blocked on a peer that stopped reading still ends
/// at a kill.
pub async fn run(gw: &Arc<Gateway>, admitted: Admitted, mut ws: Ws, out: Outbox, mut queue: OutboxReceiver) -> Ended {
    let info = admitted.info;
    let _node_id = admitted.node_id;
    let _registration = admitted.registration;
    let relay = admitted.relay.map(|pending| pending.start(out.clone()));
    let mut killed = out.killed();
    let mut serving = Serving {
        gw,
        info: &info,
        out: &out,
        relay: relay.as_ref(),
        role_errors: 0,
        too_large: false,
        max_payload: super::payload_policy::max_payload(info.role, &info.scopes, gw.options.max_payload),
    };
    let exit = loop {
        // A kill wakes the queue too; waiting on the kill watch as well
        // would cost a registration per wait.
        let woken = tokio::select! {
            biased;
            _ = queue.ready() => None,
            next = ws.next() => Some(next),
        };
        if queue.is_killed() {
            break Exit::Killed;
        }
        // Boxed, as the close below: an idle connection's task then holds
        // only what waits for input, not the room of serving a request.
        if let Err(exit) = Box::pin(serve_batch(&mut serving, &mut ws, &mut queue, &mut killed, woken)).await {
            break exit;
        }
    };
    let too_large = serving.too_large;
    gw.invokes.connection_closed(&info.conn_id);
    if let Some(link) = relay {
        link.close().await;
    }
    Box::pin(close(&mut ws, &mut queue, &mut killed, exit)).await;
    // The rest of an oversized frame is still on its way: closing now would
    // reset the connection and lose the close frame with it.
    if too_large {
        Ended::Drain(Box::new(ws))
    } else {
        Ended::Done
    }
}

type Received = Option<Result<Message, WsError>>;

/// Serve `first` (when the session was woken by a message) and every
/// message already received behind it, up to [`MAX_BATCH`], feeding each
/// answer, and after it what other tasks queued meanwhile (in the order
/// the session used to write them one by one), into the socket's write
/// buffer; then write it all with one flush. Answers fed before a step
/// that ends the session still go out with the close.
async fn serve_batch(
    serving: &mut Serving<'_>,
    ws: &mut Ws,
    queue: &mut OutboxReceiver,
    killed: &mut KillWatch,
    first: Option<Received>,
) -> Result<(), Exit> {
    let mut next = first;
    let mut served = 0;
    loop {
        if let Some(received) = next.take() {
            // Killed (say, revoked) while serving this batch: nothing more
            // is served.
            if queue.is_killed() {
                return Err(Exit::Killed);
            }
            served += 1;
            match serving.serve(received, killed).await {
                Step::Answer(text) => guarded(killed, ws.feed(Message::Text(text.into()))).await?,
                Step::Quiet => {}
                Step::End(exit) => return Err(exit),
            }
        }
        // A queued close frame (sent at once) or a failed write ends it.
        guarded(killed, queue.feed_queued(ws, MAX_BATCH)).await?;
        if served == 0 || served >= MAX_BATCH {
            break;
        }
        // Another request already here (in the read buffer, or readable
        // without waiting)? Then its answer joins this write.
        match ws.next().now_or_never() {
            Some(received) => next = Some(received),
            None => break,
        }
    }
    guarded(killed, ws.flush()).await?;
    // More than a batch may have been queued meanwhile: the rest too.
    write_queued(ws, queue, killed).await
}

/// `write` unless the connection is killed first; a failed write ends the
/// session. Most writes complete at once: only one that waits on the peer
/// also watches for the kill (watching costs a registration each time).
async fn guarded<T, E>(
    killed: &mut KillWatch,
    write: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, Exit> {
    let mut write = std::pin::pin!(write);
    let written = match write.as_mut().now_or_never() {
        Some(written) => written,
        None => tokio::select! {
            biased;
            _ = killed.wait_for(Option::is_some) => return Err(Exit::Killed),
            written = write => written,
        },
    };
    written.map_err(|_| Exit::Closed)
}

impl Serving<'_> {
    /// One received message: the answer to write, if any.
    async fn serve(&mut self, received: Received, killed: &mut KillWatch) -> Step {
        let (gw, info, out) = (self.gw, self.info, self.out);
        let text = match received.map(|n| n.map(incoming)) {
            None | Some(Ok(Incoming::Close)) => return Step::End(Exit::Normal),
            Some(Ok(Incoming::Text(t))) => t,
            Some(Ok(Incoming::NotUtf8 | Incoming::Control)) => return Step::Quiet,
            Some(Err(WsError::Capacity(_))) => return self.too_large(),
            Some(Err(_)) => return Step::End(Exit::Normal),
        };
        if text.len() > self.max_payload {
            return self.too_large();
        }
        let response = match RequestFrame::parse(&text) {
            // The session is admitted already: a second connect is answered,
            // not relayed or served, and the socket stays usable.
            Ok(req) if req.method == "connect" => {
                ResponseFrame::err(req.id, wire::request(&RequestError::ConnectAfterHello))
            }
            Ok(req) => {
                gw.metrics.rpc_request(&req.method);
                let authorized = methods::authorize(&req.method, info);
                // The flood guard: a client that keeps calling methods of the
                // other role is misbehaving, not confused.
                if matches!(authorized, Err(RequestError::UnauthorizedRole { .. })) {
                    self.role_errors += 1;
                    if self.role_errors > MAX_CONSECUTIVE_ROLE_ERRORS {
                        out.kill(wire::CLOSE_POLICY, "repeated unauthorized calls");
                        return Step::End(Exit::Killed);
                    }
                } else {
                    self.role_errors = 0;
                }
                match authorized {
                    Err(e) => ResponseFrame::err(req.id, wire::request(&e)),
                    // Upstream mode: the upstream's methods go up as sent.
                    Ok(()) if self.relay.is_some() && methods::is_relayed(&req.method, true) => {
                        let Some(link) = self.relay else { return Step::Quiet };
                        let forwarded = tokio::select! {
                            _ = killed.wait_for(Option::is_some) => return Step::End(Exit::Killed),
                            // Boxed: only relayed sessions need its room.
                            forwarded = Box::pin(link.forward(&req.id, &req.method, text)) => forwarded,
                        };
                        // The link is gone: it is closing the session with 1012;
                        // this request gets its error first.
                        if forwarded.is_err() {
                            let _ = out.text(crate::upstream::link_lost_answer(&req.id));
                            return Step::End(Exit::Normal);
                        }
                        return Step::Quiet;
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
                        return Step::Quiet;
                    }
                    // Boxed: the method table's futures are large, and an
                    // idle connection should not carry their room.
                    Ok(()) => respond(Box::pin(methods::serve(gw, info, &req.method, req.params)).await, req.id),
                }
            }
            // Unparsable JSON after auth is logged and ignored (as OpenClaw does).
            Err(FrameError::NotJson(e)) => {
                tracing::debug!(conn_id = %info.conn_id, error = %e, "ignoring unparsable frame");
                return Step::Quiet;
            }
            Err(e) => {
                let id = e.id().unwrap_or("invalid").to_owned();
                ResponseFrame::err(id, wire::request(&RequestError::InvalidFrame(e.reason().to_owned())))
            }
        };
        // Our own answer: straight to the socket, no queue, no other task.
        Step::Answer(Frame::Res(response).to_json())
    }

    fn too_large(&mut self) -> Step {
        self.out.kill(wire::CLOSE_TOO_LARGE, "payload too large");
        self.too_large = true;
        Step::End(Exit::Killed)
    }
}

/// Write what is queued, unless the connection is killed meanwhile.
async fn write_queued(ws: &mut Ws, queue: &mut OutboxReceiver, killed: &mut KillWatch) -> Result<(), Exit> {
    let drained = guarded(killed, queue.write_queued(ws).map(Ok::<_, ()>)).await?;
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
