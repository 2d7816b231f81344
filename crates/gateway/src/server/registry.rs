//! Live sessions: who is connected, with what, and how to reach them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::admission::decision::Role;
use crate::admission::AdmittedOn;

use super::events::may_receive;
use super::outbox::{Outbound, Outbox};
use super::presence::{shows_in_presence, Presence};
pub use super::session_info::{NodeInfo, ServiceSession, SessionInfo};
use crate::config::SessionLimits;

/// At most one presence broadcast per this interval: a burst of connects
/// and disconnects becomes one event with the list as it stands (the
/// cluster publishes this instance's entries at the same pace).
pub(crate) const PRESENCE_BROADCAST_INTERVAL: Duration = Duration::from_millis(250);

struct Entry {
    info: Arc<SessionInfo>,
    outbox: Outbox,
    /// The connect it was admitted on, for re-checks after a store change.
    admitted_on: Arc<AdmittedOn>,
    /// Its keys in the per-address and per-principal session counts.
    address: IpAddr,
    principal: String,
}

/// The live sessions and the counts that cap them, under one lock.
#[derive(Default)]
struct Sessions {
    map: HashMap<u64, Entry>,
    per_address: HashMap<IpAddr, usize>,
    per_principal: HashMap<String, usize>,
}

/// When the last presence broadcast went out, and whether one is due.
#[derive(Default)]
struct PresenceFlush {
    last_sent: Option<Instant>,
    scheduled: bool,
}

#[derive(Default)]
pub struct Registry {
    /// Node ids in use by live (or handshaking) node sessions.
    node_ids: Mutex<std::collections::HashSet<String>>,
    sessions: Mutex<Sessions>,
    presence: Mutex<Presence>,
    flush: Mutex<PresenceFlush>,
    next_key: AtomicU64,
    /// Sockets upgraded but not yet admitted.
    pending: AtomicUsize,
    presence_version: AtomicU64,
    /// Signalled when a node session comes or goes (the cluster announces
    /// this instance's nodes then: docs/cluster.md).
    pub node_changes: tokio::sync::Notify,
    /// Woken when this instance's own entries change (the cluster's
    /// presence loop publishes them).
    local_presence_changes: tokio::sync::Notify,
}

/// A new session would pass a configured cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCapReached {
    /// `address` or `principal`.
    pub per: &'static str,
    pub limit: usize,
}

