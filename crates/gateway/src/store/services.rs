//! Service principals (docs/admission.md, service tokens; docs/threat-model.md, H9): named, headless credentials with a fixed role and scopes.
//!
//! A token reads `cgs_<id>_<secret>`. The id (16 hex digits) selects the row,
//! so there is no scan and no timing oracle over other principals; the secret
//! is compared in constant time against its stored SHA-256 digest; the prefix
//! lets secret scanners recognise a leaked token. The token exists only in
//! the answer of [`add`] or [`rotate`]; the store keeps the digest.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::codec::{checked_scopes, from_ms, from_opt_ms, list_from_sql, list_to_sql, role_from_sql, OpResult};
use super::error::StoreError;
use super::types::Role;
use crate::secrets::{random_bytes, random_token, SecretDigest};

/// What every service token starts with.
pub const SERVICE_TOKEN_PREFIX: &str = "cgs_";
/// Longest principal name.
pub const MAX_SERVICE_NAME_CHARS: usize = 64;

/// A service principal, as listed. Never carries the token or its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePrincipal {
    /// 16 lowercase hex digits; the `<id>` part of the token.
    pub principal_id: String,
    pub name: String,
    pub role: Role,
    /// Normalized. Empty for role node.
    pub scopes: Vec<String>,
    pub created_at_ms: u64,
    /// When the current secret replaced an earlier one.
    pub rotated_at_ms: Option<u64>,
    pub revoked_at_ms: Option<u64>,
    pub last_used_at_ms: Option<u64>,
}

impl ServicePrincipal {
    /// When the current secret was issued: sessions that authenticated with
    /// an earlier one are closed when it changes.
    pub fn issued_at_ms(&self) -> u64 {
        self.rotated_at_ms.unwrap_or(self.created_at_ms)
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked_at_ms.is_some()
    }

    /// The node id of a node principal: its own namespace, never a device id.
    pub fn node_id(&self) -> String {
        format!("svc:{}", self.name)
    }
}

/// A principal and its token, the only time the token exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedServiceToken {
    pub principal: ServicePrincipal,
    pub token: String,
}

/// The answer to a presented service token. Every failure looks the same on
/// the wire (`service_token_invalid`); the kinds are for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceTokenCheck {
    Valid(ServicePrincipal),
    /// Not `cgs_<16 hex>_<secret>`.
    Malformed,
    /// No principal with this id.
    Unknown,
    /// The id exists; the secret is not its current one (wrong or rotated).
    Mismatch,
    /// The principal was revoked.
    Revoked,
}

/// Split a token into (id, secret) if it has the service-token shape.
pub fn parse_service_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(SERVICE_TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (id_ok && !secret.is_empty() && secret.len() <= 256).then_some((id, secret))
}

/// Does this value look like a service token (the prefix alone decides)?
pub fn is_service_token(token: &str) -> bool {
    token.starts_with(SERVICE_TOKEN_PREFIX)
}

/// A principal name: 1–64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
pub fn check_service_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_SERVICE_NAME_CHARS
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "service name {:?} must be 1 to {MAX_SERVICE_NAME_CHARS} letters, digits, '.', '_' or '-', \
             starting with a letter or digit",
            name.chars().take(80).collect::<String>()
        )))
    }
}

/// Scopes a principal of `role` may hold: operator scopes for operators,
/// none for nodes.
pub(super) fn checked_service_scopes(role: Role, scopes: &[String]) -> Result<Vec<String>, StoreError> {
    let scopes = checked_scopes(scopes)?;
    if role == Role::Node && !scopes.is_empty() {
        return Err(StoreError::InvalidInput(
            "a node service principal holds no scopes; operator scopes belong to role operator".to_owned(),
        ));
    }
    if let Some(bad) = scopes.iter().find(|s| !s.starts_with("operator.")) {
        return Err(StoreError::InvalidInput(format!("{bad:?} is not an operator scope (operator.*)")));
    }
    Ok(scopes)
}

const COLUMNS: &str = "principal_id, name, role, scopes, created_at_ms, rotated_at_ms, revoked_at_ms, last_used_at_ms";

