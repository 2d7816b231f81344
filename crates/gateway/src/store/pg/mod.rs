//! [`PgStore`]: the pairing store in PostgreSQL, for several clawgate
//! instances sharing one state (docs/cluster.md). Same behaviour as the
//! SQLite store, kept by the same rules (see the store module):
//!
//! - Every mutation is one transaction that first locks the generation row
//!   (`SELECT … FOR UPDATE`): writers from every instance and every CLI run
//!   take turns, as `BEGIN IMMEDIATE` makes them in SQLite, so each one
//!   re-checks its preconditions against the latest committed state, and the
//!   generation check between decide and apply runs under that lock.
//! - Reads run in one `REPEATABLE READ` snapshot.
//! - One open request per (device, role) and unique token digests are also
//!   unique indexes, so even a bug could not write two.
//! - A connection that is lost fails the operation with `STORE_UNAVAILABLE`
//!   and is opened again by the next one: recovery needs no restart.
//! - [`PairingStore::data_version`] moves when a generation written by
//!   another connection is seen, as SQLite's `data_version` does for
//!   another process's commit.
//! - Every generation bump is announced: `NOTIFY clawgate_changed` to every
//!   listening connection (any process; listen.rs) and, for this store's
//!   own writes, [`PairingStore::own_commits`] (what a gateway tells the
//!   other instances over NATS).

mod devices;
mod listen;
mod pending;
mod rows;
mod schema;
mod services;
mod session;
mod tokens;

#[cfg(test)]
pub(crate) mod test_server;

use std::sync::{Mutex, MutexGuard};

use postgres::{Client, IsolationLevel, Transaction};

use self::session::{col, PgResult, Target};
use super::admission_write::{relied_on, AdmissionApplied, AdmissionWrite};
use super::codec::{from_ms, ms};
use super::error::StoreError;
use super::relay_identities::{RelayDeviceToken, RelayIdentity};
use super::services::{IssuedServiceToken, ServicePrincipal, ServiceTokenCheck};
use super::types::{
    Approval, ApprovedVia, DeviceView, LiveToken, NewRequest, PairedDevice, PendingRequest, Rejection,
    RejectionCooldown, RequestOutcome, Role, TokenCheck, TokenInfo,
};
use super::PairingStore;
pub use listen::{ChangeListener, CHANGE_CHANNEL};
pub use schema::PG_SCHEMA_VERSION;

type Tx<'a> = Transaction<'a>;

/// Is `url` one the PostgreSQL store takes (`postgres://` or `postgresql://`)?
pub fn is_postgres_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// The pairing store in a PostgreSQL database. One connection behind a
/// mutex, as the SQLite store: every operation is a short transaction.
pub struct PgStore {
    target: Target,
    session: Mutex<Session>,
    /// The generation this store's own last committed write made.
    committed: tokio::sync::watch::Sender<u64>,
}

struct Session {
    client: Option<Client>,
    /// The generation as this connection last saw it or wrote it.
    last_generation: Option<u64>,
    /// How many times a generation written elsewhere was seen.
    changed_elsewhere: u64,
}

impl Session {
    /// Note a generation read from the database.
    fn saw(&mut self, generation: u64) {
        if self.last_generation.is_some_and(|last| last != generation) {
            self.changed_elsewhere += 1;
        }
        self.last_generation = Some(generation);
    }
}

/// Does the operation change state (bump the generation) on success?
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    State,
    /// Bookkeeping only (`last_used_at_ms`, `last_seen_at_ms`).
    Bookkeeping,
}

fn read_generation(tx: &mut Tx<'_>, lock: bool) -> PgResult<u64> {
    let sql = if lock {
        "SELECT value FROM meta WHERE key = 'generation' FOR UPDATE"
    } else {
        "SELECT value FROM meta WHERE key = 'generation'"
    };
    Ok(from_ms(col(&tx.query_one(sql, &[])?, 0)?))
}

