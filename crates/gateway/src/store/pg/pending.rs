//! Pending pairing requests in PostgreSQL: the same rules as the SQLite
//! store's (one open per (device, role), kept by a unique index; idempotent
//! retries; supersession; expiry; caps; rejection cool-downs; approval).

use clawgate_protocol::scopes;
use postgres::Transaction;

use super::rows::{self, REQUEST_COLUMNS};
use super::session::{col, PgResult};
use super::{devices, Tx};
use crate::secrets::random_uuid;
use crate::store::codec::{from_ms, list_to_sql};
use crate::store::error::{PendingCap, StoreError};
use crate::store::types::{
    Approval, ApprovedVia, NewRequest, PairedDevice, PendingRequest, Rejection, RejectionCooldown, RequestOutcome,
    RequestState, Role,
};
use crate::store::{MAX_OPEN_PER_IP, MAX_OPEN_TOTAL, PENDING_TTL_MS, REJECT_COOLDOWN_MS, RESOLVED_RETENTION_MS};

const TTL: i64 = PENDING_TTL_MS as i64;
const COOLDOWN: i64 = REJECT_COOLDOWN_MS as i64;
const RETENTION: i64 = RESOLVED_RETENTION_MS as i64;

/// The request as of `now`: an open one past its expiry reads as expired.
fn as_of(mut r: PendingRequest, now: i64) -> PendingRequest {
    if r.state == RequestState::Open && r.expires_at_ms() <= from_ms(now) {
        r.state = RequestState::Expired;
        r.resolved_at_ms = Some(r.expires_at_ms());
    }
    r
}

/// Start of every mutation: mark expired requests, forget long-resolved
/// ones and finished cool-downs. Returns how many rows changed.
pub(super) fn prune(tx: &mut Tx<'_>, now: i64) -> PgResult<u64> {
    let expired = tx.execute(
        "UPDATE pending_requests SET state = 'expired', resolved_at_ms = refreshed_at_ms + $2
         WHERE state = 'open' AND refreshed_at_ms + $2 <= $1",
        &[&now, &TTL],
    )?;
    let forgotten = tx.execute(
        "DELETE FROM pending_requests WHERE state <> 'open' AND resolved_at_ms + $2 <= $1",
        &[&now, &RETENTION],
    )?;
    let cooled = tx.execute("DELETE FROM pairing_rejections WHERE until_ms <= $1", &[&now])?;
    Ok(expired + forgotten + cooled)
}

fn get_raw(tx: &mut Tx<'_>, request_id: &str) -> PgResult<Option<PendingRequest>> {
    let sql = format!("SELECT {REQUEST_COLUMNS} FROM pending_requests WHERE request_id = $1");
    tx.query_opt(&sql, &[&request_id])?.as_ref().map(rows::request).transpose()
}

pub(super) fn get(tx: &mut Tx<'_>, request_id: &str, now: i64) -> PgResult<Option<PendingRequest>> {
    Ok(get_raw(tx, request_id)?.map(|r| as_of(r, now)))
}

/// Open, unexpired requests (of one device, if given), oldest first.
pub(super) fn open(tx: &mut Tx<'_>, now: i64, device_id: Option<&str>) -> PgResult<Vec<PendingRequest>> {
    let sql = format!(
        "SELECT {REQUEST_COLUMNS} FROM pending_requests
         WHERE state = 'open' AND refreshed_at_ms + $2 > $1
           AND ($3::text IS NULL OR device_id = $3)
         ORDER BY created_at_ms, request_id"
    );
    tx.query(&sql, &[&now, &TTL, &device_id])?.iter().map(rows::request).collect()
}

/// The open request of (device, role). Callers have pruned, so it is unexpired.
fn open_for(tx: &mut Tx<'_>, device_id: &str, role: Role) -> PgResult<Option<PendingRequest>> {
    let sql = format!(
        "SELECT {REQUEST_COLUMNS} FROM pending_requests
         WHERE state = 'open' AND device_id = $1 AND role = $2"
    );
    tx.query_opt(&sql, &[&device_id, &role.as_str()])?.as_ref().map(rows::request).transpose()
}

fn count_open(tx: &mut Tx<'_>, remote_ip: Option<&str>) -> PgResult<u32> {
    let row = tx.query_one(
        "SELECT count(*) FROM pending_requests WHERE state = 'open' AND ($1::text IS NULL OR remote_ip = $1)",
        &[&remote_ip],
    )?;
    let n: i64 = col(&row, 0)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

fn insert(tx: &mut Tx<'_>, id: &str, new: &NewRequest, scopes: &[String], now: i64) -> PgResult<()> {
    tx.execute(
        "INSERT INTO pending_requests (request_id, device_id, public_key, role, scopes,
             client_id, client_mode, display_name, platform, device_family, remote_ip,
             created_at_ms, refreshed_at_ms, state, superseded_by, resolved_at_ms, proxy_user)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 'open', NULL, NULL, $13)",
        &[
            &id,
            &new.device_id,
            &new.public_key,
            &new.role.as_str(),
            &list_to_sql(scopes),
            &new.client_id,
            &new.client_mode,
            &new.display_name,
            &new.platform,
            &new.device_family,
            &new.remote_ip,
            &now,
            &new.proxy_user,
        ],
    )?;
    Ok(())
}

