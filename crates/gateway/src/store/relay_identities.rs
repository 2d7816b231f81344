//! Relay identities (upstream mode): the Ed25519 key clawgate presents to the
//! upstream OpenClaw gateway for one downstream identity — a browser device
//! or a node — created on first use, and the device token the upstream
//! issued to it.
//!
//! Unlike everything else in the store these are clawgate's own client-side
//! credentials, which it must present again: the private key bytes and the
//! upstream's device token are stored as they are (a digest could not be
//! presented). The store file is private to its owner (mode 0600).

use rusqlite::{params, Connection, OptionalExtension, Row};

use clawgate_client::DeviceIdentity;

use super::codec::{check_text, checked_scopes, from_ms, list_from_sql, list_to_sql, role_from_sql, OpResult};
use super::error::StoreError;
use super::types::Role;
use crate::secrets::random_bytes;

/// Longest identity key accepted.
pub const MAX_IDENTITY_KEY_BYTES: usize = 512;

/// The identity key of a downstream browser device.
pub fn browser_identity_key(device_id: &str) -> String {
    format!("browser:{device_id}")
}

/// The identity key of a downstream node (its device id or local node id).
pub fn node_identity_key(node_id: &str) -> String {
    format!("node:{node_id}")
}

/// A device token the upstream issued to a relay identity (hello-ok
/// `auth.deviceToken`), kept to be presented again.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayDeviceToken {
    pub token: String,
    pub role: Role,
    pub scopes: Vec<String>,
    pub issued_at_ms: u64,
}

impl std::fmt::Debug for RelayDeviceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayDeviceToken")
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .field("scopes", &self.scopes)
            .field("issued_at_ms", &self.issued_at_ms)
            .finish()
    }
}

/// One relay identity.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayIdentity {
    pub identity_key: String,
    secret_key: [u8; 32],
    /// The upstream's device id for it (SHA-256 of the public key, hex).
    pub device_id: String,
    pub created_at_ms: u64,
    pub device_token: Option<RelayDeviceToken>,
}

impl std::fmt::Debug for RelayIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayIdentity")
            .field("identity_key", &self.identity_key)
            .field("device_id", &self.device_id)
            .field("created_at_ms", &self.created_at_ms)
            .field("device_token", &self.device_token)
            .finish_non_exhaustive()
    }
}

impl RelayIdentity {
    /// An identity as another backend stored it.
    pub(super) fn from_stored(
        identity_key: String,
        secret_key: [u8; 32],
        device_id: String,
        created_at_ms: u64,
        device_token: Option<RelayDeviceToken>,
    ) -> RelayIdentity {
        RelayIdentity { identity_key, secret_key, device_id, created_at_ms, device_token }
    }

    /// The key, ready to sign a connect.
    pub fn device_identity(&self) -> DeviceIdentity {
        DeviceIdentity::from_seed(self.secret_key)
    }
}

pub(super) fn check_key(identity_key: &str) -> Result<(), StoreError> {
    if identity_key.is_empty() || identity_key.len() > MAX_IDENTITY_KEY_BYTES {
        return Err(StoreError::InvalidInput(format!(
            "a relay identity key must be 1 to {MAX_IDENTITY_KEY_BYTES} bytes"
        )));
    }
    Ok(())
}

const COLUMNS: &str = "identity_key, secret_key, device_id, created_at_ms, device_token, device_token_role, \
                       device_token_scopes, device_token_issued_at_ms";

fn from_row(row: &Row<'_>) -> rusqlite::Result<RelayIdentity> {
    let secret: Vec<u8> = row.get(1)?;
    let secret_key: [u8; 32] = secret.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Blob, "not a 32-byte key".into())
    })?;
    let token: Option<String> = row.get(4)?;
    let device_token = match token {
        None => None,
        Some(token) => {
            let role: String = row.get(5)?;
            let scopes: String = row.get(6)?;
            Some(RelayDeviceToken {
                token,
                role: role_from_sql(5, &role)?,
                scopes: list_from_sql(6, &scopes)?,
                issued_at_ms: from_ms(row.get(7)?),
            })
        }
    };
    Ok(RelayIdentity {
        identity_key: row.get(0)?,
        secret_key,
        device_id: row.get(2)?,
        created_at_ms: from_ms(row.get(3)?),
        device_token,
    })
}

pub(super) fn get(conn: &Connection, identity_key: &str) -> OpResult<Option<RelayIdentity>> {
    check_key(identity_key)?;
    let sql = format!("SELECT {COLUMNS} FROM relay_identities WHERE identity_key = ?1");
    Ok(conn.query_row(&sql, [identity_key], from_row).optional()?)
}

/// The identity of `identity_key`, created with a fresh key if missing.
pub(super) fn get_or_create(conn: &Connection, identity_key: &str, now: i64) -> OpResult<RelayIdentity> {
    if let Some(found) = get(conn, identity_key)? {
        return Ok(found);
    }
    let secret_key: [u8; 32] = random_bytes();
    let device_id = DeviceIdentity::from_seed(secret_key).device_id();
    conn.execute(
        "INSERT INTO relay_identities (identity_key, secret_key, device_id, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
        params![identity_key, &secret_key[..], device_id, now],
    )?;
    Ok(RelayIdentity {
        identity_key: identity_key.to_owned(),
        secret_key,
        device_id,
        created_at_ms: from_ms(now),
        device_token: None,
    })
}

/// Keep (or with `None`, forget) the upstream's device token. `Ok(false)`:
/// no such identity.
pub(super) fn set_device_token(
    conn: &Connection,
    identity_key: &str,
    token: Option<&RelayDeviceToken>,
) -> OpResult<bool> {
    check_key(identity_key)?;
    let changed = match token {
        Some(t) => {
            check_text("a device token", &t.token)?;
            let scopes = checked_scopes(&t.scopes)?;
            let issued = super::codec::ms(t.issued_at_ms)?;
            conn.execute(
                "UPDATE relay_identities SET device_token = ?2, device_token_role = ?3, device_token_scopes = ?4, \
                 device_token_issued_at_ms = ?5 WHERE identity_key = ?1",
                params![identity_key, t.token, t.role.as_str(), list_to_sql(&scopes), issued],
            )?
        }
        None => conn.execute(
            "UPDATE relay_identities SET device_token = NULL, device_token_role = NULL, device_token_scopes = NULL, \
             device_token_issued_at_ms = NULL WHERE identity_key = ?1",
            [identity_key],
        )?,
    };
    Ok(changed > 0)
}

/// Forget an identity (its downstream device was removed). `Ok(false)`: none.
pub(super) fn remove(conn: &Connection, identity_key: &str) -> OpResult<bool> {
    check_key(identity_key)?;
    Ok(conn.execute("DELETE FROM relay_identities WHERE identity_key = ?1", [identity_key])? > 0)
}

#[cfg(test)]
#[path = "relay_identities_tests.rs"]
mod tests;