/// The key an address is counted under: IPv6 by its /64 (one host
/// usually holds the whole prefix), IPv4 as itself.
fn address_key(ip: IpAddr) -> IpAddr {
    match crate::net::canonical(ip) {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::from(o)
        }
        v4 => v4,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section leaves its data whole (single inserts,
    // removes and counter updates), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
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
        Registry::remove(&self.registry, self.key);
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
            .map
            .values()
            .find(|e| e.info.node.as_ref().is_some_and(|n| n.node_id == node_id))
            .map(|e| (e.info.clone(), e.outbox.clone()))
    }

    /// Every connected node session.
    pub fn nodes(&self) -> Vec<Arc<SessionInfo>> {
        self.lock().map.values().filter(|e| e.info.node.is_some()).map(|e| e.info.clone()).collect()
    }

    pub fn pending_guard(self: &Arc<Self>) -> PendingGuard {
        self.pending.fetch_add(1, Ordering::Relaxed);
        PendingGuard(self.clone())
    }

    /// Register an admitted session, unless its address or its principal
    /// already has as many sessions as `limits` allow.
    pub fn insert(
        self: &Arc<Self>,
        info: Arc<SessionInfo>,
        outbox: Outbox,
        admitted_on: AdmittedOn,
        principal: String,
        limits: &SessionLimits,
    ) -> Result<SessionGuard, SessionCapReached> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let address = address_key(info.client_ip);
        {
            let mut sessions = self.lock();
            let at_address = sessions.per_address.get(&address).copied().unwrap_or(0);
            if at_address >= limits.max_per_address {
                return Err(SessionCapReached { per: "address", limit: limits.max_per_address });
            }
            let of_principal = sessions.per_principal.get(&principal).copied().unwrap_or(0);
            if of_principal >= limits.max_per_principal {
                return Err(SessionCapReached { per: "principal", limit: limits.max_per_principal });
            }
            *sessions.per_address.entry(address).or_default() += 1;
            *sessions.per_principal.entry(principal.clone()).or_default() += 1;
            let entry = Entry { info: info.clone(), outbox, admitted_on: Arc::new(admitted_on), address, principal };
            sessions.map.insert(key, entry);
        }
        if info.node.is_some() {
            self.node_changes.notify_one();
        }
        if shows_in_presence(&info) {
            lock(&self.presence).add(key, &info, super::now_ms());
            self.local_presence_changed();
        }
        Ok(SessionGuard { registry: self.clone(), key })
    }

    fn remove(self: &Arc<Self>, key: u64) {
        let removed = {
            let mut sessions = self.lock();
            let removed = sessions.map.remove(&key);
            if let Some(e) = &removed {
                decrement(&mut sessions.per_address, &e.address);
                decrement(&mut sessions.per_principal, &e.principal);
            }
            removed
        };
        if removed.as_ref().is_some_and(|e| e.info.node.is_some()) {
            self.node_changes.notify_one();
        }
        if let Some(e) = removed.filter(|e| shows_in_presence(&e.info)) {
            lock(&self.presence).remove(key, &e.info, super::now_ms());
            self.local_presence_changed();
        }
    }

    fn local_presence_changed(self: &Arc<Self>) {
        self.local_presence_changes.notify_one();
        self.presence_changed();
    }

    /// Put another instance's entries in the list in place of those it sent
    /// before (an empty list removes it); the operators hear of a change
    /// through the usual coalesced presence event.
    pub fn set_remote_presence(self: &Arc<Self>, instance: &str, entries: Vec<Value>) {
        if lock(&self.presence).set_remote(instance, entries) {
            self.presence_changed();
        }
    }

    /// Take another instance's entries out of the list (it left or went silent).
    pub fn remove_remote_presence(self: &Arc<Self>, instance: &str) {
        if lock(&self.presence).remove_remote(instance) {
            self.presence_changed();
        }
    }

    /// Bump the presence version and tell the operators who may see it: at
    /// once if the last broadcast is old enough, else once when it is (with
    /// the list as it stands then).
    fn presence_changed(self: &Arc<Self>) {
        self.presence_version.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let wait = {
            let mut flush = lock(&self.flush);
            if flush.scheduled {
                return;
            }
            match flush.last_sent.map(|t| t + PRESENCE_BROADCAST_INTERVAL).filter(|due| *due > now) {
                None => {
                    flush.last_sent = Some(now);
                    None
                }
                Some(due) => {
                    flush.scheduled = true;
                    Some(due - now)
                }
            }
        };
        let Some(wait) = wait else {
            self.broadcast_presence();
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let registry = self.clone();
                handle.spawn(async move {
                    tokio::time::sleep(wait).await;
                    {
                        let mut flush = lock(&registry.flush);
                        flush.scheduled = false;
                        flush.last_sent = Some(Instant::now());
                    }
                    registry.broadcast_presence();
                });
            }
            Err(_) => {
                lock(&self.flush).scheduled = false;
                self.broadcast_presence();
            }
        }
    }

    fn broadcast_presence(&self) {
        let entries = self.presence();
        let version = self.presence_version();
        self.broadcast("presence", &serde_json::json!({ "presence": *entries, "stateVersion": version }));
    }

    /// One entry per device (roles and scopes merged), one per device-less
    /// session, then the other instances' entries in a cluster; see
    /// [`super::presence`] for who is listed.
    pub fn presence(&self) -> Arc<Vec<Value>> {
        lock(&self.presence).snapshot()
    }

    /// This instance's own entries only (what it publishes to the others).
    pub fn local_presence(&self) -> Arc<Vec<Value>> {
        lock(&self.presence).local_snapshot()
    }

    /// Notified (one stored wake-up) whenever this instance's own entries change.
    pub fn local_presence_changes(&self) -> &tokio::sync::Notify {
        &self.local_presence_changes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        lock(&self.sessions)
    }

    pub fn presence_version(&self) -> u64 {
        self.presence_version.load(Ordering::Relaxed)
    }

    pub fn counts(&self) -> Counts {
        let sessions = self.lock();
        let map = &sessions.map;
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
        let sessions = self.lock();
        let mut sent = 0;
        for entry in sessions.map.values() {
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
        let sessions = self.lock();
        let mut n = 0;
        for entry in sessions.map.values().filter(|e| pred(&e.info)) {
            entry.outbox.kill(code, reason);
            n += 1;
        }
        n
    }

    /// A snapshot of every live session.
    pub fn sessions(&self) -> Vec<Arc<SessionInfo>> {
        self.lock().map.values().map(|e| e.info.clone()).collect()
    }

    /// Every live session with the connect it was admitted on.
    pub fn sessions_with_admission(&self) -> Vec<(Arc<SessionInfo>, Arc<AdmittedOn>)> {
        self.lock().map.values().map(|e| (e.info.clone(), e.admitted_on.clone())).collect()
    }

    /// Close every session (shutdown).
    pub fn close_all(&self, code: u16, reason: &str) {
        for entry in self.lock().map.values() {
            let _ = entry.outbox.push(Outbound::Close { code, reason: reason.to_owned() });
        }
    }
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}
