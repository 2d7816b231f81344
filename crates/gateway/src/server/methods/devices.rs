//! `device.pair.*` and `device.token.*`: managing pairings and device tokens
//! through the gateway (reference §8.4). The caller's own device counts only
//! when the session authenticated with that device's token.

use std::sync::Arc;

use clawgate_protocol::scopes::{self, not_covered, satisfied_by};
use serde_json::{json, Value};

use crate::admission::decision::Role;
use crate::store::json::{paired_json, pending_json};
use crate::store::{Approval, ApprovedVia, PairedDevice, PendingRequest, StoreError};

use super::super::apply::store_op;
use super::super::registry::SessionInfo;
use super::super::wire::RequestError;
use super::super::{now_ms, Gateway};
use super::table::{Call, Reply};
use super::{object_params, string_param};

/// Closes the sessions a pairing change invalidates.
const CLOSE_INVALIDATED: u16 = 4001;

struct Caller<'a> {
    session: &'a SessionInfo,
    admin: bool,
    /// Set only when the session authenticated with this device's token.
    own_device: Option<&'a str>,
}

impl<'a> Caller<'a> {
    fn new(session: &'a SessionInfo) -> Self {
        Caller {
            session,
            admin: satisfied_by(&session.scopes, scopes::ADMIN),
            own_device: session.token_issued_at_ms.and(session.device_id.as_deref()),
        }
    }

    /// Non-admin device-token callers manage only their own device.
    fn may_manage(&self, device_id: &str) -> bool {
        self.admin || self.own_device.is_none_or(|own| own == device_id)
    }
}

fn denied(message: &str, reason: &str) -> RequestError {
    RequestError::Denied { message: message.to_owned(), reason: reason.to_owned() }
}

/// Store errors keep the store's own codes, so the CLI reports the same code
/// whether it went through the gateway or worked `--offline`.
fn store_error(e: StoreError) -> RequestError {
    RequestError::Store { code: e.code(), message: e.to_string() }
}

fn unknown_request() -> RequestError {
    RequestError::NotFound { message: "unknown requestId".into(), code: "PAIRING_UNKNOWN_REQUEST" }
}

fn parse_role(method: &str, params: &Option<Value>) -> Result<Role, RequestError> {
    let role = string_param(method, params, "role")?;
    Role::parse(&role).ok_or_else(|| RequestError::InvalidParams {
        method: method.to_owned(),
        message: format!("role must be \"operator\" or \"node\", got {role:?}"),
    })
}

fn token_scopes(method: &str, params: &Option<Value>) -> Result<Option<Vec<String>>, RequestError> {
    let invalid = |message: &str| RequestError::InvalidParams { method: method.to_owned(), message: message.into() };
    match object_params(method, params)?.get("scopes") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| invalid("scopes must be strings")),
        Some(_) => Err(invalid("scopes must be an array")),
    }
}

pub(super) fn list(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { list_devices(c.gw, &Caller::new(c.session)).await })
}

pub(super) fn approve(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let request_id = string_param(c.method, &c.params, "requestId")?;
        approve_device(c.gw, &Caller::new(c.session), &request_id).await
    })
}

/// `device.pair.reject` and `node.pair.reject`: the same request record.
pub(super) fn reject(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let request_id = string_param(c.method, &c.params, "requestId")?;
        reject_request(c.gw, &Caller::new(c.session), &request_id).await
    })
}

pub(super) fn remove(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let device_id = string_param(c.method, &c.params, "deviceId")?;
        remove_device(c.gw, &Caller::new(c.session), &device_id).await
    })
}

pub(super) fn rename(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let device_id = string_param(c.method, &c.params, "deviceId")?;
        let label = string_param(c.method, &c.params, "label")?;
        rename_device(c.gw, &Caller::new(c.session), &device_id, &label).await
    })
}

pub(super) fn rotate(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let device_id = string_param(c.method, &c.params, "deviceId")?;
        let role = parse_role(c.method, &c.params)?;
        let scopes = token_scopes(c.method, &c.params)?;
        rotate_token(c.gw, &Caller::new(c.session), &device_id, role, scopes).await
    })
}

pub(super) fn revoke(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let device_id = string_param(c.method, &c.params, "deviceId")?;
        let role = parse_role(c.method, &c.params)?;
        revoke_token(c.gw, &Caller::new(c.session), &device_id, role).await
    })
}

pub(super) fn node_list(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { list_nodes(c.gw, &Caller::new(c.session)).await })
}