impl PgStore {
    /// Connect to the database at `url` (`postgres://user:pass@host:port/db`),
    /// create or migrate the schema. A database that cannot be reached, is
    /// another program's or is from a newer clawgate is an error, never an
    /// empty store.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let target = Target::parse(url)?;
        let client = off_async_runtime(|| {
            let mut client = target.connect()?;
            schema::migrate(&mut client, &target.location).map_err(|e| target.classify(e).0)?;
            Ok(client)
        })?;
        let store = PgStore {
            target,
            session: Mutex::new(Session { client: Some(client), last_generation: None, changed_elsewhere: 0 }),
            committed: tokio::sync::watch::channel(0).0,
        };
        store.generation()?;
        Ok(store)
    }

    /// The database, as shown in errors (never the password).
    pub fn location(&self) -> &str {
        &self.target.location
    }

    fn lock(&self) -> MutexGuard<'_, Session> {
        // A panic cannot leave a transaction open (dropping it rolls back).
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on a live connection (opened again if it was lost); a lost
    /// connection is dropped so the next call opens a new one.
    fn with_session<T: Send>(
        &self,
        f: impl FnOnce(&mut Client, &mut Session) -> PgResult<T> + Send,
    ) -> Result<T, StoreError> {
        off_async_runtime(|| self.with_session_here(f))
    }

    fn with_session_here<T>(&self, f: impl FnOnce(&mut Client, &mut Session) -> PgResult<T>) -> Result<T, StoreError> {
        let mut session = self.lock();
        let mut client = match session.client.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.target.connect()?,
        };
        let out = f(&mut client, &mut session);
        match out {
            Ok(v) => {
                session.client = Some(client);
                Ok(v)
            }
            Err(e) => {
                let (err, lost) = self.target.classify(e);
                if !lost && !client.is_closed() {
                    session.client = Some(client);
                }
                Err(err)
            }
        }
    }

    /// A consistent read: one `REPEATABLE READ` snapshot.
    fn read<T: Send>(&self, f: impl FnOnce(&mut Tx<'_>, &mut Session) -> PgResult<T> + Send) -> Result<T, StoreError> {
        self.with_session(|client, session| {
            let mut tx =
                client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
            let out = f(&mut tx, session)?;
            tx.commit()?;
            Ok(out)
        })
    }

    fn write<T: Send>(
        &self,
        now_ms: u64,
        change: Change,
        f: impl FnOnce(&mut Tx<'_>, i64) -> PgResult<T> + Send,
    ) -> Result<T, StoreError> {
        self.write_at(None, now_ms, change, f)
    }

    /// A mutation under the generation row's lock: refused with
    /// [`StoreError::Stale`] when `expected` no longer holds; marks expired
    /// requests, runs `f`, bumps the generation if anything changed. On
    /// error nothing is written.
    fn write_at<T: Send>(
        &self,
        expected: Option<(&DeviceView, &str)>,
        now_ms: u64,
        change: Change,
        f: impl FnOnce(&mut Tx<'_>, i64) -> PgResult<T> + Send,
    ) -> Result<T, StoreError> {
        let now = ms(now_ms)?;
        self.with_session(|client, session| {
            let mut tx = client.transaction()?;
            let found = read_generation(&mut tx, true)?;
            session.saw(found);
            if let Some((read, device_id)) = expected {
                check_unchanged(&mut tx, read, device_id, found)?;
            }
            let pruned = pending::prune(&mut tx, now)?;
            let out = f(&mut tx, now)?;
            let bump = change == Change::State || pruned > 0;
            if bump {
                // The notification is queued by the transaction and sent to
                // the listeners at commit, never for a rolled-back write.
                tx.execute(
                    "UPDATE meta SET value = value + 1 WHERE key = 'generation' \
                     RETURNING pg_notify($1, value::text)",
                    &[&CHANGE_CHANNEL],
                )?;
            }
            tx.commit()?;
            if bump {
                session.last_generation = Some(found + 1);
                self.committed.send_replace(found + 1);
            }
            Ok(out)
        })
    }
}

impl Drop for PgStore {
    /// Closing the client blocks on its runtime too: off the async workers.
    fn drop(&mut self) {
        let session = self.session.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = session.client.take() {
            let _ = off_async_runtime(move || {
                drop(client);
                Ok(())
            });
        }
    }
}

/// Run `f` where the synchronous client may block. The client drives its
/// connection on a small runtime of its own, which cannot be started on a
/// thread that is already driving an async runtime (the gateway's workers,
/// the CLI's main task): there `f` runs on a scoped thread of its own,
/// borrowing what it needs, and this thread waits as it would for SQLite.
fn off_async_runtime<T: Send>(f: impl FnOnce() -> Result<T, StoreError> + Send) -> Result<T, StoreError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| scope.spawn(f).join())
        .unwrap_or_else(|_| Err(StoreError::InvalidInput("the store thread panicked".into())))
}

