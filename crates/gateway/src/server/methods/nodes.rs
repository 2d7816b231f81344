//! Nodes: listing, describing, invoking commands on them, and what a node
//! sends back (`node.invoke.result`, `node.event`). Invocations reach only the
//! connection of the node they name; results are accepted only from it.

use std::sync::Arc;
use std::time::Duration;

use clawgate_protocol::scopes::{self, satisfied_by};
use serde_json::{json, Map, Value};

use crate::admission::decision::Role;
use crate::secrets::random_uuid;
use crate::store::PairedDevice;

use super::super::apply::store_op;
use super::super::invokes::{InvokeOutcome, ResultRejected};
use super::super::outbox::Outbound;
use super::super::registry::SessionInfo;
use super::super::wire::RequestError;
use super::super::{now_ms, Gateway};
use super::call::{Call, Reply};
use super::{object_params, string_param};

/// Commands that cross an admin-only boundary on the node's host.
const ADMIN_ONLY_COMMANDS: &[&str] =
    &["system.run", "system.run.prepare", "browser.proxy", "browser.proxy.upload.v1", "fs.listDir", "terminal.upload"];
/// How long an invocation may wait for the node when the caller does not say.
const DEFAULT_INVOKE_TIMEOUT_MS: u64 = 30_000;
/// The longest wait a caller may ask for.
const MAX_INVOKE_TIMEOUT_MS: u64 = 10 * 60_000;

pub(super) fn list(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { Ok(json!({ "ts": now_ms(), "nodes": known_nodes(c.gw).await? })) })
}

pub(super) fn describe(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { describe_node(c.gw, &string_param(c.method, &c.params, "nodeId")?).await })
}

pub(super) fn invoke(c: Call<'_>) -> Reply<'_> {
    Box::pin(invoke_node(c.gw, c.session, c.params))
}

pub(super) fn invoke_result(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { accept_invoke_result(c.gw, c.session, c.params) })
}

pub(super) fn invoke_progress(_: Call<'_>) -> Reply<'_> {
    Box::pin(async { Ok(json!({ "ok": true })) })
}

pub(super) fn node_event(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { log_node_event(c.session, c.params) })
}

// A node reports its surface; clawgate routes by the declared commands and
// acknowledges these (the node host only needs an answer).

pub(super) fn runner_inventory_update(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { Ok(json!({ "nodeId": own_node_id(c.session) })) })
}

pub(super) fn skills_update(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { Ok(json!({ "nodeId": own_node_id(c.session), "skills": [] })) })
}

pub(super) fn plugin_tools_update(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { Ok(json!({ "nodeId": own_node_id(c.session), "tools": [] })) })
}

fn invalid(method: &str, message: impl Into<String>) -> RequestError {
    RequestError::InvalidParams { method: method.to_owned(), message: message.into() }
}

fn sorted(items: &[String]) -> Vec<String> {
    let mut v = items.to_vec();
    v.sort();
    v.dedup();
    v
}

/// One node as OpenClaw's node catalog shows it: connected nodes from their
/// session, paired node devices from the store.
fn node_json(live: Option<&SessionInfo>, paired: Option<&PairedDevice>, node_id: &str) -> Value {
    let mut node = Map::new();
    node.insert("nodeId".into(), node_id.into());
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            node.insert(k.into(), v.into());
        }
    };
    let client = live.map(|s| &s.client);
    put(
        "displayName",
        paired
            .and_then(|p| p.label.clone().or_else(|| p.display_name.clone()))
            .or_else(|| client.and_then(|c| c.display_name.clone())),
    );
    put("platform", client.map(|c| c.platform.clone()).or_else(|| paired.and_then(|p| p.platform.clone())));
    put("version", client.map(|c| c.version.clone()));
    put("clientId", client.map(|c| c.id.clone()).or_else(|| paired.and_then(|p| p.client_id.clone())));
    put("clientMode", client.map(|c| c.mode.clone()).or_else(|| paired.and_then(|p| p.client_mode.clone())));
    put(
        "deviceFamily",
        client.and_then(|c| c.device_family.clone()).or_else(|| paired.and_then(|p| p.device_family.clone())),
    );
    put("modelIdentifier", client.and_then(|c| c.model_identifier.clone()));
    put("remoteIp", live.map(|s| s.client_ip.to_string()).or_else(|| paired.and_then(|p| p.remote_ip.clone())));
    let info = live.and_then(|s| s.node.as_ref());
    node.insert("caps".into(), json!(info.map(|n| sorted(&n.caps)).unwrap_or_default()));
    node.insert("commands".into(), json!(info.map(|n| sorted(&n.commands)).unwrap_or_default()));
    if let Some(n) = info {
        node.insert("permissions".into(), json!(n.permissions));
        node.insert("deviceless".into(), n.deviceless.into());
    }
    if let Some(s) = live {
        node.insert("connectedAtMs".into(), s.connected_at_ms.into());
        node.insert("lastSeenAtMs".into(), now_ms().into());
    } else if let Some(seen) = paired.and_then(|p| p.last_seen_at_ms) {
        node.insert("lastSeenAtMs".into(), seen.into());
    }
    if let Some(p) = paired {
        node.insert("approvedAtMs".into(), p.approved_at_ms.into());
    }
    node.insert("approvalState".into(), if paired.is_some() { "approved" } else { "unapproved" }.into());
    node.insert("paired".into(), paired.is_some().into());
    node.insert("connected".into(), live.is_some().into());
    Value::Object(node)
}

