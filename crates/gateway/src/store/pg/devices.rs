//! Paired devices in PostgreSQL: reading them, granting roles and scopes,
//! removal, labels, last seen; as the SQLite store does.

use clawgate_protocol::scopes;

use super::rows::{self, DEVICE_COLUMNS};
use super::session::PgResult;
use super::Tx;
use crate::store::codec::{list_to_sql, merge_roles, roles_to_sql};
use crate::store::error::StoreError;
use crate::store::types::{ApprovedVia, NewRequest, PairedDevice};
use crate::store::MAX_LABEL_CHARS;

pub(super) fn get(tx: &mut Tx<'_>, device_id: &str) -> PgResult<Option<PairedDevice>> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = $1");
    tx.query_opt(&sql, &[&device_id])?.as_ref().map(rows::device).transpose()
}

pub(super) fn list(tx: &mut Tx<'_>) -> PgResult<Vec<PairedDevice>> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY created_at_ms, device_id");
    tx.query(&sql, &[])?.iter().map(rows::device).collect()
}

fn unknown(device_id: &str) -> StoreError {
    StoreError::UnknownDevice { device_id: device_id.to_owned() }
}

/// Pair or extend, as the SQLite store's `grant`: roles and scopes merge;
/// another key or proxy user replaces the record and revokes its tokens.
pub(super) fn grant(tx: &mut Tx<'_>, new: &NewRequest, via: ApprovedVia, now: i64) -> PgResult<PairedDevice> {
    let scopes = crate::store::devices::check_new(new)?;
    match get(tx, &new.device_id)? {
        Some(old) if old.public_key == new.public_key && old.proxy_user == new.proxy_user => {
            tx.execute(
                "UPDATE devices SET
                     display_name = coalesce($2, display_name),
                     platform = coalesce($3, platform),
                     device_family = coalesce($4, device_family),
                     client_id = coalesce($5, client_id),
                     client_mode = coalesce($6, client_mode),
                     remote_ip = coalesce($7, remote_ip),
                     roles = $8,
                     approved_scopes = $9,
                     approved_via = $10,
                     approved_at_ms = $11
                 WHERE device_id = $1",
                &[
                    &new.device_id,
                    &new.display_name,
                    &new.platform,
                    &new.device_family,
                    &new.client_id,
                    &new.client_mode,
                    &new.remote_ip,
                    &roles_to_sql(&merge_roles(&old.roles, new.role)),
                    &list_to_sql(&scopes::union(&old.approved_scopes, &scopes)),
                    &via.as_str(),
                    &now,
                ],
            )?;
        }
        Some(_) => {
            tx.execute(
                "UPDATE device_tokens SET revoked_at_ms = $2 WHERE device_id = $1 AND revoked_at_ms IS NULL",
                &[&new.device_id, &now],
            )?;
            replace(tx, new, &scopes, via, now)?;
        }
        None => replace(tx, new, &scopes, via, now)?,
    }
    Ok(get(tx, &new.device_id)?.ok_or_else(|| unknown(&new.device_id))?)
}

/// Delete a device and its tokens.
pub(super) fn remove(tx: &mut Tx<'_>, device_id: &str) -> PgResult<PairedDevice> {
    let device = get(tx, device_id)?.ok_or_else(|| unknown(device_id))?;
    tx.execute("DELETE FROM device_tokens WHERE device_id = $1", &[&device_id])?;
    tx.execute("DELETE FROM devices WHERE device_id = $1", &[&device_id])?;
    Ok(device)
}

pub(super) fn rename(tx: &mut Tx<'_>, device_id: &str, label: &str) -> PgResult<PairedDevice> {
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
    let n = tx.execute("UPDATE devices SET label = $2 WHERE device_id = $1", &[&device_id, &label])?;
    if n == 0 {
        return Err(unknown(device_id).into());
    }
    Ok(get(tx, device_id)?.ok_or_else(|| unknown(device_id))?)
}

pub(super) fn touch(tx: &mut Tx<'_>, device_id: &str, remote_ip: Option<&str>, now: i64) -> PgResult<bool> {
    if let Some(ip) = remote_ip {
        crate::store::codec::check_text("remote IP", ip)?;
    }
    let n = tx.execute(
        "UPDATE devices SET last_seen_at_ms = $2, remote_ip = coalesce($3, remote_ip) WHERE device_id = $1",
        &[&device_id, &now, &remote_ip],
    )?;
    Ok(n > 0)
}

/// Write `new` as the whole record of its device.
fn replace(tx: &mut Tx<'_>, new: &NewRequest, scopes: &[String], via: ApprovedVia, now: i64) -> PgResult<()> {
    tx.execute(
        "INSERT INTO devices (device_id, public_key, display_name, label, platform,
             device_family, client_id, client_mode, roles, approved_scopes,
             approved_via, created_at_ms, approved_at_ms, last_seen_at_ms, remote_ip, proxy_user)
         VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8, $9, $10, $11, $11, NULL, $12, $13)
         ON CONFLICT (device_id) DO UPDATE SET
             public_key = EXCLUDED.public_key, display_name = EXCLUDED.display_name, label = NULL,
             platform = EXCLUDED.platform, device_family = EXCLUDED.device_family,
             client_id = EXCLUDED.client_id, client_mode = EXCLUDED.client_mode, roles = EXCLUDED.roles,
             approved_scopes = EXCLUDED.approved_scopes, approved_via = EXCLUDED.approved_via,
             created_at_ms = EXCLUDED.created_at_ms, approved_at_ms = EXCLUDED.approved_at_ms,
             last_seen_at_ms = NULL, remote_ip = EXCLUDED.remote_ip, proxy_user = EXCLUDED.proxy_user",
        &[
            &new.device_id,
            &new.public_key,
            &new.display_name,
            &new.platform,
            &new.device_family,
            &new.client_id,
            &new.client_mode,
            &roles_to_sql(&[new.role]),
            &list_to_sql(scopes),
            &via.as_str(),
            &now,
            &new.remote_ip,
            &new.proxy_user,
        ],
    )?;
    Ok(())
}
