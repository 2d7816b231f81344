//! Service principals and relay identities in PostgreSQL, as the SQLite
//! store keeps them (docs/admission.md, service tokens): only a secret's
//! digest; the id selects the row, the secret is compared in constant time.

use super::rows::{self, SERVICE_COLUMNS};
use super::session::{col, PgResult};
use super::Tx;
use crate::secrets::{random_bytes, random_token, SecretDigest};
use crate::store::codec::{check_text, checked_scopes, from_ms, list_to_sql, ms};
use crate::store::error::StoreError;
use crate::store::relay_identities::{check_key, RelayDeviceToken, RelayIdentity};
use crate::store::services::{
    check_service_name, checked_service_scopes, new_id, parse_service_token, token_for, IssuedServiceToken,
    ServicePrincipal, ServiceTokenCheck,
};
use crate::store::types::Role;

pub(super) fn list(tx: &mut Tx<'_>) -> PgResult<Vec<ServicePrincipal>> {
    let sql = format!(
        "SELECT {SERVICE_COLUMNS} FROM service_principals
         ORDER BY revoked_at_ms IS NOT NULL, created_at_ms, principal_id"
    );
    tx.query(&sql, &[])?.iter().map(rows::service).collect()
}

pub(super) fn by_id(tx: &mut Tx<'_>, principal_id: &str) -> PgResult<Option<ServicePrincipal>> {
    let sql = format!("SELECT {SERVICE_COLUMNS} FROM service_principals WHERE principal_id = $1");
    tx.query_opt(&sql, &[&principal_id])?.as_ref().map(rows::service).transpose()
}

fn live_by_name(tx: &mut Tx<'_>, name: &str) -> PgResult<Option<ServicePrincipal>> {
    let sql = format!("SELECT {SERVICE_COLUMNS} FROM service_principals WHERE name = $1 AND revoked_at_ms IS NULL");
    tx.query_opt(&sql, &[&name])?.as_ref().map(rows::service).transpose()
}

fn unknown(name: &str) -> StoreError {
    StoreError::UnknownService { name: name.to_owned() }
}

pub(super) fn add(
    tx: &mut Tx<'_>,
    name: &str,
    role: Role,
    scopes: &[String],
    now: i64,
) -> PgResult<IssuedServiceToken> {
    check_service_name(name)?;
    let scopes = checked_service_scopes(role, scopes)?;
    if live_by_name(tx, name)?.is_some() {
        return Err(StoreError::ServiceExists { name: name.to_owned() }.into());
    }
    let mut id = new_id();
    while by_id(tx, &id)?.is_some() {
        id = new_id();
    }
    let secret = random_token();
    let digest = SecretDigest::of(secret.as_bytes());
    tx.execute(
        "INSERT INTO service_principals (principal_id, name, role, scopes, secret_sha256, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&id, &name, &role.as_str(), &list_to_sql(&scopes), &&digest.as_bytes()[..], &now],
    )?;
    let principal = by_id(tx, &id)?.ok_or_else(|| unknown(name))?;
    Ok(IssuedServiceToken { token: token_for(&id, &secret), principal })
}

/// Replace the secret of the live principal `name` in one commit.
pub(super) fn rotate(tx: &mut Tx<'_>, name: &str, now: i64) -> PgResult<IssuedServiceToken> {
    let p = live_by_name(tx, name)?.ok_or_else(|| unknown(name))?;
    let secret = random_token();
    let digest = SecretDigest::of(secret.as_bytes());
    // A rotation in the same millisecond as the last one still has to look
    // like a change to the sessions holding the old secret.
    let rotated = now.max(i64::try_from(p.issued_at_ms()).unwrap_or(i64::MAX).saturating_add(1));
    tx.execute(
        "UPDATE service_principals SET secret_sha256 = $2, rotated_at_ms = $3, last_used_at_ms = NULL
         WHERE principal_id = $1",
        &[&p.principal_id, &&digest.as_bytes()[..], &rotated],
    )?;
    let principal = by_id(tx, &p.principal_id)?.ok_or_else(|| unknown(name))?;
    Ok(IssuedServiceToken { token: token_for(&p.principal_id, &secret), principal })
}

pub(super) fn revoke(tx: &mut Tx<'_>, name: &str, now: i64) -> PgResult<ServicePrincipal> {
    let p = live_by_name(tx, name)?.ok_or_else(|| unknown(name))?;
    tx.execute("UPDATE service_principals SET revoked_at_ms = $2 WHERE principal_id = $1", &[&p.principal_id, &now])?;
    Ok(by_id(tx, &p.principal_id)?.ok_or_else(|| unknown(name))?)
}

