//! [`SqliteStore`]: the embedded [`PairingStore`], one SQLite file.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::admission_write::{self, AdmissionApplied, AdmissionWrite};
use super::codec::{ms, OpResult};
use super::device_memory::DeviceMemory;
use super::error::StoreError;
use super::file_guard::{FaultLog, FileIdentity};
use super::relay_identities::{self, RelayDeviceToken, RelayIdentity};
use super::services::{self, IssuedServiceToken, ServicePrincipal, ServiceTokenCheck};
use super::types::{
    Approval, ApprovedVia, DeviceView, LiveToken, NewRequest, PairedDevice, PendingRequest, Rejection,
    RejectionCooldown, RequestOutcome, Role, TokenCheck, TokenInfo,
};
use super::AdmissionWrite as Write;
use super::{devices, pending, schema, tokens, PairingStore};

/// The pairing store in one SQLite file (WAL, `synchronous=FULL`). One
/// connection behind a mutex: every operation is a short transaction.
pub struct SqliteStore {
    pub(super) conn: Mutex<Connection>,
    /// The file, as shown in errors.
    location: String,
    /// The file's path and the identity of the file opened there (`None`
    /// in memory): writes are refused once the path names another file.
    file: Option<(PathBuf, FileIdentity)>,
    faults: FaultLog,
    /// Devices and token digests in memory, once the owner asks for it
    /// ([`PairingStore::keep_devices_in_memory`]).
    memory: DeviceMemory,
}

/// Does the operation change state (bump the generation) on success?
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    State,
    /// Bookkeeping only (`last_used_at_ms`, `last_seen_at_ms`).
    Bookkeeping,
}

impl SqliteStore {
    /// Open the store at `path`, creating it (mode 0600) if missing. A file
    /// that is unreadable, not SQLite, corrupt, another program's or from a
    /// newer clawgate is an error naming it, never an empty store.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let location = path.display().to_string();
        let conn = schema::open_file(path)?;
        let identity = FileIdentity::of(path)
            .map_err(|e| StoreError::Unreadable { path: location.clone(), reason: e.to_string() })?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            location,
            file: Some((path.to_owned(), identity)),
            faults: FaultLog::default(),
            memory: DeviceMemory::default(),
        })
    }

    /// A fresh store in memory.
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        Ok(SqliteStore {
            conn: Mutex::new(schema::open_memory()?),
            location: ":memory:".to_owned(),
            file: None,
            faults: FaultLog::default(),
            memory: DeviceMemory::default(),
        })
    }

    /// The file this store lives in, as shown in errors.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Is the store's path still the file this store opened? Logged once
    /// when it stops being so.
    fn check_file(&self) -> Result<(), StoreError> {
        let Some((path, identity)) = &self.file else { return Ok(()) };
        identity.check(path, &self.location).inspect_err(|e| self.faults.failed(e))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic cannot leave a transaction open (dropping it rolls back),
        // so the connection behind a poisoned lock is still consistent.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A consistent read: one deferred transaction.
    fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> OpResult<T>) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let run = || -> OpResult<T> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        };
        run().map_err(|e| e.at(&self.location))
    }

    /// A mutation: one `BEGIN IMMEDIATE` transaction that first marks expired
    /// requests, then runs `f`, then bumps the generation if anything changed.
    /// On error nothing is written.
    fn write<T>(
        &self,
        now_ms: u64,
        change: Change,
        f: impl FnOnce(&Transaction<'_>, i64) -> OpResult<T>,
    ) -> Result<T, StoreError> {
        self.write_at(None, now_ms, change, f)
    }

    /// [`Self::write`], refused with [`StoreError::Stale`] when `expected`
    /// (a device's view as a decision read it) is given and no longer holds
    /// (checked under the write lock, before anything is written).
    fn write_at<T>(
        &self,
        expected: Option<(&DeviceView, &str)>,
        now_ms: u64,
        change: Change,
        f: impl FnOnce(&Transaction<'_>, i64) -> OpResult<T>,
    ) -> Result<T, StoreError> {
        let now = ms(now_ms)?;
        self.check_file()?;
        let mut conn = self.lock();
        let run = || -> OpResult<T> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some((read, device_id)) = expected {
                admission_write::check_unchanged(&tx, read, device_id)?;
            }
            let pruned = pending::prune(&tx, now)?;
            let out = f(&tx, now)?;
            if change == Change::State || pruned > 0 {
                bump_generation(&tx)?;
            }
            tx.commit()?;
            Ok(out)
        };
        let result = run().map_err(|e| e.at(&self.location));
        match &result {
            Ok(_) => self.faults.write_succeeded(&self.location),
            Err(e) => self.faults.failed(e),
        }
        result
    }
}

