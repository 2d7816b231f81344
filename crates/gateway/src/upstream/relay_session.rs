//! The relay of one admitted session over its upstream link: requests
//! clawgate authorized and does not serve itself go up as the client sent
//! them (same id); the upstream's answers come back unchanged (but for
//! URLs naming the upstream in `plugin.surface.refresh` answers); its events
//! come back re-sequenced with the session's own `seq`, except those
//! clawgate sends itself (`tick`, `presence`) and those about clawgate's
//! relay identities (`device.pair.*`).
//!
//! The session's own task writes its requests into the upstream socket
//! ([`RelayLink::forward`], `link_state.rs`); one task per link reads the
//! upstream and routes what it sends into the session's outbox, from the
//! frame's head alone (its payload is never parsed or re-serialised). The
//! session ends the link by [`RelayLink::close`] (or by dropping it); when
//! the upstream goes away the link's task answers the requests still
//! waiting upstream with a retryable `UPSTREAM_UNAVAILABLE` error and closes
//! the downstream with 1012 so clients reconnect. "Goes away" includes going
//! silent: the task pings the upstream and ends a link that says nothing (no
//! frame, no pong) for its liveness bound, or does not take a frame within a
//! ping interval (`timeouts.rs`). No task, socket or queue outlives the
//! session.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::connector::UpstreamLink;
use super::hello_merge::UrlRewrite;
pub use super::link_state::LinkGone;
use super::link_state::LinkState;
use super::pending_answers::link_lost_answer;
use super::relayed_event::without_seq;
use super::transport::UpstreamWs;
use crate::outbox::{Outbound, Outbox};

/// The close code a downstream session gets when its upstream link ends.
pub const CLOSE_UPSTREAM_GONE: u16 = crate::close_code::CLOSE_RESTART;
pub const UPSTREAM_GONE_REASON: &str = "upstream closed";

/// How long the downstream's 1012 may take to be written before the
/// session is ended anyway (a client that stopped reading).
const CLOSE_GRACE: Duration = Duration::from_millis(750);
/// How long closing the upstream side may take.
const UPSTREAM_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The method whose answers carry URLs naming the upstream.
pub const REWRITTEN_METHOD: &str = "plugin.surface.refresh";

/// A running relay of one session.
pub struct RelayLink {
    state: Arc<LinkState>,
    /// Answers of [`REWRITTEN_METHOD`] get their URLs rewritten.
    rewrites: bool,
    task: Option<JoinHandle<()>>,
}

impl RelayLink {
    /// Start relaying: upstream frames go to `out` (the session's outbox).
    pub fn start(link: UpstreamLink, out: Outbox, rewrite: Option<UrlRewrite>) -> RelayLink {
        let (ws, liveness, counted) = link.into_parts();
        let (sink, stream) = ws.split();
        // A third of the liveness bound: a silent link is found within 4/3 of it.
        let ping_every = (liveness / 3).max(Duration::from_millis(10));
        let state = Arc::new(LinkState::new(sink, ping_every));
        let rewrites = rewrite.is_some();
        let pumped = state.clone();
        let task = tokio::spawn(async move {
            pump(stream, liveness, ping_every, &pumped, out, rewrite).await;
            drop(counted);
        });
        RelayLink { state, rewrites, task: Some(task) }
    }

    /// Forward a request (its frame text as the client sent it), written by
    /// the calling task. Waits while the upstream is not taking requests.
    pub async fn forward(&self, id: &str, method: &str, text: String) -> Result<(), LinkGone> {
        self.state.send_request(id, self.rewrites && method == REWRITTEN_METHOD, text).await
    }

    /// Close the upstream side and wait (bounded) until the relay task ended.
    pub async fn close(mut self) {
        self.state.session_closed();
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
    mut stream: SplitStream<UpstreamWs>,
    liveness: Duration,
    ping_every: Duration,
    state: &LinkState,
    out: Outbox,
    rewrite: Option<UrlRewrite>,
) {
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let why = loop {
        tokio::select! {
            _ = state.wake_link.notified() => {
                let (failed, done) = {
                    let book = state.book();
                    (book.write_failed.clone(), book.session_done)
                };
                if let Some(why) = failed {
                    break why;
                }
                if done {
                    // The session ended: close the upstream side too.
                    state.close_upstream(UPSTREAM_CLOSE_TIMEOUT).await;
                    return;
                }
            },
            frame = stream.next() => {
                last_heard = Instant::now();
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(bytes))) => match Utf8Bytes::try_from(bytes) {
                        Ok(text) => text,
                        Err(_) => continue,
                    },
                    Some(Ok(Message::Close(frame))) => {
                        break match frame {
                            Some(c) => format!("the upstream closed {} ({})", c.code, c.reason),
                            None => "the upstream closed".to_owned(),
                        };
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break format!("reading from the upstream failed: {e}"),
                    None => break "the upstream connection ended".to_owned(),
                };
                if deliver(text.as_str(), &out, state, rewrite.as_ref()).is_err() {
                    break "the downstream session is gone".to_owned();
                }
            },
            _ = ping.tick() => {
                let silent = last_heard.elapsed();
                if silent >= liveness {
                    break format!("the upstream said nothing for {} ms (not even a pong)", silent.as_millis());
                }
                if let Err(why) = state.write_own(Message::Ping(Default::default())).await {
                    break why;
                }
            }
        }
    };
    tracing::info!(reason = %why, "upstream link ended; closing the session with 1012");
    // Requests in the upstream's hands each get their error before the close;
    // the socket is dropped with the book closed.
    state
        .close_book(|unanswered| {
            for id in unanswered {
                if out.text(link_lost_answer(&id)).is_err() {
                    break;
                }
            }
            let reason = UPSTREAM_GONE_REASON.to_owned();
            let _ = out.push(Outbound::Close { code: CLOSE_UPSTREAM_GONE, reason });
        })
        .await;
    drop(stream);
    // Until the session closes the link: a client that does not take its
    // close frame in time is cut off.
    tokio::select! {
        _ = state.session_done() => {}
        _ = tokio::time::sleep(CLOSE_GRACE) => out.kill(CLOSE_UPSTREAM_GONE, UPSTREAM_GONE_REASON),
    }
}

/// Just enough of a frame to route it; the rest is skipped unparsed.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    seq: Option<IgnoredAny>,
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
fn deliver(text: &str, out: &Outbox, state: &LinkState, rewrite: Option<&UrlRewrite>) -> Result<(), Refused> {
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
                Some(_) => match without_seq(text) {
                    Some(frame) => Outbound::Sequenced(frame),
                    None => return Ok(()),
                },
            }
        }
        "res" => match (head.id.as_deref().map(|id| state.answered(id)), rewrite) {
            (Some(true), Some(rewrite)) => {
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
