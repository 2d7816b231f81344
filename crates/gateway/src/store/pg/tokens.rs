//! Device tokens in PostgreSQL, stored as SHA-256 digests only: several
//! live per (device, role), at most [`MAX_LIVE_TOKENS`]; as the SQLite
//! store does (docs/admission.md, device tokens).

use super::rows::{self, TOKEN_COLUMNS};
use super::session::{col, PgResult};
use super::{devices, Tx};
use crate::secrets::{random_token, SecretDigest};
use crate::store::codec::{from_ms, list_from_sql, list_to_sql};
use crate::store::error::StoreError;
use crate::store::types::{LiveToken, Role, TokenCheck, TokenInfo};
use crate::store::MAX_LIVE_TOKENS;

/// Revoked tokens kept per (device, role), as in the SQLite store.
const KEPT_REVOKED: i64 = 8;

/// Token metadata of a device: operator first, the newest first within a role.
pub(super) fn list(tx: &mut Tx<'_>, device_id: &str) -> PgResult<Vec<TokenInfo>> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM device_tokens WHERE device_id = $1
         ORDER BY CASE role WHEN 'operator' THEN 0 ELSE 1 END, created_at_ms DESC, token_id DESC"
    );
    tx.query(&sql, &[&device_id])?.iter().map(rows::token).collect()
}

/// Mint one more token of (device, role); past [`MAX_LIVE_TOKENS`] the one
/// unused longest is dropped.
pub(super) fn issue(
    tx: &mut Tx<'_>,
    device_id: &str,
    role: Role,
    scopes: &[String],
    now: i64,
    rotated: bool,
) -> PgResult<String> {
    let scopes = crate::store::tokens::issuable_scopes(devices::get(tx, device_id)?, device_id, role, scopes)?;
    let token = random_token();
    let digest = SecretDigest::of(token.as_bytes());
    tx.execute(
        "INSERT INTO device_tokens (device_id, role, token_sha256, scopes, created_at_ms, rotated_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&device_id, &role.as_str(), &&digest.as_bytes()[..], &list_to_sql(&scopes), &now, &rotated.then_some(now)],
    )?;
    tx.execute(
        "DELETE FROM device_tokens WHERE token_id IN (
             SELECT token_id FROM device_tokens
             WHERE device_id = $1 AND role = $2 AND revoked_at_ms IS NULL
             ORDER BY COALESCE(last_used_at_ms, created_at_ms) DESC, token_id DESC
             OFFSET $3)",
        &[&device_id, &role.as_str(), &(MAX_LIVE_TOKENS as i64)],
    )?;
    Ok(token)
}

/// End every live token of (device, role), then mint one.
pub(super) fn rotate(tx: &mut Tx<'_>, device_id: &str, role: Role, scopes: &[String], now: i64) -> PgResult<String> {
    end_all(tx, device_id, role, now)?;
    issue(tx, device_id, role, scopes, now, true)
}

/// Mark every live token of (device, role) revoked; forget revoked ones past
/// [`KEPT_REVOKED`]. Returns how many were live.
fn end_all(tx: &mut Tx<'_>, device_id: &str, role: Role, now: i64) -> PgResult<u64> {
    let ended = tx.execute(
        "UPDATE device_tokens SET revoked_at_ms = $3 WHERE device_id = $1 AND role = $2 AND revoked_at_ms IS NULL",
        &[&device_id, &role.as_str(), &now],
    )?;
    tx.execute(
        "DELETE FROM device_tokens WHERE token_id IN (
             SELECT token_id FROM device_tokens
             WHERE device_id = $1 AND role = $2 AND revoked_at_ms IS NOT NULL
             ORDER BY revoked_at_ms DESC, token_id DESC
             OFFSET $3)",
        &[&device_id, &role.as_str(), &KEPT_REVOKED],
    )?;
    Ok(ended)
}

/// Check a presented token in constant time against every token of
/// (device, role) (digest against digest).
pub(super) fn verify(tx: &mut Tx<'_>, device_id: &str, role: Role, presented: &str, now: i64) -> PgResult<TokenCheck> {
    let Some(device) = devices::get(tx, device_id)? else {
        return Ok(TokenCheck::DeviceNotPaired);
    };
    if !device.has_role(role) {
        return Ok(TokenCheck::Missing);
    }
    let found_rows = tx.query(
        "SELECT token_id, token_sha256, scopes, revoked_at_ms, created_at_ms FROM device_tokens
         WHERE device_id = $1 AND role = $2",
        &[&device_id, &role.as_str()],
    )?;
    let mut found: Option<(i64, String, Option<i64>, i64)> = None;
    for row in &found_rows {
        let hash = rows::bytes32(row, 1)?;
        // Every row is compared, found or not: the time taken does not tell
        // which of a device's tokens matched.
        if SecretDigest::from_bytes(hash).matches(presented.as_bytes()) && found.is_none() {
            found = Some((col(row, 0)?, col(row, 2)?, col(row, 3)?, col(row, 4)?));
        }
    }
    let Some((token_id, scopes, revoked, created)) = found else {
        return Ok(if found_rows.is_empty() { TokenCheck::Missing } else { TokenCheck::Mismatch });
    };
    if revoked.is_some() {
        return Ok(TokenCheck::Revoked);
    }
    tx.execute("UPDATE device_tokens SET last_used_at_ms = $2 WHERE token_id = $1", &[&token_id, &now])?;
    let scopes = list_from_sql(2, &scopes).map_err(super::session::bad)?;
    Ok(TokenCheck::Valid { scopes, issued_at_ms: from_ms(created) })
}

/// The live token whose digest is the presented value's, whoever holds it.
pub(super) fn by_value(tx: &mut Tx<'_>, presented: &str, now: i64) -> PgResult<Option<LiveToken>> {
    let digest = SecretDigest::of(presented.as_bytes());
    let row = tx.query_opt(
        "SELECT token_id, device_id, role, scopes FROM device_tokens
         WHERE token_sha256 = $1 AND revoked_at_ms IS NULL",
        &[&&digest.as_bytes()[..]],
    )?;
    let Some(row) = row else { return Ok(None) };
    let token_id: i64 = col(&row, 0)?;
    let device_id: String = col(&row, 1)?;
    let role = rows::role(&row, 2)?;
    let scopes = rows::list(&row, 3)?;
    let paired = devices::get(tx, &device_id)?.is_some_and(|d| d.has_role(role));
    if !paired {
        return Ok(None);
    }
    tx.execute("UPDATE device_tokens SET last_used_at_ms = $2 WHERE token_id = $1", &[&token_id, &now])?;
    Ok(Some(LiveToken { device_id, role, scopes }))
}

/// Revoke every token of (device, role). `false`: none was live.
pub(super) fn revoke(tx: &mut Tx<'_>, device_id: &str, role: Role, now: i64) -> PgResult<bool> {
    if devices::get(tx, device_id)?.is_none() {
        return Err(StoreError::UnknownDevice { device_id: device_id.to_owned() }.into());
    }
    let held: i64 = col(
        &tx.query_one(
            "SELECT count(*) FROM device_tokens WHERE device_id = $1 AND role = $2",
            &[&device_id, &role.as_str()],
        )?,
        0,
    )?;
    if held == 0 {
        return Err(StoreError::NoToken { device_id: device_id.to_owned(), role }.into());
    }
    Ok(end_all(tx, device_id, role, now)? > 0)
}
