//! Each connection's outbound queue: bounded in bytes, written by one task
//! that stamps broadcast events with the connection's own `seq`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::{Sink, SinkExt};
use tokio::sync::{mpsc, watch};
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

#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outbound>,
    queued: Arc<AtomicUsize>,
    limit: usize,
    /// Set when the connection must end now; the writer and reader watch it.
    kill: Arc<watch::Sender<Option<(u16, String)>>>,
    killed: Arc<AtomicBool>,
}

pub struct OutboxReceiver {
    rx: mpsc::UnboundedReceiver<Outbound>,
    queued: Arc<AtomicUsize>,
    kill: watch::Receiver<Option<(u16, String)>>,
}

pub fn outbox(limit: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let (kill_tx, kill_rx) = watch::channel(None);
    (
        Outbox { tx, queued: queued.clone(), limit, kill: Arc::new(kill_tx), killed: Arc::new(AtomicBool::new(false)) },
        OutboxReceiver { rx, queued, kill: kill_rx },
    )
}

impl Outbox {
    /// Queue a frame. Over the byte limit the connection is killed as a slow
    /// consumer instead of growing memory.
    pub fn push(&self, msg: Outbound) -> Result<(), SlowConsumer> {
        if self.killed.load(Ordering::Relaxed) {
            return Err(SlowConsumer);
        }
        let cost = msg.cost();
        let before = self.queued.fetch_add(cost, Ordering::Relaxed);
        if before + cost > self.limit {
            self.queued.fetch_sub(cost, Ordering::Relaxed);
            self.kill(crate::close_code::CLOSE_POLICY, "slow consumer");
            return Err(SlowConsumer);
        }
        self.tx.send(msg).map_err(|_| SlowConsumer)
    }

    pub fn text(&self, text: String) -> Result<(), SlowConsumer> {
        self.push(Outbound::Text(text))
    }

    /// End the connection now with this close code, dropping anything queued.
    pub fn kill(&self, code: u16, reason: &str) {
        if !self.killed.swap(true, Ordering::Relaxed) {
            self.kill.send_replace(Some((code, reason.to_owned())));
        }
    }

    /// Resolves when the connection has been killed.
    pub fn killed(&self) -> watch::Receiver<Option<(u16, String)>> {
        self.kill.subscribe()
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

pub fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: reason.to_owned().into() }))
}

fn event_text(name: &str, payload: &str, seq: u64) -> String {
    let mut out = String::with_capacity(name.len() + payload.len() + 48);
    out.push_str("{\"type\":\"event\",\"event\":");
    // Event names are ours; still, serialise them as JSON strings.
    out.push_str(&serde_json::to_string(name).unwrap_or_else(|_| "\"\"".into()));
    out.push_str(",\"payload\":");
    out.push_str(payload);
    out.push_str(",\"seq\":");
    out.push_str(&seq.to_string());
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

/// Drain the queue into the socket until a close, a kill, or a write error.
/// Frames ready together are written together and flushed once. A kill
/// interrupts even a write blocked on a peer that stopped reading. Returns
/// the sink, so the connection can take its socket back.
pub async fn run_writer<S>(mut sink: S, mut rx: OutboxReceiver) -> S
where
    S: Sink<Message> + Unpin,
{
    const BATCH: usize = 64;
    let mut seq: u64 = 0;
    let mut batch: Vec<Outbound> = Vec::with_capacity(BATCH);
    loop {
        let next = tokio::select! {
            biased;
            _ = rx.kill.changed() => break,
            next = rx.rx.recv() => next,
        };
        let Some(first) = next else { break };
        batch.push(first);
        while batch.len() < BATCH {
            match rx.rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let write = async {
            let mut closing = false;
            for msg in batch.drain(..) {
                rx.queued.fetch_sub(msg.cost(), Ordering::Relaxed);
                let frame = match msg {
                    Outbound::Text(t) => Message::Text(t.into()),
                    Outbound::Event { name, payload } => {
                        seq += 1;
                        Message::Text(event_text(&name, &payload, seq).into())
                    }
                    Outbound::Sequenced(frame) => {
                        seq += 1;
                        Message::Text(with_seq(&frame, seq).into())
                    }
                    Outbound::Close { code, reason } => {
                        closing = true;
                        close_message(code, &reason)
                    }
                };
                if sink.feed(frame).await.is_err() {
                    return false;
                }
                if closing {
                    break;
                }
            }
            sink.flush().await.is_ok() && !closing
        };
        let keep_going = tokio::select! {
            biased;
            _ = rx.kill.changed() => false,
            ok = write => ok,
        };
        if !keep_going {
            break;
        }
    }
    // A kill: tell the peer why, if its socket still takes a frame.
    let reason = rx.kill.borrow().clone();
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
}
