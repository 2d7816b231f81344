//! Live sessions: who is connected, with what, and how to reach them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use clawgate_protocol::ClientInfo;
use serde_json::Value;

use crate::admission::decision::Role;
use crate::admission::RuleId;

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
}

struct Entry {
    info: Arc<SessionInfo>,
    outbox: Outbox,
}

#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<u64, Entry>>,
    next_key: AtomicU64,
    /// Sockets upgraded but not yet admitted.
    pending: AtomicUsize,
    presence_version: AtomicU64,
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

impl Registry {
    pub fn pending_guard(self: &Arc<Self>) -> PendingGuard {
        self.pending.fetch_add(1, Ordering::Relaxed);
        PendingGuard(self.clone())
    }

    pub fn insert(self: &Arc<Self>, info: Arc<SessionInfo>, outbox: Outbox) -> SessionGuard {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(key, Entry { info, outbox });
        self.presence_version.fetch_add(1, Ordering::Relaxed);
        SessionGuard { registry: self.clone(), key }
    }

    fn remove(&self, key: u64) {
        if self.lock().remove(&key).is_some() {
            self.presence_version.fetch_add(1, Ordering::Relaxed);
        }
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

    /// Close every session (shutdown).
    pub fn close_all(&self, code: u16, reason: &str) {
        for entry in self.lock().values() {
            let _ = entry.outbox.push(Outbound::Close { code, reason: reason.to_owned() });
        }
    }
}
