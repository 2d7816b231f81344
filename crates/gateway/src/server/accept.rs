//! The accept loop: every socket is counted against its budget the moment
//! it is accepted ([`super::conn_budget`]), one over budget is closed at
//! once (never left in the kernel's backlog in front of the owner), and
//! accept errors (out of file descriptors and the like) back off without
//! spinning or flooding the log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use crate::config::{Config, Trust};

use super::conn_budget::{budget_key, Class, ConnectionSlot, OverBudget};
use super::wire::{self, EdgeFailure, Failure, Wire};
use super::Gateway;

/// The first pause after a failed accept; each further failure doubles it,
/// unless it shed a pending connection (then the pause starts over).
const BACKOFF_START: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per kind of event per this interval; the line says
/// how many were not logged since.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A connection accepted and counted on one of the listeners.
pub struct Accepted {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub local_port: u16,
    pub trust: Trust,
    pub slot: ConnectionSlot,
    /// The peer's uid when it was looked up at accept (owner's addresses only).
    pub peer_uid: Option<Option<u32>>,
}

/// One log line per interval for a recurring event, with a count of the
/// ones left out.
struct Throttled {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    fn new() -> Self {
        Throttled { last: None, suppressed: 0 }
    }

    /// `Some(count left out since the last line)` when a line is due now.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// A descriptor held in reserve: when accept fails for want of
/// descriptors, it is closed so that one pending connection can be
/// accepted and closed at once (instead of waiting in the backlog in front
/// of everyone else), then taken again.
struct SpareFd(Option<std::fs::File>);

impl SpareFd {
    fn open() -> Self {
        SpareFd(std::fs::File::open("/dev/null").ok())
    }

    /// Close the spare, accept and close one pending connection, take the
    /// spare again. True when one was shed.
    fn shed_one(&mut self, listener: &TcpListener) -> bool {
        use std::os::fd::AsRawFd;
        if self.0.take().is_none() {
            *self = SpareFd::open();
            return false;
        }
        // SAFETY: a non-blocking accept on the listener's live descriptor;
        // a descriptor it returns is ours and closed at once.
        let fd = unsafe {
            libc::accept4(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)
        };
        if fd >= 0 {
            // SAFETY: `fd` was just returned by accept4 and is owned by no one else.
            unsafe { libc::close(fd) };
        }
        *self = SpareFd::open();
        fd >= 0
    }
}

/// The gateway's one spare descriptor, and the gate every accept loop
/// passes for each `accept()` call. Several loops run at once (one per
/// listener, and one per core with thread-per-core): when one of them
/// frees the spare to shed a connection, another loop's accept would take
/// the freed descriptor first, the spare could not be taken again, and
/// from then on nobody could shed — connections would hang in the backlog
/// until some descriptor came free. Holding the gate around each accept
/// syscall (not across any wait) makes freeing the spare, shedding and
/// taking it back one step that no other accept can split.
/// The same gate keeps the log throttles, so that the whole gateway, not
/// each loop, logs one line per interval of each kind.
pub(crate) struct AcceptGate {
    spare: std::sync::Mutex<SpareFd>,
    error_log: std::sync::Mutex<Throttled>,
    refused_log: std::sync::Mutex<Throttled>,
}

impl Default for AcceptGate {
    fn default() -> Self {
        AcceptGate {
            spare: std::sync::Mutex::new(SpareFd::open()),
            error_log: std::sync::Mutex::new(Throttled::new()),
            refused_log: std::sync::Mutex::new(Throttled::new()),
        }
    }
}

/// A lock whose data is whole between calls (a descriptor, a counter), so a
/// panic elsewhere never leaves it unusable.
fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl AcceptGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, SpareFd> {
        locked(&self.spare)
    }

    /// `Some(count left out)` when an accept-error line is due.
    fn error_line_due(&self) -> Option<u64> {
        locked(&self.error_log).due()
    }

    /// `Some(count left out)` when an over-budget line is due.
    fn refused_line_due(&self) -> Option<u64> {
        locked(&self.refused_log).due()
    }

    /// `listener.accept()`, its syscall inside the gate.
    async fn accept(&self, listener: &TcpListener) -> std::io::Result<(TcpStream, SocketAddr)> {
        std::future::poll_fn(|cx| {
            let _gate = self.lock();
            listener.poll_accept(cx)
        })
        .await
    }