pub(super) fn node_approve(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let request_id = string_param(c.method, &c.params, "requestId")?;
        approve_node(c.gw, &Caller::new(c.session), &request_id).await
    })
}

pub(super) fn node_remove(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let node_id = string_param(c.method, &c.params, "nodeId")?;
        remove_device(c.gw, &Caller::new(c.session), &node_id).await
    })
}

pub(super) fn node_rename(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let node_id = string_param(c.method, &c.params, "nodeId")?;
        let name = string_param(c.method, &c.params, "displayName")?;
        rename_device(c.gw, &Caller::new(c.session), &node_id, &name).await
    })
}

async fn list_devices(gw: &Arc<Gateway>, caller: &Caller<'_>) -> Result<Value, RequestError> {
    let now = now_ms();
    let (pending, devices) = store_op(gw, move |s| {
        let pending = s.open_requests(now)?;
        let mut devices = Vec::new();
        for d in s.list_devices()? {
            let tokens = s.tokens(&d.device_id)?;
            devices.push((d, tokens));
        }
        Ok((pending, devices))
    })
    .await
    .map_err(store_error)?;
    let pending: Vec<Value> = pending.iter().filter(|r| caller.may_manage(&r.device_id)).map(pending_json).collect();
    let paired: Vec<Value> =
        devices.iter().filter(|(d, _)| caller.may_manage(&d.device_id)).map(|(d, t)| paired_json(d, t)).collect();
    Ok(json!({ "pending": pending, "paired": paired }))
}

/// A request the caller may act on.
async fn managed_request(
    gw: &Arc<Gateway>,
    caller: &Caller<'_>,
    request_id: &str,
    what: &str,
) -> Result<PendingRequest, RequestError> {
    let now = now_ms();
    let id = request_id.to_owned();
    let request = store_op(gw, move |s| s.request(&id, now)).await.map_err(store_error)?.ok_or_else(unknown_request)?;
    if !caller.may_manage(&request.device_id) {
        return Err(denied(&format!("device pairing {what} denied"), "not-own-device"));
    }
    Ok(request)
}

/// Approve a pending request: the same store record whether it is asked as a
/// device pairing or a node pairing. Every denial starts with "device pairing
/// approval denied" (the OpenClaw CLI retries with admin on exactly that).
async fn approve_request(gw: &Arc<Gateway>, caller: &Caller<'_>, request_id: &str) -> Result<Approval, RequestError> {
    let request = managed_request(gw, caller, request_id, "approval").await?;
    if request.role != Role::Operator && !caller.admin {
        return Err(denied("device pairing approval denied: a node role needs operator.admin", "role-needs-admin"));
    }
    // An approver grants only scopes it holds.
    let missing = not_covered(&request.scopes, &caller.session.scopes);
    if let Some(scope) = missing.first() {
        return Err(denied(&format!("device pairing approval denied: missing scope: {scope}"), "caller-missing-scope"));
    }
    let (id, now) = (request_id.to_owned(), now_ms());
    // Recorded as `cli` when the approver says it is a CLI (self-declared, informational).
    let via = if caller.session.client.id == "cli" { ApprovedVia::Cli } else { ApprovedVia::Owner };
    let approval = store_op(gw, move |s| s.approve(&id, via, now)).await.map_err(store_error)?;
    gw.registry.broadcast(
        "device.pair.resolved",
        &json!({ "requestId": request_id, "deviceId": approval.device.device_id, "decision": "approved", "ts": now }),
    );
    if approval.request.role == Role::Node {
        gw.registry.broadcast(
            "node.pair.resolved",
            &json!({ "requestId": request_id, "nodeId": approval.device.device_id, "decision": "approved", "ts": now }),
        );
    }
    Ok(approval)
}

async fn approve_device(gw: &Arc<Gateway>, caller: &Caller<'_>, request_id: &str) -> Result<Value, RequestError> {
    let approval = approve_request(gw, caller, request_id).await?;
    Ok(json!({
        "requestId": request_id,
        "deviceId": approval.device.device_id,
        "role": approval.request.role.as_str(),
        "scopes": approval.request.scopes,
        "device": paired_json(&approval.device, &[]),
    }))
}

