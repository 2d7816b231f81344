//! Paired devices: reading them, granting roles and scopes, removal, labels.

use clawgate_protocol::scopes;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::codec::{
    check_opt_text, checked_scopes, from_ms, from_opt_ms, list_from_sql, list_to_sql, merge_roles, roles_from_sql,
    roles_to_sql, via_from_sql, OpResult,
};
use super::error::StoreError;
use super::types::{ApprovedVia, NewRequest, PairedDevice};
use super::MAX_LABEL_CHARS;

const COLUMNS: &str = "device_id, public_key, display_name, label, platform, device_family, \
     client_id, client_mode, roles, approved_scopes, approved_via, created_at_ms, \
     approved_at_ms, last_seen_at_ms, remote_ip, proxy_user";

fn from_row(row: &Row<'_>) -> rusqlite::Result<PairedDevice> {
    Ok(PairedDevice {
        device_id: row.get(0)?,
        public_key: row.get(1)?,
        display_name: row.get(2)?,
        label: row.get(3)?,
        platform: row.get(4)?,
        device_family: row.get(5)?,
        client_id: row.get(6)?,
        client_mode: row.get(7)?,
        roles: roles_from_sql(8, &row.get::<_, String>(8)?)?,
        approved_scopes: list_from_sql(9, &row.get::<_, String>(9)?)?,
        approved_via: via_from_sql(10, &row.get::<_, String>(10)?)?,
        created_at_ms: from_ms(row.get(11)?),
        approved_at_ms: from_ms(row.get(12)?),
        last_seen_at_ms: from_opt_ms(row.get(13)?),
        remote_ip: row.get(14)?,
        proxy_user: row.get(15)?,
    })
}

pub(super) fn get(conn: &Connection, device_id: &str) -> OpResult<Option<PairedDevice>> {
    let sql = format!("SELECT {COLUMNS} FROM devices WHERE device_id = ?1");
    Ok(conn.query_row(&sql, [device_id], from_row).optional()?)
}

