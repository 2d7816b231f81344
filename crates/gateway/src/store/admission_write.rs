//! Applying an admission decision: what a connect writes (a silent pairing,
//! a device token, a pending request), done in one transaction that first
//! checks the store is still at the generation the decision read. A revoke
//! or an approval that landed in between makes it refuse with
//! [`StoreError::Stale`], and the caller decides again.

use rusqlite::Connection;

use super::codec::OpResult;
use super::error::StoreError;
use super::types::{NewRequest, RequestOutcome, Role};
use super::{devices, pending, tokens};

/// What an admission writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmissionWrite {
    /// A paired device connected: record it, and mint a device token when
    /// it came with the owner's secret (a device-token reconnect keeps its own).
    Paired { device_id: String, role: Role, remote_ip: Option<String>, issue_token: bool },
    /// Approve silently (recorded as `silent`), then mint a device token.
    PairSilently(NewRequest),
    /// Open or refresh the device's pending request.
    RequestPairing(NewRequest),
}

impl AdmissionWrite {
    /// Does applying it change admission state (and so the generation)?
    /// Recording that a device was seen does not.
    pub(super) fn changes_state(&self) -> bool {
        !matches!(self, AdmissionWrite::Paired { issue_token: false, .. })
    }
}

/// What applying an admission did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmissionApplied {
    /// The device is admitted; the token minted for it, if one was.
    Admitted { token: Option<String> },
    /// The pending request the device should wait on.
    Requested(RequestOutcome),
}

/// Refuse unless the store is still at `expected` (read before any write of
/// this transaction).
pub(super) fn check_generation(conn: &Connection, expected: u64) -> OpResult<()> {
    let found = super::sqlite::read_generation(conn)?;
    if found != expected {
        return Err(StoreError::Stale { expected, found }.into());
    }
    Ok(())
}

pub(super) fn apply(conn: &Connection, write: &AdmissionWrite, now: i64) -> OpResult<AdmissionApplied> {
    match write {
        AdmissionWrite::Paired { device_id, role, remote_ip, issue_token } => {
            devices::touch(conn, device_id, remote_ip.as_deref(), now)?;
            if !issue_token {
                return Ok(AdmissionApplied::Admitted { token: None });
            }
            let approved = devices::get(conn, device_id)?
                .ok_or_else(|| StoreError::UnknownDevice { device_id: device_id.clone() })?
                .approved_scopes;
            let token = tokens::issue(conn, device_id, *role, &token_scopes(*role, &approved), now, false)?;
            Ok(AdmissionApplied::Admitted { token: Some(token) })
        }
        AdmissionWrite::PairSilently(request) => {
            let paired = pending::pair_silently(conn, request, now)?;
            let scopes = token_scopes(request.role, &paired.approved_scopes);
            let token = tokens::issue(conn, &paired.device_id, request.role, &scopes, now, false)?;
            Ok(AdmissionApplied::Admitted { token: Some(token) })
        }
        AdmissionWrite::RequestPairing(request) => {
            Ok(AdmissionApplied::Requested(pending::request_pairing(conn, request, now)?))
        }
    }
}

/// A device token carries operator scopes only for the operator role.
fn token_scopes(role: Role, approved: &[String]) -> Vec<String> {
    match role {
        Role::Operator => approved.to_vec(),
        Role::Node => Vec::new(),
    }
}
