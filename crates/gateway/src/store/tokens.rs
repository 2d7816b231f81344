//! Device tokens, stored as SHA-256 digests only. A (device, role) may hold
//! several live tokens — each install or process of one identity keeps its
//! own — so issuing one never invalidates another; at most
//! [`MAX_LIVE_TOKENS`] stay live, the one unused longest is dropped.
//! Rotating and revoking end all of them (docs/admission.md, device tokens).

use clawgate_protocol::scopes;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::codec::{checked_scopes, from_ms, from_opt_ms, list_from_sql, list_to_sql, role_from_sql, OpResult};
use super::devices;
use super::error::StoreError;
use super::types::{LiveToken, PairedDevice, Role, TokenCheck, TokenInfo};
use crate::secrets::{random_token, SecretDigest};

/// Live tokens one (device, role) may hold at once.
pub const MAX_LIVE_TOKENS: usize = 8;
/// Revoked tokens kept per (device, role), so a presented one can still be
/// told apart as revoked; older ones are forgotten.
const KEPT_REVOKED: usize = 8;

fn info_from_row(row: &Row<'_>) -> rusqlite::Result<TokenInfo> {
    Ok(TokenInfo {
        device_id: row.get(0)?,
        role: role_from_sql(1, &row.get::<_, String>(1)?)?,
        scopes: list_from_sql(2, &row.get::<_, String>(2)?)?,
        created_at_ms: from_ms(row.get(3)?),
        rotated_at_ms: from_opt_ms(row.get(4)?),
        revoked_at_ms: from_opt_ms(row.get(5)?),
        last_used_at_ms: from_opt_ms(row.get(6)?),
    })
}

/// Token metadata of a device: operator first, the newest first within a role.
pub(super) fn list(conn: &Connection, device_id: &str) -> OpResult<Vec<TokenInfo>> {
    let mut stmt = conn.prepare(
        "SELECT device_id, role, scopes, created_at_ms, rotated_at_ms, revoked_at_ms,
                last_used_at_ms
         FROM device_tokens WHERE device_id = ?1
         ORDER BY CASE role WHEN 'operator' THEN 0 ELSE 1 END, created_at_ms DESC, token_id DESC",
    )?;
    let rows = stmt.query_map([device_id], info_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Mint one more token of (device, role). The role must be approved and the
/// scopes within the approved set. Other live tokens stay live, up to
/// [`MAX_LIVE_TOKENS`]: past that the one unused longest is dropped.
/// `rotated`: the token replaces the ones a rotation just ended.
/// The scopes a new token of (device, role) carries: the device must exist
/// and hold the role, and every scope must be within its approved ones.
pub(super) fn issuable_scopes(
    device: Option<PairedDevice>,
    device_id: &str,
    role: Role,
    scopes: &[String],
) -> Result<Vec<String>, StoreError> {
    let device = device.ok_or_else(|| StoreError::UnknownDevice { device_id: device_id.to_owned() })?;
    if !device.has_role(role) {
        return Err(StoreError::RoleNotApproved { device_id: device_id.to_owned(), role });
    }
    let scopes = checked_scopes(scopes)?;
    let missing = scopes::not_held(&scopes, &device.approved_scopes);
    if !missing.is_empty() {
        return Err(StoreError::ScopesNotApproved { device_id: device_id.to_owned(), missing });
    }
    Ok(scopes)
}

pub(super) fn issue(
    conn: &Connection,
    device_id: &str,
    role: Role,
    scopes: &[String],
    now: i64,
    rotated: bool,
) -> OpResult<String> {
    let scopes = issuable_scopes(devices::get(conn, device_id)?, device_id, role, scopes)?;
    let token = random_token();
    let digest = SecretDigest::of(token.as_bytes());
    conn.execute(
        "INSERT INTO device_tokens (device_id, role, token_sha256, scopes, created_at_ms,
             rotated_at_ms, revoked_at_ms, last_used_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, NULL)",
        params![device_id, role.as_str(), &digest.as_bytes()[..], list_to_sql(&scopes), now, rotated.then_some(now)],
    )?;
    conn.execute(
        "DELETE FROM device_tokens WHERE token_id IN (
             SELECT token_id FROM device_tokens
             WHERE device_id = ?1 AND role = ?2 AND revoked_at_ms IS NULL
             ORDER BY COALESCE(last_used_at_ms, created_at_ms) DESC, token_id DESC
             LIMIT -1 OFFSET ?3)",
        params![device_id, role.as_str(), MAX_LIVE_TOKENS as i64],
    )?;
    Ok(token)
}

/// End every live token of (device, role), then mint one: the old ones stop
/// verifying in the same commit.
pub(super) fn rotate(conn: &Connection, device_id: &str, role: Role, scopes: &[String], now: i64) -> OpResult<String> {
    end_all(conn, device_id, role, now)?;
    issue(conn, device_id, role, scopes, now, true)
}