fn from_row(row: &Row<'_>) -> rusqlite::Result<ServicePrincipal> {
    Ok(ServicePrincipal {
        principal_id: row.get(0)?,
        name: row.get(1)?,
        role: role_from_sql(2, &row.get::<_, String>(2)?)?,
        scopes: list_from_sql(3, &row.get::<_, String>(3)?)?,
        created_at_ms: from_ms(row.get(4)?),
        rotated_at_ms: from_opt_ms(row.get(5)?),
        revoked_at_ms: from_opt_ms(row.get(6)?),
        last_used_at_ms: from_opt_ms(row.get(7)?),
    })
}

pub(super) fn new_id() -> String {
    random_bytes::<8>().iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn token_for(id: &str, secret: &str) -> String {
    format!("{SERVICE_TOKEN_PREFIX}{id}_{secret}")
}

/// Every principal, live ones first, then by creation.
pub(super) fn list(conn: &Connection) -> OpResult<Vec<ServicePrincipal>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM service_principals
         ORDER BY revoked_at_ms IS NOT NULL, created_at_ms, principal_id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn by_id(conn: &Connection, principal_id: &str) -> OpResult<Option<ServicePrincipal>> {
    let sql = format!("SELECT {COLUMNS} FROM service_principals WHERE principal_id = ?1");
    Ok(conn.query_row(&sql, [principal_id], from_row).optional()?)
}

/// The live principal of this name.
pub(super) fn live_by_name(conn: &Connection, name: &str) -> OpResult<Option<ServicePrincipal>> {
    let sql = format!("SELECT {COLUMNS} FROM service_principals WHERE name = ?1 AND revoked_at_ms IS NULL");
    Ok(conn.query_row(&sql, [name], from_row).optional()?)
}

pub(super) fn add(
    conn: &Connection,
    name: &str,
    role: Role,
    scopes: &[String],
    now: i64,
) -> OpResult<IssuedServiceToken> {
    check_service_name(name)?;
    let scopes = checked_service_scopes(role, scopes)?;
    if live_by_name(conn, name)?.is_some() {
        return Err(StoreError::ServiceExists { name: name.to_owned() }.into());
    }
    let mut id = new_id();
    while by_id(conn, &id)?.is_some() {
        id = new_id();
    }
    let secret = random_token();
    let digest = SecretDigest::of(secret.as_bytes());
    conn.execute(
        "INSERT INTO service_principals (principal_id, name, role, scopes, secret_sha256, created_at_ms,
             rotated_at_ms, revoked_at_ms, last_used_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, NULL, NULL)",
        params![id, name, role.as_str(), list_to_sql(&scopes), &digest.as_bytes()[..], now],
    )?;
    let principal = by_id(conn, &id)?.ok_or_else(|| StoreError::UnknownService { name: name.to_owned() })?;
    Ok(IssuedServiceToken { token: token_for(&id, &secret), principal })
}

/// Replace the secret of the live principal `name`: the old one stops
/// verifying in the same commit.
pub(super) fn rotate(conn: &Connection, name: &str, now: i64) -> OpResult<IssuedServiceToken> {
    let p = live_by_name(conn, name)?.ok_or_else(|| StoreError::UnknownService { name: name.to_owned() })?;
    let secret = random_token();
    let digest = SecretDigest::of(secret.as_bytes());
    // A rotation in the same millisecond as the last one still has to look
    // like a change to the sessions holding the old secret.
    let rotated = now.max(i64::try_from(p.issued_at_ms()).unwrap_or(i64::MAX).saturating_add(1));
    conn.execute(
        "UPDATE service_principals SET secret_sha256 = ?2, rotated_at_ms = ?3, last_used_at_ms = NULL
         WHERE principal_id = ?1",
        params![p.principal_id, &digest.as_bytes()[..], rotated],
    )?;
    let principal =
        by_id(conn, &p.principal_id)?.ok_or_else(|| StoreError::UnknownService { name: name.to_owned() })?;
    Ok(IssuedServiceToken { token: token_for(&p.principal_id, &secret), principal })
}

/// Revoke the live principal `name`; its row stays (revoked) for the record.
pub(super) fn revoke(conn: &Connection, name: &str, now: i64) -> OpResult<ServicePrincipal> {
    let p = live_by_name(conn, name)?.ok_or_else(|| StoreError::UnknownService { name: name.to_owned() })?;
    conn.execute(
        "UPDATE service_principals SET revoked_at_ms = ?2 WHERE principal_id = ?1",
        params![p.principal_id, now],
    )?;
    Ok(by_id(conn, &p.principal_id)?.ok_or_else(|| StoreError::UnknownService { name: name.to_owned() })?)
}

