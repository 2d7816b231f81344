//! Nodes: listing, describing, invoking commands on them, and what a node
//! sends back (`node.invoke.result`, `node.event`). Invocations reach only the
//! connection of the node they name (here, or on the instance of the cluster
//! that holds it); results are accepted only from it. The catalog is
//! server/node_catalog.rs, the invocation itself server/node_invoke.rs.

use std::sync::Arc;

use serde_json::{json, Value};

use super::super::invokes::{InvokeOutcome, ResultRejected};
use super::super::node_catalog;
use super::super::node_invoke::{
    caller_may_invoke, invoke_here, NodeInvoke, DEFAULT_INVOKE_TIMEOUT_MS, MAX_INVOKE_TIMEOUT_MS,
};
use super::super::registry::SessionInfo;
use super::super::wire::RequestError;
use super::super::{now_ms, Gateway};
use super::call::{Call, Reply};
use super::{object_params, string_param};

pub(super) fn list(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { Ok(json!({ "ts": now_ms(), "nodes": node_catalog::known_nodes(c.gw).await? })) })
}

pub(super) fn describe(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { node_catalog::describe_node(c.gw, &string_param(c.method, &c.params, "nodeId")?).await })
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

async fn invoke_node(gw: &Arc<Gateway>, session: &SessionInfo, params: Option<Value>) -> Result<Value, RequestError> {
    const M: &str = "node.invoke";
    let node_id = string_param(M, &params, "nodeId")?;
    let command = string_param(M, &params, "command")?;
    let p = object_params(M, &params)?;
    caller_may_invoke(&session.scopes, &command)?;
    let timeout_ms = match p.get("timeoutMs") {
        None | Some(Value::Null) => DEFAULT_INVOKE_TIMEOUT_MS,
        Some(v) => v.as_u64().ok_or_else(|| invalid(M, "timeoutMs must be a non-negative integer"))?,
    }
    .clamp(1, MAX_INVOKE_TIMEOUT_MS);
    let request = NodeInvoke {
        node_id,
        command,
        params: p.get("params").filter(|v| !v.is_null()).cloned(),
        idempotency_key: p.get("idempotencyKey").and_then(Value::as_str).map(str::to_owned),
        timeout_ms,
    };
    // A node connected here is invoked here; otherwise the instance that
    // holds it is asked, when there is a cluster.
    match &gw.cluster {
        Some(cluster) if gw.registry.node(&request.node_id).is_none() => {
            cluster.forward_invoke(&session.scopes, request).await
        }
        _ => invoke_here(gw, &request).await,
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