/// Connected nodes first, then paired node devices that are offline.
async fn known_nodes(gw: &Arc<Gateway>) -> Result<Vec<Value>, RequestError> {
    // The sessions first: a node is registered only after its pairing was
    // written, so every live node seen here is in the store read next (the
    // other order could show a node that paired in between as unpaired).
    let live = gw.registry.nodes();
    let paired = store_op(gw, |s| s.list_devices()).await.map_err(|e| RequestError::store(&e))?;
    let paired: Vec<PairedDevice> = paired.into_iter().filter(|d| d.has_role(Role::Node)).collect();
    let mut nodes = Vec::new();
    for s in &live {
        let Some(info) = &s.node else { continue };
        let p = paired.iter().find(|d| d.device_id == info.node_id);
        nodes.push(node_json(Some(s), p, &info.node_id));
    }
    for p in &paired {
        if !live.iter().any(|s| s.node.as_ref().is_some_and(|n| n.node_id == p.device_id)) {
            nodes.push(node_json(None, Some(p), &p.device_id));
        }
    }
    Ok(nodes)
}

async fn describe_node(gw: &Arc<Gateway>, node_id: &str) -> Result<Value, RequestError> {
    let node = known_nodes(gw)
        .await?
        .into_iter()
        .find(|n| n["nodeId"] == node_id)
        .ok_or_else(|| RequestError::NotFound { message: "unknown nodeId".into(), code: "UNKNOWN_NODE" })?;
    let mut out = json!({ "ts": now_ms() });
    if let (Some(out), Value::Object(node)) = (out.as_object_mut(), node) {
        out.extend(node);
    }
    Ok(out)
}

