//! Reading the PostgreSQL store's rows into the store's records. The
//! columns hold what the SQLite store's hold (JSON lists as text, roles and
//! states by name), so both decode through the same shared checks.

use postgres::Row;

use super::session::{bad, col, PgResult};
use crate::store::codec::{from_ms, from_opt_ms, list_from_sql, role_from_sql, roles_from_sql, via_from_sql};
use crate::store::services::ServicePrincipal;
use crate::store::types::{PairedDevice, PendingRequest, RequestState, Role, TokenInfo};

pub(super) const DEVICE_COLUMNS: &str = "device_id, public_key, display_name, label, platform, device_family, \
     client_id, client_mode, roles, approved_scopes, approved_via, created_at_ms, \
     approved_at_ms, last_seen_at_ms, remote_ip, proxy_user";

pub(super) const REQUEST_COLUMNS: &str = "request_id, device_id, public_key, role, scopes, client_id, client_mode, \
     display_name, platform, device_family, remote_ip, created_at_ms, refreshed_at_ms, state, \
     superseded_by, resolved_at_ms, proxy_user";

pub(super) const TOKEN_COLUMNS: &str =
    "device_id, role, scopes, created_at_ms, rotated_at_ms, revoked_at_ms, last_used_at_ms";

pub(super) const SERVICE_COLUMNS: &str =
    "principal_id, name, role, scopes, created_at_ms, rotated_at_ms, revoked_at_ms, last_used_at_ms";

pub(super) fn role(row: &Row, i: usize) -> PgResult<Role> {
    role_from_sql(i, &col::<String>(row, i)?).map_err(bad)
}

pub(super) fn list(row: &Row, i: usize) -> PgResult<Vec<String>> {
    list_from_sql(i, &col::<String>(row, i)?).map_err(bad)
}

pub(super) fn when(row: &Row, i: usize) -> PgResult<u64> {
    Ok(from_ms(col(row, i)?))
}

pub(super) fn when_opt(row: &Row, i: usize) -> PgResult<Option<u64>> {
    Ok(from_opt_ms(col(row, i)?))
}

/// A 32-byte digest or key column.
pub(super) fn bytes32(row: &Row, i: usize) -> PgResult<[u8; 32]> {
    let v: Vec<u8> = col(row, i)?;
    v.try_into().map_err(|_| bad(format!("column {i} is not 32 bytes")))
}

pub(super) fn device(row: &Row) -> PgResult<PairedDevice> {
    Ok(PairedDevice {
        device_id: col(row, 0)?,
        public_key: col(row, 1)?,
        display_name: col(row, 2)?,
        label: col(row, 3)?,
        platform: col(row, 4)?,
        device_family: col(row, 5)?,
        client_id: col(row, 6)?,
        client_mode: col(row, 7)?,
        roles: roles_from_sql(8, &col::<String>(row, 8)?).map_err(bad)?,
        approved_scopes: list(row, 9)?,
        approved_via: via_from_sql(10, &col::<String>(row, 10)?).map_err(bad)?,
        created_at_ms: when(row, 11)?,
        approved_at_ms: when(row, 12)?,
        last_seen_at_ms: when_opt(row, 13)?,
        remote_ip: col(row, 14)?,
        proxy_user: col(row, 15)?,
    })
}

/// A request as stored: an open row past its expiry still says `Open`.
pub(super) fn request(row: &Row) -> PgResult<PendingRequest> {
    let state: String = col(row, 13)?;
    let by: Option<String> = col(row, 14)?;
    let state = match (state.as_str(), by) {
        ("open", _) => RequestState::Open,
        ("superseded", Some(by)) => RequestState::Superseded { by },
        ("approved", _) => RequestState::Approved,
        ("rejected", _) => RequestState::Rejected,
        ("expired", _) => RequestState::Expired,
        (other, _) => return Err(bad(format!("unknown request state {other:?}"))),
    };
    Ok(PendingRequest {
        request_id: col(row, 0)?,
        device_id: col(row, 1)?,
        public_key: col(row, 2)?,
        role: role(row, 3)?,
        scopes: list(row, 4)?,
        client_id: col(row, 5)?,
        client_mode: col(row, 6)?,
        display_name: col(row, 7)?,
        platform: col(row, 8)?,
        device_family: col(row, 9)?,
        remote_ip: col(row, 10)?,
        proxy_user: col(row, 16)?,
        created_at_ms: when(row, 11)?,
        refreshed_at_ms: when(row, 12)?,
        state,
        resolved_at_ms: when_opt(row, 15)?,
    })
}

pub(super) fn token(row: &Row) -> PgResult<TokenInfo> {
    Ok(TokenInfo {
        device_id: col(row, 0)?,
        role: role(row, 1)?,
        scopes: list(row, 2)?,
        created_at_ms: when(row, 3)?,
        rotated_at_ms: when_opt(row, 4)?,
        revoked_at_ms: when_opt(row, 5)?,
        last_used_at_ms: when_opt(row, 6)?,
    })
}

pub(super) fn service(row: &Row) -> PgResult<ServicePrincipal> {
    Ok(ServicePrincipal {
        principal_id: col(row, 0)?,
        name: col(row, 1)?,
        role: role(row, 2)?,
        scopes: list(row, 3)?,
        created_at_ms: when(row, 4)?,
        rotated_at_ms: when_opt(row, 5)?,
        revoked_at_ms: when_opt(row, 6)?,
        last_used_at_ms: when_opt(row, 7)?,
    })
}
