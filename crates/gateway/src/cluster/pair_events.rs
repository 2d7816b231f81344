//! Pairing events across instances: a pairing requested on one instance,
//! or resolved on another, reaches the pairing operators connected to any
//! of them. [`announce`] is how the gateway emits these events everywhere:
//! it broadcasts locally, as a single instance does, and publishes on
//! [`Subject::PairEvents`]; an instance hearing one broadcasts it to its own
//! sessions exactly as a local event (same payload, same scope gating,
//! server/events.rs) and never publishes it again, so nothing loops.
//!
//! NATS being down loses only the other instances' copy: the request
//! itself is in the shared store (`device.pair.list` shows it anywhere).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::subjects::Subject;
use super::Cluster;
use crate::server::Gateway;

/// The events that cross instances. Anything else heard on the subject is
/// dropped: the bus never makes an instance emit an event of another kind.
pub const PAIR_EVENTS: &[&str] = &["device.pair.requested", "device.pair.resolved", "node.pair.resolved"];

/// The message: the event as its local broadcast carries it (public
/// identifiers only: request and device ids, the public key, the role and
/// scopes asked, names and the client's address — never a token).
#[derive(Debug, Serialize, Deserialize)]
pub struct PairEvent {
    pub event: String,
    pub payload: Value,
}

/// Hand a pairing event, already broadcast here, to the other instances.
pub async fn publish(cluster: &Cluster, gw: &Gateway, event: &'static str, payload: Value) {
    debug_assert!(PAIR_EVENTS.contains(&event), "{event} is not a pairing event");
    let subject = cluster.shared(Subject::PairEvents);
    match cluster.publish(subject, &PairEvent { event: event.to_owned(), payload }).await {
        Ok(()) => gw.metrics.cluster_message(Subject::PairEvents.token(), "out"),
        Err(e) => tracing::debug!(code = e.code(), event, "pairing event not sent to the other instances"),
    }
}

/// Broadcast locally what the other instances announce.
pub fn run(gw: Arc<Gateway>, cluster: Arc<Cluster>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let Some(client) = cluster.client() else { return };
        let subject = cluster.shared(Subject::PairEvents);
        let mut heard = match client.subscribe(subject.clone()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(subject, error = %e, "cannot subscribe to pairing events of the other instances");
                return;
            }
        };
        while let Some(message) = heard.next().await {
            match cluster.decode::<PairEvent>(&message.payload).map(|m| m.map(|e| e.body)) {
                Ok(None) => {}
                Ok(Some(PairEvent { event, payload })) => match accepted(&event, &payload) {
                    Some(event) => {
                        gw.metrics.cluster_message(Subject::PairEvents.token(), "in");
                        gw.registry.broadcast(event, &payload);
                    }
                    None => tracing::warn!(subject, event, "dropped a cluster message that is not a pairing event"),
                },
                Err(e) => tracing::warn!(subject, code = e.code(), error = %e, "dropped a cluster message"),
            }
        }
    })
}

/// The event's name if it is a pairing event with an object payload.
fn accepted(event: &str, payload: &Value) -> Option<&'static str> {
    let known = PAIR_EVENTS.iter().copied().find(|e| *e == event)?;
    payload.is_object().then_some(known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_pairing_events_with_an_object_payload_are_taken() {
        assert_eq!(accepted("device.pair.requested", &json!({ "requestId": "r" })), Some("device.pair.requested"));
        assert_eq!(accepted("device.pair.resolved", &json!({})), Some("device.pair.resolved"));
        assert_eq!(accepted("shutdown", &json!({})), None);
        assert_eq!(accepted("device.pair.requested", &json!("text")), None);
        assert_eq!(accepted("", &json!({})), None);
    }
}
