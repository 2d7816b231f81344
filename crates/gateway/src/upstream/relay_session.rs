//! The relay of one admitted session over its upstream link: requests
//! clawgate authorized and does not serve itself go up as the client sent
//! them (same id); the upstream's answers come back unchanged (but for
//! URLs naming the upstream in `plugin.surface.refresh` answers); its events
//! come back re-sequenced with the session's own `seq`, except those
//! clawgate sends itself (`tick`, `presence`) and those about clawgate's
//! relay identities (`device.pair.*`).
//!
//! One task per session owns the upstream socket. The session ends it by
//! [`RelayLink::close`] (or by dropping the link); when the upstream goes
//! away the task answers the requests still waiting upstream with a
//! retryable `UPSTREAM_UNAVAILABLE` error and closes the downstream with
//! 1012 so clients reconnect. "Goes away" includes going silent: the task
//! pings the upstream and ends a link that says nothing (no frame, no pong)
//! for its liveness bound, or does not take a frame within a ping interval
//! (`timeouts.rs`). No task, socket or queue outlives the session.

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::connector::UpstreamLink;
use super::hello_merge::UrlRewrite;
use super::pending_answers::{link_lost_answer, PendingAnswers};
use super::transport::UpstreamWs;
use crate::outbox::{Outbound, Outbox};

/// The close code a downstream session gets when its upstream link ends.
pub const CLOSE_UPSTREAM_GONE: u16 = crate::close_code::CLOSE_RESTART;
pub const UPSTREAM_GONE_REASON: &str = "upstream closed";

/// Requests queued toward the upstream before the session stops reading
/// its client (back-pressure instead of an unbounded queue).
const FORWARD_QUEUE: usize = 64;
/// `plugin.surface.refresh` answers awaited at once whose URLs get rewritten.
const MAX_PENDING_REWRITES: usize = 256;
/// How long the downstream's 1012 may take to be written before the
/// session is ended anyway (a client that stopped reading).
const CLOSE_GRACE: Duration = Duration::from_millis(750);
/// How long closing the upstream side may take.
const UPSTREAM_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The method whose answers carry URLs naming the upstream.
pub const REWRITTEN_METHOD: &str = "plugin.surface.refresh";

struct Forward {
    id: String,
    text: String,
    rewrite_answer: bool,
}

/// The upstream link is gone; the session is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkGone;

/// A running relay of one session.
pub struct RelayLink {
    requests: Option<mpsc::Sender<Forward>>,
    task: Option<JoinHandle<()>>,
}

impl RelayLink {
    /// Start relaying: upstream frames go to `out` (the session's outbox).
    pub fn start(link: UpstreamLink, out: Outbox, rewrite: Option<UrlRewrite>) -> RelayLink {
        let (tx, rx) = mpsc::channel(FORWARD_QUEUE);
        let (ws, liveness, counted) = link.into_parts();
        let task = tokio::spawn(async move {
            pump(ws, liveness, rx, out, rewrite).await;
            drop(counted);
        });
        RelayLink { requests: Some(tx), task: Some(task) }
    }

    /// Forward a request (its frame text as the client sent it). Waits while
    /// the upstream is not taking requests.
    pub async fn forward(&self, id: &str, method: &str, text: String) -> Result<(), LinkGone> {
        let requests = self.requests.as_ref().ok_or(LinkGone)?;
        let forward = Forward { id: id.to_owned(), text, rewrite_answer: method == REWRITTEN_METHOD };
        requests.send(forward).await.map_err(|_| LinkGone)
    }

