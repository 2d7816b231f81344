//! Presence: one entry per device (roles and scopes merged over its
//! sessions), one per device-less session, kept up to date as sessions come
//! and go, in O(log K) per change, so a connect costs the same with 10 or
//! 2,000 sessions open.
//!
//! Short-lived tools (modes cli, backend, probe) and operators admitted with
//! no scopes are not listed: the first are noise, the second could flood the
//! list (and every reader's socket) at no cost.
//!
//! In a cluster the list also holds the entries the other instances publish
//! (cluster/presence.rs), kept per instance as they sent them: the local
//! entries first, then each instance's in the order of its name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::admission::decision::Role;

use super::session_info::SessionInfo;

/// Whether a session is listed.
pub fn shows_in_presence(info: &SessionInfo) -> bool {
    let short_lived = clawgate_protocol::client_info::is_ephemeral_mode(&info.client.mode);
    let scopeless = info.role == Role::Operator && info.scopes.is_empty();
    !(short_lived || scopeless)
}

/// The entry a session belongs to: its device, else itself.
fn group_key(info: &SessionInfo) -> &str {
    info.device_id.as_deref().unwrap_or(&info.conn_id)
}

/// The sessions behind one entry.
struct Group {
    /// By registry key: the oldest member describes the entry.
    members: BTreeMap<u64, Arc<SessionInfo>>,
    roles: BTreeMap<&'static str, usize>,
    scopes: BTreeMap<String, usize>,
    /// When the entry last changed (the entry's `ts`).
    changed_at_ms: u64,
}

impl Group {
    fn render(&self) -> Option<Value> {
        let (_, i) = self.members.iter().next()?;
        let mut entry = json!({
            "host": i.client.display_name.clone().unwrap_or_else(|| i.client.id.clone()),
            "ip": i.client_ip.to_string(),
            "version": i.client.version,
            "platform": i.client.platform,
            "mode": i.client.mode,
            "reason": "connect",
            "tags": [i.client.id],
            "ts": self.changed_at_ms,
            "onlineSince": i.connected_at_ms,
            "roles": self.roles.keys().collect::<Vec<_>>(),
            "scopes": self.scopes.keys().collect::<Vec<_>>(),
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
        Some(entry)
    }
}

/// The listed sessions, grouped, with the rendered list cached until the
/// next change, and the other instances' entries.
#[derive(Default)]
pub struct Presence {
    groups: HashMap<String, Group>,
    /// The rendered entries, per group key; the local list is their values.
    rendered: BTreeMap<String, Value>,
    /// The local list, rendered once per change.
    local: Option<Arc<Vec<Value>>>,
    /// Each other instance's entries, by instance name. Kept apart from the
    /// local groups: nothing another instance sends can merge into, replace
    /// or remove a local entry.
    remote: BTreeMap<String, Arc<Vec<Value>>>,
    /// Local then remote entries, built once per change of either.
    merged: Option<Arc<Vec<Value>>>,
}

impl Presence {
    /// Add a listed session (registry key `key`).
    pub fn add(&mut self, key: u64, info: &Arc<SessionInfo>, now_ms: u64) {
        let gk = group_key(info).to_owned();
        let group = self.groups.entry(gk.clone()).or_insert_with(|| Group {
            members: BTreeMap::new(),
            roles: BTreeMap::new(),
            scopes: BTreeMap::new(),
            changed_at_ms: now_ms,
        });
        group.members.insert(key, info.clone());
        *group.roles.entry(info.role.as_str()).or_default() += 1;
        for s in &info.scopes {
            *group.scopes.entry(s.clone()).or_default() += 1;
        }
        group.changed_at_ms = now_ms;
        self.refresh(&gk);
    }

    /// Remove a listed session.
    pub fn remove(&mut self, key: u64, info: &SessionInfo, now_ms: u64) {
        let gk = group_key(info).to_owned();
        let Some(group) = self.groups.get_mut(&gk) else { return };
        if group.members.remove(&key).is_none() {
            return;
        }
        decrement(&mut group.roles, info.role.as_str());
        for s in &info.scopes {
            decrement(&mut group.scopes, s.as_str());
        }
        group.changed_at_ms = now_ms;
        if group.members.is_empty() {
            self.groups.remove(&gk);
        }
        self.refresh(&gk);
    }

    fn refresh(&mut self, gk: &str) {
        match self.groups.get(gk).and_then(Group::render) {
            Some(v) => {
                self.rendered.insert(gk.to_owned(), v);
            }
            None => {
                self.rendered.remove(gk);
            }
        }
        self.local = None;
        self.merged = None;
    }

    /// This instance's entries: rendered once per change, shared until the
    /// next one.
    pub fn local_snapshot(&mut self) -> Arc<Vec<Value>> {
        if let Some(s) = &self.local {
            return s.clone();
        }
        let s = Arc::new(self.rendered.values().cloned().collect::<Vec<_>>());
        self.local = Some(s.clone());
        s
    }

    /// The list served: the local entries, then every other instance's.
    /// Without other instances it is the local list itself.
    pub fn snapshot(&mut self) -> Arc<Vec<Value>> {
        let local = self.local_snapshot();
        if self.remote.is_empty() {
            return local;
        }
        if let Some(s) = &self.merged {
            return s.clone();
        }
        let mut all = Vec::with_capacity(local.len() + self.remote.values().map(|r| r.len()).sum::<usize>());
        all.extend(local.iter().cloned());
        for entries in self.remote.values() {
            all.extend(entries.iter().cloned());
        }
        let s = Arc::new(all);
        self.merged = Some(s.clone());
        s
    }

    /// Put `instance`'s entries in place of those it sent before (none: it
    /// drops out). Returns whether the list changed.
    pub fn set_remote(&mut self, instance: &str, entries: Vec<Value>) -> bool {
        if entries.is_empty() {
            return self.remove_remote(instance);
        }
        if self.remote.get(instance).is_some_and(|old| **old == entries) {
            return false;
        }
        self.remote.insert(instance.to_owned(), Arc::new(entries));
        self.merged = None;
        true
    }

    /// Drop `instance`'s entries. Returns whether the list changed.
    pub fn remove_remote(&mut self, instance: &str) -> bool {
        let removed = self.remote.remove(instance).is_some();
        if removed {
            self.merged = None;
        }
        removed
    }

    /// The local entries (one per device or device-less session).
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

fn decrement<K: Ord + std::borrow::Borrow<Q>, Q: Ord + ?Sized>(counts: &mut BTreeMap<K, usize>, key: &Q) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}
