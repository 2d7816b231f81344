//! Presence across instances (docs/cluster.md, "Presence across instances").
//!
//! Each instance publishes its own presence entries — exactly those it lists
//! locally — on `presence.<instance>` when they change (at most four times a
//! second, like the local presence event) and as a heartbeat. Every instance
//! keeps the entries it hears per instance and serves the merged list
//! (`system-presence`, hello-ok's snapshot, `presence` events). An instance
//! not heard for three of its heartbeats drops out; one that restarted (a new
//! boot id) replaces its old list; a clean shutdown publishes an empty list.
//!
//! What a peer sends is bounded (message size, entries, instances) and
//! re-shaped into the entry fields clawgate itself renders, so a faulty peer
//! can neither grow memory without limit nor put fields in the list that a
//! client's schema refuses.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::subjects::Subject;
use super::{Cluster, ClusterError};
use crate::server::registry::PRESENCE_BROADCAST_INTERVAL;
use crate::server::{Gateway, Registry};

/// An instance is dropped after this many of its heartbeats unheard.
const MISSED_HEARTBEATS: u32 = 3;
/// The largest presence message read or sent (NATS's default max payload).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// The most entries kept from one instance.
pub const MAX_ENTRIES_PER_INSTANCE: usize = 5_000;
/// The most other instances kept at once.
pub const MAX_INSTANCES: usize = 64;
/// A peer's announced heartbeat is taken within these bounds.
const HEARTBEAT_BOUNDS: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(30));

/// What an instance publishes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceMessage<E> {
    /// Its entries now (a list); empty when it has none or is leaving.
    pub entries: E,
    /// How often it publishes when nothing changes.
    pub heartbeat_ms: u64,
}

/// One entry as another instance sends it: the fields clawgate renders
/// (server/presence.rs), each of the type a client expects. Anything else is
/// dropped on reading.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RemoteEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<String>>,
    ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    online_since: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_id: Option<String>,
}

/// A presence message from another instance, read and bounded.
#[derive(Debug)]
pub struct Heard {
    pub instance: String,
    pub boot: String,
    pub entries: Vec<Value>,
    pub heartbeat: Duration,
}

/// Read a message from `subject`: `Ok(None)` for this instance's own, an
/// error (`CLUSTER_MESSAGE_INVALID`) for anything malformed or too big.
pub fn read(cluster: &Cluster, subject: &str, payload: &[u8]) -> Result<Option<Heard>, ClusterError> {
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(invalid(format!("{} bytes, more than {MAX_MESSAGE_BYTES}", payload.len())));
    }
    let Some(envelope) = cluster.decode::<PresenceMessage<Vec<RemoteEntry>>>(payload)? else { return Ok(None) };
    // The sender publishes on its own subject only: one instance cannot speak
    // for another.
    if subject != cluster.subjects().of_instance(Subject::Presence, &envelope.from) || envelope.from.len() > 32 {
        return Err(invalid(format!("sent by {:?} on another instance's subject", envelope.from)));
    }
    let message = envelope.body;
    if message.entries.len() > MAX_ENTRIES_PER_INSTANCE {
        return Err(invalid(format!("{} entries, more than {MAX_ENTRIES_PER_INSTANCE}", message.entries.len())));
    }
    let entries = message.entries.iter().filter_map(|e| serde_json::to_value(e).ok()).collect();
    let heartbeat = Duration::from_millis(message.heartbeat_ms).clamp(HEARTBEAT_BOUNDS.0, HEARTBEAT_BOUNDS.1);
    Ok(Some(Heard { instance: envelope.from, boot: envelope.boot, entries, heartbeat }))
}

fn invalid(what: String) -> ClusterError {
    ClusterError::Message(format!("presence message: {what}"))
}

/// The other instances heard from, and when.
#[derive(Default)]
pub struct Peers {
    peers: HashMap<String, Peer>,
}

struct Peer {
    boot: String,
    last_heard: Instant,
    heartbeat: Duration,
}

impl Peers {
    /// Take in what `heard` says (its entries replace what it sent before,
    /// from this boot or an earlier one). Returns whether it is new here (or
    /// restarted): it then needs this instance's entries soon.
    pub fn hear(&mut self, heard: Heard, now: Instant, registry: &Arc<Registry>) -> bool {
        let known = self.peers.len();
        let new = match self.peers.get_mut(&heard.instance) {
            Some(peer) => {
                let restarted = peer.boot != heard.boot;
                peer.boot = heard.boot;
                peer.last_heard = now;
                peer.heartbeat = heard.heartbeat;
                restarted
            }
            None if known >= MAX_INSTANCES => {
                let e = invalid(format!("from {:?}, past {MAX_INSTANCES} other instances", heard.instance));
                tracing::warn!(code = e.code(), error = %e, "presence of an instance not listed");
                return false;
            }
            None => {
                let peer = Peer { boot: heard.boot, last_heard: now, heartbeat: heard.heartbeat };
                self.peers.insert(heard.instance.clone(), peer);
                true
            }
        };
        registry.set_remote_presence(&heard.instance, heard.entries);
        new
    }