async fn reject_request(gw: &Arc<Gateway>, caller: &Caller<'_>, request_id: &str) -> Result<Value, RequestError> {
    let request = managed_request(gw, caller, request_id, "rejection").await?;
    let (id, now) = (request_id.to_owned(), now_ms());
    let rejection = store_op(gw, move |s| s.reject(&id, now)).await.map_err(store_error)?;
    gw.registry.broadcast(
        "device.pair.resolved",
        &json!({ "requestId": request_id, "deviceId": request.device_id, "decision": "rejected", "ts": now }),
    );
    Ok(json!({
        "requestId": request_id,
        "deviceId": request.device_id,
        "decision": "rejected",
        "cooldownUntilMs": rejection.cooldown_until_ms,
    }))
}

/// The paired record, checked for management rights.
async fn managed_device(
    gw: &Arc<Gateway>,
    caller: &Caller<'_>,
    device_id: &str,
    what: &str,
) -> Result<PairedDevice, RequestError> {
    if !caller.may_manage(device_id) {
        return Err(denied(&format!("{what} denied"), "not-own-device"));
    }
    let id = device_id.to_owned();
    let device = store_op(gw, move |s| s.device(&id)).await.map_err(store_error)?.ok_or_else(|| {
        RequestError::NotFound { message: format!("unknown device {device_id}"), code: "DEVICE_UNKNOWN" }
    })?;
    if device.roles.iter().any(|r| *r != Role::Operator) && !caller.admin {
        return Err(denied(&format!("{what} denied"), "node-device-needs-admin"));
    }
    Ok(device)
}

async fn remove_device(gw: &Arc<Gateway>, caller: &Caller<'_>, device_id: &str) -> Result<Value, RequestError> {
    managed_device(gw, caller, device_id, "device removal").await?;
    let now = now_ms();
    let id = device_id.to_owned();
    store_op(gw, move |s| s.remove_device(&id, now)).await.map_err(store_error)?;
    let closed = gw.registry.kill_where(
        |s| s.device_id.as_deref() == Some(device_id),
        CLOSE_INVALIDATED,
        "client invalidated: device removed",
    );
    Ok(json!({ "deviceId": device_id, "removed": true, "closedSessions": closed }))
}

async fn rename_device(
    gw: &Arc<Gateway>,
    caller: &Caller<'_>,
    device_id: &str,
    label: &str,
) -> Result<Value, RequestError> {
    managed_device(gw, caller, device_id, "device rename").await?;
    let now = now_ms();
    let (id, label) = (device_id.to_owned(), label.to_owned());
    let device = store_op(gw, move |s| s.rename_device(&id, &label, now)).await.map_err(store_error)?;
    Ok(json!({ "device": paired_json(&device, &[]) }))
}

/// Shared gates of rotate and revoke: another device needs admin, a node role needs admin.
fn token_gate(caller: &Caller<'_>, device_id: &str, role: Role, what: &str) -> Result<(), RequestError> {
    if caller.own_device != Some(device_id) && !caller.admin {
        return Err(denied(&format!("device token {what} denied"), "cross-device-needs-admin"));
    }
    if role != Role::Operator && !caller.admin {
        return Err(denied(&format!("device token {what} denied"), "node-role-needs-admin"));
    }
    Ok(())
}

async fn rotate_token(
    gw: &Arc<Gateway>,
    caller: &Caller<'_>,
    device_id: &str,
    role: Role,
    scopes: Option<Vec<String>>,
) -> Result<Value, RequestError> {
    token_gate(caller, device_id, role, "rotation")?;
    let id = device_id.to_owned();
    let view = store_op(gw, move |s| s.view(&id)).await.map_err(store_error)?;
    let Some(device) = view.device.filter(|d| d.has_role(role)) else {
        return Err(denied("device token rotation denied", "unknown-device-or-role"));
    };
    let current = view.tokens.iter().find(|t| t.role == role && !t.is_revoked());
    let scopes = match role {
        Role::Node => Vec::new(),
        Role::Operator => {
            scopes.or_else(|| current.map(|t| t.scopes.clone())).unwrap_or_else(|| device.approved_scopes.clone())
        }
    };
    if !not_covered(&scopes, &device.approved_scopes).is_empty() {
        return Err(denied("device token rotation denied", "scopes-exceed-approval"));
    }
    if role == Role::Operator && !not_covered(&scopes, &caller.session.scopes).is_empty() {
        return Err(denied("device token rotation denied", "caller-missing-scope"));
    }
    let now = now_ms();
    let (id, token_scopes) = (device_id.to_owned(), scopes.clone());
    let token = store_op(gw, move |s| s.issue_token(&id, role, &token_scopes, now)).await.map_err(store_error)?;
    let this = caller.session.conn_id.clone();
    gw.registry.kill_where(
        |s| {
            s.device_id.as_deref() == Some(device_id)
                && s.role == role
                && s.token_issued_at_ms.is_some()
                && s.conn_id != this
        },
        CLOSE_INVALIDATED,
        "client invalidated: device token rotated",
    );
    let in_band = caller.own_device == Some(device_id);
    let mut result = json!({
        "deviceId": device_id,
        "role": role.as_str(),
        "scopes": scopes,
        "rotatedAtMs": now,
        "tokenDelivery": if in_band { "in-band" } else { "withheld-cross-device" },
    });
    if in_band {
        result["token"] = token.into();
    }
    Ok(result)
}

