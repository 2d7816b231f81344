//! The JSON shapes of the store's records, as `device.pair.list` sends them.
//! One projection, used by the gateway's methods and by the CLI's `--offline` mode,
//! so both print the same thing.

use serde_json::{json, Value};

use super::{PairedDevice, PendingRequest, TokenInfo};

pub fn pending_json(r: &PendingRequest) -> Value {
    json!({
        "requestId": r.request_id,
        "deviceId": r.device_id,
        "publicKey": r.public_key,
        "displayName": r.display_name,
        "displayNameSelfReported": true,
        "platform": r.platform,
        "deviceFamily": r.device_family,
        "clientId": r.client_id,
        "clientMode": r.client_mode,
        "role": r.role.as_str(),
        "roles": [r.role.as_str()],
        "scopes": r.scopes,
        "remoteIp": r.remote_ip,
        "proxyUser": r.proxy_user,
        "silent": false,
        "ts": r.created_at_ms,
        "refreshedAtMs": r.refreshed_at_ms,
        "expiresAtMs": r.expires_at_ms(),
    })
}

pub fn token_json(t: &TokenInfo) -> Value {
    json!({
        "role": t.role.as_str(),
        "scopes": t.scopes,
        "createdAtMs": t.created_at_ms,
        "rotatedAtMs": t.rotated_at_ms,
        "revokedAtMs": t.revoked_at_ms,
        "lastUsedAtMs": t.last_used_at_ms,
    })
}

pub fn paired_json(d: &PairedDevice, tokens: &[TokenInfo]) -> Value {
    let roles: Vec<&str> = d.roles.iter().map(|r| r.as_str()).collect();
    json!({
        "deviceId": d.device_id,
        "publicKey": d.public_key,
        "displayName": d.label.clone().or_else(|| d.display_name.clone()),
        "label": d.label,
        "selfReportedName": d.display_name,
        "platform": d.platform,
        "deviceFamily": d.device_family,
        "clientId": d.client_id,
        "clientMode": d.client_mode,
        "role": roles.first(),
        "roles": roles,
        "scopes": d.approved_scopes,
        "approvedScopes": d.approved_scopes,
        "approvedVia": d.approved_via.as_str(),
        "proxyUser": d.proxy_user,
        "remoteIp": d.remote_ip,
        "tokens": tokens.iter().map(token_json).collect::<Vec<_>>(),
        "createdAtMs": d.created_at_ms,
        "approvedAtMs": d.approved_at_ms,
        "lastSeenAtMs": d.last_seen_at_ms,
    })
}
