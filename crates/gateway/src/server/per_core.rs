//! The thread-per-core server: one single-threaded runtime per core, each
//! accepting on its own socket of a [`ReusePortGroup`] and keeping every
//! connection it accepted on its own thread, from the HTTP head to the
//! close. A connection's reads, handshake, answers and timers then never
//! wake another thread; only what is shared crosses: broadcasts and
//! closes (through each session's queue and waker, which work from any
//! thread), `node.invoke` routing, the store and the global budgets.
//!
//! The gateway's background loops (ticks, store watch, bookkeeping, memory
//! trim, cluster) stay on the runtime that calls [`serve_per_core`], as
//! do the shutdown's steps: stop accepting on every thread, then close
//! every session with 1012, then let each thread drain its connections.
//! Measurements behind it: docs/benchmarks.md, "Thread-per-core".

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::config::Trust;

use super::reuseport::ReusePortGroup;
use super::{accept, bookkeeping, close_sessions, connection, BackgroundLoops, Gateway, DRAIN_FOR};

/// Serve the listeners of `groups` (each with its trust level) with one
/// thread per socket of a group until `shutdown` resolves, then close
/// every session with 1012 and wait (bounded) for connections to end.
/// Every group has one socket per thread: bind them with the same count.
pub async fn serve_per_core(
    groups: Vec<(ReusePortGroup, Trust)>,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let threads = groups.first().map_or(0, |(g, _)| g.count());
    if threads == 0 || groups.iter().any(|(g, _)| g.count() != threads) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "thread-per-core: every listener group needs one socket per thread, at least one",
        ));
    }
    let mut per_thread: Vec<Vec<(std::net::TcpListener, Trust)>> = (0..threads).map(|_| Vec::new()).collect();
    for (group, trust) in groups {
        for (thread, listener) in per_thread.iter_mut().zip(group.into_listeners()) {
            thread.push((listener, trust));
        }
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let (finished_tx, mut finished_rx) = mpsc::unbounded_channel();
    let mut stopped_accepting = Vec::with_capacity(threads);
    for (index, listeners) in per_thread.into_iter().enumerate() {
        let (accepting_tx, accepting_rx) = oneshot::channel();
        stopped_accepting.push(accepting_rx);
        let core = Core { index, gateway: gateway.clone(), listeners, stop: stop_rx.clone(), accepting_tx };
        let finished = Finished { index, to: finished_tx.clone(), result: None };
        let spawned = std::thread::Builder::new().name(format!("clawgate-core-{index}")).spawn(move || {
            let mut finished = finished;
            finished.result = Some(core.run());
        });
        if let Err(e) = spawned {
            // The threads already started stop as they would at shutdown.
            let _ = stop_tx.send(true);
            return Err(e);
        }
    }
    drop(finished_tx);

    let background = BackgroundLoops::start(&gateway);
    let mut first_error = None;
    let mut finished = 0;
    tokio::pin!(shutdown);
    // A thread that ends before the shutdown (its runtime could not start,
    // a listener could not be registered) stops the whole gateway: serving
    // on fewer threads than asked would hide the failure.
    tokio::select! {
        _ = &mut shutdown => {}
        Some((index, result)) = finished_rx.recv() => {
            finished += 1;
            tracing::error!(core = index, "a thread-per-core thread ended early; shutting down");
            first_error = Some(result.err().unwrap_or_else(|| ended_early(index)));
        }
    }
    let _ = stop_tx.send(true);
    for accepting in stopped_accepting {
        // An error: that thread has already ended.
        let _ = accepting.await;
    }
    background.stop();
    if let Some(cluster) = &gateway.cluster {
        cluster.leave().await;
    }
    close_sessions(&gateway);
    while finished < threads {
        let Some((index, result)) = finished_rx.recv().await else { break };
        finished += 1;
        if let Err(e) = result {
            tracing::error!(core = index, error = %e, "a thread-per-core thread failed");
            first_error.get_or_insert(e);
        }
    }
    gateway.core_runtimes.lock().unwrap_or_else(|p| p.into_inner()).clear();
    bookkeeping::flush(&gateway).await;
    first_error.map_or(Ok(()), Err)
}

fn ended_early(index: usize) -> std::io::Error {
    std::io::Error::other(format!("thread-per-core thread {index} ended before the shutdown"))
}

/// Reports a thread's end to [`serve_per_core`], also when it panicked.
struct Finished {
    index: usize,
    to: mpsc::UnboundedSender<(usize, std::io::Result<()>)>,
    result: Option<std::io::Result<()>>,
}

impl Drop for Finished {
    fn drop(&mut self) {
        let result = self.result.take().unwrap_or_else(|| Err(std::io::Error::other("the thread panicked")));
        let _ = self.to.send((self.index, result));
    }
}

/// One core's thread: its sockets and what it owes the coordinator.
struct Core {
    index: usize,
    gateway: Arc<Gateway>,
    listeners: Vec<(std::net::TcpListener, Trust)>,
    stop: watch::Receiver<bool>,
    /// Sent once this thread accepts nothing more.
    accepting_tx: oneshot::Sender<()>,
}

impl Core {
    fn run(self) -> std::io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let gateway = self.gateway.clone();
        gateway.core_runtimes.lock().unwrap_or_else(|p| p.into_inner()).push(runtime.handle().clone());
        let served = runtime.block_on(self.serve());
        // Dropping the runtime waits for its blocking tasks (store work) to end.
        drop(runtime);
        served
    }

    async fn serve(self) -> std::io::Result<()> {
        let Core { index, gateway, listeners, mut stop, accepting_tx } = self;
        let live = gateway.metrics.core_connections(index);
        let (accepted_tx, mut accepted_rx) = mpsc::channel(64);
        let mut acceptors = JoinSet::new();
        for (listener, trust) in listeners {
            let listener = TcpListener::from_std(listener)?;
            let local_port = listener.local_addr()?.port();
            acceptors.spawn(accept::accept_loop(gateway.clone(), listener, trust, local_port, accepted_tx.clone()));
        }
        drop(accepted_tx);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = stop.wait_for(|stopping| *stopping) => break,
                Some(accepted) = accepted_rx.recv() => {
                    connections.spawn(connection::handle(gateway.clone(), accepted));
                    live.inc();
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => live.dec(),
            }
        }
        // Nothing accepted from here on: on this thread no task runs while
        // this one does, so no acceptor is half-way through a handover.
        acceptors.abort_all();
        drop(accepted_rx);
        let _ = accepting_tx.send(());
        let drain = async {
            while connections.join_next().await.is_some() {
                live.dec();
            }
        };
        if tokio::time::timeout(DRAIN_FOR, drain).await.is_err() {
            connections.abort_all();
        }
        live.set(0);
        Ok(())
    }
}
