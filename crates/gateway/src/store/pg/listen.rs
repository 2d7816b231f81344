//! Hearing changes committed by anyone to the PostgreSQL store: every write
//! that bumps the generation also sends `NOTIFY clawgate_changed` (in the
//! same transaction, so it is delivered at commit and only then), and a
//! gateway keeps one extra connection `LISTEN`ing. This is how the offline
//! CLI's revocations, and another instance's when NATS is down, reach live
//! sessions within a moment rather than at the next poll (docs/cluster.md).
//! The poll stays: a notification lost while the connection was down is
//! made up for by one wake-up on reconnecting, and by the poll.

use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use super::session::Target;
use crate::store::error::StoreError;

/// The channel every generation bump is announced on; the payload is the
/// new generation (nothing secret).
pub const CHANGE_CHANNEL: &str = "clawgate_changed";

/// How long one wait for a notification lasts before `stop` is asked again.
const ROUND: Duration = Duration::from_millis(250);
/// How often an idle listening connection is checked with a query, so a
/// connection that died silently is noticed and opened again.
const PING_EVERY: Duration = Duration::from_secs(5);
/// Longest pause between attempts to connect again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A listener on one store's change channel: [`ChangeListener::run`] blocks,
/// so it runs on a thread of its own.
pub struct ChangeListener {
    target: Target,
}

impl ChangeListener {
    pub(super) fn new(target: Target) -> ChangeListener {
        ChangeListener { target }
    }

    /// The database, as shown in logs (never the password).
    pub fn location(&self) -> &str {
        &self.target.location
    }

    /// Listen until `stop()` answers true: `changed()` is called once per
    /// batch of notifications, and once after every (re)connection, since
    /// what was committed while no connection listened was not heard. A
    /// lost connection is opened again with a short back-off; failures are
    /// logged once per outage, not once per attempt.
    pub fn run(&self, changed: &dyn Fn(), stop: &dyn Fn() -> bool) {
        let mut backoff = Duration::from_millis(100);
        let mut failing: Option<&'static str> = None;
        while !stop() {
            match self.listen() {
                Ok(mut client) => {
                    if failing.take().is_some() {
                        tracing::info!(store = %self.target.location, "listening for store changes again");
                    }
                    backoff = Duration::from_millis(100);
                    changed();
                    if let Err(e) = self.serve(&mut client, changed, stop) {
                        tracing::warn!(
                            store = %self.target.location,
                            code = e.code(),
                            error = %e,
                            "the connection listening for store changes was lost; polling meanwhile"
                        );
                        failing = Some(e.code());
                    }
                }
                Err(e) => {
                    if failing != Some(e.code()) {
                        tracing::warn!(
                            store = %self.target.location,
                            code = e.code(),
                            error = %e,
                            "cannot listen for store changes; polling meanwhile"
                        );
                    }
                    failing = Some(e.code());
                }
            }
            let until = Instant::now() + backoff;
            while !stop() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50).min(backoff));
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn listen(&self) -> Result<Client, StoreError> {
        let mut client = self.target.connect()?;
        client.batch_execute(&format!("LISTEN {CHANGE_CHANNEL}")).map_err(|e| self.target.classify(e.into()).0)?;
        Ok(client)
    }

    /// Wait for notifications on `client` until it is lost (an error) or
    /// `stop()` (Ok).
    fn serve(&self, client: &mut Client, changed: &dyn Fn(), stop: &dyn Fn() -> bool) -> Result<(), StoreError> {
        let lost = |e: postgres::Error| self.target.classify(e.into()).0;
        let mut pinged = Instant::now();
        while !stop() {
            let waiting = Instant::now();
            // Nothing, and sooner than the wait: the connection ended (the
            // iterator says so only by returning nothing): ask it at once.
            let mut hung_up = false;
            if client.notifications().timeout_iter(ROUND).next().map_err(lost)?.is_some() {
                // What else already arrived is the same batch: one wake-up.
                while client.notifications().iter().next().map_err(lost)?.is_some() {}
                changed();
            } else {
                hung_up = waiting.elapsed() < ROUND / 2;
            }
            if client.is_closed() {
                return Err(StoreError::Unavailable {
                    location: self.target.location.clone(),
                    reason: "the listening connection was closed".into(),
                });
            }
            if hung_up || pinged.elapsed() >= PING_EVERY {
                client.batch_execute("SELECT 1").map_err(lost)?;
                pinged = Instant::now();
            }
        }
        Ok(())
    }
}
