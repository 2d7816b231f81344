//! The JSON the gateway answers with (and the offline CLI reads alike).

use serde_json::{json, Value};

use crate::store::json::{paired_json, pending_json};
use crate::store::{Approval, Rejection, RejectionCooldown};

use super::{Listing, Revocation, Rotation, Unrejection};

/// `device.pair.list`: `{pending, paired}` as OpenClaw answers, and
/// clawgate's `rejected`: the cool-downs in force.
pub fn listing(l: &Listing) -> Value {
    let pending: Vec<Value> = l.pending.iter().map(pending_json).collect();
    let paired: Vec<Value> = l.paired.iter().map(|(d, t)| paired_json(d, t)).collect();
    let rejected: Vec<Value> = l.rejected.iter().map(cooldown).collect();
    json!({ "pending": pending, "paired": paired, "rejected": rejected })
}

/// One cool-down: the rejected request's fields (when the store still has
/// it), then the device, role and times of the cool-down itself.
fn cooldown(c: &RejectionCooldown) -> Value {
    let mut out = c.request.as_ref().map(pending_json).unwrap_or_else(|| json!({}));
    for stale in ["silent", "refreshedAtMs", "expiresAtMs"] {
        if let Some(o) = out.as_object_mut() {
            o.remove(stale);
        }
    }
    out["deviceId"] = c.device_id.clone().into();
    out["role"] = c.role.as_str().into();
    out["rejectedAtMs"] = c.rejected_at_ms.into();
    out["cooldownUntilMs"] = c.until_ms.into();
    out
}

/// `device.pair.unreject` (clawgate's own): the roles whose cool-down ended.
pub fn unrejection(u: &Unrejection) -> Value {
    let roles: Vec<&str> = u.roles.iter().map(|r| r.as_str()).collect();
    json!({ "deviceId": u.device_id, "lifted": !roles.is_empty(), "roles": roles })
}

/// `device.pair.approve`.
pub fn approval(a: &Approval) -> Value {
    json!({
        "requestId": a.request.request_id,
        "deviceId": a.device.device_id,
        "role": a.request.role.as_str(),
        "scopes": a.request.scopes,
        "device": paired_json(&a.device, &[]),
    })
}

/// `device.pair.reject`.
pub fn rejection(r: &Rejection) -> Value {
    json!({
        "requestId": r.request.request_id,
        "deviceId": r.request.device_id,
        "decision": "rejected",
        "cooldownUntilMs": r.cooldown_until_ms,
    })
}

/// `device.pair.remove`, without the sessions only a gateway closes.
pub fn removal(device_id: &str) -> Value {
    json!({ "deviceId": device_id, "removed": true })
}

/// `device.token.rotate`: the token only when it goes back to its own device.
pub fn rotation(r: &Rotation) -> Value {
    let mut out = json!({
        "deviceId": r.device_id,
        "role": r.role.as_str(),
        "scopes": r.scopes,
        "rotatedAtMs": r.rotated_at_ms,
        "tokenDelivery": if r.in_band { "in-band" } else { "withheld-cross-device" },
    });
    if r.in_band {
        out["token"] = r.token.clone().into();
    }
    out
}

/// `device.token.revoke`, without the sessions only a gateway closes.
pub fn revocation(device_id: &str, r: &Revocation) -> Value {
    json!({ "deviceId": device_id, "role": r.role.as_str(), "revoked": r.revoked, "revokedAtMs": r.revoked_at_ms })
}
