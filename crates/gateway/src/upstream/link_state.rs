//! What a relayed session's own task and its link's reading task share: the
//! upstream socket's write half, which the session's task writes its
//! requests into itself (no task in between; docs/benchmarks.md, "The
//! relay's path"), and the book of the requests in the upstream's hands.
//!
//! The book says who answers a request when the link dies. The link's task
//! closes it holding the write half, so a request is either written and in
//! the book before it closes (the link's task answers it, with the others in
//! the upstream's hands, before the session's 1012), or refused unwritten
//! (the session answers it): never both, never written after its answer.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::task::Context;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use super::pending_answers::PendingAnswers;
use super::transport::UpstreamWs;

pub(super) type UpstreamSink = SplitSink<UpstreamWs, Message>;

/// `plugin.surface.refresh` answers awaited at once whose URLs get rewritten.
const MAX_PENDING_REWRITES: usize = 256;

/// The upstream link is gone; the session is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkGone;

#[derive(Default)]
pub(super) struct Book {
    pub(super) unanswered: PendingAnswers,
    /// Requests whose answers get their URLs rewritten.
    rewrite_ids: HashSet<String>,
    /// The link's task ended: nothing more is sent.
    pub(super) closed: bool,
    /// Why a write of the session's failed: the link's task ends with it.
    pub(super) write_failed: Option<String>,
    /// The session closed the link.
    pub(super) session_done: bool,
}

pub(super) struct LinkState {
    /// `None` once the link's task dropped it (the socket is closing).
    sink: tokio::sync::Mutex<Option<UpstreamSink>>,
    book: Mutex<Book>,
    /// Room in the book again, or the book closed: a session waiting for
    /// room waits on it.
    room: Notify,
    /// Something for the link's task to look at in the book: a failed
    /// write, or the session closed the link.
    pub(super) wake_link: Notify,
    /// A write the upstream does not take within this long means it
    /// stopped reading.
    write_within: Duration,
}

impl LinkState {
    pub(super) fn new(sink: UpstreamSink, write_within: Duration) -> LinkState {
        LinkState {
            sink: tokio::sync::Mutex::new(Some(sink)),
            book: Mutex::default(),
            room: Notify::new(),
            wake_link: Notify::new(),
            write_within,
        }
    }

    pub(super) fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Write one of the session's requests into the upstream socket, from
    /// the session's own task. It is in the book before it is written (its
    /// answer may be read before the write returns). Waits while the book is
    /// full (back-pressure on the client). A write that fails ends the link:
    /// the link's task answers this request with the others, so it is `Ok`.
    pub(super) async fn send_request(&self, id: &str, rewrite_answer: bool, text: String) -> Result<(), LinkGone> {
        loop {
            self.wait_for_room().await?;
            let mut sink = self.sink.lock().await;
            {
                let mut book = self.book();
                if book.closed {
                    return Err(LinkGone);
                }
                // Full again meanwhile (another request was recorded): wait.
                if !book.unanswered.has_room() {
                    continue;
                }
                if rewrite_answer && book.rewrite_ids.len() < MAX_PENDING_REWRITES {
                    book.rewrite_ids.insert(id.to_owned());
                }
                book.unanswered.sent(id);
            }
            // The book is open, so the link's task has not dropped the sink.
            let Some(sink) = sink.as_mut() else { return Ok(()) };
            match write_within(sink, Message::text(text), self.write_within).await {
                Ok(()) => forget_waker(sink),
                Err(why) => {
                    self.book().write_failed.get_or_insert(why);
                    self.wake_link.notify_one();
                }
            }
            return Ok(());
        }
    }

    async fn wait_for_room(&self) -> Result<(), LinkGone> {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            {
                let book = self.book();
                if book.closed {
                    return Err(LinkGone);
                }
                if book.unanswered.has_room() {
                    return Ok(());
                }
                // Registered before the book is let go: no wake-up is lost.
                room.as_mut().enable();
            }
            room.await;
        }
    }

    /// The upstream answered `id`; whether its answer is one whose URLs get
    /// rewritten.
    pub(super) fn answered(&self, id: &str) -> bool {
        let mut book = self.book();
        let was_full = !book.unanswered.has_room();
        book.unanswered.answered(id);
        let rewrite = !book.rewrite_ids.is_empty() && book.rewrite_ids.remove(id);
        drop(book);
        if was_full {
            self.room.notify_one();
        }
        rewrite
    }

    /// A frame of the link's own (a ping).
    pub(super) async fn write_own(&self, msg: Message) -> Result<(), String> {
        match self.sink.lock().await.as_mut() {
            Some(sink) => write_within(sink, msg, self.write_within).await,
            None => Err("the upstream link is closing".to_owned()),
        }
    }

    /// The session closed the link: tell the link's task.
    pub(super) fn session_closed(&self) {
        self.book().session_done = true;
        self.wake_link.notify_one();
    }

    /// Close the upstream side (the session ended), within `within`.
    pub(super) async fn close_upstream(&self, within: Duration) {
        let sink = self.sink.lock().await.take();
        if let Some(mut sink) = sink {
            let _ = tokio::time::timeout(within, sink.close()).await;
        }
    }

    /// The link ended: close the book, holding the write half so that no
    /// request is being written meanwhile, and drop that half. `answer` gets
    /// every request still in the upstream's hands (once per send), under the
    /// book's lock, so a request the session sends after is refused only
    /// once what `answer` queued (the answers, the close) is queued.
    pub(super) async fn close_book(&self, answer: impl FnOnce(Vec<String>)) {
        let mut sink = self.sink.lock().await;
        {
            let mut book = self.book();
            book.closed = true;
            book.rewrite_ids.clear();
            answer(book.unanswered.take_all());
        }
        *sink = None;
        drop(sink);
        // A session waiting for room sees the book closed.
        self.room.notify_one();
    }

    /// Resolves once the session closed the link.
    pub(super) async fn session_done(&self) {
        loop {
            let woken = self.wake_link.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.book().session_done {
                return;
            }
            woken.await;
        }
    }
}

/// Leave no waker of the session's task in the WebSocket: tokio-tungstenite
/// wakes the last writer's waker too whenever the socket becomes readable,
/// which would wake the session for every frame the upstream sends, before
/// the link's task has even read it (docs/benchmarks.md, "The relay's
/// path"). A flush of nothing with a no-op waker takes its place; the next
/// write registers the session's waker again.
fn forget_waker(sink: &mut UpstreamSink) {
    let mut nothing = Context::from_waker(futures_util::task::noop_waker_ref());
    let _ = sink.poll_flush_unpin(&mut nothing);
}

/// Write one frame, or say why the link is lost: a write the upstream does
/// not take within `within` means it stopped reading.
async fn write_within(sink: &mut UpstreamSink, msg: Message, within: Duration) -> Result<(), String> {
    match tokio::time::timeout(within, sink.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("sending to the upstream failed: {e}")),
        Err(_) => Err(format!("the upstream took no frame for {} ms", within.as_millis())),
    }
}
