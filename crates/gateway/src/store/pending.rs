//! Pending pairing requests: one open per (device, role), idempotent
//! retries, supersession, expiry, caps, rejection cooldowns, approval.

use clawgate_protocol::scopes;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::codec::{from_ms, from_opt_ms, list_from_sql, list_to_sql, role_from_sql, OpResult};
use super::devices;
use super::error::{PendingCap, StoreError};
use super::types::{
    Approval, ApprovedVia, NewRequest, PairedDevice, PendingRequest, Rejection, RejectionCooldown, RequestOutcome,
    RequestState, Role,
};
use super::{MAX_OPEN_PER_IP, MAX_OPEN_TOTAL, PENDING_TTL_MS, REJECT_COOLDOWN_MS, RESOLVED_RETENTION_MS};
use crate::secrets::random_uuid;

const TTL: i64 = PENDING_TTL_MS as i64;
const COOLDOWN: i64 = REJECT_COOLDOWN_MS as i64;
const RETENTION: i64 = RESOLVED_RETENTION_MS as i64;

const COLUMNS: &str = "request_id, device_id, public_key, role, scopes, client_id, client_mode, \
     display_name, platform, device_family, remote_ip, created_at_ms, refreshed_at_ms, state, \
     superseded_by, resolved_at_ms, proxy_user";

/// A row as stored: an open row past its expiry still says `Open` here.
fn from_row(row: &Row<'_>) -> rusqlite::Result<PendingRequest> {
    let state: String = row.get(13)?;
    let by: Option<String> = row.get(14)?;
    let state = match (state.as_str(), by) {
        ("open", _) => RequestState::Open,
        ("superseded", Some(by)) => RequestState::Superseded { by },
        ("approved", _) => RequestState::Approved,
        ("rejected", _) => RequestState::Rejected,
        ("expired", _) => RequestState::Expired,
        (other, _) => {
            return Err(rusqlite::Error::FromSqlConversionFailure(
                13,
                rusqlite::types::Type::Text,
                format!("unknown request state {other:?}").into(),
            ))
        }
    };
    Ok(PendingRequest {
        request_id: row.get(0)?,
        device_id: row.get(1)?,
        public_key: row.get(2)?,
        role: role_from_sql(3, &row.get::<_, String>(3)?)?,
        scopes: list_from_sql(4, &row.get::<_, String>(4)?)?,
        client_id: row.get(5)?,
        client_mode: row.get(6)?,
        display_name: row.get(7)?,
        platform: row.get(8)?,
        device_family: row.get(9)?,
        remote_ip: row.get(10)?,
        proxy_user: row.get(16)?,
        created_at_ms: from_ms(row.get(11)?),
        refreshed_at_ms: from_ms(row.get(12)?),
        state,
        resolved_at_ms: from_opt_ms(row.get(15)?),
    })
}

/// The request as of `now`: an open one past its expiry reads as expired.
fn as_of(mut r: PendingRequest, now: i64) -> PendingRequest {
    if r.state == RequestState::Open && r.expires_at_ms() <= from_ms(now) {
        r.state = RequestState::Expired;
        r.resolved_at_ms = Some(r.expires_at_ms());
    }
    r
}

/// Start of every mutation: mark expired requests, forget long-resolved
/// ones and finished cooldowns. Returns how many rows changed.
pub(super) fn prune(conn: &Connection, now: i64) -> OpResult<usize> {
    let expired = conn.execute(
        "UPDATE pending_requests SET state = 'expired', resolved_at_ms = refreshed_at_ms + ?2
         WHERE state = 'open' AND refreshed_at_ms + ?2 <= ?1",
        params![now, TTL],
    )?;
    let forgotten = conn.execute(
        "DELETE FROM pending_requests WHERE state <> 'open' AND resolved_at_ms + ?2 <= ?1",
        params![now, RETENTION],
    )?;
    let cooled = conn.execute("DELETE FROM pairing_rejections WHERE until_ms <= ?1", [now])?;
    Ok(expired + forgotten + cooled)
}