/// Open, refresh or supersede the request of (device, role).
pub(super) fn request_pairing(tx: &mut Tx<'_>, new: &NewRequest, now: i64) -> PgResult<RequestOutcome> {
    let scopes = crate::store::devices::check_new(new)?;
    let cooldown = tx.query_opt(
        "SELECT until_ms FROM pairing_rejections WHERE device_id = $1 AND role = $2 AND until_ms > $3",
        &[&new.device_id, &new.role.as_str(), &now],
    )?;
    if let Some(row) = cooldown {
        let until: i64 = col(&row, 0)?;
        return Err(StoreError::PairingRejected { role: new.role, until_ms: from_ms(until) }.into());
    }
    match open_for(tx, &new.device_id, new.role)? {
        Some(old)
            if old.public_key == new.public_key
                && old.proxy_user == new.proxy_user
                && scopes::holds_all(&scopes, &old.scopes) =>
        {
            tx.execute(
                "UPDATE pending_requests SET refreshed_at_ms = $2 WHERE request_id = $1",
                &[&old.request_id, &now],
            )?;
            Ok(RequestOutcome::Refreshed { request_id: old.request_id })
        }
        Some(old) => {
            // Broader (or another key or proxy user): a new id, so an
            // approver never grants more than the request it reviewed.
            let id = random_uuid();
            tx.execute(
                "UPDATE pending_requests SET state = 'superseded', superseded_by = $2, resolved_at_ms = $3
                 WHERE request_id = $1",
                &[&old.request_id, &id, &now],
            )?;
            insert(tx, &id, new, &scopes, now)?;
            Ok(RequestOutcome::Superseded { old: old.request_id, new: id })
        }
        None => {
            if let Some(ip) = new.remote_ip.as_deref() {
                if count_open(tx, Some(ip))? >= MAX_OPEN_PER_IP {
                    let cap = PendingCap::PerIp { ip: ip.to_owned(), limit: MAX_OPEN_PER_IP };
                    return Err(StoreError::TooManyPending(cap).into());
                }
            }
            if count_open(tx, None)? >= MAX_OPEN_TOTAL {
                return Err(StoreError::TooManyPending(PendingCap::Total { limit: MAX_OPEN_TOTAL }).into());
            }
            let id = random_uuid();
            insert(tx, &id, new, &scopes, now)?;
            Ok(RequestOutcome::Created { request_id: id })
        }
    }
}

/// The end of a supersession chain (bounded, as in the SQLite store).
fn latest_in_chain(tx: &mut Tx<'_>, mut by: String) -> PgResult<String> {
    for _ in 0..64 {
        match get_raw(tx, &by)? {
            Some(PendingRequest { state: RequestState::Superseded { by: next }, .. }) => by = next,
            _ => break,
        }
    }
    Ok(by)
}

/// The request, if it is open and unexpired; else why not.
fn open_request(tx: &mut Tx<'_>, request_id: &str, now: i64) -> PgResult<PendingRequest> {
    let r =
        get(tx, request_id, now)?.ok_or_else(|| StoreError::UnknownRequest { request_id: request_id.to_owned() })?;
    let request_id = request_id.to_owned();
    match &r.state {
        RequestState::Open => Ok(r),
        RequestState::Superseded { by } => {
            Err(StoreError::Superseded { request_id, by: latest_in_chain(tx, by.clone())? }.into())
        }
        RequestState::Expired => Err(StoreError::RequestExpired { request_id }.into()),
        RequestState::Approved | RequestState::Rejected => {
            Err(StoreError::RequestResolved { request_id, state: r.state.as_str() }.into())
        }
    }
}

fn close(tx: &mut Tx<'_>, request_id: &str, state: &str, now: i64) -> PgResult<()> {
    tx.execute(
        "UPDATE pending_requests SET state = $2, resolved_at_ms = $3 WHERE request_id = $1",
        &[&request_id, &state, &now],
    )?;
    Ok(())
}

fn clear_cooldown(tx: &mut Tx<'_>, device_id: &str, role: Role) -> PgResult<()> {
    tx.execute("DELETE FROM pairing_rejections WHERE device_id = $1 AND role = $2", &[&device_id, &role.as_str()])?;
    Ok(())
}

fn approve_open(tx: &mut Tx<'_>, mut request: PendingRequest, via: ApprovedVia, now: i64) -> PgResult<Approval> {
    let device = devices::grant(tx, &request.as_new_request(), via, now)?;
    close(tx, &request.request_id, "approved", now)?;
    clear_cooldown(tx, &request.device_id, request.role)?;
    request.state = RequestState::Approved;
    request.resolved_at_ms = Some(from_ms(now));
    Ok(Approval { request, device })
}