/// Check a presented token: the id selects the row, the secret is compared
/// in constant time (digest against digest). On `Valid`, records last use.
pub(super) fn verify(conn: &Connection, token: &str, now: i64) -> OpResult<ServiceTokenCheck> {
    let (check, digest) = check(conn, token)?;
    let (ServiceTokenCheck::Valid(principal), Some(digest)) = (check.clone(), digest) else { return Ok(check) };
    record_use(conn, &digest, now)?;
    Ok(ServiceTokenCheck::Valid(ServicePrincipal { last_used_at_ms: Some(from_ms(now)), ..principal }))
}

/// [`verify`] without the write: the check, and on `Valid` the secret's
/// digest, under which the use is recorded later ([`record_use`]).
pub(super) fn check(conn: &Connection, token: &str) -> OpResult<(ServiceTokenCheck, Option<[u8; 32]>)> {
    let Some((id, secret)) = parse_service_token(token) else {
        return Ok((ServiceTokenCheck::Malformed, None));
    };
    let row: Option<Vec<u8>> = conn
        .query_row("SELECT secret_sha256 FROM service_principals WHERE principal_id = ?1", [id], |r| r.get(0))
        .optional()?;
    let Some(hash) = row else {
        // Spend the same hashing work as a known id would.
        let _ = SecretDigest::of(b"").matches(secret.as_bytes());
        return Ok((ServiceTokenCheck::Unknown, None));
    };
    let hash: [u8; 32] = hash.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            "secret digest is not 32 bytes".into(),
        )
    })?;
    if !SecretDigest::from_bytes(hash).matches(secret.as_bytes()) {
        return Ok((ServiceTokenCheck::Mismatch, None));
    }
    let Some(principal) = by_id(conn, id)? else { return Ok((ServiceTokenCheck::Unknown, None)) };
    if principal.is_revoked() {
        return Ok((ServiceTokenCheck::Revoked, None));
    }
    Ok((ServiceTokenCheck::Valid(principal), Some(hash)))
}

/// Record a use of the secret whose digest is `digest`, never moving the
/// time back. Keyed by the digest, not the principal: a use of a secret
/// rotated away since does not land on the principal's new one.
pub(super) fn record_use(conn: &Connection, digest: &[u8; 32], when: i64) -> OpResult<()> {
    conn.prepare_cached(
        "UPDATE service_principals SET last_used_at_ms = max(coalesce(last_used_at_ms, 0), ?2)
         WHERE secret_sha256 = ?1",
    )?
    .execute(params![&digest[..], when])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape() {
        assert_eq!(parse_service_token("cgs_0123456789abcdef_s3cr_et"), Some(("0123456789abcdef", "s3cr_et")));
        for bad in ["cgs_0123456789abcdef_", "cgs_0123456789ABCDEF_x", "cgs_short_x", "xgs_0123456789abcdef_x", ""] {
            assert_eq!(parse_service_token(bad), None, "{bad}");
        }
        assert!(is_service_token("cgs_anything"));
    }

    #[test]
    fn names() {
        for ok in ["cron", "ci-runner.2", "A_b"] {
            assert!(check_service_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "has space", "svc:x", &"x".repeat(65)] {
            assert!(check_service_name(bad).is_err(), "{bad}");
        }
    }

    use crate::store::{PairingStore, SqliteStore};

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn a_v1_store_migrates_and_keeps_its_devices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite");
        {
            let raw = rusqlite::Connection::open(&path).unwrap();
            raw.pragma_update(None, "application_id", crate::store::schema::APPLICATION_ID).unwrap();
            raw.execute_batch(crate::store::schema::V1).unwrap();
            raw.pragma_update(None, "user_version", 1).unwrap();
            raw.execute("UPDATE meta SET value = 7 WHERE key = 'generation'", []).unwrap();
        }
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.generation().unwrap(), 7);
        assert!(store.list_services().unwrap().is_empty());
        store.add_service("after-migration", Role::Operator, &[], T0).unwrap();
        let v: u32 = store.conn.lock().unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, crate::store::schema::SCHEMA_VERSION);
    }
}
