//! Paired devices and their token digests, served from memory: a copy of
//! the `devices` and `device_tokens` tables that a device-token handshake
//! reads instead of SQLite, and the bookkeeping (last seen, last used) such a
//! handshake records, written in batches instead of one synchronous commit per
//! connect (docs/benchmarks.md, devices from memory).
//!
//! Coherence with the file:
//! - The store's own writes refresh the devices they touched, under the
//!   connection's lock, right after they commit (write-through), so whoever
//!   holds this store object — the gateway, a test — reads its own writes.
//! - Another process's writes (the CLI with `--offline`) move SQLite's
//!   `data_version`: the gateway's store watcher asks for it every poll, and
//!   a moved value reloads everything before the watcher re-checks the live
//!   sessions. Until then a connect is decided on the copy; the watcher
//!   re-checks every session admitted since its last poll against the
//!   reloaded copy, so a revoked device is closed within one poll.
//! - A write applied with an expected view (`apply_admission`) still checks
//!   the file itself under the write lock; when it finds the device changed,
//!   the device is refreshed, so the caller's next decision reads it.
//! - A failed refresh drops the copy: reads go to SQLite again until the
//!   next successful reload.
//!
//! The same batch carries service tokens' last-used times and those of
//! device tokens presented as relayed HTTP bearers: checking them reads the
//! file but writes nothing itself (store/sqlite.rs).
//!
//! Only what the batch writes is at risk in a crash: a few seconds of
//! last-seen and last-used times. A batch that fails (a full disk) is kept
//! whole and tried again with the next one, so a connect admitted by a
//! credential needs no store write. Pairings, approvals, tokens issued,
//! rotated or revoked are written synchronously, as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

use rusqlite::{params, Connection};

use super::codec::{from_ms, from_opt_ms, list_from_sql, read_generation, role_from_sql, OpResult};
use super::devices;
use super::types::{DeviceView, PairedDevice, Role, TokenCheck, TokenInfo};
use crate::secrets::SecretDigest;

/// One device and its tokens (operator first, the newest first within a
/// role: the order `tokens` lists them in).
#[derive(Clone)]
struct Entry {
    device: PairedDevice,
    tokens: Vec<MemoryToken>,
}

#[derive(Clone)]
struct MemoryToken {
    info: TokenInfo,
    digest: SecretDigest,
}

/// The copy, loaded whole at `generation` and the connection's
/// `data_version`, with the store's own writes since applied to it. A view
/// from it carries that `generation`: the store moved since the load when a
/// write's check finds another, and then it compares the device's record.
struct Copy {
    generation: u64,
    data_version: u64,
    devices: HashMap<String, Entry>,
}

/// Last-seen and last-used times not yet written.
#[derive(Default)]
struct Pending {
    /// device id → (when, from which address)
    seen: HashMap<String, (i64, Option<String>)>,
    /// token digest → when
    used: HashMap<[u8; 32], i64>,
    /// service secret digest → when
    service_used: HashMap<[u8; 32], i64>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.seen.is_empty() && self.used.is_empty() && self.service_used.is_empty()
    }
}

#[derive(Default)]
pub(super) struct DeviceMemory {
    /// Whether the store's owner asked for the copy (the gateway does).
    enabled: AtomicBool,
    /// `None`: not loaded (or dropped after a failed refresh).
    copy: RwLock<Option<Copy>>,
    pending: Mutex<Pending>,
}

const TOKEN_COLUMNS: &str = "device_id, role, scopes, created_at_ms, rotated_at_ms, revoked_at_ms, \
     last_used_at_ms, token_sha256";
const TOKEN_ORDER: &str = "CASE role WHEN 'operator' THEN 0 ELSE 1 END, created_at_ms DESC, token_id DESC";

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<MemoryToken> {
    let digest: Vec<u8> = row.get(7)?;
    let digest: [u8; 32] = digest.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Blob, "token digest is not 32 bytes".into())
    })?;
    Ok(MemoryToken {
        info: TokenInfo {
            device_id: row.get(0)?,
            role: role_from_sql(1, &row.get::<_, String>(1)?)?,
            scopes: list_from_sql(2, &row.get::<_, String>(2)?)?,
            created_at_ms: from_ms(row.get(3)?),
            rotated_at_ms: from_opt_ms(row.get(4)?),
            revoked_at_ms: from_opt_ms(row.get(5)?),
            last_used_at_ms: from_opt_ms(row.get(6)?),
        },
        digest: SecretDigest::from_bytes(digest),
    })
}