/// Mark every live token of (device, role) revoked; forget revoked ones past
/// [`KEPT_REVOKED`]. Returns how many were live.
fn end_all(conn: &Connection, device_id: &str, role: Role, now: i64) -> OpResult<usize> {
    let ended = conn.execute(
        "UPDATE device_tokens SET revoked_at_ms = ?3
         WHERE device_id = ?1 AND role = ?2 AND revoked_at_ms IS NULL",
        params![device_id, role.as_str(), now],
    )?;
    conn.execute(
        "DELETE FROM device_tokens WHERE token_id IN (
             SELECT token_id FROM device_tokens
             WHERE device_id = ?1 AND role = ?2 AND revoked_at_ms IS NOT NULL
             ORDER BY revoked_at_ms DESC, token_id DESC
             LIMIT -1 OFFSET ?3)",
        params![device_id, role.as_str(), KEPT_REVOKED as i64],
    )?;
    Ok(ended)
}

/// Check a presented token in constant time against every token of
/// (device, role) (digest against digest).
pub(super) fn verify(
    conn: &Connection,
    device_id: &str,
    role: Role,
    presented: &str,
    now: i64,
) -> OpResult<TokenCheck> {
    let Some(device) = devices::get(conn, device_id)? else {
        return Ok(TokenCheck::DeviceNotPaired);
    };
    if !device.has_role(role) {
        return Ok(TokenCheck::Missing);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT token_id, token_sha256, scopes, revoked_at_ms, created_at_ms FROM device_tokens
         WHERE device_id = ?1 AND role = ?2",
    )?;
    let rows = stmt.query_map(params![device_id, role.as_str()], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get(4)?,
        ))
    })?;
    let mut any = false;
    let mut found: Option<(i64, String, Option<i64>, i64)> = None;
    for row in rows {
        let (token_id, hash, scopes, revoked, created): (i64, Vec<u8>, String, Option<i64>, i64) = row?;
        any = true;
        let hash: [u8; 32] = hash.try_into().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Blob,
                "token digest is not 32 bytes".into(),
            )
        })?;
        // Every row is compared, found or not: the time taken does not tell
        // which of a device's tokens matched.
        if SecretDigest::from_bytes(hash).matches(presented.as_bytes()) && found.is_none() {
            found = Some((token_id, scopes, revoked, created));
        }
    }
    let Some((token_id, scopes, revoked, created)) = found else {
        return Ok(if any { TokenCheck::Mismatch } else { TokenCheck::Missing });
    };
    if revoked.is_some() {
        return Ok(TokenCheck::Revoked);
    }
    conn.execute("UPDATE device_tokens SET last_used_at_ms = ?2 WHERE token_id = ?1", params![token_id, now])?;
    Ok(TokenCheck::Valid { scopes: list_from_sql(2, &scopes)?, issued_at_ms: from_ms(created) })
}

/// The live token whose digest is the presented value's, whoever holds it:
/// not revoked, and its device still paired for the role. Found through the
/// digest index; a digest of a 256-bit random token tells a guesser nothing,
/// so the lookup by equality needs no constant-time comparison.
pub(super) fn by_value(conn: &Connection, presented: &str, now: i64) -> OpResult<Option<LiveToken>> {
    let Some((live, digest)) = find_by_value(conn, presented)? else { return Ok(None) };
    conn.execute("UPDATE device_tokens SET last_used_at_ms = ?2 WHERE token_sha256 = ?1", params![&digest[..], now])?;
    Ok(Some(live))
}

/// [`by_value`] without the write: the live token and its digest, under
/// which its use is recorded later (the gateway's batch).
pub(super) fn find_by_value(conn: &Connection, presented: &str) -> OpResult<Option<(LiveToken, [u8; 32])>> {
    let digest = SecretDigest::of(presented.as_bytes());
    let row: Option<(i64, String, String, String)> = conn
        .query_row(
            "SELECT token_id, device_id, role, scopes FROM device_tokens
             WHERE token_sha256 = ?1 AND revoked_at_ms IS NULL",
            params![&digest.as_bytes()[..]],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((_token_id, device_id, role, scopes)) = row else { return Ok(None) };
    let role = role_from_sql(2, &role)?;
    let paired = devices::get(conn, &device_id)?.is_some_and(|d| d.has_role(role));
    if !paired {
        return Ok(None);
    }
    Ok(Some((LiveToken { device_id, role, scopes: list_from_sql(3, &scopes)? }, *digest.as_bytes())))
}

/// Revoke every token of (device, role). `false`: none was live.
pub(super) fn revoke(conn: &Connection, device_id: &str, role: Role, now: i64) -> OpResult<bool> {
    if devices::get(conn, device_id)?.is_none() {
        return Err(StoreError::UnknownDevice { device_id: device_id.to_owned() }.into());
    }
    let held: i64 = conn.query_row(
        "SELECT count(*) FROM device_tokens WHERE device_id = ?1 AND role = ?2",
        params![device_id, role.as_str()],
        |r| r.get(0),
    )?;
    if held == 0 {
        return Err(StoreError::NoToken { device_id: device_id.to_owned(), role }.into());
    }
    Ok(end_all(conn, device_id, role, now)? > 0)
}