/// The in-memory copy of devices (store/device_memory.rs): kept in step with
/// this connection's writes here, reloaded when the file moved.
impl SqliteStore {
    /// Read `device_id` again into the copy after a write that may have
    /// changed it (or found it changed).
    fn refreshed<T>(&self, device_id: &str, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if self.memory.enabled() && (result.is_ok() || matches!(result, Err(StoreError::Stale { .. }))) {
            self.memory.refresh(&self.lock(), device_id);
        }
        result
    }

    /// Write the pending last-seen and last-used times now (never into a
    /// file that is no longer the store's: they stay pending then).
    fn flush_pending(&self) -> Result<(), StoreError> {
        if !self.memory.has_pending() {
            return Ok(());
        }
        self.check_file()?;
        self.memory.flush(&self.lock()).map_err(|e| e.at(&self.location))
    }

    /// Bookkeeping first, so a read of the records shows the latest times.
    /// Best effort: a batch that cannot be written now (a full disk) stays
    /// pending, and the read shows the times written so far instead of failing.
    fn flushed<T>(&self, read: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let _ = self.flush_pending();
        read()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Err(e) = self.flush_pending() {
            tracing::warn!(error = %e, code = e.code(), "last-seen times not written at close");
        }
    }
}

fn bump_generation(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'", [])?;
    Ok(())
}

impl PairingStore for SqliteStore {
    fn generation(&self) -> Result<u64, StoreError> {
        let generation = self.read(|tx| Ok(super::codec::read_generation(tx)?))?;
        // The copy follows every change: a moved generation reloads it whole
        // (the store's own writes were applied to it already; this re-bases it).
        if self.memory.enabled() && !self.memory.loaded_at_generation(generation) {
            let conn = self.lock();
            if let Ok(version) = conn.pragma_query_value(None, "data_version", |r| r.get::<_, i64>(0)) {
                // A failed reload leaves no copy: reads go to the file.
                let _ = self.memory.reload(&conn, super::codec::from_ms(version));
            }
        }
        Ok(generation)
    }

    fn data_version(&self) -> Result<u64, StoreError> {
        // The gateway's store watch and `/readyz` poll this: they notice a
        // removed or replaced file here even when nothing writes.
        self.check_file()?;
        let conn = self.lock();
        let version = conn
            .pragma_query_value(None, "data_version", |r| r.get::<_, i64>(0))
            .map(super::codec::from_ms)
            .map_err(|e| StoreError::from_sqlite(&self.location, e))?;
        // Another process wrote: reload the copy before anyone re-checks
        // sessions against it. A failed reload leaves no copy: reads go to the file.
        if self.memory.enabled() && !self.memory.loaded_at_version(version) {
            let _ = self.memory.reload(&conn, version);
        }
        Ok(version)
    }

    fn keep_devices_in_memory(&self) -> Result<bool, StoreError> {
        let conn = self.lock();
        let version = conn
            .pragma_query_value(None, "data_version", |r| r.get::<_, i64>(0))
            .map_err(|e| StoreError::from_sqlite(&self.location, e))?;
        self.memory.enable();
        self.memory.reload(&conn, super::codec::from_ms(version)).map_err(|e| e.at(&self.location))?;
        Ok(true)
    }

    fn flush_bookkeeping(&self) -> Result<(), StoreError> {
        self.flush_pending()
    }

    fn device(&self, device_id: &str) -> Result<Option<PairedDevice>, StoreError> {
        self.flushed(|| self.read(|tx| devices::get(tx, device_id)))
    }

    fn list_devices(&self) -> Result<Vec<PairedDevice>, StoreError> {
        self.flushed(|| self.read(|tx| devices::list(tx)))
    }

    fn tokens(&self, device_id: &str) -> Result<Vec<TokenInfo>, StoreError> {
        self.flushed(|| self.read(|tx| tokens::list(tx, device_id)))
    }

    fn view(&self, device_id: &str) -> Result<DeviceView, StoreError> {
        if let Some(view) = self.memory.view(device_id) {
            return Ok(view);
        }
        self.read(|tx| {
            Ok(DeviceView {
                generation: super::codec::read_generation(tx)?,
                device: devices::get(tx, device_id)?,
                tokens: tokens::list(tx, device_id)?,
            })
        })
    }

