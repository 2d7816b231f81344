//! A byte budget on what a socket may send before it authenticates.
//!
//! The WebSocket layer is configured for the post-auth frame limit (25 MiB);
//! before hello-ok this wrapper stops reading once the pre-auth budget is
//! spent, so an unauthenticated peer can make the gateway buffer at most that
//! much. Lifting the budget after hello is one atomic store.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub const UNLIMITED: usize = usize::MAX;

/// The error a read fails with once the budget is spent.
#[derive(Debug)]
pub struct BudgetExceeded;

impl std::fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("pre-auth byte budget exceeded")
    }
}

impl std::error::Error for BudgetExceeded {}

pub fn is_budget_exceeded(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<BudgetExceeded>())
}

pub struct Budgeted<S> {
    inner: S,
    remaining: Arc<AtomicUsize>,
}

impl<S> Budgeted<S> {
    pub fn new(inner: S, budget: usize) -> (Self, Arc<AtomicUsize>) {
        let remaining = Arc::new(AtomicUsize::new(budget));
        (Budgeted { inner, remaining: remaining.clone() }, remaining)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Budgeted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let remaining = self.remaining.load(Ordering::Relaxed);
        if remaining == UNLIMITED {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        if remaining == 0 {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, BudgetExceeded)));
        }
        let limit = remaining.min(buf.remaining());
        let mut sub = buf.take(limit);
        match Pin::new(&mut self.inner).poll_read(cx, &mut sub) {
            Poll::Ready(Ok(())) => {
                let n = sub.filled().len();
                // SAFETY: `sub` is a view of `buf`'s unfilled part and the inner
                // reader initialised and filled its first `n` bytes.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                // Another reader never runs concurrently; a lifted budget stays lifted.
                let _ = self.remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                    (r != UNLIMITED).then(|| r.saturating_sub(n))
                });
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Budgeted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