/// As the SQLite store's check: the store is at the decision's generation,
/// or this device's record and tokens are unchanged but for bookkeeping.
fn check_unchanged(tx: &mut Tx<'_>, read: &DeviceView, device_id: &str, found: u64) -> PgResult<()> {
    if found == read.generation {
        return Ok(());
    }
    let now =
        DeviceView { generation: found, device: devices::get(tx, device_id)?, tokens: tokens::list(tx, device_id)? };
    if relied_on(&now) == relied_on(read) {
        return Ok(());
    }
    Err(StoreError::Stale { expected: read.generation, found }.into())
}

fn apply_admission(tx: &mut Tx<'_>, write: &AdmissionWrite, now: i64) -> PgResult<AdmissionApplied> {
    match write {
        AdmissionWrite::Paired { device_id, role, remote_ip, issue_token } => {
            devices::touch(tx, device_id, remote_ip.as_deref(), now)?;
            if !issue_token {
                return Ok(AdmissionApplied::Admitted { token: None });
            }
            let approved = devices::get(tx, device_id)?
                .ok_or_else(|| StoreError::UnknownDevice { device_id: device_id.clone() })?
                .approved_scopes;
            let scopes = super::admission_write::token_scopes(*role, &approved);
            let token = tokens::issue(tx, device_id, *role, &scopes, now, false)?;
            Ok(AdmissionApplied::Admitted { token: Some(token) })
        }
        AdmissionWrite::PairSilently(request) | AdmissionWrite::PairProxyAuto(request) => {
            let via = super::admission_write::inline_approval(write, request)?;
            let paired = pending::pair_inline(tx, request, via, now)?;
            let scopes = super::admission_write::token_scopes(request.role, &paired.approved_scopes);
            let token = tokens::issue(tx, &paired.device_id, request.role, &scopes, now, false)?;
            Ok(AdmissionApplied::Admitted { token: Some(token) })
        }
        AdmissionWrite::RequestPairing(request) => {
            Ok(AdmissionApplied::Requested(pending::request_pairing(tx, request, now)?))
        }
    }
}

impl PairingStore for PgStore {
    fn generation(&self) -> Result<u64, StoreError> {
        self.read(|tx, session| {
            let g = read_generation(tx, false)?;
            session.saw(g);
            Ok(g)
        })
    }

    fn data_version(&self) -> Result<u64, StoreError> {
        self.read(|tx, session| {
            let g = read_generation(tx, false)?;
            session.saw(g);
            Ok(session.changed_elsewhere)
        })
    }