    fn open_requests(&self, now_ms: u64) -> Result<Vec<PendingRequest>, StoreError> {
        let now = ms(now_ms)?;
        self.read(|tx| pending::open(tx, now, None))
    }

    fn request(&self, request_id: &str, now_ms: u64) -> Result<Option<PendingRequest>, StoreError> {
        let now = ms(now_ms)?;
        self.read(|tx| pending::get(tx, request_id, now))
    }

    fn request_pairing(&self, new: &NewRequest, now_ms: u64) -> Result<RequestOutcome, StoreError> {
        self.write(now_ms, Change::State, |tx, now| pending::request_pairing(tx, new, now))
    }

    fn approve(&self, request_id: &str, via: ApprovedVia, now_ms: u64) -> Result<Approval, StoreError> {
        let approval = self.write(now_ms, Change::State, |tx, now| pending::approve(tx, request_id, via, now))?;
        self.refreshed(&approval.device.device_id.clone(), Ok(approval))
    }

    fn approve_latest(&self, via: ApprovedVia, now_ms: u64, window_ms: u64) -> Result<Approval, StoreError> {
        let window = ms(window_ms)?;
        let approval = self.write(now_ms, Change::State, |tx, now| pending::approve_latest(tx, via, now, window))?;
        self.refreshed(&approval.device.device_id.clone(), Ok(approval))
    }

    fn approve_device(&self, device_id: &str, via: ApprovedVia, now_ms: u64) -> Result<Approval, StoreError> {
        let approved = self.write(now_ms, Change::State, |tx, now| pending::approve_device(tx, device_id, via, now));
        self.refreshed(device_id, approved)
    }

    fn pair_silently(&self, new: &NewRequest, now_ms: u64) -> Result<PairedDevice, StoreError> {
        let paired =
            self.write(now_ms, Change::State, |tx, now| pending::pair_inline(tx, new, ApprovedVia::Silent, now));
        self.refreshed(&new.device_id, paired)
    }

    fn pair_proxy_auto(&self, new: &NewRequest, now_ms: u64) -> Result<PairedDevice, StoreError> {
        if new.proxy_user.is_none() {
            return Err(StoreError::InvalidInput("a proxy-auto approval needs the proxy user".into()));
        }
        let paired =
            self.write(now_ms, Change::State, |tx, now| pending::pair_inline(tx, new, ApprovedVia::ProxyAuto, now));
        self.refreshed(&new.device_id, paired)
    }

    fn apply_admission(
        &self,
        read: &DeviceView,
        write: &AdmissionWrite,
        now_ms: u64,
    ) -> Result<AdmissionApplied, StoreError> {
        // A device-token reconnect writes only bookkeeping: checked against
        // the copy and batched, no transaction.
        if let Write::Paired { device_id, remote_ip, issue_token: false, .. } = write {
            if let Some(ip) = remote_ip {
                super::codec::check_text("remote IP", ip)?;
            }
            match self.memory.admit_seen(read, device_id, remote_ip.as_deref(), ms(now_ms)?) {
                Some(true) => return Ok(AdmissionApplied::Admitted { token: None }),
                Some(false) => return Err(StoreError::Stale { expected: read.generation, found: read.generation }),
                None => {}
            }
        }
        let change = if write.changes_state() { Change::State } else { Change::Bookkeeping };
        let expected = Some((read, write.device_id()));
        let applied = self.write_at(expected, now_ms, change, |tx, now| admission_write::apply(tx, write, now));
        self.refreshed(write.device_id(), applied)
    }

    fn reject(&self, request_id: &str, now_ms: u64) -> Result<Rejection, StoreError> {
        self.write(now_ms, Change::State, |tx, now| pending::reject(tx, request_id, now))
    }

    fn rejections(&self, now_ms: u64) -> Result<Vec<RejectionCooldown>, StoreError> {
        let now = ms(now_ms)?;
        self.read(|tx| pending::rejections(tx, now))
    }

    fn lift_rejection(&self, device_id: &str, role: Option<Role>, now_ms: u64) -> Result<Vec<Role>, StoreError> {
        self.write(now_ms, Change::State, |tx, now| pending::lift_rejection(tx, device_id, role, now))
    }

    fn remove_device(&self, device_id: &str, now_ms: u64) -> Result<PairedDevice, StoreError> {
        let removed = self.write(now_ms, Change::State, |tx, _| devices::remove(tx, device_id));
        self.refreshed(device_id, removed)
    }

