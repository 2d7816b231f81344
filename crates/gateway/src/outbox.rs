//! Each connection's queue for the frames other tasks produce for it
//! (broadcast events, answers of long-running calls, frames relayed from the
//! upstream): bounded in bytes, drained by the connection's own task, which
//! stamps events with the connection's own `seq`. The connection's answers
//! to its own requests do not pass through here: the session writes them
//! straight to the socket (server/session.rs; docs/benchmarks.md).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{Sink, SinkExt};
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

pub enum Outbound {
    /// A pre-serialised frame (responses).
    Text(String),
    /// A broadcast event; its payload serialised once for all recipients.
    Event {
        name: Arc<str>,
        payload: Arc<str>,
    },
    /// An event frame relayed from elsewhere (the upstream gateway), as a
    /// JSON object without `seq`: the writer adds the connection's next
    /// `seq`, in order with the broadcasts, keeping every other field.
    Sequenced(String),
    Close {
        code: u16,
        reason: String,
    },
}

impl Outbound {
    fn cost(&self) -> usize {
        match self {
            Outbound::Text(t) => t.len(),
            Outbound::Sequenced(t) => t.len() + 24,
            Outbound::Event { name, payload } => name.len() + payload.len() + 48,
            Outbound::Close { reason, .. } => reason.len(),
        }
    }
}

/// The queue would exceed its byte limit: the peer is not reading.
#[derive(Debug)]
pub struct SlowConsumer;

/// What the producers and the connection's task share. The queue is a plain
/// deque behind a mutex (empty, it allocates nothing: most connections are
/// idle most of the time).
struct Shared {
    queue: Mutex<VecDeque<Outbound>>,
    /// Woken on every push; one permit is kept when the task is not waiting.
    ready: Notify,
    queued: AtomicUsize,
    limit: usize,
    /// Set when the connection must end now; a write that waits on the
    /// peer watches it.
    kill: watch::Sender<Option<(u16, String)>>,
    /// Killed, or the connection's task is gone: pushes fail.
    killed: AtomicBool,
    /// Set once `kill` holds the reason; a kill also wakes `ready`, so the
    /// connection's task, waiting for input or frames, needs no second
    /// registration per wait to notice it.
    kill_sent: AtomicBool,
}

#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// The connection task's end of the queue; dropping it makes every later
/// push fail.
pub struct OutboxReceiver {
    shared: Arc<Shared>,
    /// The `seq` of the last event written on this connection.
    seq: u64,
}

pub fn outbox(limit: usize) -> (Outbox, OutboxReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        ready: Notify::new(),
        queued: AtomicUsize::new(0),
        limit,
        kill: watch::channel(None).0,
        killed: AtomicBool::new(false),
        kill_sent: AtomicBool::new(false),
    });
    (Outbox { shared: shared.clone() }, OutboxReceiver { shared, seq: 0 })
}

fn lock(queue: &Mutex<VecDeque<Outbound>>) -> std::sync::MutexGuard<'_, VecDeque<Outbound>> {
    queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Outbox {
    /// Queue a frame. Over the byte limit the connection is killed as a slow
    /// consumer instead of growing memory.
    pub fn push(&self, msg: Outbound) -> Result<(), SlowConsumer> {
        let shared = &self.shared;
        if shared.killed.load(Ordering::Relaxed) {
            return Err(SlowConsumer);
        }
        let cost = msg.cost();
        let before = shared.queued.fetch_add(cost, Ordering::Relaxed);
        if before + cost > shared.limit {
            shared.queued.fetch_sub(cost, Ordering::Relaxed);
            self.kill(crate::close_code::CLOSE_POLICY, "slow consumer");
            return Err(SlowConsumer);
        }
        lock(&shared.queue).push_back(msg);
        shared.ready.notify_one();
        Ok(())
    }

    pub fn text(&self, text: String) -> Result<(), SlowConsumer> {
        self.push(Outbound::Text(text))
    }

    /// End the connection now with this close code, dropping anything queued.
    pub fn kill(&self, code: u16, reason: &str) {
        if !self.shared.killed.swap(true, Ordering::Relaxed) {
            self.shared.kill.send_replace(Some((code, reason.to_owned())));
            self.shared.kill_sent.store(true, Ordering::Release);
            self.shared.ready.notify_one();
        }
    }

    /// The kill, as a watch: `wait_for(Option::is_some)` resolves once the
    /// connection has been killed, also when that happened before the call.
    pub fn killed(&self) -> watch::Receiver<Option<(u16, String)>> {
        self.shared.kill.subscribe()
    }

    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }
}

