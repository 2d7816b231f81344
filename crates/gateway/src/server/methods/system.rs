//! `health`, `status`, `system-presence`.

use serde_json::{json, Value};

use super::super::registry::SessionInfo;
use super::super::{now_ms, Gateway, VERSION};
use super::call::{Call, Reply};

pub(super) fn health(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { Ok(health_payload(c.gw)) })
}

pub(super) fn status(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { Ok(status_payload(c.gw, c.session)) })
}

pub(super) fn presence(c: Call<'_>) -> Reply<'_> {
    Box::pin(async move { Ok(Value::Array((*c.gw.registry.presence()).clone())) })
}

/// The health snapshot: only keys the protocol schema's health object allows.
pub fn health_payload(_gw: &Gateway) -> Value {
    let started = std::time::Instant::now();
    let ts = now_ms();
    json!({ "ok": true, "ts": ts, "durationMs": started.elapsed().as_millis() as u64 })
}

fn status_payload(gw: &Gateway, session: &SessionInfo) -> Value {
    let now = now_ms();
    // A store that cannot be read shows as null here, not as "none pending".
    let pending = gw.store.open_requests(now).ok().map(|r| r.len());
    json!({
        "server": "clawgate",
        "version": VERSION,
        "bootId": gw.boot_id,
        "uptimeMs": gw.uptime_ms(),
        "authMode": gw.config().auth_mode.as_str(),
        "bind": gw.config().bind.to_string(),
        "connections": gw.registry.counts(),
        "pendingPairingRequests": pending,
        "lockedOutAddresses": gw.auth_limiter.locked_count(now),
        "you": {
            "connId": session.conn_id,
            "role": session.role.as_str(),
            "scopes": session.scopes,
            "rule": session.rule.as_str(),
            "deviceId": session.device_id,
            "servicePrincipal": session.service.as_ref().map(|s| &s.name),
            "nodeId": session.node.as_ref().map(|n| &n.node_id),
        },
    })
}