pub(super) fn list(conn: &Connection) -> OpResult<Vec<PairedDevice>> {
    let sql = format!("SELECT {COLUMNS} FROM devices ORDER BY created_at_ms, device_id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Check the self-reported fields of a request or grant.
pub(super) fn check_new(new: &NewRequest) -> Result<Vec<String>, StoreError> {
    super::codec::check_device_id(&new.device_id)?;
    if new.public_key.trim().is_empty() {
        return Err(StoreError::InvalidInput("public key is empty".to_owned()));
    }
    super::codec::check_text("public key", &new.public_key)?;
    check_opt_text("client id", &new.client_id)?;
    check_opt_text("client mode", &new.client_mode)?;
    check_opt_text("display name", &new.display_name)?;
    check_opt_text("platform", &new.platform)?;
    check_opt_text("device family", &new.device_family)?;
    check_opt_text("remote IP", &new.remote_ip)?;
    if new.proxy_user.as_deref().is_some_and(|u| u.is_empty()) {
        return Err(StoreError::InvalidInput("a proxy user name is empty".to_owned()));
    }
    check_opt_text("proxy user", &new.proxy_user)?;
    checked_scopes(&new.scopes)
}

/// Pair `new.device_id` for `new.role` and `new.scopes`, or extend its record:
/// roles and approved scopes are merged (union). A different public key under
/// the same id, or another proxy user than the one the device is bound to,
/// replaces the record and revokes every token it held: nothing approved for
/// one user carries over to another.
pub(super) fn grant(conn: &Connection, new: &NewRequest, via: ApprovedVia, now: i64) -> OpResult<PairedDevice> {
    let scopes = check_new(new)?;
    match get(conn, &new.device_id)? {
        Some(old) if old.public_key == new.public_key && old.proxy_user == new.proxy_user => {
            conn.execute(
                "UPDATE devices SET
                     display_name = coalesce(?2, display_name),
                     platform = coalesce(?3, platform),
                     device_family = coalesce(?4, device_family),
                     client_id = coalesce(?5, client_id),
                     client_mode = coalesce(?6, client_mode),
                     remote_ip = coalesce(?7, remote_ip),
                     roles = ?8,
                     approved_scopes = ?9,
                     approved_via = ?10,
                     approved_at_ms = ?11
                 WHERE device_id = ?1",
                params![
                    new.device_id,
                    new.display_name,
                    new.platform,
                    new.device_family,
                    new.client_id,
                    new.client_mode,
                    new.remote_ip,
                    roles_to_sql(&merge_roles(&old.roles, new.role)),
                    list_to_sql(&scopes::union(&old.approved_scopes, &scopes)),
                    via.as_str(),
                    now,
                ],
            )?;
        }
        Some(_) => {
            conn.execute(
                "UPDATE device_tokens SET revoked_at_ms = ?2
                 WHERE device_id = ?1 AND revoked_at_ms IS NULL",
                params![new.device_id, now],
            )?;
            replace(conn, new, &scopes, via, now)?;
        }
        None => replace(conn, new, &scopes, via, now)?,
    }
    Ok(get(conn, &new.device_id)?.ok_or_else(|| unknown(&new.device_id))?)
}

fn unknown(device_id: &str) -> StoreError {
    StoreError::UnknownDevice { device_id: device_id.to_owned() }
}

/// Delete a device; its tokens go with it (foreign key cascade).
pub(super) fn remove(conn: &Connection, device_id: &str) -> OpResult<PairedDevice> {
    let device = get(conn, device_id)?.ok_or_else(|| unknown(device_id))?;
    conn.execute("DELETE FROM device_tokens WHERE device_id = ?1", [device_id])?;
    conn.execute("DELETE FROM devices WHERE device_id = ?1", [device_id])?;
    Ok(device)
}

pub(super) fn rename(conn: &Connection, device_id: &str, label: &str) -> OpResult<PairedDevice> {
    let label = label.trim();
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(StoreError::InvalidInput(format!("a device label has at most {MAX_LABEL_CHARS} characters")).into());
    }
    if label.chars().any(clawgate_protocol::text::is_non_printing) {
        return Err(
            StoreError::InvalidInput("a device label cannot hold control or invisible characters".into()).into()
        );
    }
    let label = (!label.is_empty()).then_some(label);
    let n = conn.execute("UPDATE devices SET label = ?2 WHERE device_id = ?1", params![device_id, label])?;
    if n == 0 {
        return Err(unknown(device_id).into());
    }
    Ok(get(conn, device_id)?.ok_or_else(|| unknown(device_id))?)
}

pub(super) fn touch(conn: &Connection, device_id: &str, remote_ip: Option<&str>, now: i64) -> OpResult<bool> {
    if let Some(ip) = remote_ip {
        super::codec::check_text("remote IP", ip)?;
    }
    let n = conn.execute(
        "UPDATE devices SET last_seen_at_ms = ?2, remote_ip = coalesce(?3, remote_ip)
         WHERE device_id = ?1",
        params![device_id, now, remote_ip],
    )?;
    Ok(n > 0)
}

/// Write `new` as the whole record of its device: a first pairing, or a new
/// key under the same id (whose old label, approvals and last-seen are gone).
fn replace(conn: &Connection, new: &NewRequest, scopes: &[String], via: ApprovedVia, now: i64) -> OpResult<()> {
    conn.execute(
        "INSERT INTO devices (device_id, public_key, display_name, label, platform,
             device_family, client_id, client_mode, roles, approved_scopes,
             approved_via, created_at_ms, approved_at_ms, last_seen_at_ms, remote_ip, proxy_user)
         VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, NULL, ?12, ?13)
         ON CONFLICT (device_id) DO UPDATE SET
             public_key = excluded.public_key, display_name = excluded.display_name, label = NULL,
             platform = excluded.platform, device_family = excluded.device_family,
             client_id = excluded.client_id, client_mode = excluded.client_mode, roles = excluded.roles,
             approved_scopes = excluded.approved_scopes, approved_via = excluded.approved_via,
             created_at_ms = excluded.created_at_ms, approved_at_ms = excluded.approved_at_ms,
             last_seen_at_ms = NULL, remote_ip = excluded.remote_ip, proxy_user = excluded.proxy_user",
        params![
            new.device_id,
            new.public_key,
            new.display_name,
            new.platform,
            new.device_family,
            new.client_id,
            new.client_mode,
            roles_to_sql(&[new.role]),
            list_to_sql(scopes),
            via.as_str(),
            now,
            new.remote_ip,
            new.proxy_user,
        ],
    )?;
    Ok(())
}
