//! Applying an admission decision to the store: silent pairings, device
//! tokens, pending requests. `decide` said what to do; this only does it.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::json;

use crate::admission::credential_check::presented_device_token;
use crate::admission::decision::{DeviceAction, PairingNeeded};
use crate::admission::{Admission, ConnectFacts, Credential, Refusal, RefusalKind, RuleId};
use crate::store::{
    AdmissionApplied, AdmissionWrite, DeviceView, NewRequest, PairingStore, RequestOutcome, StoreError,
};

use super::wire::{ApplyFailure, Failure};
use super::{now_ms, Gateway};

/// The device token hello-ok hands over: minted for this session, or the
/// one a device-token reconnect presented, echoed.
pub struct IssuedToken {
    pub token: String,
    pub issued_at_ms: u64,
}

/// Run a store operation off the async workers (SQLite commits fsync).
pub async fn store_op<T: Send + 'static>(
    gw: &Arc<Gateway>,
    op: impl FnOnce(&dyn PairingStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = gw.store.clone();
    match tokio::task::spawn_blocking(move || op(store.as_ref())).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::InvalidInput("the store task panicked".into())),
    }
}

fn new_request(
    facts: &ConnectFacts,
    device_id: &str,
    public_key: &str,
    role: crate::store::Role,
    scopes: &[String],
    ip: IpAddr,
    proxy_user: Option<&str>,
) -> NewRequest {
    let c = &facts.params.client;
    NewRequest {
        device_id: device_id.to_owned(),
        public_key: public_key.to_owned(),
        role,
        scopes: scopes.to_vec(),
        client_id: Some(c.id.clone()),
        client_mode: Some(c.mode.clone()),
        display_name: c.display_name.clone(),
        platform: Some(c.platform.clone()),
        device_family: c.device_family.clone(),
        remote_ip: Some(ip.to_string()),
        proxy_user: proxy_user.map(str::to_owned),
    }
}

fn store_failure(e: &StoreError) -> ApplyFailure {
    if e.logged_by_store() {
        tracing::debug!(error = %e, code = e.code(), "pairing store failure during admission");
    } else {
        tracing::error!(error = %e, code = e.code(), "pairing store failure during admission");
    }
    ApplyFailure::StoreUnavailable {
        hint: "the gateway could not use its pairing store; see the gateway log".into(),
        store_code: e.code(),
    }
}

/// Why applying a decision did not happen.
pub enum NotApplied {
    /// The store changed since the decision read it: decide again.
    Stale,
    Failed(Failure),
}

/// Do what an admission needs in the store, if what the decision read of
/// the device (`view`) still holds; returns the device token to hand out.
pub async fn admit(
    gw: &Arc<Gateway>,
    facts: &ConnectFacts,
    admission: &Admission,
    client_ip: IpAddr,
    view: Option<&DeviceView>,
) -> Result<Option<IssuedToken>, NotApplied> {
    let Some(dev) = &admission.device else { return Ok(None) };
    let device_id = dev.device.device_id.clone();
    let role = admission.role;
    let now = now_ms();
    // A device-token reconnect gets its own token back, never a new one:
    // another install of the same identity keeps its token too.
    let echo = match &admission.credential {
        Credential::DeviceToken { issued_at_ms, .. } => presented_device_token(facts.params.auth.as_ref())
            .map(|token| IssuedToken { token: token.to_owned(), issued_at_ms: *issued_at_ms }),
        _ => None,
    };
    let write = match &dev.action {
        DeviceAction::Paired { issue_token } => AdmissionWrite::Paired {
            device_id,
            role,
            remote_ip: Some(client_ip.to_string()),
            issue_token: *issue_token,
        },
        DeviceAction::PairSilently { .. } => AdmissionWrite::PairSilently(new_request(
            facts,
            &device_id,
            &dev.device.public_key_b64url,
            role,
            &admission.scopes,
            client_ip,
            None,
        )),
        DeviceAction::ProxyAutoApprove { user, .. } => AdmissionWrite::PairProxyAuto(new_request(
            facts,
            &device_id,
            &dev.device.public_key_b64url,
            role,
            &admission.scopes,
            client_ip,
            Some(user),
        )),
    };
    match apply(gw, view, write, now).await {
        Ok(AdmissionApplied::Admitted { token }) => {
            Ok(token.map(|token| IssuedToken { token, issued_at_ms: now }).or(echo))
        }
        Ok(AdmissionApplied::Requested(_)) => Err(NotApplied::Failed(Failure::Apply(store_failure(
            &StoreError::InvalidInput("an admission opened a pairing request".into()),
        )))),
        Err(StoreError::Stale { .. }) => Err(NotApplied::Stale),
        Err(e) => Err(NotApplied::Failed(Failure::Apply(store_failure(&e)))),
    }
}

