//! Which instance holds which node: each instance announces the nodes
//! connected to it on `nodes.<instance>` when one comes or goes and as a
//! heartbeat; every instance keeps the others' last announcements. A
//! `node.invoke` for a node connected elsewhere is sent to the instance
//! holding it (cluster/invoke.rs), and `node.list` shows those nodes as
//! connected. An instance that stops announcing is forgotten after a few
//! heartbeats (docs/cluster.md, "node.invoke across instances").

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::subjects::Subject;
use super::Cluster;
use crate::server::node_catalog::{local_nodes, LiveNode};
use crate::server::Gateway;

/// How often each instance announces its nodes even when nothing changed.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// An instance not heard from for this long holds no node any more.
pub const FORGET_AFTER: Duration = Duration::from_secs(7);

/// One instance's announcement: every node connected to it now.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodesAnnounced {
    nodes: Vec<LiveNode>,
}

struct Heard {
    nodes: Vec<LiveNode>,
    at: Instant,
}

/// The other instances' nodes, as last announced.
#[derive(Default)]
pub struct NodeDirectory {
    instances: Mutex<HashMap<String, Heard>>,
}

impl NodeDirectory {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Heard>> {
        // Every critical section replaces or reads whole entries.
        self.instances.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record `instance`'s announcement (it replaces the previous one).
    fn heard(&self, instance: &str, nodes: Vec<LiveNode>, at: Instant) {
        self.lock().insert(instance.to_owned(), Heard { nodes, at });
    }

    /// Entries heard recently enough, the others dropped.
    fn fresh(&self, now: Instant) -> std::sync::MutexGuard<'_, HashMap<String, Heard>> {
        let mut map = self.lock();
        map.retain(|_, h| now.duration_since(h.at) < FORGET_AFTER);
        map
    }

    /// The instance holding `node_id`; if two announced it (a node that
    /// moved), the one heard from last.
    pub fn holder(&self, node_id: &str) -> Option<String> {
        self.fresh(Instant::now())
            .iter()
            .filter(|(_, h)| h.nodes.iter().any(|n| n.node_id == node_id))
            .max_by_key(|(_, h)| h.at)
            .map(|(instance, _)| instance.clone())
    }

    /// Every node connected to another instance, each id once.
    pub fn remote_nodes(&self) -> Vec<LiveNode> {
        let map = self.fresh(Instant::now());
        let mut by_recency: Vec<&Heard> = map.values().collect();
        by_recency.sort_by_key(|h| std::cmp::Reverse(h.at));
        let mut nodes: Vec<LiveNode> = Vec::new();
        for node in by_recency.into_iter().flat_map(|h| h.nodes.iter()) {
            if !nodes.iter().any(|n| n.node_id == node.node_id) {
                nodes.push(node.clone());
            }
        }
        nodes
    }
}

/// The loop: announce this instance's nodes (on change, and every
/// [`HEARTBEAT`]) and keep the others' announcements.
pub fn run(gw: Arc<Gateway>, c: Arc<Cluster>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(serve(gw, c))
}

async fn serve(gw: Arc<Gateway>, c: Arc<Cluster>) {
    let Some(client) = c.client().cloned() else { return };
    let every = c.subjects().every_instance(Subject::Nodes);
    let mut announcements = match client.subscribe(every.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(subject = %every, error = %e, "cannot listen to node announcements");
            return;
        }
    };
    let own = c.subjects().of_instance(Subject::Nodes, c.instance());
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = announcements.next() => {
                let Some(message) = message else { return };
                match c.decode::<NodesAnnounced>(&message.payload) {
                    Ok(Some(envelope)) => c.node_directory().heard(&envelope.from, envelope.body.nodes, Instant::now()),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(
                        subject = %message.subject, code = e.code(), error = %e, "node announcement dropped"
                    ),
                }
            }
            _ = heartbeat.tick() => announce(&gw, &c, &own).await,
            _ = gw.registry.node_changes.notified() => announce(&gw, &c, &own).await,
        }
    }
}

async fn announce(gw: &Gateway, c: &Cluster, subject: &str) {
    let announced = NodesAnnounced { nodes: local_nodes(gw) };
    // NATS down: nothing to do, the next heartbeat after it is back repairs.
    if let Err(e) = c.publish(subject.to_owned(), &announced).await {
        tracing::debug!(code = e.code(), error = %e, "node announcement not sent");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> LiveNode {
        LiveNode {
            node_id: id.into(),
            display_name: None,
            platform: "linux".into(),
            version: "1".into(),
            client_id: "node-host".into(),
            client_mode: "node".into(),
            device_family: None,
            model_identifier: None,
            remote_ip: "127.0.0.1".into(),
            caps: vec![],
            commands: vec!["system.which".into()],
            permissions: Default::default(),
            deviceless: false,
            connected_at_ms: 1,
        }
    }

    #[test]
    fn the_latest_announcement_says_who_holds_a_node() {
        let d = NodeDirectory::default();
        let t0 = Instant::now();
        d.heard("b", vec![node("n1"), node("n2")], t0);
        d.heard("c", vec![node("n3")], t0);
        assert_eq!(d.holder("n1").as_deref(), Some("b"));
        assert_eq!(d.holder("n3").as_deref(), Some("c"));
        assert_eq!(d.holder("nope"), None);
        // n1 moved to c: c's newer announcement wins, and b's next one drops it.
        d.heard("c", vec![node("n3"), node("n1")], t0 + Duration::from_millis(10));
        assert_eq!(d.holder("n1").as_deref(), Some("c"));
        d.heard("b", vec![node("n2")], t0 + Duration::from_millis(20));
        assert_eq!(d.holder("n1").as_deref(), Some("c"));
        let mut ids: Vec<String> = d.remote_nodes().into_iter().map(|n| n.node_id).collect();
        ids.sort();
        assert_eq!(ids, ["n1", "n2", "n3"]);
    }

    #[test]
    fn a_silent_instance_is_forgotten() {
        let d = NodeDirectory::default();
        let long_ago =
            Instant::now().checked_sub(FORGET_AFTER + Duration::from_secs(1)).expect("a monotonic clock past 8 s");
        d.heard("b", vec![node("n1")], long_ago);
        assert_eq!(d.holder("n1"), None);
        assert!(d.remote_nodes().is_empty());
    }
}