pub(super) fn approve(tx: &mut Tx<'_>, request_id: &str, via: ApprovedVia, now: i64) -> PgResult<Approval> {
    let request = open_request(tx, request_id, now)?;
    approve_open(tx, request, via, now)
}

pub(super) fn approve_latest(tx: &mut Tx<'_>, via: ApprovedVia, now: i64, window: i64) -> PgResult<Approval> {
    let since = now.saturating_sub(window);
    let mut recent: Vec<PendingRequest> =
        open(tx, now, None)?.into_iter().filter(|r| from_ms(since) <= r.refreshed_at_ms).collect();
    match recent.len() {
        0 => Err(StoreError::NoPendingRequest { device_id: None }.into()),
        1 => approve_open(tx, recent.remove(0), via, now),
        _ => Err(StoreError::AmbiguousLatest { ids: recent.into_iter().map(|r| r.request_id).collect() }.into()),
    }
}

pub(super) fn approve_device(tx: &mut Tx<'_>, device_id: &str, via: ApprovedVia, now: i64) -> PgResult<Approval> {
    let mut requests = open(tx, now, Some(device_id))?;
    match requests.len() {
        0 => Err(StoreError::NoPendingRequest { device_id: Some(device_id.to_owned()) }.into()),
        1 => approve_open(tx, requests.remove(0), via, now),
        _ => Err(StoreError::AmbiguousDevice {
            device_id: device_id.to_owned(),
            ids: requests.into_iter().map(|r| r.request_id).collect(),
        }
        .into()),
    }
}

/// Approve inline, without a request (`silent` or `proxy-auto`).
pub(super) fn pair_inline(tx: &mut Tx<'_>, new: &NewRequest, via: ApprovedVia, now: i64) -> PgResult<PairedDevice> {
    let device = devices::grant(tx, new, via, now)?;
    if let Some(open) = open_for(tx, &new.device_id, new.role)? {
        if open.public_key == device.public_key
            && open.proxy_user == device.proxy_user
            && scopes::holds_all(&open.scopes, &device.approved_scopes)
        {
            close(tx, &open.request_id, "approved", now)?;
        }
    }
    clear_cooldown(tx, &new.device_id, new.role)?;
    Ok(device)
}

pub(super) fn reject(tx: &mut Tx<'_>, request_id: &str, now: i64) -> PgResult<Rejection> {
    let mut request = open_request(tx, request_id, now)?;
    close(tx, request_id, "rejected", now)?;
    let until = now.saturating_add(COOLDOWN);
    tx.execute(
        "INSERT INTO pairing_rejections (device_id, role, rejected_at_ms, until_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (device_id, role) DO UPDATE SET
             rejected_at_ms = EXCLUDED.rejected_at_ms, until_ms = EXCLUDED.until_ms",
        &[&request.device_id, &request.role.as_str(), &now, &until],
    )?;
    request.state = RequestState::Rejected;
    request.resolved_at_ms = Some(from_ms(now));
    Ok(Rejection { request, cooldown_until_ms: from_ms(until) })
}

/// Cool-downs in force, oldest rejection first, each with the request it
/// rejected (kept longer than any cool-down, so normally there).
pub(super) fn rejections(tx: &mut Transaction<'_>, now: i64) -> PgResult<Vec<RejectionCooldown>> {
    let found = tx.query(
        "SELECT device_id, role, rejected_at_ms, until_ms FROM pairing_rejections
         WHERE until_ms > $1 ORDER BY rejected_at_ms, device_id, role",
        &[&now],
    )?;
    let sql = format!(
        "SELECT {REQUEST_COLUMNS} FROM pending_requests
         WHERE device_id = $1 AND role = $2 AND state = 'rejected'
         ORDER BY resolved_at_ms DESC LIMIT 1"
    );
    let mut out = Vec::with_capacity(found.len());
    for row in &found {
        let device_id: String = col(row, 0)?;
        let role = rows::role(row, 1)?;
        let request = tx.query_opt(&sql, &[&device_id, &role.as_str()])?.as_ref().map(rows::request).transpose()?;
        out.push(RejectionCooldown {
            device_id,
            role,
            rejected_at_ms: rows::when(row, 2)?,
            until_ms: rows::when(row, 3)?,
            request,
        });
    }
    Ok(out)
}

/// End the cool-downs of a device (of one role, if given) now. Returns the
/// roles whose cool-down was in force.
pub(super) fn lift_rejection(tx: &mut Tx<'_>, device_id: &str, role: Option<Role>, now: i64) -> PgResult<Vec<Role>> {
    let lifted: Vec<Role> = rejections(tx, now)?
        .into_iter()
        .filter(|c| c.device_id == device_id && role.is_none_or(|r| r == c.role))
        .map(|c| c.role)
        .collect();
    for role in &lifted {
        clear_cooldown(tx, device_id, *role)?;
    }
    Ok(lifted)
}
