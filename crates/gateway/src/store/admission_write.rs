//! Applying an admission decision: what a connect writes (a silent pairing,
//! a device token, a pending request), done in one transaction that first
//! checks that what the decision read still holds: the store is at the
//! generation of the decision's view, or the device's own record is
//! unchanged. A revoke or an approval that landed in between makes it refuse
//! with [`StoreError::Stale`], and the caller decides again; a change to
//! other devices does not.

use rusqlite::Connection;

use super::codec::OpResult;
use super::error::StoreError;
use super::types::{ApprovedVia, DeviceView, NewRequest, PairedDevice, RequestOutcome, Role, TokenInfo};
use super::{devices, pending, tokens};

/// What an admission writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmissionWrite {
    /// A paired device connected: record it, and mint a device token when
    /// it came with the owner's secret (a device-token reconnect keeps its own).
    Paired { device_id: String, role: Role, remote_ip: Option<String>, issue_token: bool },
    /// Approve silently (recorded as `silent`), then mint a device token.
    PairSilently(NewRequest),
    /// Approve inline for the trusted-proxy user in the request (recorded as
    /// `proxy-auto`, rule `proxy-device-auto-approve`), then mint a device token.
    PairProxyAuto(NewRequest),
    /// Open or refresh the device's pending request.
    RequestPairing(NewRequest),
}

impl AdmissionWrite {
    /// The device the admission is for.
    pub fn device_id(&self) -> &str {
        match self {
            AdmissionWrite::Paired { device_id, .. } => device_id,
            AdmissionWrite::PairSilently(r) | AdmissionWrite::PairProxyAuto(r) | AdmissionWrite::RequestPairing(r) => {
                &r.device_id
            }
        }
    }

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

/// Refuse unless what the decision read of the device is still so: the
/// store is at the generation of `read`, or, when something else moved it
/// (another device paired, a service rotated), this device's record and
/// tokens are unchanged apart from bookkeeping (last seen, last used).
/// Checked under the write lock, before anything is written.
pub(super) fn check_unchanged(conn: &Connection, read: &DeviceView, device_id: &str) -> OpResult<()> {
    let found = super::codec::read_generation(conn)?;
    if found == read.generation {
        return Ok(());
    }
    let now = DeviceView {
        generation: found,
        device: devices::get(conn, device_id)?,
        tokens: tokens::list(conn, device_id)?,
    };
    if relied_on(&now) == relied_on(read) {
        return Ok(());
    }
    Err(StoreError::Stale { expected: read.generation, found }.into())
}

/// A view without its bookkeeping: what an admission decision relies on.
pub(super) fn relied_on(view: &DeviceView) -> (Option<PairedDevice>, Vec<TokenInfo>) {
    let device = view.device.clone().map(|d| PairedDevice { last_seen_at_ms: None, remote_ip: None, ..d });
    let tokens = view.tokens.iter().map(|t| TokenInfo { last_used_at_ms: None, ..t.clone() }).collect();
    (device, tokens)
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
        AdmissionWrite::PairSilently(request) | AdmissionWrite::PairProxyAuto(request) => {
            let via = inline_approval(write, request)?;
            let paired = pending::pair_inline(conn, request, via, now)?;
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
/// How a pairing approved inside the connect's own transaction is recorded;
/// a proxy-auto approval without its proxy user is refused.
pub(super) fn inline_approval(write: &AdmissionWrite, request: &NewRequest) -> Result<ApprovedVia, StoreError> {
    match write {
        AdmissionWrite::PairProxyAuto(_) if request.proxy_user.is_some() => Ok(ApprovedVia::ProxyAuto),
        AdmissionWrite::PairProxyAuto(_) => {
            Err(StoreError::InvalidInput("a proxy-auto approval needs the proxy user".into()))
        }
        _ => Ok(ApprovedVia::Silent),
    }
}

pub(super) fn token_scopes(role: Role, approved: &[String]) -> Vec<String> {
    match role {
        Role::Operator => approved.to_vec(),
        Role::Node => Vec::new(),
    }
}