    /// Drop every instance not heard for [`MISSED_HEARTBEATS`] of its heartbeats.
    pub fn expire(&mut self, now: Instant, registry: &Arc<Registry>) {
        self.peers.retain(|instance, peer| {
            let silent = now.saturating_duration_since(peer.last_heard) > peer.heartbeat * MISSED_HEARTBEATS;
            if silent {
                tracing::info!(
                    instance,
                    "instance not heard for {MISSED_HEARTBEATS} heartbeats: its sessions leave presence"
                );
                registry.remove_remote_presence(instance);
            }
            !silent
        });
    }
}

/// The presence loop of the cluster (registered in `cluster::FEATURES`).
pub fn run(gateway: Arc<Gateway>, cluster: Arc<Cluster>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(presence_loop(gateway, cluster))
}

async fn presence_loop(gateway: Arc<Gateway>, cluster: Arc<Cluster>) {
    let Some(client) = cluster.client().cloned() else { return };
    let subject = cluster.subjects().every_instance(Subject::Presence);
    let mut incoming = match client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(subject, error = %e, code = ClusterError::Unavailable.code(), "cannot listen for presence");
            return;
        }
    };
    let registry = gateway.registry.clone();
    let heartbeat = gateway.options.presence_heartbeat.clamp(HEARTBEAT_BOUNDS.0, HEARTBEAT_BOUNDS.1);
    let mut beats = tokio::time::interval(heartbeat);
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut peers = Peers::default();
    let mut publisher = Publisher { last_change_sent: None, truncated: false };
    // A change waits until the last change published is
    // [`PRESENCE_BROADCAST_INTERVAL`] old. Heartbeats do not count: a change
    // right after one goes out at once (five messages a second at most).
    let mut due: Option<Instant> = None;
    loop {
        let wait_due = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = beats.tick() => {
                publisher.publish(&registry, &cluster, heartbeat).await;
                due = None;
                peers.expire(Instant::now(), &registry);
            }
            _ = registry.local_presence_changes().notified(), if due.is_none() => {
                due = Some(publisher.next_allowed());
            }
            _ = wait_due => {
                publisher.last_change_sent = Some(Instant::now());
                publisher.publish(&registry, &cluster, heartbeat).await;
                due = None;
            }
            message = incoming.next() => {
                let Some(message) = message else { return };
                match read(&cluster, message.subject.as_str(), &message.payload) {
                    Ok(Some(heard)) => {
                        if peers.hear(heard, Instant::now(), &registry) {
                            // A newcomer learns this instance's entries now,
                            // not at the next heartbeat.
                            due.get_or_insert_with(|| publisher.next_allowed());
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(
                        subject = message.subject.as_str(),
                        code = e.code(),
                        error = %e,
                        "dropped an invalid presence message"
                    ),
                }
            }
        }
    }
}

/// Publishes this instance's entries, bounded.
struct Publisher {
    last_change_sent: Option<Instant>,
    /// Whether the last list had to be cut to fit (logged once per change).
    truncated: bool,
}

impl Publisher {
    fn next_allowed(&self) -> Instant {
        let now = Instant::now();
        self.last_change_sent.map(|t| t + PRESENCE_BROADCAST_INTERVAL).filter(|t| *t > now).unwrap_or(now)
    }

    async fn publish(&mut self, registry: &Registry, cluster: &Cluster, heartbeat: Duration) {
        let local = registry.local_presence();
        let max_bytes = cluster.client().map_or(MAX_MESSAGE_BYTES, |c| c.max_payload().min(MAX_MESSAGE_BYTES));
        let entries = fitting(&local, max_bytes);
        let truncated = entries.len() < local.len();
        if truncated && !self.truncated {
            tracing::warn!(
                published = entries.len(),
                listed = local.len(),
                "this instance's presence list is too long for the cluster bus: the other instances see only part of it"
            );
        }
        self.truncated = truncated;
        let message = PresenceMessage { entries, heartbeat_ms: heartbeat.as_millis() as u64 };
        let subject = cluster.subjects().of_instance(Subject::Presence, cluster.instance());
        // NATS down: nothing to do; the others drop this instance's entries
        // when its heartbeats stop, and get them back at the next one.
        let _ = cluster.publish(subject, &message).await;
    }
}

/// The first entries of `local` whose message fits in `max_bytes` (with
/// room for the envelope) and in [`MAX_ENTRIES_PER_INSTANCE`].
fn fitting(local: &[Value], max_bytes: usize) -> &[Value] {
    const ENVELOPE_ROOM: usize = 1024;
    let budget = max_bytes.saturating_sub(ENVELOPE_ROOM);
    let mut used = 0;
    let mut n = 0;
    for entry in local.iter().take(MAX_ENTRIES_PER_INSTANCE) {
        used += entry.to_string().len() + 1;
        if used > budget {
            break;
        }
        n += 1;
    }
    &local[..n]
}

/// A clean shutdown: tell the others this instance's sessions are gone.
pub async fn leave(cluster: &Cluster) {
    let message = PresenceMessage::<&[Value]> { entries: &[], heartbeat_ms: 0 };
    let subject = cluster.subjects().of_instance(Subject::Presence, cluster.instance());
    if cluster.publish(subject, &message).await.is_ok() {
        if let Some(client) = cluster.client() {
            let _ = client.flush().await;
        }
    }
}

#[cfg(test)]
#[path = "presence_tests.rs"]
mod tests;