    /// Shed one pending connection of `listener` with the spare.
    fn shed_one(&self, listener: &TcpListener) -> bool {
        self.lock().shed_one(listener)
    }
}

pub async fn accept_loop(
    gw: Arc<Gateway>,
    listener: TcpListener,
    trust: Trust,
    local_port: u16,
    to: tokio::sync::mpsc::Sender<Accepted>,
) {
    let mut backoff = BACKOFF_START;
    loop {
        match gw.accept_gate.accept(&listener).await {
            Ok((stream, peer)) => {
                backoff = BACKOFF_START;
                let config = gw.config();
                let (class, peer_uid) = classify(&gw, &config, &stream, peer);
                let slot = match gw.connections.admit(class) {
                    Ok(slot) => slot,
                    Err(over) => {
                        gw.metrics.connection_refused(over);
                        if let Some(left_out) = gw.accept_gate.refused_line_due() {
                            tracing::warn!(
                                peer = %peer,
                                budget = over.as_str(),
                                not_logged = left_out,
                                "connection closed at accept: over its budget (docs/operations.md, resource limits)"
                            );
                        }
                        close_over_budget(stream, over);
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                if to.send(Accepted { stream, peer, local_port, trust, slot, peer_uid }).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                gw.metrics.accept_error();
                let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE));
                let shed = out_of_fds && gw.accept_gate.shed_one(&listener);
                if let Some(left_out) = gw.accept_gate.error_line_due() {
                    tracing::warn!(
                        error = %e,
                        not_logged = left_out,
                        pause_ms = backoff.as_millis() as u64,
                        shed_one = shed,
                        "accept failed; pausing before the next"
                    );
                }
                tokio::time::sleep(backoff).await;
                // Shedding a connection is progress: the backlog drains at
                // one per short pause instead of one per second, so no
                // connection is left hanging there while descriptors are out.
                backoff = if shed { BACKOFF_START } else { (backoff * 2).min(BACKOFF_MAX) };
            }
        }
    }
}

/// Whose budget a new socket counts in (docs/operations.md, resource
/// limits): the owner's local clients, decided by address and, where it
/// can be looked up, the uid owning the peer's socket; a trusted proxy's
/// share; or its address's.
fn classify(gw: &Gateway, config: &Config, stream: &TcpStream, peer: SocketAddr) -> (Class, Option<Option<u32>>) {
    let ip = crate::net::canonical(peer.ip());
    let owner_address = super::conn_budget::is_owner_address(ip);
    let trusted_proxy = config.trusted_proxies.iter().any(|net| net.contains(ip));
    if owner_address {
        if gw.peer_uids {
            let uid = stream
                .local_addr()
                .ok()
                .and_then(|local| crate::net::peer_uid::tcp_peer_uid(local, peer).ok().flatten());
            if uid.is_some_and(|u| config.local_owner_uids.contains(&u)) {
                return (Class::Owner, Some(uid));
            }
            return (if trusted_proxy { Class::TrustedProxy } else { Class::Address(budget_key(ip)) }, Some(uid));
        }
        if !trusted_proxy {
            return (Class::Owner, None);
        }
    }
    (if trusted_proxy { Class::TrustedProxy } else { Class::Address(budget_key(ip)) }, None)
}

/// Best effort, never waiting: a short 503 if the socket takes it, then close.
fn close_over_budget(stream: TcpStream, over: OverBudget) {
    if let Wire::Http(answer) = wire::to_wire(&Failure::Edge(EdgeFailure::ConnectionBudget(over))) {
        let body = answer.body.to_string();
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.try_write(response.as_bytes());
    }
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recurring_event_is_logged_once_per_interval_with_a_count_of_the_rest() {
        let mut t = Throttled::new();
        assert_eq!(t.due(), Some(0));
        for _ in 0..1_000 {
            assert_eq!(t.due(), None);
        }
        // As if the interval had passed: the next line counts what was left out.
        t.last = Instant::now().checked_sub(LOG_EVERY + Duration::from_millis(1));
        assert_eq!(t.due(), Some(1_000));
        assert_eq!(t.due(), None);
    }
}