    /// Close the upstream side and wait (bounded) until the relay task ended.
    pub async fn close(mut self) {
        self.requests = None;
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(UPSTREAM_CLOSE_TIMEOUT + CLOSE_GRACE, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl Drop for RelayLink {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn pump(
    mut ws: UpstreamWs,
    liveness: Duration,
    mut requests: mpsc::Receiver<Forward>,
    out: Outbox,
    rewrite: Option<UrlRewrite>,
) {
    let mut rewrite_ids: HashSet<String> = HashSet::new();
    let mut unanswered = PendingAnswers::default();
    // A third of the liveness bound: a silent link is found within 4/3 of it.
    let ping_every = (liveness / 3).max(Duration::from_millis(10));
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let why = loop {
        tokio::select! {
            forward = requests.recv(), if unanswered.has_room() => match forward {
                Some(f) => {
                    if f.rewrite_answer && rewrite.is_some() && rewrite_ids.len() < MAX_PENDING_REWRITES {
                        rewrite_ids.insert(f.id.clone());
                    }
                    unanswered.sent(&f.id);
                    if let Err(why) = send_within(&mut ws, Message::text(f.text), ping_every).await {
                        break why;
                    }
                }
                None => {
                    // The session ended: close the upstream side too.
                    let _ = tokio::time::timeout(UPSTREAM_CLOSE_TIMEOUT, ws.close(None)).await;
                    return;
                }
            },
            frame = ws.next() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        if deliver(&text, &out, &mut rewrite_ids, &mut unanswered, rewrite.as_ref()).is_err() {
                            break "the downstream session is gone".to_owned();
                        }
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        if let Ok(text) = std::str::from_utf8(&bytes) {
                            if deliver(text, &out, &mut rewrite_ids, &mut unanswered, rewrite.as_ref()).is_err() {
                                break "the downstream session is gone".to_owned();
                            }
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        break match frame {
                            Some(c) => format!("the upstream closed {} ({})", c.code, c.reason),
                            None => "the upstream closed".to_owned(),
                        };
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break format!("reading from the upstream failed: {e}"),
                    None => break "the upstream connection ended".to_owned(),
                }
            },
            _ = ping.tick() => {
                let silent = last_heard.elapsed();
                if silent >= liveness {
                    break format!("the upstream said nothing for {} ms (not even a pong)", silent.as_millis());
                }
                if let Err(why) = send_within(&mut ws, Message::Ping(Default::default()), ping_every).await {
                    break why;
                }
            }
        }
    };
    drop(ws);
    tracing::info!(reason = %why, "upstream link ended; closing the session with 1012");
    // Requests in the upstream's hands, then those queued toward it: each
    // gets its error before the close.
    let mut answers: Vec<String> = unanswered.take_all();
    while let Ok(f) = requests.try_recv() {
        answers.push(f.id);
    }
    for id in answers {
        if out.text(link_lost_answer(&id)).is_err() {
            break;
        }
    }
    let _ = out.push(Outbound::Close { code: CLOSE_UPSTREAM_GONE, reason: UPSTREAM_GONE_REASON.to_owned() });
    // Until the session closes the link: requests that still arrive are
    // answered the same way, and a client that does not take its close frame
    // in time is cut off.
    let session_closed = async {
        while let Some(f) = requests.recv().await {
            let _ = out.text(link_lost_answer(&f.id));
        }
    };
    tokio::select! {
        _ = session_closed => {}
        _ = tokio::time::sleep(CLOSE_GRACE) => out.kill(CLOSE_UPSTREAM_GONE, UPSTREAM_GONE_REASON),
    }
}

/// Write one frame, or say why the link is lost: a write the upstream does
/// not take within `within` means it stopped reading.
async fn send_within(ws: &mut UpstreamWs, msg: Message, within: Duration) -> Result<(), String> {
    match tokio::time::timeout(within, ws.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("sending to the upstream failed: {e}")),
        Err(_) => Err(format!("the upstream took no frame for {} ms", within.as_millis())),
    }
}

/// Just enough of a frame to route it.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    seq: Option<Value>,
}

/// Events the upstream sends that a relayed session does not get: clawgate
/// sends its own ticks and presence, and the upstream's pairing events are
/// about clawgate's relay identities.
pub fn is_dropped_event(event: &str) -> bool {
    matches!(event, "tick" | "presence") || event.starts_with("device.pair.")
}

/// The session's queue refused a frame: the session is being killed.
struct Refused;

/// Route one upstream frame to the session.
fn deliver(
    text: &str,
    out: &Outbox,
    rewrite_ids: &mut HashSet<String>,
    unanswered: &mut PendingAnswers,
    rewrite: Option<&UrlRewrite>,
) -> Result<(), Refused> {
    let Ok(head) = serde_json::from_str::<Head<'_>>(text) else {
        tracing::debug!("ignoring an unparsable frame from the upstream");
        return Ok(());
    };
    let outbound = match head.kind.as_ref() {
        "event" => {
            let Some(event) = head.event.as_deref() else { return Ok(()) };
            if is_dropped_event(event) {
                return Ok(());
            }
            match head.seq {
                None => Outbound::Text(text.to_owned()),
                Some(_) => {
                    let Ok(Value::Object(mut frame)) = serde_json::from_str::<Value>(text) else { return Ok(()) };
                    frame.remove("seq");
                    Outbound::Sequenced(Value::Object(frame).to_string())
                }
            }
        }
        "res" => match (head.id.as_deref().inspect(|id| unanswered.answered(id)), rewrite) {
            (Some(id), Some(rewrite)) if rewrite_ids.remove(id) => {
                let Ok(mut frame) = serde_json::from_str::<Value>(text) else { return Ok(()) };
                if let Some(payload) = frame.get_mut("payload") {
                    rewrite.apply(payload);
                }
                Outbound::Text(frame.to_string())
            }
            _ => Outbound::Text(text.to_owned()),
        },
        // The upstream sends clients nothing else.
        _ => return Ok(()),
    };
    out.push(outbound).map_err(|_| Refused)
}

#[cfg(test)]
#[path = "relay_session_tests.rs"]
mod tests;