/// One admission write, off the async workers. A device's decision always
/// read its view.
async fn apply(
    gw: &Arc<Gateway>,
    view: Option<&DeviceView>,
    write: AdmissionWrite,
    now: u64,
) -> Result<AdmissionApplied, StoreError> {
    // A device-token reconnect only records that the device was seen: a
    // store that keeps devices in memory checks and batches it without I/O.
    // (Only while its copy is dropped after a failed refresh, until the next
    // poll reloads it, does this fall back to a transaction in place.)
    if let (true, Some(read), AdmissionWrite::Paired { issue_token: false, .. }) = (gw.devices_in_memory, view, &write)
    {
        return gw.store.apply_admission(read, &write, now);
    }
    let view = view.cloned();
    store_op(gw, move |s| match view {
        Some(read) => s.apply_admission(&read, &write, now),
        None => Err(StoreError::InvalidInput("a device admission without the view it was decided on".into())),
    })
    .await
}

/// Create or refresh the pending request (if what the decision read of the
/// device still holds), announce it, and refuse with its id.
pub async fn pairing_required(
    gw: &Arc<Gateway>,
    facts: &ConnectFacts,
    need: &PairingNeeded,
    client_ip: IpAddr,
    view: Option<&DeviceView>,
) -> Result<Failure, NotApplied> {
    let request = new_request(
        facts,
        &need.device.device_id,
        &need.device.public_key_b64url,
        need.role,
        &need.scopes,
        client_ip,
        need.proxy_user.as_deref(),
    );
    let now = now_ms();
    let announce = request.clone();
    let outcome = match apply(gw, view, AdmissionWrite::RequestPairing(request), now).await {
        Ok(AdmissionApplied::Requested(outcome)) => Ok(outcome),
        Ok(AdmissionApplied::Admitted { .. }) => {
            Err(StoreError::InvalidInput("a pairing request admitted the device".into()))
        }
        Err(e) => Err(e),
    };
    let kind = match outcome {
        Ok(outcome) => {
            if let RequestOutcome::Superseded { old, .. } = &outcome {
                let resolved =
                    json!({ "requestId": old, "deviceId": announce.device_id, "decision": "superseded", "ts": now });
                crate::server::events::announce_pairing(gw, "device.pair.resolved", resolved).await;
            }
            if !matches!(outcome, RequestOutcome::Refreshed { .. }) {
                let requested = requested_event(&announce, outcome.request_id(), now);
                crate::server::events::announce_pairing(gw, "device.pair.requested", requested).await;
            }
            RefusalKind::PairingRequired {
                reason: need.reason,
                request_id: outcome.request_id().to_owned(),
                device_id: need.device.device_id.clone(),
                role: need.role,
                requested_scopes: need.scopes.clone(),
                approved_roles: need.approved_roles.clone(),
                approved_scopes: need.approved_scopes.clone(),
            }
        }
        Err(StoreError::Stale { .. }) => return Err(NotApplied::Stale),
        Err(StoreError::PairingRejected { until_ms, .. }) => {
            // The request the pairing hint speaks of is gone: say how this ends.
            let retry_after_ms = until_ms.saturating_sub(now);
            let hint = format!(
                "the owner rejected this device's pairing request; it may ask again in {} s, or the owner \
                 lifts the rejection now with `clawgate devices unreject {}`",
                retry_after_ms.div_ceil(1000),
                need.device.device_id.get(..12).unwrap_or(&need.device.device_id)
            );
            let kind = RefusalKind::PairingRejected { retry_after_ms };
            return Ok(Failure::Refused(Refusal { kind, rule: RuleId::PairingRequired, hint }));
        }
        Err(StoreError::TooManyPending(_)) => {
            return Ok(Failure::Apply(ApplyFailure::PairingBusy { hint: need.hint.clone() }))
        }
        Err(e) => return Ok(Failure::Apply(store_failure(&e))),
    };
    Ok(Failure::Refused(Refusal { kind, rule: RuleId::PairingRequired, hint: need.hint.clone() }))
}

/// The `device.pair.requested` payload: only the keys its (closed) schema allows.
fn requested_event(r: &NewRequest, request_id: &str, now: u64) -> serde_json::Value {
    let mut event = json!({
        "requestId": request_id,
        "deviceId": r.device_id,
        "publicKey": r.public_key,
        "role": r.role.as_str(),
        "roles": [r.role.as_str()],
        "scopes": r.scopes,
        "silent": false,
        "ts": now,
    });
    for (key, value) in [
        ("displayName", &r.display_name),
        ("platform", &r.platform),
        ("deviceFamily", &r.device_family),
        ("clientId", &r.client_id),
        ("clientMode", &r.client_mode),
        ("remoteIp", &r.remote_ip),
    ] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            event[key] = v.clone().into();
        }
    }
    event
}