/// How [`OutboxReceiver::write_queued`] left the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Everything queued went out; the connection stays open.
    Open,
    /// A queued close frame went out: the connection ends.
    Closed,
    /// The socket failed.
    Failed,
}

impl OutboxReceiver {
    /// Resolves once something may have been queued, or the connection
    /// killed, since the last call (at once if that happened before the
    /// first).
    pub async fn ready(&self) {
        self.shared.ready.notified().await
    }

    /// Killed: [`Self::kill_reason`] holds why.
    pub fn is_killed(&self) -> bool {
        self.shared.kill_sent.load(Ordering::Acquire)
    }

    /// Why the connection was killed, if it was.
    pub fn kill_reason(&self) -> Option<(u16, String)> {
        self.shared.kill.borrow().clone()
    }

    fn pop(&mut self) -> Option<Outbound> {
        let msg = lock(&self.shared.queue).pop_front()?;
        self.shared.queued.fetch_sub(msg.cost(), Ordering::Relaxed);
        Some(msg)
    }

    /// Write everything queued into `sink`: frames ready together are
    /// written together and flushed once. Not cancel safe (a frame taken
    /// and not yet written is lost): cancel it only to end the connection.
    pub async fn write_queued<S>(&mut self, sink: &mut S) -> Drained
    where
        S: Sink<Message> + Unpin,
    {
        const BATCH: usize = 64;
        loop {
            match self.feed_queued(sink, BATCH).await {
                Ok(0) => return Drained::Open,
                Ok(_) => {
                    if sink.flush().await.is_err() {
                        return Drained::Failed;
                    }
                }
                Err(ended) => return ended,
            }
        }
    }

    /// Feed up to `max` queued frames into `sink` without flushing them, so
    /// that they leave with whatever else the caller writes in the same
    /// flush. Returns how many were fed, or how the connection ended (a
    /// queued close frame is flushed at once). Cancel safety as
    /// [`Self::write_queued`].
    pub async fn feed_queued<S>(&mut self, sink: &mut S, max: usize) -> Result<usize, Drained>
    where
        S: Sink<Message> + Unpin,
    {
        let mut fed = 0;
        while fed < max {
            let Some(msg) = self.pop() else { break };
            fed += 1;
            let (frame, closing) = match msg {
                Outbound::Text(t) => (Message::Text(t.into()), false),
                Outbound::Event { name, payload } => {
                    self.seq += 1;
                    (Message::Text(event_text(&name, &payload, self.seq).into()), false)
                }
                Outbound::Sequenced(frame) => {
                    self.seq += 1;
                    (Message::Text(with_seq(&frame, self.seq).into()), false)
                }
                Outbound::Close { code, reason } => (close_message(code, &reason), true),
            };
            if sink.feed(frame).await.is_err() {
                return Err(Drained::Failed);
            }
            if closing {
                return Err(if sink.flush().await.is_ok() { Drained::Closed } else { Drained::Failed });
            }
        }
        Ok(fed)
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        // The connection is gone: later pushes fail instead of piling up.
        self.shared.killed.store(true, Ordering::Relaxed);
        lock(&self.shared.queue).clear();
    }
}

pub fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: reason.to_owned().into() }))
}

/// One recipient's copy of a broadcast event: the shared payload with this
/// connection's `seq`, in one allocation of exactly its length (a frame
/// whose capacity is its length becomes the WebSocket layer's buffer
/// without another allocation).
fn event_text(name: &str, payload: &str, seq: u64) -> String {
    const FIXED: usize = r#"{"type":"event","event":"","payload":,"seq":}"#.len();
    let seq_digits = seq.checked_ilog10().map_or(1, |d| d as usize + 1);
    let mut out = String::with_capacity(FIXED + name.len() + payload.len() + seq_digits);
    out.push_str("{\"type\":\"event\",\"event\":");
    // Event names are ours and plain; anything else is escaped as JSON.
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        out.push('"');
        out.push_str(name);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(name).unwrap_or_else(|_| "\"\"".into()));
    }
    out.push_str(",\"payload\":");
    out.push_str(payload);
    out.push_str(",\"seq\":");
    let _ = write!(out, "{seq}");
    out.push('}');
    out
}

