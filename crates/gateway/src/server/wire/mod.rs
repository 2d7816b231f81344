//! The one place where errors become wire frames and close codes.

use clawgate_protocol::{ErrorCode, ErrorShape};
use serde_json::{json, Value};

use crate::admission::Refusal;
use crate::upstream::{UpstreamFailure, DEFAULT_RETRY_AFTER_MS};

pub use super::edge_failure::{EdgeFailure, HttpAnswer};

// Every close code the gateway sends, named here for the server's modules.
pub use crate::close_code::{
    CLOSE_INTERNAL, CLOSE_INVALIDATED, CLOSE_NORMAL, CLOSE_POLICY, CLOSE_PROTOCOL, CLOSE_RESTART, CLOSE_TOO_LARGE,
    CLOSE_TRY_AGAIN,
};

/// Everything that ends a connection before or at `connect`, in one type:
/// the HTTP edge refused it, the handshake itself failed, admission
/// refused, or applying an admission failed. [`to_wire`] is the one way
/// each goes to the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Before any WebSocket exists: answered with an HTTP status.
    Edge(EdgeFailure),
    Handshake(HandshakeError),
    /// A decision of an admission rule; names the rule.
    Refused(Refusal),
    /// Applying a decision failed; no rule decided this.
    Apply(ApplyFailure),
}

/// Failures applying an admission to the store and the registry. They are
/// not decisions, so their details name no rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyFailure {
    /// The store could not be read or written.
    /// `store_code`: the store error's own code (e.g. `STORE_FULL`).
    StoreUnavailable { hint: String, store_code: &'static str },
    /// Too many open pairing requests (per address or in all).
    PairingBusy { hint: String },
    /// The store kept changing between deciding and applying (a revoke or
    /// an approval landing each time): try again.
    StoreContended { hint: String },
    /// A connected node already has this id.
    NodeIdInUse { node_id: String },
    /// The address or the principal already has as many sessions as allowed.
    SessionLimit(super::registry::SessionCapReached),
    /// Upstream mode: the session's upstream link could not be opened.
    Upstream(UpstreamFailure),
}

/// How a failure reaches the client.
#[derive(Debug, Clone)]
pub enum Wire {
    /// An HTTP response, then the connection closes (no WebSocket yet).
    Http(HttpAnswer),
    /// An optional error response for the connect id, then a close frame.
    Close(Rejection),
}

/// The one mapping of every failure to the wire: HTTP status and body at
/// the edge; error frame, close code and reason on a WebSocket.
pub fn to_wire(f: &Failure) -> Wire {
    match f {
        Failure::Edge(e) => Wire::Http(super::edge_failure::http_answer(e)),
        Failure::Handshake(e) => Wire::Close(handshake(e)),
        Failure::Refused(r) => Wire::Close(refusal(r)),
        Failure::Apply(a) => Wire::Close(apply_failure(a)),
    }
}

/// How a failure ends an open WebSocket. Edge failures happen before one
/// exists; should one reach an open socket, it is a policy close with the
/// edge's message.
pub fn rejection(f: &Failure) -> Rejection {
    match to_wire(f) {
        Wire::Close(r) => r,
        Wire::Http(h) => Rejection {
            error: None,
            close_code: CLOSE_POLICY,
            close_reason: truncate_reason(h.body["error"]["message"].as_str().unwrap_or("refused")),
        },
    }
}