    fn rename_device(&self, device_id: &str, label: &str, now_ms: u64) -> Result<PairedDevice, StoreError> {
        let renamed = self.write(now_ms, Change::State, |tx, _| devices::rename(tx, device_id, label));
        self.refreshed(device_id, renamed)
    }

    fn issue_token(&self, device_id: &str, role: Role, scopes: &[String], now_ms: u64) -> Result<String, StoreError> {
        let issued =
            self.write(now_ms, Change::State, |tx, now| tokens::issue(tx, device_id, role, scopes, now, false));
        self.refreshed(device_id, issued)
    }

    fn rotate_token(&self, device_id: &str, role: Role, scopes: &[String], now_ms: u64) -> Result<String, StoreError> {
        let rotated = self.write(now_ms, Change::State, |tx, now| tokens::rotate(tx, device_id, role, scopes, now));
        self.refreshed(device_id, rotated)
    }

    fn verify_token(
        &self,
        device_id: &str,
        role: Role,
        presented: &str,
        now_ms: u64,
    ) -> Result<TokenCheck, StoreError> {
        // From the copy when there is one; its last use goes to the next batch.
        if let Some(check) = self.memory.verify(device_id, role, presented, ms(now_ms)?) {
            return Ok(check);
        }
        self.write(now_ms, Change::Bookkeeping, |tx, now| tokens::verify(tx, device_id, role, presented, now))
    }

    fn revoke_token(&self, device_id: &str, role: Role, now_ms: u64) -> Result<bool, StoreError> {
        let revoked = self.write(now_ms, Change::State, |tx, now| tokens::revoke(tx, device_id, role, now));
        self.refreshed(device_id, revoked)
    }

    fn device_token_by_value(&self, presented: &str, now_ms: u64) -> Result<Option<LiveToken>, StoreError> {
        // As for service tokens: where bookkeeping is batched, only a read.
        if self.memory.enabled() {
            let now = ms(now_ms)?;
            let found = self.read(|tx| tokens::find_by_value(tx, presented))?;
            return Ok(found.map(|(live, digest)| {
                self.memory.record_token_use(digest, now);
                live
            }));
        }
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
        self.flushed(|| self.read(|tx| services::list(tx)))
    }

    fn service_by_id(&self, principal_id: &str) -> Result<Option<ServicePrincipal>, StoreError> {
        self.flushed(|| self.read(|tx| services::by_id(tx, principal_id)))
    }

    fn rotate_service(&self, name: &str, now_ms: u64) -> Result<IssuedServiceToken, StoreError> {
        self.write(now_ms, Change::State, |tx, now| services::rotate(tx, name, now))
    }

    fn revoke_service(&self, name: &str, now_ms: u64) -> Result<ServicePrincipal, StoreError> {
        self.write(now_ms, Change::State, |tx, now| services::revoke(tx, name, now))
    }

    fn verify_service_token(&self, token: &str, now_ms: u64) -> Result<ServiceTokenCheck, StoreError> {
        // Where the bookkeeping is batched (the gateway), the check only
        // reads and the use goes to the next batch: no write on a connect.
        if self.memory.enabled() {
            let now = ms(now_ms)?;
            let (check, digest) = self.read(|tx| services::check(tx, token))?;
            return Ok(match (check, digest) {
                (ServiceTokenCheck::Valid(principal), Some(digest)) => {
                    self.memory.record_service_use(digest, now);
                    ServiceTokenCheck::Valid(ServicePrincipal { last_used_at_ms: Some(now_ms), ..principal })
                }
                (check, _) => check,
            });
        }
        self.write(now_ms, Change::Bookkeeping, |tx, now| services::verify(tx, token, now))
    }

    fn relay_identity(&self, identity_key: &str, now_ms: u64) -> Result<RelayIdentity, StoreError> {
        self.write(now_ms, Change::Bookkeeping, |tx, now| relay_identities::get_or_create(tx, identity_key, now))
    }

    fn set_relay_device_token(
        &self,
        identity_key: &str,
        token: Option<&RelayDeviceToken>,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        self.write(now_ms, Change::Bookkeeping, |tx, _| relay_identities::set_device_token(tx, identity_key, token))
    }

    fn remove_relay_identity(&self, identity_key: &str, now_ms: u64) -> Result<bool, StoreError> {
        self.write(now_ms, Change::Bookkeeping, |tx, _| relay_identities::remove(tx, identity_key))
    }
}

#[cfg(test)]
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<SqliteStore>();
};