fn read_all(conn: &Connection, data_version: u64) -> OpResult<Copy> {
    let tx = conn.unchecked_transaction()?;
    let generation = read_generation(&tx)?;
    let mut by_id: HashMap<String, Entry> = devices::list(&tx)?
        .into_iter()
        .map(|d| (d.device_id.clone(), Entry { device: d, tokens: Vec::new() }))
        .collect();
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM device_tokens ORDER BY device_id, {TOKEN_ORDER}");
    let mut stmt = tx.prepare(&sql)?;
    for token in stmt.query_map([], token_from_row)? {
        let token = token?;
        if let Some(entry) = by_id.get_mut(&token.info.device_id) {
            entry.tokens.push(token);
        }
    }
    drop(stmt);
    tx.commit()?;
    Ok(Copy { generation, data_version, devices: by_id })
}

fn read_one(conn: &Connection, device_id: &str) -> OpResult<Option<Entry>> {
    let tx = conn.unchecked_transaction()?;
    let entry = match devices::get(&tx, device_id)? {
        None => None,
        Some(device) => {
            let sql = format!("SELECT {TOKEN_COLUMNS} FROM device_tokens WHERE device_id = ?1 ORDER BY {TOKEN_ORDER}");
            let mut stmt = tx.prepare_cached(&sql)?;
            let tokens = stmt.query_map([device_id], token_from_row)?.collect::<Result<_, _>>()?;
            Some(Entry { device, tokens })
        }
    };
    tx.commit()?;
    Ok(entry)
}

impl DeviceMemory {
    pub(super) fn enable(&self) {
        self.enabled.store(true, Ordering::Release);
    }

    pub(super) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    fn write_copy(&self) -> std::sync::RwLockWriteGuard<'_, Option<Copy>> {
        // Nothing panics while holding it; a poisoned copy is dropped anyway.
        self.copy.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read_copy(&self) -> std::sync::RwLockReadGuard<'_, Option<Copy>> {
        self.copy.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Is there a copy loaded at this `data_version`?
    pub(super) fn loaded_at_version(&self, data_version: u64) -> bool {
        self.read_copy().as_ref().is_some_and(|c| c.data_version == data_version)
    }

    /// Is there a copy loaded at this generation?
    pub(super) fn loaded_at_generation(&self, generation: u64) -> bool {
        self.read_copy().as_ref().is_some_and(|c| c.generation == generation)
    }

    /// Load everything. Call with the connection's lock held: reads and
    /// updates of the copy are ordered by it.
    pub(super) fn reload(&self, conn: &Connection, data_version: u64) -> OpResult<()> {
        match read_all(conn, data_version) {
            Ok(copy) => {
                *self.write_copy() = Some(copy);
                Ok(())
            }
            Err(e) => {
                *self.write_copy() = None;
                Err(e)
            }
        }
    }

    /// Read one device again after a write (connection's lock held). A
    /// failure drops the copy: reads go to SQLite until the next reload.
    pub(super) fn refresh(&self, conn: &Connection, device_id: &str) {
        if self.read_copy().is_none() {
            return;
        }
        match read_one(conn, device_id) {
            Ok(entry) => {
                let mut copy = self.write_copy();
                if let Some(copy) = copy.as_mut() {
                    match entry {
                        Some(e) => copy.devices.insert(device_id.to_owned(), e),
                        None => copy.devices.remove(device_id),
                    };
                }
            }
            Err(_) => *self.write_copy() = None,
        }
    }

    /// A device's view from the copy; `None` when there is no copy.
    pub(super) fn view(&self, device_id: &str) -> Option<DeviceView> {
        let copy = self.read_copy();
        let copy = copy.as_ref()?;
        let entry = copy.devices.get(device_id);
        Some(DeviceView {
            generation: copy.generation,
            device: entry.map(|e| e.device.clone()),
            tokens: entry.map(|e| e.tokens.iter().map(|t| t.info.clone()).collect()).unwrap_or_default(),
        })
    }

    /// Check a presented device token against the copy, as
    /// `tokens::verify` does against the file: every token of (device,
    /// role) is compared, found or not. A valid one's use is recorded for the
    /// next batch. `None` when there is no copy.
    pub(super) fn verify(&self, device_id: &str, role: Role, presented: &str, now: i64) -> Option<TokenCheck> {
        let mut copy = self.write_copy();
        let copy = copy.as_mut()?;
        let Some(entry) = copy.devices.get_mut(device_id) else { return Some(TokenCheck::DeviceNotPaired) };
        if !entry.device.has_role(role) {
            return Some(TokenCheck::Missing);
        }
        let mut any = false;
        let mut found: Option<usize> = None;
        for (i, token) in entry.tokens.iter().enumerate() {
            if token.info.role != role {
                continue;
            }
            any = true;
            if token.digest.matches(presented.as_bytes()) && found.is_none() {
                found = Some(i);
            }
        }
        let Some(i) = found else {
            return Some(if any { TokenCheck::Mismatch } else { TokenCheck::Missing });
        };
        let token = &mut entry.tokens[i];
        if token.info.is_revoked() {
            return Some(TokenCheck::Revoked);
        }
        token.info.last_used_at_ms = Some(from_ms(now));
        self.pending_lock().used.insert(*token.digest.as_bytes(), now);
        Some(TokenCheck::Valid { scopes: token.info.scopes.clone(), issued_at_ms: token.info.created_at_ms })
    }

