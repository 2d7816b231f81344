//! Store changes across instances: when this instance's gateway commits a
//! change to the shared store (a revocation, removal, rotation, approval…),
//! it says so on [`Subject::StoreChanged`] with the new generation; an
//! instance hearing another's message re-checks its sessions at once
//! ([`Gateway::store_nudge`], server/watch.rs) instead of at its next poll.
//!
//! This is one of three paths, any one of which suffices (docs/cluster.md):
//! this nudge over NATS, PostgreSQL's change notifications (store/pg/listen.rs,
//! which also carry the offline CLI's changes), and the poll. NATS being
//! down costs nothing but this path.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::subjects::Subject;
use super::Cluster;
use crate::server::Gateway;

/// The message: only the generation the change made (nothing secret; what
/// changed is read from the store by each instance).
#[derive(Debug, Serialize, Deserialize)]
pub struct StoreChanged {
    pub generation: u64,
}

/// Announce this instance's changes and listen for the others'.
pub fn run(gw: Arc<Gateway>, cluster: Arc<Cluster>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        tokio::join!(announce(gw.clone(), cluster.clone()), hear(gw, cluster));
    })
}

/// Publish each generation this instance's own writes commit. A burst of
/// writes is one message for the latest (the watch channel keeps the last).
async fn announce(gw: Arc<Gateway>, cluster: Arc<Cluster>) {
    let Some(mut commits) = gw.store.own_commits() else { return };
    let subject = cluster.shared(Subject::StoreChanged);
    while commits.changed().await.is_ok() {
        let generation = *commits.borrow_and_update();
        match cluster.publish(subject.clone(), &StoreChanged { generation }).await {
            Ok(()) => gw.metrics.cluster_message(Subject::StoreChanged.token(), "out"),
            // The other instances still hear of it from PostgreSQL, or poll.
            Err(e) => tracing::debug!(code = e.code(), generation, "store change not announced on the bus"),
        }
    }
}

/// Nudge the store watch for every change another instance announces.
async fn hear(gw: Arc<Gateway>, cluster: Arc<Cluster>) {
    let Some(client) = cluster.client() else { return };
    let subject = cluster.shared(Subject::StoreChanged);
    let mut heard = match client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(subject, error = %e, "cannot subscribe to store changes; relying on PostgreSQL and polling");
            return;
        }
    };
    while let Some(message) = heard.next().await {
        match cluster.decode::<StoreChanged>(&message.payload) {
            Ok(None) => {}
            Ok(Some(_)) => {
                gw.metrics.cluster_message(Subject::StoreChanged.token(), "in");
                gw.store_nudge.notify_one();
            }
            Err(e) => tracing::warn!(subject, code = e.code(), error = %e, "dropped a cluster message"),
        }
    }
}
