//! Live sessions: who is connected, with what, and how to reach them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use clawgate_protocol::ClientInfo;
use serde_json::Value;

use crate::admission::decision::Role;
use crate::admission::{AdmittedOn, RuleId};

use super::events::may_receive;
use super::outbox::{Outbound, Outbox};

/// What the gateway knows about an admitted session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub conn_id: String,
    pub role: Role,
    pub scopes: Vec<String>,
    pub client: ClientInfo,
    pub client_ip: IpAddr,
    pub rule: RuleId,
    pub connected_at_ms: u64,
    /// The proven device behind this session, if any.
    pub device_id: Option<String>,
    /// Set when the session authenticated with a device token: that token's
    /// issue time, so a rotation or revocation can find the sessions using it.
    pub token_issued_at_ms: Option<u64>,
    /// For role node: the node's id and declared surface.
    pub node: Option<NodeInfo>,
    /// Set when the session authenticated with a service token: which
    /// principal, and the issue time of the secret it presented, so a
    /// revocation or rotation (by any process) closes it.
    pub service: Option<ServiceSession>,
}

/// The service principal behind a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSession {
    pub principal_id: String,
    pub name: String,
    pub issued_at_ms: u64,
}

/// What a node session declared on connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The device id for a proven device; `local:<clientId>:<instance>` for a
    /// device-less local node. Never a 64-hex id without a proven key.
    pub node_id: String,
    pub deviceless: bool,
    pub caps: Vec<String>,
    pub commands: Vec<String>,
    pub permissions: std::collections::BTreeMap<String, bool>,
}

struct Entry {
    info: Arc<SessionInfo>,
    outbox: Outbox,
    /// The connect it was admitted on, for re-checks after a store change.
    admitted_on: Arc<AdmittedOn>,
}

#[derive(Default)]
pub struct Registry {
    /// Node ids in use by live (or handshaking) node sessions.
    node_ids: Mutex<std::collections::HashSet<String>>,
    sessions: Mutex<HashMap<u64, Entry>>,
    next_key: AtomicU64,
    /// Sockets upgraded but not yet admitted.
    pending: AtomicUsize,
    presence_version: AtomicU64,
}

fn shows_in_presence(info: &SessionInfo) -> bool {
    !clawgate_protocol::client_info::is_ephemeral_mode(&info.client.mode)
}

fn merge_list(entry: &mut Value, key: &str, items: &[String]) {
    if let Some(list) = entry[key].as_array_mut() {
        for item in items {
            if !list.iter().any(|v| v == item) {
                list.push(item.clone().into());
            }
        }
    }
}

/// Counts for `status`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub sessions: usize,
    pub operators: usize,
    pub nodes: usize,
    pub handshaking: usize,
}

/// Removes the session when the connection ends, however it ends.
pub struct SessionGuard {
    registry: Arc<Registry>,
    key: u64,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.registry.remove(self.key);
    }
}

/// Counts a socket as handshaking until dropped.
pub struct PendingGuard(Arc<Registry>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Holds a node id for one connection; released on drop.
pub struct NodeIdGuard {
    registry: Arc<Registry>,
    node_id: String,
}

impl Drop for NodeIdGuard {
    fn drop(&mut self) {
        self.registry.node_ids.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.node_id);
    }
}

impl Registry {
    /// Claim a node id; `None` if a connected node already has it (the
    /// newcomer is refused, the incumbent is never evicted).
    pub fn reserve_node_id(self: &Arc<Self>, node_id: &str) -> Option<NodeIdGuard> {
        let mut ids = self.node_ids.lock().unwrap_or_else(|p| p.into_inner());
        if !ids.insert(node_id.to_owned()) {
            return None;
        }
        Some(NodeIdGuard { registry: self.clone(), node_id: node_id.to_owned() })
    }

    /// The live session of a node, and a way to reach it.
    pub fn node(&self, node_id: &str) -> Option<(Arc<SessionInfo>, Outbox)> {
        self.lock()
            .values()
            .find(|e| e.info.node.as_ref().is_some_and(|n| n.node_id == node_id))
            .map(|e| (e.info.clone(), e.outbox.clone()))
    }

    /// Every connected node session.
    pub fn nodes(&self) -> Vec<Arc<SessionInfo>> {
        self.lock().values().filter(|e| e.info.node.is_some()).map(|e| e.info.clone()).collect()
    }

    pub fn pending_guard(self: &Arc<Self>) -> PendingGuard {
        self.pending.fetch_add(1, Ordering::Relaxed);
        PendingGuard(self.clone())
    }