    /// A device-token reconnect applied from the copy: `Some(true)` if what
    /// the decision read (`read`) still holds, the connect then recorded for
    /// the next batch; `Some(false)` if the device changed (decide again);
    /// `None` when there is no copy.
    pub(super) fn admit_seen(&self, read: &DeviceView, device_id: &str, ip: Option<&str>, now: i64) -> Option<bool> {
        let mut copy = self.write_copy();
        let copy = copy.as_mut()?;
        // The copy's own writes do not move its generation: compare the record.
        let Some(entry) = copy.devices.get_mut(device_id) else { return Some(false) };
        let now_view = DeviceView {
            generation: copy.generation,
            device: Some(entry.device.clone()),
            tokens: entry.tokens.iter().map(|t| t.info.clone()).collect(),
        };
        if super::admission_write::relied_on(&now_view) != super::admission_write::relied_on(read) {
            return Some(false);
        }
        entry.device.last_seen_at_ms = Some(from_ms(now));
        if let Some(ip) = ip {
            entry.device.remote_ip = Some(ip.to_owned());
        }
        self.pending_lock().seen.insert(device_id.to_owned(), (now, ip.map(str::to_owned)));
        Some(true)
    }

    fn pending_lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A device token's use found outside [`Self::verify`] (a relayed HTTP
    /// bearer), for the next batch.
    pub(super) fn record_token_use(&self, digest: [u8; 32], now: i64) {
        let mut pending = self.pending_lock();
        let when = pending.used.entry(digest).or_insert(now);
        *when = (*when).max(now);
    }

    /// A service token's use (its secret's digest), for the next batch.
    pub(super) fn record_service_use(&self, digest: [u8; 32], now: i64) {
        let mut pending = self.pending_lock();
        let when = pending.service_used.entry(digest).or_insert(now);
        *when = (*when).max(now);
    }

    pub(super) fn has_pending(&self) -> bool {
        !self.pending_lock().is_empty()
    }

    /// Write the pending bookkeeping in one transaction (connection's lock
    /// held). On failure the batch is kept for the next attempt: nothing is
    /// dropped but by a crash.
    pub(super) fn flush(&self, conn: &Connection) -> OpResult<()> {
        let batch = std::mem::take(&mut *self.pending_lock());
        if batch.is_empty() {
            return Ok(());
        }
        let written = write_batch(conn, &batch);
        if written.is_err() {
            let mut pending = self.pending_lock();
            for (id, seen) in batch.seen {
                pending.seen.entry(id).or_insert(seen);
            }
            for (digest, when) in batch.used {
                pending.used.entry(digest).or_insert(when);
            }
            for (digest, when) in batch.service_used {
                pending.service_used.entry(digest).or_insert(when);
            }
        }
        written
    }
}

/// One transaction for the whole batch, committed without a full fsync
/// (`synchronous=NORMAL` in WAL mode: durable at the next synchronous commit
/// or checkpoint); the connection's own setting is restored after.
fn write_batch(conn: &Connection, batch: &Pending) -> OpResult<()> {
    let previous: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let run = || -> OpResult<()> {
        let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut seen = tx.prepare_cached(
                "UPDATE devices SET last_seen_at_ms = max(coalesce(last_seen_at_ms, 0), ?2),
                     remote_ip = coalesce(?3, remote_ip)
                 WHERE device_id = ?1",
            )?;
            for (id, (when, ip)) in &batch.seen {
                seen.execute(params![id, when, ip])?;
            }
            let mut used = tx.prepare_cached(
                "UPDATE device_tokens SET last_used_at_ms = max(coalesce(last_used_at_ms, 0), ?2)
                 WHERE token_sha256 = ?1",
            )?;
            for (digest, when) in &batch.used {
                used.execute(params![&digest[..], when])?;
            }
            for (digest, when) in &batch.service_used {
                super::services::record_use(&tx, digest, *when)?;
            }
        }
        tx.commit()?;
        Ok(())
    };
    let result = run();
    conn.pragma_update(None, "synchronous", previous)?;
    result
}