async fn invoke_node(gw: &Arc<Gateway>, session: &SessionInfo, params: Option<Value>) -> Result<Value, RequestError> {
    const M: &str = "node.invoke";
    let node_id = string_param(M, &params, "nodeId")?;
    let command = string_param(M, &params, "command")?;
    let p = object_params(M, &params)?;
    if command.starts_with("system.execApprovals.") {
        return Err(invalid(M, "node.invoke does not allow system.execApprovals.*; use exec.approvals.node.*"));
    }
    if ADMIN_ONLY_COMMANDS.contains(&command.as_str()) && !satisfied_by(&session.scopes, scopes::ADMIN) {
        return Err(RequestError::MissingScope { scope: scopes::ADMIN.to_owned() });
    }
    let timeout_ms = match p.get("timeoutMs") {
        None | Some(Value::Null) => DEFAULT_INVOKE_TIMEOUT_MS,
        Some(v) => v.as_u64().ok_or_else(|| invalid(M, "timeoutMs must be a non-negative integer"))?,
    }
    .clamp(1, MAX_INVOKE_TIMEOUT_MS);
    let idempotency_key = p.get("idempotencyKey").and_then(Value::as_str).map(str::to_owned);

    let Some((node, outbox)) = gw.registry.node(&node_id) else {
        return Err(RequestError::Unavailable(format!("node {node_id} is not connected")));
    };
    let declared = node.node.as_ref().is_some_and(|n| n.commands.contains(&command));
    if !declared {
        return Err(RequestError::Denied {
            message: format!("node {node_id} does not declare command {command}"),
            reason: "command-not-declared".into(),
        });
    }

    let id = random_uuid();
    let waiting = gw.invokes.start(&id, &node_id, &node.conn_id);
    let mut request = json!({ "id": id, "nodeId": node_id, "command": command, "timeoutMs": timeout_ms });
    if let Some(params) = p.get("params").filter(|v| !v.is_null()) {
        request["paramsJSON"] = params.to_string().into();
    }
    if let Some(key) = idempotency_key {
        request["idempotencyKey"] = key.into();
    }
    let sent = outbox
        .push(Outbound::Event { name: Arc::from("node.invoke.request"), payload: Arc::from(request.to_string()) });
    if sent.is_err() {
        gw.invokes.cancel(&id);
        return Err(RequestError::Unavailable(format!("node {node_id} is not reachable")));
    }
    let outcome = match tokio::time::timeout(Duration::from_millis(timeout_ms), waiting).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => InvokeOutcome::NodeGone,
        Err(_) => {
            gw.invokes.cancel(&id);
            return Err(RequestError::Unavailable(format!("node invoke timed out after {timeout_ms} ms")));
        }
    };
    match outcome {
        InvokeOutcome::Ok { payload, payload_json } => {
            let payload = payload.or_else(|| payload_json.as_deref().and_then(|j| serde_json::from_str(j).ok()));
            Ok(
                json!({ "ok": true, "nodeId": node_id, "command": command, "payload": payload, "payloadJSON": payload_json }),
            )
        }
        InvokeOutcome::Failed { code, message } => Err(RequestError::NodeFailed { code, message }),
        InvokeOutcome::NodeGone => {
            Err(RequestError::Unavailable(format!("node {node_id} disconnected before answering")))
        }
    }
}

fn accept_invoke_result(
    gw: &Arc<Gateway>,
    session: &SessionInfo,
    params: Option<Value>,
) -> Result<Value, RequestError> {
    const M: &str = "node.invoke.result";
    let id = string_param(M, &params, "id")?;
    let node_id = string_param(M, &params, "nodeId")?;
    let p = object_params(M, &params)?;
    let ok = p.get("ok").and_then(Value::as_bool).ok_or_else(|| invalid(M, "ok must be a boolean"))?;
    let own_id = session.node.as_ref().map(|n| n.node_id.as_str());
    if own_id != Some(node_id.as_str()) {
        return Err(RequestError::Denied {
            message: "a node answers only for itself".into(),
            reason: "not-this-node".into(),
        });
    }
    let outcome = if ok {
        InvokeOutcome::Ok {
            payload: p.get("payload").cloned().filter(|v| !v.is_null()),
            payload_json: p.get("payloadJSON").and_then(Value::as_str).map(str::to_owned),
        }
    } else {
        let err = p.get("error");
        InvokeOutcome::Failed {
            code: err.and_then(|e| e.get("code")).and_then(Value::as_str).unwrap_or("NODE_ERROR").to_owned(),
            message: err
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("node reported an error")
                .to_owned(),
        }
    };
    match gw.invokes.complete(&id, &node_id, &session.conn_id, outcome) {
        Ok(()) => Ok(json!({ "ok": true })),
        Err(ResultRejected::Unknown) => {
            // Late (timed out) or unknown: acknowledged, nothing to deliver.
            Ok(json!({ "ok": true, "ignored": true }))
        }
        Err(ResultRejected::NotYours) => Err(RequestError::Denied {
            message: "this invocation was not sent to this connection".into(),
            reason: "not-the-target".into(),
        }),
    }
}

fn log_node_event(session: &SessionInfo, params: Option<Value>) -> Result<Value, RequestError> {
    let event = string_param("node.event", &params, "event")?;
    tracing::debug!(conn_id = %session.conn_id, event = ?event, "node event");
    Ok(json!({ "ok": true, "event": event, "handled": false }))
}

fn own_node_id(session: &SessionInfo) -> Option<&str> {
    session.node.as_ref().map(|n| n.node_id.as_str())
}