    fn own_commits(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.committed.subscribe())
    }

    fn change_listener(&self) -> Option<ChangeListener> {
        Some(ChangeListener::new(self.target.clone()))
    }

    fn device(&self, device_id: &str) -> Result<Option<PairedDevice>, StoreError> {
        self.read(|tx, _| devices::get(tx, device_id))
    }

    fn list_devices(&self) -> Result<Vec<PairedDevice>, StoreError> {
        self.read(|tx, _| devices::list(tx))
    }

    fn tokens(&self, device_id: &str) -> Result<Vec<TokenInfo>, StoreError> {
        self.read(|tx, _| tokens::list(tx, device_id))
    }

    fn view(&self, device_id: &str) -> Result<DeviceView, StoreError> {
        self.read(|tx, _| {
            Ok(DeviceView {
                generation: read_generation(tx, false)?,
                device: devices::get(tx, device_id)?,
                tokens: tokens::list(tx, device_id)?,
            })
        })
    }

    fn open_requests(&self, now_ms: u64) -> Result<Vec<PendingRequest>, StoreError> {
        let now = ms(now_ms)?;
        self.read(|tx, _| pending::open(tx, now, None))
    }

    fn request(&self, request_id: &str, now_ms: u64) -> Result<Option<PendingRequest>, StoreError> {
        let now = ms(now_ms)?;
        self.read(|tx, _| pending::get(tx, request_id, now))
    }

    fn request_pairing(&self, new: &NewRequest, now_ms: u64) -> Result<RequestOutcome, StoreError> {
        self.write(now_ms, Change::State, |tx, now| pending::request_pairing(tx, new, now))
    }

    fn approve(&self, request_id: &str, via: ApprovedVia, now_ms: u64) -> Result<Approval, StoreError> {
        self.write(now_ms, Change::State, |tx, now| pending::approve(tx, request_id, via, now))
    }

    fn approve_latest(&self, via: ApprovedVia, now_ms: u64, window_ms: u64) -> Result<Approval, StoreError> {
        let window = ms(window_ms)?;
        self.write(now_ms, Change::State, |tx, now| pending::approve_latest(tx, via, now, window))
    }

    fn approve_device(&self, device_id: &str, via: ApprovedVia, now_ms: u64) -> Result<Approval, StoreError> {
        self.write(now_ms, Change::State, |tx, now| pending::approve_device(tx, device_id, via, now))
    }

    fn pair_silently(&self, new: &NewRequest, now_ms: u64) -> Result<PairedDevice, StoreError> {
        self.write(now_ms, Change::State, |tx, now| pending::pair_inline(tx, new, ApprovedVia::Silent, now))
    }

    fn pair_proxy_auto(&self, new: &NewRequest, now_ms: u64) -> Result<PairedDevice, StoreError> {
        if new.proxy_user.is_none() {
            return Err(StoreError::InvalidInput("a proxy-auto approval needs the proxy user".into()));
        }
        self.write(now_ms, Change::State, |tx, now| pending::pair_inline(tx, new, ApprovedVia::ProxyAuto, now))
    }

    fn apply_admission(
        &self,
        read: &DeviceView,
        write: &AdmissionWrite,
        now_ms: u64,
    ) -> Result<AdmissionApplied, StoreError> {
        let change = if write.changes_state() { Change::State } else { Change::Bookkeeping };
        let expected = Some((read, write.device_id()));
        self.write_at(expected, now_ms, change, |tx, now| apply_admission(tx, write, now))
    }

    fn reject(&self, request_id: &str, now_ms: u64) -> Result<Rejection, StoreError> {
        self.write(now_ms, Change::State, |tx, now| pending::reject(tx, request_id, now))
    }

    fn rejections(&self, now_ms: u64) -> Result<Vec<RejectionCooldown>, StoreError> {
        let now = ms(now_ms)?;
        self.read(|tx, _| pending::rejections(tx, now))
    }

    fn lift_rejection(&self, device_id: &str, role: Option<Role>, now_ms: u64) -> Result<Vec<Role>, StoreError> {
        self.write(now_ms, Change::State, |tx, now| pending::lift_rejection(tx, device_id, role, now))
    }

    fn remove_device(&self, device_id: &str, now_ms: u64) -> Result<PairedDevice, StoreError> {
        self.write(now_ms, Change::State, |tx, _| devices::remove(tx, device_id))
    }

    fn rename_device(&self, device_id: &str, label: &str, now_ms: u64) -> Result<PairedDevice, StoreError> {
        self.write(now_ms, Change::State, |tx, _| devices::rename(tx, device_id, label))
    }

    fn issue_token(&self, device_id: &str, role: Role, scopes: &[String], now_ms: u64) -> Result<String, StoreError> {
        self.write(now_ms, Change::State, |tx, now| tokens::issue(tx, device_id, role, scopes, now, false))
    }

    fn rotate_token(&self, device_id: &str, role: Role, scopes: &[String], now_ms: u64) -> Result<String, StoreError> {
        self.write(now_ms, Change::State, |tx, now| tokens::rotate(tx, device_id, role, scopes, now))
    }

    fn verify_token(
        &self,
        device_id: &str,
        role: Role,
        presented: &str,
        now_ms: u64,
    ) -> Result<TokenCheck, StoreError> {
        self.write(now_ms, Change::Bookkeeping, |tx, now| tokens::verify(tx, device_id, role, presented, now))
    }

    fn revoke_token(&self, device_id: &str, role: Role, now_ms: u64) -> Result<bool, StoreError> {
        self.write(now_ms, Change::State, |tx, now| tokens::revoke(tx, device_id, role, now))
    }

    fn device_token_by_value(&self, presented: &str, now_ms: u64) -> Result<Option<LiveToken>, StoreError> {
        self.write(now_ms, Change::Bookkeeping, |tx, now| tokens::by_value(tx, presented, now))
    }

    fn touch_last_seen(&self, device_id: &str, remote_ip: Option<&str>, now_ms: u64) -> Result<bool, StoreError> {
        self.write(now_ms, Change::Bookkeeping, |tx, now| devices::touch(tx, device_id, remote_ip, now))
    }

    fn add_service(
        &self,
        name: &str,
        role: Role,
        scopes: &[String],
        now_ms: u64,
    ) -> Result<IssuedServiceToken, StoreError> {
        self.write(now_ms, Change::State, |tx, now| services::add(tx, name, role, scopes, now))
    }

    fn list_services(&self) -> Result<Vec<ServicePrincipal>, StoreError> {
        self.read(|tx, _| services::list(tx))
    }

    fn service_by_id(&self, principal_id: &str) -> Result<Option<ServicePrincipal>, StoreError> {
        self.read(|tx, _| services::by_id(tx, principal_id))
    }

    fn rotate_service(&self, name: &str, now_ms: u64) -> Result<IssuedServiceToken, StoreError> {
        self.write(now_ms, Change::State, |tx, now| services::rotate(tx, name, now))
    }

    fn revoke_service(&self, name: &str, now_ms: u64) -> Result<ServicePrincipal, StoreError> {
        self.write(now_ms, Change::State, |tx, now| services::revoke(tx, name, now))
    }

    fn verify_service_token(&self, token: &str, now_ms: u64) -> Result<ServiceTokenCheck, StoreError> {
        self.write(now_ms, Change::Bookkeeping, |tx, now| services::verify(tx, token, now))
    }

    fn relay_identity(&self, identity_key: &str, now_ms: u64) -> Result<RelayIdentity, StoreError> {
        self.write(now_ms, Change::Bookkeeping, |tx, now| services::relay_identity(tx, identity_key, now))
    }

    fn set_relay_device_token(
        &self,
        identity_key: &str,
        token: Option<&RelayDeviceToken>,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        self.write(now_ms, Change::Bookkeeping, |tx, _| services::set_relay_token(tx, identity_key, token))
    }

    fn remove_relay_identity(&self, identity_key: &str, now_ms: u64) -> Result<bool, StoreError> {
        self.write(now_ms, Change::Bookkeeping, |tx, _| services::remove_relay(tx, identity_key))
    }
}

#[cfg(test)]
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<PgStore>();
};