async fn revoke_token(
    gw: &Arc<Gateway>,
    caller: &Caller<'_>,
    device_id: &str,
    role: Role,
) -> Result<Value, RequestError> {
    token_gate(caller, device_id, role, "revocation")?;
    let id = device_id.to_owned();
    let tokens = store_op(gw, move |s| s.tokens(&id)).await.map_err(store_error)?;
    if let Some(t) = tokens.iter().find(|t| t.role == role && !t.is_revoked()) {
        if role == Role::Operator && !not_covered(&t.scopes, &caller.session.scopes).is_empty() {
            return Err(denied("device token revocation denied", "caller-missing-scope"));
        }
    }
    let now = now_ms();
    let id = device_id.to_owned();
    let revoked = store_op(gw, move |s| s.revoke_token(&id, role, now)).await.map_err(store_error)?;
    let closed = gw.registry.kill_where(
        |s| s.device_id.as_deref() == Some(device_id) && s.role == role && s.token_issued_at_ms.is_some(),
        CLOSE_INVALIDATED,
        "client invalidated: device token revoked",
    );
    Ok(
        json!({ "deviceId": device_id, "role": role.as_str(), "revoked": revoked, "revokedAtMs": now, "closedSessions": closed }),
    )
}

// Node pairing: in clawgate a node is paired by the same device pairing, for
// role node. These are the node-shaped views the OpenClaw CLI (`openclaw
// nodes pending|approve`) and node host expect.

/// Scopes an approver needs for a node request.
const NODE_APPROVE_SCOPES: &[&str] = &[scopes::PAIRING, scopes::ADMIN];

fn node_pending_json(r: &PendingRequest) -> Value {
    let mut v = json!({
        "requestId": r.request_id,
        "nodeId": r.device_id,
        "caps": [],
        "commands": [],
        "requiredApproveScopes": NODE_APPROVE_SCOPES,
        "silent": false,
        "ts": r.created_at_ms,
    });
    for (key, value) in [
        ("clientId", &r.client_id),
        ("clientMode", &r.client_mode),
        ("displayName", &r.display_name),
        ("platform", &r.platform),
        ("deviceFamily", &r.device_family),
        ("remoteIp", &r.remote_ip),
    ] {
        if let Some(value) = value {
            v[key] = value.clone().into();
        }
    }
    v
}

fn node_paired_json(d: &PairedDevice) -> Value {
    json!({
        "nodeId": d.device_id,
        "clientId": d.client_id,
        "clientMode": d.client_mode,
        "displayName": d.label.clone().or_else(|| d.display_name.clone()),
        "platform": d.platform,
        "deviceFamily": d.device_family,
        "createdAtMs": d.created_at_ms,
        "approvedAtMs": d.approved_at_ms,
        "lastSeenAtMs": d.last_seen_at_ms,
    })
}

async fn list_nodes(gw: &Arc<Gateway>, caller: &Caller<'_>) -> Result<Value, RequestError> {
    let now = now_ms();
    let (pending, devices) =
        store_op(gw, move |s| Ok((s.open_requests(now)?, s.list_devices()?))).await.map_err(store_error)?;
    let pending: Vec<Value> = pending
        .iter()
        .filter(|r| r.role == Role::Node && caller.may_manage(&r.device_id))
        .map(node_pending_json)
        .collect();
    let paired: Vec<Value> = devices
        .iter()
        .filter(|d| d.has_role(Role::Node) && caller.may_manage(&d.device_id))
        .map(node_paired_json)
        .collect();
    Ok(json!({ "pending": pending, "paired": paired }))
}

async fn approve_node(gw: &Arc<Gateway>, caller: &Caller<'_>, request_id: &str) -> Result<Value, RequestError> {
    let approval = approve_request(gw, caller, request_id).await?;
    Ok(json!({ "requestId": request_id, "node": node_paired_json(&approval.device) }))
}