fn get_raw(conn: &Connection, request_id: &str) -> OpResult<Option<PendingRequest>> {
    let sql = format!("SELECT {COLUMNS} FROM pending_requests WHERE request_id = ?1");
    Ok(conn.query_row(&sql, [request_id], from_row).optional()?)
}

pub(super) fn get(conn: &Connection, request_id: &str, now: i64) -> OpResult<Option<PendingRequest>> {
    Ok(get_raw(conn, request_id)?.map(|r| as_of(r, now)))
}

/// Open, unexpired requests (of one device, if given), oldest first.
pub(super) fn open(conn: &Connection, now: i64, device_id: Option<&str>) -> OpResult<Vec<PendingRequest>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM pending_requests
         WHERE state = 'open' AND refreshed_at_ms + ?2 > ?1
           AND (?3 IS NULL OR device_id = ?3)
         ORDER BY created_at_ms, request_id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![now, TTL, device_id], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The open request of (device, role). Callers have pruned, so it is unexpired.
fn open_for(conn: &Connection, device_id: &str, role: Role) -> OpResult<Option<PendingRequest>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM pending_requests
         WHERE state = 'open' AND device_id = ?1 AND role = ?2"
    );
    Ok(conn.query_row(&sql, params![device_id, role.as_str()], from_row).optional()?)
}

fn count_open(conn: &Connection, remote_ip: Option<&str>) -> OpResult<u32> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM pending_requests
         WHERE state = 'open' AND (?1 IS NULL OR remote_ip = ?1)",
        [remote_ip],
        |r| r.get(0),
    )?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

fn insert(conn: &Connection, id: &str, new: &NewRequest, scopes: &[String], now: i64) -> OpResult<()> {
    conn.execute(
        "INSERT INTO pending_requests (request_id, device_id, public_key, role, scopes,
             client_id, client_mode, display_name, platform, device_family, remote_ip,
             created_at_ms, refreshed_at_ms, state, superseded_by, resolved_at_ms, proxy_user)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, 'open', NULL, NULL, ?13)",
        params![
            id,
            new.device_id,
            new.public_key,
            new.role.as_str(),
            list_to_sql(scopes),
            new.client_id,
            new.client_mode,
            new.display_name,
            new.platform,
            new.device_family,
            new.remote_ip,
            now,
            new.proxy_user,
        ],
    )?;
    Ok(())
}

