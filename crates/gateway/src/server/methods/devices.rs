//! `device.pair.*`, `device.token.*` and `node.pair.*`: managing pairings
//! and device tokens through the gateway. Who may do what is the device
//! administration policy's ([`crate::devices_admin`]); here are the params,
//! the answers' shapes, and what only a running gateway does: broadcasting
//! resolutions and closing the sessions a change invalidates.

use std::sync::Arc;

use clawgate_protocol::scopes;
use serde_json::{json, Value};

use crate::devices_admin::{self, views, Actor, AdminError};
use crate::store::json::paired_json;
use crate::store::{Approval, ApprovedVia, PairedDevice, PairingStore, PendingRequest, Role};

use super::super::apply::store_op;
use super::super::registry::SessionInfo;
use super::super::wire::{RequestError, CLOSE_INVALIDATED};
use super::super::{now_ms, Gateway};
use super::call::{Call, Reply};
use super::{object_params, string_param};

/// The session as the policy sees it. Its own device counts only when it
/// authenticated with that device's token; an approval is recorded as `cli`
/// when the approver says it is a CLI (self-declared, informational).
fn actor(session: &SessionInfo) -> Actor {
    let via = if session.client.id == "cli" { ApprovedVia::Cli } else { ApprovedVia::Owner };
    Actor::session(&session.scopes, session.token_issued_at_ms.and(session.device_id.as_deref()), via)
}

/// Store errors keep the store's own codes, so the CLI reports the same code
/// whether it went through the gateway or worked `--offline`.
fn request_error(e: AdminError) -> RequestError {
    match e {
        AdminError::Denied { ref reason, .. } => {
            RequestError::Denied { message: e.message(), reason: reason.as_str().to_owned() }
        }
        AdminError::UnknownRequest | AdminError::UnknownDevice { .. } => {
            RequestError::NotFound { message: e.message(), code: e.code() }
        }
        AdminError::Store(e) => RequestError::store(&e),
    }
}

/// Run one policy operation on the blocking pool.
async fn admin<T: Send + 'static>(
    gw: &Arc<Gateway>,
    session: &SessionInfo,
    op: impl FnOnce(&dyn PairingStore, &Actor, u64) -> Result<T, AdminError> + Send + 'static,
) -> Result<T, RequestError> {
    let (actor, now) = (actor(session), now_ms());
    store_op(gw, move |s| Ok(op(s, &actor, now))).await.map_err(|e| request_error(e.into()))?.map_err(request_error)
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
    Box::pin(async move {
        let listing = admin(c.gw, c.session, |s, a, now| devices_admin::list(s, a, now)).await?;
        Ok(views::listing(&listing))
    })
}

pub(super) fn approve(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let approval = approve_request(&c).await?;
        Ok(views::approval(&approval))
    })
}

/// `device.pair.reject` and `node.pair.reject`: the same request record.
pub(super) fn reject(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let id = string_param(c.method, &c.params, "requestId")?;
        let rejection = admin(c.gw, c.session, move |s, a, now| devices_admin::reject(s, a, &id, now)).await?;
        let resolved = json!({
            "requestId": rejection.request.request_id,
            "deviceId": rejection.request.device_id,
            "decision": "rejected",
            "ts": now_ms(),
        });
        crate::server::events::announce_pairing(c.gw, "device.pair.resolved", resolved).await;
        Ok(views::rejection(&rejection))
    })
}

/// `device.pair.unreject` (clawgate's own, not in the protocol schema): end
/// a device's rejection cool-down so it may ask again. `role` is optional;
/// without it every role's cool-down of the device ends.
pub(super) fn unreject(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let id = string_param(c.method, &c.params, "deviceId")?;
        let role = match object_params(c.method, &c.params)?.get("role") {
            None | Some(Value::Null) => None,
            Some(_) => Some(parse_role(c.method, &c.params)?),
        };
        let lifted = admin(c.gw, c.session, move |s, a, now| devices_admin::unreject(s, a, &id, role, now)).await?;
        Ok(views::unrejection(&lifted))
    })
}

pub(super) fn remove(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { remove_device(&c, "deviceId").await })
}

pub(super) fn node_remove(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { remove_device(&c, "nodeId").await })
}

pub(super) fn rename(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { rename_device(&c, "deviceId", "label").await })
}