pub(super) fn verify(tx: &mut Tx<'_>, token: &str, now: i64) -> PgResult<ServiceTokenCheck> {
    let Some((id, secret)) = parse_service_token(token) else {
        return Ok(ServiceTokenCheck::Malformed);
    };
    let row = tx.query_opt("SELECT secret_sha256 FROM service_principals WHERE principal_id = $1", &[&id])?;
    let Some(row) = row else {
        // Spend the same hashing work as a known id would.
        let _ = SecretDigest::of(b"").matches(secret.as_bytes());
        return Ok(ServiceTokenCheck::Unknown);
    };
    if !SecretDigest::from_bytes(rows::bytes32(&row, 0)?).matches(secret.as_bytes()) {
        return Ok(ServiceTokenCheck::Mismatch);
    }
    let Some(principal) = by_id(tx, id)? else { return Ok(ServiceTokenCheck::Unknown) };
    if principal.is_revoked() {
        return Ok(ServiceTokenCheck::Revoked);
    }
    tx.execute("UPDATE service_principals SET last_used_at_ms = $2 WHERE principal_id = $1", &[&id, &now])?;
    Ok(ServiceTokenCheck::Valid(ServicePrincipal { last_used_at_ms: Some(from_ms(now)), ..principal }))
}

// ---- relay identities (upstream mode) ----

const RELAY_COLUMNS: &str = "identity_key, secret_key, device_id, created_at_ms, device_token, device_token_role, \
                             device_token_scopes, device_token_issued_at_ms";

fn relay_from_row(row: &postgres::Row) -> PgResult<RelayIdentity> {
    let token: Option<String> = col(row, 4)?;
    let device_token = match token {
        None => None,
        Some(token) => Some(RelayDeviceToken {
            token,
            role: rows::role(row, 5)?,
            scopes: rows::list(row, 6)?,
            issued_at_ms: rows::when(row, 7)?,
        }),
    };
    Ok(RelayIdentity::from_stored(
        col(row, 0)?,
        rows::bytes32(row, 1)?,
        col(row, 2)?,
        rows::when(row, 3)?,
        device_token,
    ))
}

/// The identity of `identity_key`, created with a fresh key if missing.
pub(super) fn relay_identity(tx: &mut Tx<'_>, identity_key: &str, now: i64) -> PgResult<RelayIdentity> {
    check_key(identity_key)?;
    let sql = format!("SELECT {RELAY_COLUMNS} FROM relay_identities WHERE identity_key = $1");
    if let Some(row) = tx.query_opt(&sql, &[&identity_key])? {
        return relay_from_row(&row);
    }
    let secret_key: [u8; 32] = random_bytes();
    let device_id = clawgate_client::DeviceIdentity::from_seed(secret_key).device_id();
    tx.execute(
        "INSERT INTO relay_identities (identity_key, secret_key, device_id, created_at_ms) VALUES ($1, $2, $3, $4)",
        &[&identity_key, &&secret_key[..], &device_id, &now],
    )?;
    Ok(RelayIdentity::from_stored(identity_key.to_owned(), secret_key, device_id, from_ms(now), None))
}

/// Keep (or with `None`, forget) the upstream's device token.
pub(super) fn set_relay_token(tx: &mut Tx<'_>, identity_key: &str, token: Option<&RelayDeviceToken>) -> PgResult<bool> {
    check_key(identity_key)?;
    let changed = match token {
        Some(t) => {
            check_text("a device token", &t.token)?;
            let scopes = checked_scopes(&t.scopes)?;
            let issued = ms(t.issued_at_ms)?;
            tx.execute(
                "UPDATE relay_identities SET device_token = $2, device_token_role = $3, device_token_scopes = $4,
                     device_token_issued_at_ms = $5 WHERE identity_key = $1",
                &[&identity_key, &t.token, &t.role.as_str(), &list_to_sql(&scopes), &issued],
            )?
        }
        None => tx.execute(
            "UPDATE relay_identities SET device_token = NULL, device_token_role = NULL, device_token_scopes = NULL,
                 device_token_issued_at_ms = NULL WHERE identity_key = $1",
            &[&identity_key],
        )?,
    };
    Ok(changed > 0)
}

pub(super) fn remove_relay(tx: &mut Tx<'_>, identity_key: &str) -> PgResult<bool> {
    check_key(identity_key)?;
    Ok(tx.execute("DELETE FROM relay_identities WHERE identity_key = $1", &[&identity_key])? > 0)
}
