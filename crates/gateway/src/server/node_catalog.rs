//! The node catalog `node.list` and `node.describe` answer from: nodes
//! connected here, nodes connected to another instance of the cluster (as
//! that instance announced them: docs/cluster.md), and paired node devices
//! that are offline.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::admission::decision::Role;
use crate::store::PairedDevice;

use super::apply::store_op;
use super::registry::SessionInfo;
use super::wire::RequestError;
use super::{now_ms, Gateway};

/// What a connected node shows of itself, wherever it is connected: built
/// from its session here, or received from the instance that holds it.
/// Nothing secret (no token, no key): ids, names and the declared surface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveNode {
    pub node_id: String,
    pub display_name: Option<String>,
    pub platform: String,
    pub version: String,
    pub client_id: String,
    pub client_mode: String,
    pub device_family: Option<String>,
    pub model_identifier: Option<String>,
    pub remote_ip: String,
    pub caps: Vec<String>,
    pub commands: Vec<String>,
    pub permissions: BTreeMap<String, bool>,
    pub deviceless: bool,
    pub connected_at_ms: u64,
}

impl LiveNode {
    /// The node behind a node session; `None` for any other session.
    pub fn of_session(s: &SessionInfo) -> Option<LiveNode> {
        let n = s.node.as_ref()?;
        Some(LiveNode {
            node_id: n.node_id.clone(),
            display_name: s.client.display_name.clone(),
            platform: s.client.platform.clone(),
            version: s.client.version.clone(),
            client_id: s.client.id.clone(),
            client_mode: s.client.mode.clone(),
            device_family: s.client.device_family.clone(),
            model_identifier: s.client.model_identifier.clone(),
            remote_ip: s.client_ip.to_string(),
            caps: n.caps.clone(),
            commands: n.commands.clone(),
            permissions: n.permissions.clone(),
            deviceless: n.deviceless,
            connected_at_ms: s.connected_at_ms,
        })
    }
}

/// Every node connected to this instance.
pub fn local_nodes(gw: &Gateway) -> Vec<LiveNode> {
    gw.registry.nodes().iter().filter_map(|s| LiveNode::of_session(s)).collect()
}

fn sorted(items: &[String]) -> Vec<String> {
    let mut v = items.to_vec();
    v.sort();
    v.dedup();
    v
}

/// One node as OpenClaw's node catalog shows it: connected nodes from their
/// session, paired node devices from the store.
fn node_json(live: Option<&LiveNode>, paired: Option<&PairedDevice>, node_id: &str) -> Value {
    let mut node = Map::new();
    node.insert("nodeId".into(), node_id.into());
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            node.insert(k.into(), v.into());
        }
    };
    put(
        "displayName",
        paired
            .and_then(|p| p.label.clone().or_else(|| p.display_name.clone()))
            .or_else(|| live.and_then(|l| l.display_name.clone())),
    );
    put("platform", live.map(|l| l.platform.clone()).or_else(|| paired.and_then(|p| p.platform.clone())));
    put("version", live.map(|l| l.version.clone()));
    put("clientId", live.map(|l| l.client_id.clone()).or_else(|| paired.and_then(|p| p.client_id.clone())));
    put("clientMode", live.map(|l| l.client_mode.clone()).or_else(|| paired.and_then(|p| p.client_mode.clone())));
    put(
        "deviceFamily",
        live.and_then(|l| l.device_family.clone()).or_else(|| paired.and_then(|p| p.device_family.clone())),
    );
    put("modelIdentifier", live.and_then(|l| l.model_identifier.clone()));
    put("remoteIp", live.map(|l| l.remote_ip.clone()).or_else(|| paired.and_then(|p| p.remote_ip.clone())));
    node.insert("caps".into(), json!(live.map(|l| sorted(&l.caps)).unwrap_or_default()));
    node.insert("commands".into(), json!(live.map(|l| sorted(&l.commands)).unwrap_or_default()));
    if let Some(l) = live {
        node.insert("permissions".into(), json!(l.permissions));
        node.insert("deviceless".into(), l.deviceless.into());
        node.insert("connectedAtMs".into(), l.connected_at_ms.into());
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

/// Nodes connected here first, then those connected to other instances,
/// then paired node devices that are offline.
pub async fn known_nodes(gw: &Arc<Gateway>) -> Result<Vec<Value>, RequestError> {
    // The sessions first: a node is registered only after its pairing was
    // written, so every live node seen here is in the store read next (the
    // other order could show a node that paired in between as unpaired).
    let mut live = local_nodes(gw);
    if let Some(cluster) = &gw.cluster {
        // A node id held here wins over the same id announced elsewhere.
        for remote in cluster.remote_nodes() {
            if !live.iter().any(|l| l.node_id == remote.node_id) {
                live.push(remote);
            }
        }
    }
    let paired = store_op(gw, |s| s.list_devices()).await.map_err(|e| RequestError::store(&e))?;
    let paired: Vec<PairedDevice> = paired.into_iter().filter(|d| d.has_role(Role::Node)).collect();
    let mut nodes = Vec::new();
    for l in &live {
        let p = paired.iter().find(|d| d.device_id == l.node_id);
        nodes.push(node_json(Some(l), p, &l.node_id));
    }
    for p in &paired {
        if !live.iter().any(|l| l.node_id == p.device_id) {
            nodes.push(node_json(None, Some(p), &p.device_id));
        }
    }
    Ok(nodes)
}

/// One node of [`known_nodes`], as `node.describe` answers it.
pub async fn describe_node(gw: &Arc<Gateway>, node_id: &str) -> Result<Value, RequestError> {
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