pub(super) fn node_rename(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { rename_device(&c, "nodeId", "displayName").await })
}

pub(super) fn rotate(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let device_id = string_param(c.method, &c.params, "deviceId")?;
        let role = parse_role(c.method, &c.params)?;
        let scopes = token_scopes(c.method, &c.params)?;
        let id = device_id.clone();
        let rotation =
            admin(c.gw, c.session, move |s, a, now| devices_admin::rotate(s, a, &id, role, scopes, now)).await?;
        let this = &c.session.conn_id;
        c.gw.registry.kill_where(
            |s| {
                s.device_id.as_deref() == Some(device_id.as_str())
                    && s.role == role
                    && s.token_issued_at_ms.is_some()
                    && s.conn_id != *this
            },
            CLOSE_INVALIDATED,
            "client invalidated: device token rotated",
        );
        Ok(views::rotation(&rotation))
    })
}

pub(super) fn revoke(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let device_id = string_param(c.method, &c.params, "deviceId")?;
        let role = parse_role(c.method, &c.params)?;
        let id = device_id.clone();
        let revocation = admin(c.gw, c.session, move |s, a, now| devices_admin::revoke(s, a, &id, role, now)).await?;
        let closed = c.gw.registry.kill_where(
            |s| s.device_id.as_deref() == Some(device_id.as_str()) && s.role == role && s.token_issued_at_ms.is_some(),
            CLOSE_INVALIDATED,
            "client invalidated: device token revoked",
        );
        let mut out = views::revocation(&device_id, &revocation);
        out["closedSessions"] = closed.into();
        Ok(out)
    })
}

pub(super) fn node_list(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let listing = admin(c.gw, c.session, |s, a, now| devices_admin::list(s, a, now)).await?;
        let pending: Vec<Value> =
            listing.pending.iter().filter(|r| r.role == Role::Node).map(node_pending_json).collect();
        let paired: Vec<Value> =
            listing.paired.iter().filter(|(d, _)| d.has_role(Role::Node)).map(|(d, _)| node_paired_json(d)).collect();
        Ok(json!({ "pending": pending, "paired": paired }))
    })
}

pub(super) fn node_approve(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move {
        let approval = approve_request(&c).await?;
        Ok(json!({ "requestId": approval.request.request_id, "node": node_paired_json(&approval.device) }))
    })
}

/// Approve through the policy, then tell every operator (and, for a node,
/// the node pairing watchers).
async fn approve_request(c: &Call<'_>) -> Result<Approval, RequestError> {
    let id = string_param(c.method, &c.params, "requestId")?;
    let approval = admin(c.gw, c.session, move |s, a, now| devices_admin::approve(s, a, &id, now)).await?;
    let (request_id, device_id, now) = (&approval.request.request_id, &approval.device.device_id, now_ms());
    let resolved = json!({ "requestId": request_id, "deviceId": device_id, "decision": "approved", "ts": now });
    crate::server::events::announce_pairing(c.gw, "device.pair.resolved", resolved).await;
    if approval.request.role == Role::Node {
        let resolved = json!({ "requestId": request_id, "nodeId": device_id, "decision": "approved", "ts": now });
        crate::server::events::announce_pairing(c.gw, "node.pair.resolved", resolved).await;
    }
    Ok(approval)
}

async fn remove_device(c: &Call<'_>, id_key: &str) -> Result<Value, RequestError> {
    let device_id = string_param(c.method, &c.params, id_key)?;
    let id = device_id.clone();
    admin(c.gw, c.session, move |s, a, now| devices_admin::remove(s, a, &id, now)).await?;
    let closed = c.gw.registry.kill_where(
        |s| s.device_id.as_deref() == Some(device_id.as_str()),
        CLOSE_INVALIDATED,
        "client invalidated: device removed",
    );
    let mut out = views::removal(&device_id);
    out["closedSessions"] = closed.into();
    Ok(out)
}

async fn rename_device(c: &Call<'_>, id_key: &str, label_key: &str) -> Result<Value, RequestError> {
    let device_id = string_param(c.method, &c.params, id_key)?;
    let label = string_param(c.method, &c.params, label_key)?;
    let device = admin(c.gw, c.session, move |s, a, now| devices_admin::rename(s, a, &device_id, &label, now)).await?;
    Ok(json!({ "device": paired_json(&device, &[]) }))
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