fn apply_failure(f: &ApplyFailure) -> Rejection {
    let details = |code: &str, reason: &str, hint: &str, extra: Value| {
        let mut d = json!({ "code": code, "reason": reason, "remediationHint": hint });
        if let (Value::Object(d), Value::Object(extra)) = (&mut d, extra) {
            d.extend(extra);
        }
        d
    };
    let (top, message, details, close_code): (ErrorCode, String, Value, u16) = match f {
        ApplyFailure::Upstream(u) => return upstream_failure(u),
        ApplyFailure::StoreUnavailable { hint, store_code } => (
            ErrorCode::Unavailable,
            "the gateway's pairing store is unavailable".into(),
            details("STORE_UNAVAILABLE", "store-unavailable", hint, json!({ "storeCode": store_code })),
            CLOSE_TRY_AGAIN,
        ),
        ApplyFailure::StoreContended { hint } => (
            ErrorCode::Unavailable,
            "the gateway's pairing store changed while admitting this connection".into(),
            details("STORE_BUSY", "store-changed-during-admission", hint, json!({})),
            CLOSE_TRY_AGAIN,
        ),
        ApplyFailure::PairingBusy { hint } => (
            ErrorCode::Unavailable,
            "too many pending pairing requests; approve or reject some first".into(),
            details("PAIRING_BUSY", "too-many-pending-requests", hint, json!({})),
            CLOSE_POLICY,
        ),
        ApplyFailure::NodeIdInUse { node_id } => (
            ErrorCode::InvalidRequest,
            "node id in use by a connected node".into(),
            details(
                "NODE_ID_IN_USE",
                "node-id-in-use",
                "another connection is this node already; stop it first, or give this one its own client.instanceId",
                json!({ "nodeId": node_id }),
            ),
            CLOSE_POLICY,
        ),
        ApplyFailure::SessionLimit(cap) => (
            ErrorCode::Unavailable,
            format!("too many open sessions for this {}", cap.per),
            details(
                "SESSION_LIMIT",
                "session-limit",
                &format!(
                    "close some sessions first; the cap is {} per {} (clawgate.sessions.maxPer{})",
                    cap.limit,
                    cap.per,
                    if cap.per == "address" { "Address" } else { "Principal" }
                ),
                json!({ "per": cap.per, "limit": cap.limit }),
            ),
            CLOSE_TRY_AGAIN,
        ),
    };
    let close_reason = truncate_reason(&message);
    let message = with_remediation(message, details.get("remediationHint").and_then(Value::as_str).unwrap_or(""));
    Rejection { error: Some(ErrorShape::new(top, message).with_details(details)), close_code, close_reason }
}

/// A refusal's message with its remediation at the end: OpenClaw's clients
/// print only `message`, never `details.remediationHint` (which keeps the
/// hint alone, for clients that read it). The close reason keeps the bare
/// message: it is limited to 123 bytes.
pub fn with_remediation(message: String, hint: &str) -> String {
    let hint = hint.trim();
    if hint.is_empty() {
        return message;
    }
    format!("{message} — to fix: {hint}")
}

/// An upstream link that could not be opened. Unavailable →
/// `UNAVAILABLE`/`UPSTREAM_UNAVAILABLE`, retryable after `retryAfterMs`,
/// close 1013 (clients retry then); refused → `UPSTREAM_REFUSED`, not
/// retryable, close 1011: clawgate's own configuration needs fixing, and the
/// upstream's words about clawgate's secret are for the log, not the client.
fn upstream_failure(f: &UpstreamFailure) -> Rejection {
    let (message, retry_after_ms, close_code, close_reason) = match f {
        UpstreamFailure::Unavailable { retry_after_ms, .. } => (
            "the upstream gateway is unavailable; retry shortly",
            Some(*retry_after_ms),
            CLOSE_TRY_AGAIN,
            "upstream unavailable",
        ),
        UpstreamFailure::Protocol(_) => (
            "the upstream gateway is unavailable; retry shortly",
            Some(DEFAULT_RETRY_AFTER_MS),
            CLOSE_TRY_AGAIN,
            "upstream unavailable",
        ),
        UpstreamFailure::Refused { .. } => (
            "the upstream gateway refused the relay; see the gateway log",
            None,
            CLOSE_INTERNAL,
            "upstream refused the relay",
        ),
    };
    let mut shape = ErrorShape::new(ErrorCode::Unavailable, message).with_details(json!({ "code": f.code() }));
    shape.retryable = Some(retry_after_ms.is_some());
    shape.retry_after_ms = retry_after_ms;
    Rejection { error: Some(shape), close_code, close_reason: close_reason.to_owned() }
}

/// How a connection ends: an optional error response for the connect id,
/// then a close frame.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub error: Option<ErrorShape>,
    pub close_code: u16,
    pub close_reason: String,
}

/// Errors of the handshake itself, before any admission rule runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The first request was not `connect`.
    NotConnect {
        method: String,
    },
    InvalidConnectParams(String),
    /// A self-reported connect field that does not print as itself or is
    /// too long (`CONNECT_FIELD_INVALID`, naming the field).
    ConnectFieldInvalid {
        field: String,
        reason: String,
    },
    /// A frame that is not a request at all.
    InvalidFrame(String),
    /// Unparsable JSON before authentication.
    UnparsableFrame,
    PreauthTooLarge,
    TimedOut,
    ShuttingDown,
}

