//! One `node.invoke`: who may ask for which command, and running it on a
//! node connected to this instance. The same two steps serve an operator
//! connected here and one connected to another instance of the cluster
//! (docs/cluster.md, "node.invoke across instances").

use std::sync::Arc;
use std::time::Duration;

use clawgate_protocol::scopes::{self, satisfied_by};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::outbox::Outbound;
use crate::secrets::random_uuid;

use super::invokes::InvokeOutcome;
use super::wire::RequestError;
use super::Gateway;

/// Commands that cross an admin-only boundary on the node's host.
const ADMIN_ONLY_COMMANDS: &[&str] =
    &["system.run", "system.run.prepare", "browser.proxy", "browser.proxy.upload.v1", "fs.listDir", "terminal.upload"];

/// How long an invocation may wait for the node when the caller does not say.
pub const DEFAULT_INVOKE_TIMEOUT_MS: u64 = 30_000;
/// The longest wait a caller may ask for.
pub const MAX_INVOKE_TIMEOUT_MS: u64 = 10 * 60_000;

/// What an operator asked a node to do, once its params were read. It may
/// cross to another instance, so it holds only what the node is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInvoke {
    pub node_id: String,
    pub command: String,
    pub params: Option<Value>,
    pub idempotency_key: Option<String>,
    /// How long to wait for the node (already bounded by the caller).
    pub timeout_ms: u64,
}

/// Whether a caller holding `scopes` may send `command` to a node at all,
/// wherever the node is connected.
pub fn caller_may_invoke(scopes: &[String], command: &str) -> Result<(), RequestError> {
    if command.starts_with("system.execApprovals.") {
        return Err(RequestError::InvalidParams {
            method: "node.invoke".into(),
            message: "node.invoke does not allow system.execApprovals.*; use exec.approvals.node.*".into(),
        });
    }
    if ADMIN_ONLY_COMMANDS.contains(&command) && !satisfied_by(scopes, scopes::ADMIN) {
        return Err(RequestError::MissingScope { scope: scopes::ADMIN.to_owned() });
    }
    Ok(())
}

/// The error for a node that is connected nowhere the gateway can reach.
pub fn not_connected(node_id: &str) -> RequestError {
    RequestError::Unavailable(format!("node {node_id} is not connected"))
}

/// Send the invocation to the node connected to this instance and wait for
/// its answer: the node must have declared the command, and only its own
/// connection may answer.
pub async fn invoke_here(gw: &Arc<Gateway>, request: &NodeInvoke) -> Result<Value, RequestError> {
    let NodeInvoke { node_id, command, params, idempotency_key, timeout_ms } = request;
    let Some((node, outbox)) = gw.registry.node(node_id) else {
        return Err(not_connected(node_id));
    };
    let declared = node.node.as_ref().is_some_and(|n| n.commands.contains(command));
    if !declared {
        return Err(RequestError::Denied {
            message: format!("node {node_id} does not declare command {command}"),
            reason: "command-not-declared".into(),
        });
    }

    let id = random_uuid();
    let waiting = gw.invokes.start(&id, node_id, &node.conn_id);
    let mut sent = json!({ "id": id, "nodeId": node_id, "command": command, "timeoutMs": timeout_ms });
    if let Some(params) = params.as_ref().filter(|v| !v.is_null()) {
        sent["paramsJSON"] = params.to_string().into();
    }
    if let Some(key) = idempotency_key {
        sent["idempotencyKey"] = key.clone().into();
    }
    let pushed =
        outbox.push(Outbound::Event { name: Arc::from("node.invoke.request"), payload: Arc::from(sent.to_string()) });
    if pushed.is_err() {
        gw.invokes.cancel(&id);
        return Err(RequestError::Unavailable(format!("node {node_id} is not reachable")));
    }
    let outcome = match tokio::time::timeout(Duration::from_millis(*timeout_ms), waiting).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_only_commands_need_admin_wherever_the_node_is() {
        let write = vec!["operator.write".to_owned()];
        let admin = vec!["operator.admin".to_owned()];
        assert_eq!(
            caller_may_invoke(&write, "system.run"),
            Err(RequestError::MissingScope { scope: scopes::ADMIN.to_owned() })
        );
        assert_eq!(caller_may_invoke(&admin, "system.run"), Ok(()));
        assert_eq!(caller_may_invoke(&write, "system.which"), Ok(()));
        assert!(matches!(
            caller_may_invoke(&admin, "system.execApprovals.set"),
            Err(RequestError::InvalidParams { .. })
        ));
    }

    #[test]
    fn an_invoke_crosses_the_bus_as_camel_case_json_and_back() {
        let request = NodeInvoke {
            node_id: "n1".into(),
            command: "system.which".into(),
            params: Some(json!({ "bins": ["sh"] })),
            idempotency_key: Some("k".into()),
            timeout_ms: 5_000,
        };
        let text = serde_json::to_value(&request).unwrap();
        assert_eq!(text["nodeId"], "n1");
        assert_eq!(text["timeoutMs"], 5_000);
        assert_eq!(serde_json::from_value::<NodeInvoke>(text).unwrap(), request);
    }
}
