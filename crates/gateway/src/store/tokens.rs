//! Device tokens: one per (device, role), stored as a SHA-256 digest only.

use clawgate_protocol::scopes;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::codec::{checked_scopes, from_ms, from_opt_ms, list_from_sql, list_to_sql, role_from_sql, OpResult};
use super::devices;
use super::error::StoreError;
use super::types::{LiveToken, Role, TokenCheck, TokenInfo};
use crate::secrets::{random_token, SecretDigest};

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

/// Token metadata of a device, operator first.
pub(super) fn list(conn: &Connection, device_id: &str) -> OpResult<Vec<TokenInfo>> {
    let mut stmt = conn.prepare(
        "SELECT device_id, role, scopes, created_at_ms, rotated_at_ms, revoked_at_ms,
                last_used_at_ms
         FROM device_tokens WHERE device_id = ?1
         ORDER BY CASE role WHEN 'operator' THEN 0 ELSE 1 END",
    )?;
    let rows = stmt.query_map([device_id], info_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Mint the (device, role) token. The role must be approved and the scopes
/// within the approved set. A previous token is overwritten, so it stops
/// verifying in the same commit.
pub(super) fn issue(conn: &Connection, device_id: &str, role: Role, scopes: &[String], now: i64) -> OpResult<String> {
    let device =
        devices::get(conn, device_id)?.ok_or_else(|| StoreError::UnknownDevice { device_id: device_id.to_owned() })?;
    if !device.has_role(role) {
        return Err(StoreError::RoleNotApproved { device_id: device_id.to_owned(), role }.into());
    }
    let scopes = checked_scopes(scopes)?;
    let missing = scopes::not_held(&scopes, &device.approved_scopes);
    if !missing.is_empty() {
        return Err(StoreError::ScopesNotApproved { device_id: device_id.to_owned(), missing }.into());
    }
    let token = random_token();
    let digest = SecretDigest::of(token.as_bytes());
    conn.execute(
        "INSERT INTO device_tokens (device_id, role, token_sha256, scopes, created_at_ms,
             rotated_at_ms, revoked_at_ms, last_used_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL, NULL)
         ON CONFLICT (device_id, role) DO UPDATE SET
             token_sha256 = excluded.token_sha256,
             scopes = excluded.scopes,
             rotated_at_ms = excluded.created_at_ms,
             revoked_at_ms = NULL,
             last_used_at_ms = NULL",
        params![device_id, role.as_str(), &digest.as_bytes()[..], list_to_sql(&scopes), now],
    )?;
    Ok(token)
}

/// Check a presented token in constant time (digest against digest).
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
    let row: Option<(Vec<u8>, String, Option<i64>)> = conn
        .query_row(
            "SELECT token_sha256, scopes, revoked_at_ms FROM device_tokens
             WHERE device_id = ?1 AND role = ?2",
            params![device_id, role.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((hash, scopes, revoked)) = row else {
        return Ok(TokenCheck::Missing);
    };
    let hash: [u8; 32] = hash.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, "token digest is not 32 bytes".into())
    })?;
    if !SecretDigest::from_bytes(hash).matches(presented.as_bytes()) {
        return Ok(TokenCheck::Mismatch);
    }
    if revoked.is_some() {
        return Ok(TokenCheck::Revoked);
    }
    conn.execute(
        "UPDATE device_tokens SET last_used_at_ms = ?3 WHERE device_id = ?1 AND role = ?2",
        params![device_id, role.as_str(), now],
    )?;
    Ok(TokenCheck::Valid { scopes: list_from_sql(1, &scopes)? })
}

/// The live token whose digest is the presented value's, whoever holds it:
/// not revoked, and its device still paired for the role. Found through the
/// digest index; a digest of a 256-bit random token tells a guesser nothing,
/// so the lookup by equality needs no constant-time comparison.
pub(super) fn by_value(conn: &Connection, presented: &str, now: i64) -> OpResult<Option<LiveToken>> {
    let digest = SecretDigest::of(presented.as_bytes());
    let row: Option<(String, String, String)> = conn
        .query_row(
            "SELECT device_id, role, scopes FROM device_tokens
             WHERE token_sha256 = ?1 AND revoked_at_ms IS NULL",
            params![&digest.as_bytes()[..]],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((device_id, role, scopes)) = row else { return Ok(None) };
    let role = role_from_sql(1, &role)?;
    let paired = devices::get(conn, &device_id)?.is_some_and(|d| d.has_role(role));
    if !paired {
        return Ok(None);
    }
    conn.execute(
        "UPDATE device_tokens SET last_used_at_ms = ?3 WHERE device_id = ?1 AND role = ?2",
        params![device_id, role.as_str(), now],
    )?;
    Ok(Some(LiveToken { device_id, role, scopes: list_from_sql(2, &scopes)? }))
}

/// Revoke the (device, role) token. `false`: it already was.
pub(super) fn revoke(conn: &Connection, device_id: &str, role: Role, now: i64) -> OpResult<bool> {
    if devices::get(conn, device_id)?.is_none() {
        return Err(StoreError::UnknownDevice { device_id: device_id.to_owned() }.into());
    }
    let revoked: Option<Option<i64>> = conn
        .query_row(
            "SELECT revoked_at_ms FROM device_tokens WHERE device_id = ?1 AND role = ?2",
            params![device_id, role.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    match revoked {
        None => Err(StoreError::NoToken { device_id: device_id.to_owned(), role }.into()),
        Some(Some(_)) => Ok(false),
        Some(None) => {
            conn.execute(
                "UPDATE device_tokens SET revoked_at_ms = ?3 WHERE device_id = ?1 AND role = ?2",
                params![device_id, role.as_str(), now],
            )?;
            Ok(true)
        }
    }
}
