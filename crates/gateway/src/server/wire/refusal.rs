//! Admission refusals on the wire: each refusal kind's top-level error
//! code, message, details (code, reason, rule, remediation hint and the
//! kind's own fields) and close code. Part of the one mapping in `wire`.

use clawgate_protocol::version::{MIN_PROBE_PROTOCOL_VERSION, PROTOCOL_VERSION};
use clawgate_protocol::{ErrorCode, ErrorShape};
use serde_json::{json, Map, Value};

use crate::admission::{Refusal, RefusalKind};

use super::*;

fn details(code: &str, reason: &str, rule: &str, hint: &str, extra: Value) -> Value {
    let mut map = Map::new();
    map.insert("code".into(), code.into());
    map.insert("reason".into(), reason.into());
    map.insert("rule".into(), rule.into());
    map.insert("remediationHint".into(), hint.into());
    if let Value::Object(extra) = extra {
        map.extend(extra);
    }
    Value::Object(map)
}

/// An admission refusal as the client sees it.
pub fn refusal(r: &Refusal) -> Rejection {
    let code = r.kind.details_code();
    let reason = r.kind.reason();
    let rule = r.rule.as_str();
    let d = |extra: Value| details(code, reason, rule, &r.hint, extra);
    let (top, message, details, close_code): (ErrorCode, String, Value, u16) = match &r.kind {
        RefusalKind::ProtocolMismatch { client_min, client_max } => (
            ErrorCode::InvalidRequest,
            "protocol mismatch".into(),
            d(json!({
                "clientMinProtocol": client_min,
                "clientMaxProtocol": client_max,
                "expectedProtocol": PROTOCOL_VERSION,
                "minimumProbeProtocol": MIN_PROBE_PROTOCOL_VERSION,
            })),
            CLOSE_PROTOCOL,
        ),
        RefusalKind::InvalidRole(role) => {
            (ErrorCode::InvalidRequest, "invalid role".into(), d(json!({ "requestedRole": role })), CLOSE_POLICY)
        }
        RefusalKind::WorkerHandshake => {
            (ErrorCode::InvalidRequest, "invalid-handshake".into(), d(json!({})), CLOSE_POLICY)
        }
        RefusalKind::OriginNotAllowed { origin } => (
            ErrorCode::InvalidRequest,
            "origin not allowed (open the UI from the gateway host or add it to gateway.controlUi.allowedOrigins)"
                .into(),
            d(json!({ "origin": origin })),
            CLOSE_POLICY,
        ),
        RefusalKind::Auth { reason, can_retry_with_device_token } => {
            let next = if *can_retry_with_device_token { "retry_with_device_token" } else { reason.next_step() };
            (
                ErrorCode::InvalidRequest,
                reason.message().into(),
                d(json!({
                    "authReason": reason.as_str(),
                    "canRetryWithDeviceToken": can_retry_with_device_token,
                    "recommendedNextStep": next,
                })),
                CLOSE_POLICY,
            )
        }
        RefusalKind::ControlUiDeviceIdentityRequired => (
            ErrorCode::InvalidRequest,
            "control ui requires device identity (use HTTPS or localhost secure context)".into(),
            d(json!({})),
            CLOSE_POLICY,
        ),
        RefusalKind::DeviceIdentityRequired { role, requested_scopes } => (
            ErrorCode::NotPaired,
            "device identity required".into(),
            d(json!({
                "requestedRole": role.as_str(),
                "requestedScopes": requested_scopes,
                "notGranted": requested_scopes,
            })),
            CLOSE_POLICY,
        ),
        RefusalKind::LocalOwnerDisabled => {
            (ErrorCode::NotPaired, "device identity required".into(), d(json!({})), CLOSE_POLICY)
        }
        RefusalKind::LocalServiceNotListed { client_id, mode } => (
            ErrorCode::NotPaired,
            "device identity required".into(),
            d(json!({ "clientId": client_id, "clientMode": mode })),
            CLOSE_POLICY,
        ),
        RefusalKind::LocalServiceCeiling { client_id, mode, not_granted, max_scopes } => (
            ErrorCode::Forbidden,
            format!("scopes not granted: {} (above the local service ceiling)", not_granted.join(", ")),
            d(json!({
                "notGranted": not_granted,
                "maxScopes": max_scopes,
                "clientId": client_id,
                "clientMode": mode,
                "ceiling": "gateway.trustedLocalServices",
            })),
            CLOSE_POLICY,
        ),
        RefusalKind::RoleNotGranted { requested, allowed, .. } => (
            ErrorCode::Forbidden,
            format!("role not granted: {}", requested.as_str()),
            d(json!({
                "requestedRole": requested.as_str(),
                "allowedRoles": allowed.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            })),
            CLOSE_POLICY,
        ),
        RefusalKind::ServiceTokenWithDevice => (
            ErrorCode::InvalidRequest,
            "a service token cannot be combined with a device identity".into(),
            d(json!({})),
            CLOSE_POLICY,
        ),
        RefusalKind::ScopesNotGranted { not_granted, .. } => (
            ErrorCode::Forbidden,
            format!("scopes not granted: {}", not_granted.join(", ")),
            d(json!({ "notGranted": not_granted })),
            CLOSE_POLICY,
        ),
        RefusalKind::DeviceAuth(e) => (ErrorCode::InvalidRequest, e.message().into(), d(json!({})), CLOSE_POLICY),
        RefusalKind::PairingRequired {
            reason,
            request_id,
            device_id,
            role,
            requested_scopes,
            approved_roles,
            approved_scopes,
        } => {
            let mut extra = json!({
                "requestId": request_id,
                "deviceId": device_id,
                "requestedRole": role.as_str(),
                "requestedScopes": requested_scopes,
                "recommendedNextStep": "wait_for_approval",
            });
            // A headless node cannot be told to reconnect by hand: ask it to
            // keep retrying (the retry refreshes the same request) so an
            // approval is picked up without a restart.
            if *role == crate::admission::decision::Role::Node {
                extra["recommendedNextStep"] = "wait_then_retry".into();
                extra["pauseReconnect"] = false.into();
            }
            if !approved_roles.is_empty() {
                extra["approvedRoles"] = json!(approved_roles.iter().map(|r| r.as_str()).collect::<Vec<_>>());
                extra["approvedScopes"] = json!(approved_scopes);
            }
            let message = format!("pairing required: {}", reason.requirement());
            let close = truncate_reason(&format!("{message} (requestId: {request_id})"));
            let shape =
                ErrorShape::new(ErrorCode::NotPaired, with_remediation(message, &r.hint)).with_details(d(extra));
            return Rejection { error: Some(shape), close_code: CLOSE_POLICY, close_reason: close };
        }
        RefusalKind::PairingRejected { retry_after_ms } => {
            let message = "pairing rejected: this device's request was rejected recently";
            let mut shape = ErrorShape::new(ErrorCode::NotPaired, with_remediation(message.into(), &r.hint))
                .with_details(d(json!({ "retryAfterMs": retry_after_ms })));
            shape.retryable = Some(true);
            shape.retry_after_ms = Some(*retry_after_ms);
            let close_reason = truncate_reason(message);
            return Rejection { error: Some(shape), close_code: CLOSE_POLICY, close_reason };
        }
        RefusalKind::RateLimited { retry_after_ms } => {
            let message = "unauthorized: too many failed authentication attempts (retry later)";
            let mut shape = ErrorShape::new(ErrorCode::InvalidRequest, with_remediation(message.into(), &r.hint))
                .with_details(d(json!({
                    "authReason": "rate_limited",
                    "canRetryWithDeviceToken": false,
                    "recommendedNextStep": "wait_then_retry",
                    "retryAfterMs": retry_after_ms,
                })));
            shape.retryable = Some(true);
            shape.retry_after_ms = Some(*retry_after_ms);
            let close_reason = truncate_reason(message);
            return Rejection { error: Some(shape), close_code: CLOSE_POLICY, close_reason };
        }
    };
    let close_reason = truncate_reason(&message);
    let message = with_remediation(message, &r.hint);
    Rejection { error: Some(ErrorShape::new(top, message).with_details(details)), close_code, close_reason }
}