    pub fn insert(self: &Arc<Self>, info: Arc<SessionInfo>, outbox: Outbox, admitted_on: AdmittedOn) -> SessionGuard {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let visible = shows_in_presence(&info);
        self.lock().insert(key, Entry { info, outbox, admitted_on: Arc::new(admitted_on) });
        if visible {
            self.presence_changed();
        }
        SessionGuard { registry: self.clone(), key }
    }

    fn remove(&self, key: u64) {
        let removed = self.lock().remove(&key);
        if removed.is_some_and(|e| shows_in_presence(&e.info)) {
            self.presence_changed();
        }
    }

    /// Bump the presence version and tell the operators who may see it.
    fn presence_changed(&self) {
        let version = self.presence_version.fetch_add(1, Ordering::Relaxed) + 1;
        let entries = self.presence();
        self.broadcast("presence", &serde_json::json!({ "presence": entries, "stateVersion": version }));
    }

    /// One entry per device (roles and scopes merged), one per device-less
    /// connection; short-lived tools (modes cli, backend, probe) are not listed.
    pub fn presence(&self) -> Vec<Value> {
        let now = super::now_ms();
        let map = self.lock();
        let mut by_key: Vec<(String, Value)> = Vec::new();
        for e in map.values().filter(|e| shows_in_presence(&e.info)) {
            let i = &e.info;
            let key = i.device_id.clone().unwrap_or_else(|| i.conn_id.clone());
            if let Some((_, entry)) = by_key.iter_mut().find(|(k, _)| *k == key) {
                merge_list(entry, "roles", std::slice::from_ref(&i.role.as_str().to_owned()));
                merge_list(entry, "scopes", &i.scopes);
                continue;
            }
            let mut entry = serde_json::json!({
                "host": i.client.display_name.clone().unwrap_or_else(|| i.client.id.clone()),
                "ip": i.client_ip.to_string(),
                "version": i.client.version,
                "platform": i.client.platform,
                "mode": i.client.mode,
                "reason": "connect",
                "tags": [i.client.id],
                "ts": now,
                "onlineSince": i.connected_at_ms,
                "roles": [i.role.as_str()],
                "scopes": i.scopes,
            });
            if let Some(d) = &i.device_id {
                entry["deviceId"] = d.clone().into();
            }
            if let Some(f) = i.client.device_family.as_ref().filter(|f| !f.is_empty()) {
                entry["deviceFamily"] = f.clone().into();
            }
            if let Some(id) = i.client.instance_id.as_ref() {
                entry["instanceId"] = id.clone().into();
            }
            by_key.push((key, entry));
        }
        by_key.into_iter().map(|(_, v)| v).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (single inserts and removes), so a poisoned lock is still usable.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn presence_version(&self) -> u64 {
        self.presence_version.load(Ordering::Relaxed)
    }

    pub fn counts(&self) -> Counts {
        let map = self.lock();
        let nodes = map.values().filter(|e| e.info.role == Role::Node).count();
        Counts {
            sessions: map.len(),
            operators: map.len() - nodes,
            nodes,
            handshaking: self.pending.load(Ordering::Relaxed),
        }
    }

    /// Send an event to every session allowed to see it. Returns how many got it.
    pub fn broadcast(&self, event: &str, payload: &Value) -> usize {
        let name: Arc<str> = Arc::from(event);
        let payload: Arc<str> = Arc::from(payload.to_string());
        let map = self.lock();
        let mut sent = 0;
        for entry in map.values() {
            if may_receive(event, entry.info.role, &entry.info.scopes) {
                let msg = Outbound::Event { name: name.clone(), payload: payload.clone() };
                if entry.outbox.push(msg).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    }

    /// Kill the sessions matching `pred` (e.g. a revoked device); returns how many.
    pub fn kill_where(&self, pred: impl Fn(&SessionInfo) -> bool, code: u16, reason: &str) -> usize {
        let map = self.lock();
        let mut n = 0;
        for entry in map.values().filter(|e| pred(&e.info)) {
            entry.outbox.kill(code, reason);
            n += 1;
        }
        n
    }

    /// A snapshot of every live session.
    pub fn sessions(&self) -> Vec<Arc<SessionInfo>> {
        self.lock().values().map(|e| e.info.clone()).collect()
    }

    /// Every live session with the connect it was admitted on.
    pub fn sessions_with_admission(&self) -> Vec<(Arc<SessionInfo>, Arc<AdmittedOn>)> {
        self.lock().values().map(|e| (e.info.clone(), e.admitted_on.clone())).collect()
    }

    /// Close every session (shutdown).
    pub fn close_all(&self, code: u16, reason: &str) {
        for entry in self.lock().values() {
            let _ = entry.outbox.push(Outbound::Close { code, reason: reason.to_owned() });
        }
    }
}