/// `frame` (a JSON object without `seq`) with `"seq": seq` added last.
fn with_seq(frame: &str, seq: u64) -> String {
    let body = frame.trim_end();
    let body = body.strip_suffix('}').unwrap_or(body).trim_end();
    let separator = if body.ends_with('{') { "" } else { "," };
    format!("{body}{separator}\"seq\":{seq}}}")
}

/// The queue drained into `sink` by a task of its own until a close, a kill
/// or a write error, as the session drains it between requests; the tests
/// of what a connection is sent use it without a socket.
#[cfg(test)]
pub async fn run_writer<S>(mut sink: S, mut rx: OutboxReceiver) -> S
where
    S: Sink<Message> + Unpin,
{
    let mut killed = rx.shared.kill.subscribe();
    loop {
        tokio::select! {
            biased;
            _ = killed.wait_for(Option::is_some) => break,
            _ = rx.ready() => {}
        }
        let drained = tokio::select! {
            biased;
            _ = killed.wait_for(Option::is_some) => break,
            drained = rx.write_queued(&mut sink) => drained,
        };
        if drained != Drained::Open {
            break;
        }
    }
    let reason = rx.kill_reason();
    let finish = async {
        if let Some((code, reason)) = reason {
            let _ = sink.send(close_message(code, &reason)).await;
        }
        let _ = sink.close().await;
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), finish).await;
    sink
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_events_get_seq_in_order_with_broadcasts() {
        assert_eq!(
            with_seq(r#"{"type":"event","event":"chat","stateVersion":{"presence":1}} "#, 3),
            r#"{"type":"event","event":"chat","stateVersion":{"presence":1},"seq":3}"#
        );
        assert_eq!(with_seq("{}", 1), r#"{"seq":1}"#);
    }

    #[test]
    fn event_names_are_json_strings() {
        assert_eq!(
            event_text("device.pair.requested", "{}", 7),
            r#"{"type":"event","event":"device.pair.requested","payload":{},"seq":7}"#
        );
        assert_eq!(event_text("a\"b", "1", 1), r#"{"type":"event","event":"a\"b","payload":1,"seq":1}"#);
        for seq in [0, 9, 10, 99, 100, 12_345, u64::MAX] {
            let text = event_text("presence", r#"{"presence":[]}"#, seq);
            assert_eq!(text.len(), text.capacity(), "seq {seq}");
        }
    }

    #[tokio::test]
    async fn the_writer_numbers_broadcasts_and_relayed_events_together() {
        let (out, rx) = outbox(1 << 20);
        out.push(Outbound::Event { name: "tick".into(), payload: "{}".into() }).unwrap();
        out.push(Outbound::Sequenced(r#"{"type":"event","event":"chat"}"#.into())).unwrap();
        out.push(Outbound::Text("{}".into())).unwrap();
        out.push(Outbound::Close { code: 1000, reason: String::new() }).unwrap();
        let written = std::sync::Mutex::new(Vec::new());
        let sink = futures_util::sink::unfold(&written, |w, msg: Message| async move {
            w.lock().unwrap().push(msg);
            Ok::<_, std::convert::Infallible>(w)
        });
        let _ = run_writer(Box::pin(sink), rx).await;
        let texts: Vec<String> =
            written.lock().unwrap().iter().filter_map(|m| m.to_text().ok().map(str::to_owned)).collect();
        assert_eq!(texts[0], r#"{"type":"event","event":"tick","payload":{},"seq":1}"#);
        assert_eq!(texts[1], r#"{"type":"event","event":"chat","seq":2}"#);
        assert_eq!(texts[2], "{}");
    }

    #[test]
    fn over_the_byte_limit_the_connection_is_killed_and_a_gone_connection_takes_nothing() {
        let (out, rx) = outbox(100);
        out.text("x".repeat(60)).unwrap();
        assert!(out.text("x".repeat(60)).is_err());
        assert_eq!(rx.kill_reason().map(|(code, _)| code), Some(crate::close_code::CLOSE_POLICY));
        let (out, rx) = outbox(100);
        drop(rx);
        assert!(out.text("{}".into()).is_err());
    }
}