/// Errors of one request after hello-ok.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    InvalidFrame(String),
    MissingScope {
        scope: String,
    },
    UnauthorizedRole {
        role: String,
    },
    UnknownMethod(String),
    /// `connect` on a session that is already admitted.
    ConnectAfterHello,
    /// Listed by the protocol, authorized, but not served by clawgate.
    NotImplemented(String),
    InvalidParams {
        method: String,
        message: String,
    },
    /// The caller may call the method but not do this (e.g. rotate another device's token).
    Denied {
        message: String,
        reason: String,
    },
    NotFound {
        message: String,
        code: &'static str,
    },
    /// The store refused or failed; the error code says how. `failure`: the
    /// store itself (its file or disk), not the request, is the problem.
    Store {
        code: &'static str,
        message: String,
        failure: bool,
    },
    Unavailable(String),
    /// The node answered an invocation with an error.
    NodeFailed {
        code: String,
        message: String,
    },
    /// Work that needs another instance of the cluster did not happen
    /// (`CLUSTER_UNAVAILABLE`, `CLUSTER_TIMEOUT`…: the cluster's error codes).
    Cluster {
        code: &'static str,
        message: String,
    },
}

impl RequestError {
    /// A store error as a request's answer (its code kept).
    pub fn store(e: &crate::store::StoreError) -> RequestError {
        RequestError::Store { code: e.code(), message: e.to_string(), failure: e.is_store_failure() }
    }

    /// A cluster failure as a request's answer (its code kept).
    pub fn cluster(code: &'static str, message: String) -> RequestError {
        RequestError::Cluster { code, message }
    }
}