/// Open, refresh or supersede the request of (device, role).
pub(super) fn request_pairing(conn: &Connection, new: &NewRequest, now: i64) -> OpResult<RequestOutcome> {
    let scopes = devices::check_new(new)?;
    let until: Option<i64> = conn
        .query_row(
            "SELECT until_ms FROM pairing_rejections
             WHERE device_id = ?1 AND role = ?2 AND until_ms > ?3",
            params![new.device_id, new.role.as_str(), now],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(until) = until {
        return Err(StoreError::PairingRejected { role: new.role, until_ms: from_ms(until) }.into());
    }
    match open_for(conn, &new.device_id, new.role)? {
        Some(old)
            if old.public_key == new.public_key
                && old.proxy_user == new.proxy_user
                && scopes::holds_all(&scopes, &old.scopes) =>
        {
            conn.execute(
                "UPDATE pending_requests SET refreshed_at_ms = ?2 WHERE request_id = ?1",
                params![old.request_id, now],
            )?;
            Ok(RequestOutcome::Refreshed { request_id: old.request_id })
        }
        Some(old) => {
            // Broader (or another key, or another proxy user): a new id, so an approver never grants
            // more than the request it reviewed.
            let id = random_uuid();
            conn.execute(
                "UPDATE pending_requests
                 SET state = 'superseded', superseded_by = ?2, resolved_at_ms = ?3
                 WHERE request_id = ?1",
                params![old.request_id, id, now],
            )?;
            insert(conn, &id, new, &scopes, now)?;
            Ok(RequestOutcome::Superseded { old: old.request_id, new: id })
        }
        None => {
            if let Some(ip) = new.remote_ip.as_deref() {
                if count_open(conn, Some(ip))? >= MAX_OPEN_PER_IP {
                    return Err(StoreError::TooManyPending(PendingCap::PerIp {
                        ip: ip.to_owned(),
                        limit: MAX_OPEN_PER_IP,
                    })
                    .into());
                }
            }
            if count_open(conn, None)? >= MAX_OPEN_TOTAL {
                return Err(StoreError::TooManyPending(PendingCap::Total { limit: MAX_OPEN_TOTAL }).into());
            }
            let id = random_uuid();
            insert(conn, &id, new, &scopes, now)?;
            Ok(RequestOutcome::Created { request_id: id })
        }
    }
}

/// The end of a supersession chain (bounded: ids are random, a cycle cannot
/// form, but a damaged file should not hang the gateway).
fn latest_in_chain(conn: &Connection, mut by: String) -> OpResult<String> {
    for _ in 0..64 {
        match get_raw(conn, &by)? {
            Some(PendingRequest { state: RequestState::Superseded { by: next }, .. }) => by = next,
            _ => break,
        }
    }
    Ok(by)
}

/// The request, if it is open and unexpired; else why not.
fn open_request(conn: &Connection, request_id: &str, now: i64) -> OpResult<PendingRequest> {
    let r =
        get(conn, request_id, now)?.ok_or_else(|| StoreError::UnknownRequest { request_id: request_id.to_owned() })?;
    let request_id = request_id.to_owned();
    match &r.state {
        RequestState::Open => Ok(r),
        RequestState::Superseded { by } => {
            Err(StoreError::Superseded { request_id, by: latest_in_chain(conn, by.clone())? }.into())
        }
        RequestState::Expired => Err(StoreError::RequestExpired { request_id }.into()),
        RequestState::Approved | RequestState::Rejected => {
            Err(StoreError::RequestResolved { request_id, state: r.state.as_str() }.into())
        }
    }
}

fn close(conn: &Connection, request_id: &str, state: &str, now: i64) -> OpResult<()> {
    conn.execute(
        "UPDATE pending_requests SET state = ?2, resolved_at_ms = ?3 WHERE request_id = ?1",
        params![request_id, state, now],
    )?;
    Ok(())
}

fn clear_cooldown(conn: &Connection, device_id: &str, role: Role) -> OpResult<()> {
    conn.execute(
        "DELETE FROM pairing_rejections WHERE device_id = ?1 AND role = ?2",
        params![device_id, role.as_str()],
    )?;
    Ok(())
}

fn approve_open(conn: &Connection, mut request: PendingRequest, via: ApprovedVia, now: i64) -> OpResult<Approval> {
    let device = devices::grant(conn, &request.as_new_request(), via, now)?;
    close(conn, &request.request_id, "approved", now)?;
    clear_cooldown(conn, &request.device_id, request.role)?;
    request.state = RequestState::Approved;
    request.resolved_at_ms = Some(from_ms(now));
    Ok(Approval { request, device })
}

pub(super) fn approve(conn: &Connection, request_id: &str, via: ApprovedVia, now: i64) -> OpResult<Approval> {
    let request = open_request(conn, request_id, now)?;
    approve_open(conn, request, via, now)
}

pub(super) fn approve_latest(conn: &Connection, via: ApprovedVia, now: i64, window: i64) -> OpResult<Approval> {
    let since = now.saturating_sub(window);
    let mut recent: Vec<PendingRequest> =
        open(conn, now, None)?.into_iter().filter(|r| from_ms(since) <= r.refreshed_at_ms).collect();
    match recent.len() {
        0 => Err(StoreError::NoPendingRequest { device_id: None }.into()),
        1 => approve_open(conn, recent.remove(0), via, now),
        _ => Err(StoreError::AmbiguousLatest { ids: recent.into_iter().map(|r| r.request_id).collect() }.into()),
    }
}

pub(super) fn approve_device(conn: &Connection, device_id: &str, via: ApprovedVia, now: i64) -> OpResult<Approval> {
    let mut requests = open(conn, now, Some(device_id))?;
    match requests.len() {
        0 => Err(StoreError::NoPendingRequest { device_id: Some(device_id.to_owned()) }.into()),
        1 => approve_open(conn, requests.remove(0), via, now),
        _ => Err(StoreError::AmbiguousDevice {
            device_id: device_id.to_owned(),
            ids: requests.into_iter().map(|r| r.request_id).collect(),
        }
        .into()),
    }
}

/// Approve inline, without a request (`silent` or `proxy-auto`).
pub(super) fn pair_inline(conn: &Connection, new: &NewRequest, via: ApprovedVia, now: i64) -> OpResult<PairedDevice> {
    let device = devices::grant(conn, new, via, now)?;
    if let Some(open) = open_for(conn, &new.device_id, new.role)? {
        if open.public_key == device.public_key
            && open.proxy_user == device.proxy_user
            && scopes::holds_all(&open.scopes, &device.approved_scopes)
        {
            close(conn, &open.request_id, "approved", now)?;
        }
    }
    clear_cooldown(conn, &new.device_id, new.role)?;
    Ok(device)
}

pub(super) fn reject(conn: &Connection, request_id: &str, now: i64) -> OpResult<Rejection> {
    let mut request = open_request(conn, request_id, now)?;
    close(conn, request_id, "rejected", now)?;
    let until = now.saturating_add(COOLDOWN);
    conn.execute(
        "INSERT INTO pairing_rejections (device_id, role, rejected_at_ms, until_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (device_id, role) DO UPDATE SET
             rejected_at_ms = excluded.rejected_at_ms, until_ms = excluded.until_ms",
        params![request.device_id, request.role.as_str(), now, until],
    )?;
    request.state = RequestState::Rejected;
    request.resolved_at_ms = Some(from_ms(now));
    Ok(Rejection { request, cooldown_until_ms: from_ms(until) })
}

/// Cool-downs in force, oldest rejection first, each with the request it
/// rejected (kept longer than any cool-down, so normally there).
pub(super) fn rejections(conn: &Connection, now: i64) -> OpResult<Vec<RejectionCooldown>> {
    let mut stmt = conn.prepare(
        "SELECT device_id, role, rejected_at_ms, until_ms FROM pairing_rejections
         WHERE until_ms > ?1 ORDER BY rejected_at_ms, device_id, role",
    )?;
    let rows = stmt.query_map([now], |r| {
        Ok((r.get::<_, String>(0)?, role_from_sql(1, &r.get::<_, String>(1)?)?, from_ms(r.get(2)?), from_ms(r.get(3)?)))
    })?;
    let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let sql = format!(
        "SELECT {COLUMNS} FROM pending_requests
         WHERE device_id = ?1 AND role = ?2 AND state = 'rejected'
         ORDER BY resolved_at_ms DESC LIMIT 1"
    );
    let mut out = Vec::with_capacity(rows.len());
    for (device_id, role, rejected_at_ms, until_ms) in rows {
        let request = conn.query_row(&sql, params![device_id, role.as_str()], from_row).optional()?;
        out.push(RejectionCooldown { device_id, role, rejected_at_ms, until_ms, request });
    }
    Ok(out)
}

/// End the cool-downs of a device (of one role, if given) now. Returns the
/// roles whose cool-down was in force.
pub(super) fn lift_rejection(conn: &Connection, device_id: &str, role: Option<Role>, now: i64) -> OpResult<Vec<Role>> {
    let lifted: Vec<Role> = rejections(conn, now)?
        .into_iter()
        .filter(|c| c.device_id == device_id && role.is_none_or(|r| r == c.role))
        .map(|c| c.role)
        .collect();
    for role in &lifted {
        clear_cooldown(conn, device_id, *role)?;
    }
    Ok(lifted)
}
