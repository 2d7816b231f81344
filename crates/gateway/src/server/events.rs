//! Which sessions may receive which broadcast events (as OpenClaw gates them).
//! Unknown events are dropped: fail closed.

use clawgate_protocol::scopes::{self, satisfied_by};

use crate::admission::decision::Role;

/// Events the gateway emits.
pub const EVENTS: &[&str] = &["tick", "health", "shutdown", "presence"];

pub fn may_receive(event: &str, role: Role, held: &[String]) -> bool {
    match event {
        "tick" | "health" | "heartbeat" | "shutdown" | "gateway.suspension" | "update.available" => true,
        "presence" | "agent" | "chat" | "node.presence" | "sessions.changed" | "config.changed" => {
            role == Role::Operator && satisfied_by(held, scopes::READ)
        }
        e if e.starts_with("device.pair.") || e.starts_with("node.pair.") => {
            role == Role::Operator && satisfied_by(held, scopes::PAIRING)
        }
        _ => false,
    }
}

/// Broadcast a pairing event (`device.pair.*`, `node.pair.resolved`) to
/// this instance's sessions, and hand it to the other instances when there
/// is a cluster (never waiting for a dead bus).
pub async fn announce_pairing(gw: &super::Gateway, event: &'static str, payload: serde_json::Value) {
    gw.registry.broadcast(event, &payload);
    if let Some(cluster) = &gw.cluster {
        cluster.publish_pair_event(gw, event, payload).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates() {
        let none: Vec<String> = vec![];
        let read = vec![scopes::READ.to_owned()];
        assert!(may_receive("tick", Role::Node, &none));
        assert!(!may_receive("presence", Role::Node, &none));
        assert!(!may_receive("presence", Role::Operator, &none));
        assert!(may_receive("presence", Role::Operator, &read));
        assert!(!may_receive("device.pair.requested", Role::Operator, &read));
        assert!(may_receive("device.pair.requested", Role::Operator, &[scopes::ADMIN.to_owned()]));
        assert!(!may_receive("made.up", Role::Operator, &[scopes::ADMIN.to_owned()]));
    }
}