/// Close reasons are limited to 123 bytes on the wire; OpenClaw cuts at 120.
pub fn truncate_reason(reason: &str) -> String {
    if reason.len() <= 120 {
        return reason.to_owned();
    }
    let mut end = 120;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

mod refusal;
pub use refusal::refusal;

pub fn handshake(e: &HandshakeError) -> Rejection {
    let reject = |message: String, code: &str| Rejection {
        close_reason: truncate_reason(&message),
        error: Some(ErrorShape::new(ErrorCode::InvalidRequest, message).with_details(json!({ "code": code }))),
        close_code: CLOSE_POLICY,
    };
    match e {
        HandshakeError::NotConnect { method } => {
            reject(format!("invalid handshake: first request must be connect (got {method:?})"), "INVALID_HANDSHAKE")
        }
        HandshakeError::InvalidConnectParams(m) => {
            reject(format!("invalid connect params: {m}"), "INVALID_CONNECT_PARAMS")
        }
        HandshakeError::ConnectFieldInvalid { field, reason } => {
            let message = format!("invalid connect params: {field}: {reason}");
            Rejection {
                close_reason: truncate_reason(&message),
                error: Some(
                    ErrorShape::new(ErrorCode::InvalidRequest, message)
                        .with_details(json!({ "code": "CONNECT_FIELD_INVALID", "field": field })),
                ),
                close_code: CLOSE_POLICY,
            }
        }
        HandshakeError::InvalidFrame(m) => reject(format!("invalid handshake: {m}"), "INVALID_HANDSHAKE"),
        HandshakeError::UnparsableFrame => {
            Rejection { error: None, close_code: CLOSE_NORMAL, close_reason: "invalid handshake frame".into() }
        }
        HandshakeError::PreauthTooLarge => {
            Rejection { error: None, close_code: CLOSE_TOO_LARGE, close_reason: "preauth payload too large".into() }
        }
        HandshakeError::TimedOut => Rejection { error: None, close_code: CLOSE_NORMAL, close_reason: String::new() },
        HandshakeError::ShuttingDown => {
            Rejection { error: None, close_code: CLOSE_RESTART, close_reason: "service restart".into() }
        }
    }
}

pub fn request(e: &RequestError) -> ErrorShape {
    match e {
        RequestError::InvalidFrame(m) => {
            ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid request frame: {m}"))
                .with_details(json!({ "code": "INVALID_FRAME" }))
        }
        RequestError::MissingScope { scope } => {
            ErrorShape::new(ErrorCode::Forbidden, format!("missing scope: {scope}"))
                .with_details(json!({ "code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope] }))
        }
        RequestError::UnauthorizedRole { role } => {
            ErrorShape::new(ErrorCode::InvalidRequest, format!("unauthorized role: {role}"))
                .with_details(json!({ "code": "UNAUTHORIZED_ROLE", "role": role }))
        }
        RequestError::UnknownMethod(m) => ErrorShape::new(ErrorCode::InvalidRequest, format!("unknown method: {m}"))
            .with_details(json!({ "code": "UNKNOWN_METHOD", "method": m })),
        RequestError::ConnectAfterHello => {
            ErrorShape::new(ErrorCode::InvalidRequest, "connect is only valid as the first request".to_owned())
                .with_details(json!({ "code": "ALREADY_CONNECTED" }))
        }
        RequestError::InvalidParams { method, message } => {
            ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid {method} params: {message}"))
                .with_details(json!({ "code": "INVALID_PARAMS", "method": method }))
        }
        RequestError::NotImplemented(m) => ErrorShape::new(
            ErrorCode::Unavailable,
            format!("method {m} is part of the protocol but not implemented by clawgate"),
        )
        .with_details(json!({ "code": "METHOD_NOT_IMPLEMENTED", "method": m })),
        RequestError::Denied { message, reason } => ErrorShape::new(ErrorCode::InvalidRequest, message.clone())
            .with_details(json!({ "code": "DENIED", "reason": reason })),
        RequestError::NotFound { message, code } => {
            ErrorShape::new(ErrorCode::InvalidRequest, message.clone()).with_details(json!({ "code": code }))
        }
        RequestError::Store { code, message, failure: false } => {
            ErrorShape::new(ErrorCode::InvalidRequest, message.clone()).with_details(json!({ "code": code }))
        }
        // A full disk, a replaced store file: the request was fine, the
        // gateway cannot write now. UNAVAILABLE, with the store's own code.
        RequestError::Store { code, message, failure: true } => {
            ErrorShape::new(ErrorCode::Unavailable, message.clone()).with_details(json!({ "code": code }))
        }
        RequestError::NodeFailed { code, message } => ErrorShape::new(ErrorCode::Unavailable, message.clone())
            .with_details(json!({ "code": "NODE_ERROR", "nodeError": { "code": code, "message": message } })),
        RequestError::Unavailable(m) => {
            ErrorShape::new(ErrorCode::Unavailable, m.clone()).with_details(json!({ "code": "UNAVAILABLE" }))
        }
        // The request may succeed later (the bus back, the instance answering).
        RequestError::Cluster { code, message } => {
            let mut shape =
                ErrorShape::new(ErrorCode::Unavailable, message.clone()).with_details(json!({ "code": code }));
            shape.retryable = Some(true);
            shape
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_on_char_boundaries() {
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 120);
        assert!(long.starts_with(&cut));
    }

    #[test]
    fn upstream_failures_are_apply_failures_without_a_rule() {
        let unavailable = UpstreamFailure::Unavailable { retry_after_ms: 500, reason: "connection refused".into() };
        let r = rejection(&Failure::Apply(ApplyFailure::Upstream(unavailable)));
        let e = r.error.unwrap();
        assert_eq!(
            (e.code.as_str(), e.details_code(), e.retryable, e.retry_after_ms, r.close_code),
            ("UNAVAILABLE", Some("UPSTREAM_UNAVAILABLE"), Some(true), Some(500), CLOSE_TRY_AGAIN)
        );
        assert!(e.details.as_ref().unwrap().get("rule").is_none());
        let refused = UpstreamFailure::Refused { code: "AUTH_TOKEN_MISMATCH".into(), message: "unauthorized".into() };
        let r = rejection(&Failure::Apply(ApplyFailure::Upstream(refused)));
        let e = r.error.unwrap();
        assert_eq!(
            (e.details_code(), e.retryable, e.retry_after_ms, r.close_code),
            (Some("UPSTREAM_REFUSED"), Some(false), None, CLOSE_INTERNAL)
        );
        assert!(!e.message.contains("unauthorized"), "the upstream's words stay in the log");
        let protocol = rejection(&Failure::Apply(ApplyFailure::Upstream(UpstreamFailure::Protocol("x".into()))));
        assert_eq!(protocol.close_code, CLOSE_TRY_AGAIN);
    }
}
