//! Method authorization and the methods clawgate answers.

use clawgate_protocol::scopes::{self, satisfied_by};
use serde_json::{json, Value};

use crate::admission::decision::Role;

use super::registry::SessionInfo;
use super::wire::RequestError;
use super::Gateway;

/// Methods this gateway implements, for `hello-ok.features.methods`.
pub const METHODS: &[&str] = &["health", "status"];

/// What a method requires of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Any role, any scopes.
    Anyone,
    /// Role operator with this scope (or one implying it).
    Operator(&'static str),
}

pub fn requirement(method: &str) -> Requirement {
    match method {
        "health" => Requirement::Anyone,
        "status" => Requirement::Operator(scopes::READ),
        // Unknown methods need admin, so probing names reveals nothing.
        _ => Requirement::Operator(scopes::ADMIN),
    }
}

pub fn authorize(method: &str, session: &SessionInfo) -> Result<(), RequestError> {
    match requirement(method) {
        Requirement::Anyone => Ok(()),
        Requirement::Operator(_) if session.role != Role::Operator => {
            Err(RequestError::UnauthorizedRole { role: session.role.as_str().to_owned() })
        }
        Requirement::Operator(scope) if !satisfied_by(&session.scopes, scope) => {
            Err(RequestError::MissingScope { scope: scope.to_owned() })
        }
        Requirement::Operator(_) => Ok(()),
    }
}

/// The health snapshot: only keys the protocol schema's health object allows.
pub fn health_payload(_gw: &Gateway) -> Value {
    let started = std::time::Instant::now();
    let ts = super::now_ms();
    json!({ "ok": true, "ts": ts, "durationMs": started.elapsed().as_millis() as u64 })
}

/// Dispatch one authorized request.
pub fn call(gw: &Gateway, session: &SessionInfo, method: &str, _params: Option<&Value>) -> Result<Value, RequestError> {
    authorize(method, session)?;
    match method {
        "health" => Ok(health_payload(gw)),
        "status" => Ok(json!({
            "server": "clawgate",
            "version": super::VERSION,
            "bootId": gw.boot_id,
            "uptimeMs": gw.uptime_ms(),
            "authMode": gw.config.auth_mode.as_str(),
            "connections": gw.registry.counts(),
            "you": {
                "connId": session.conn_id,
                "role": session.role.as_str(),
                "scopes": session.scopes,
                "rule": session.rule.as_str(),
            },
        })),
        other => Err(RequestError::UnknownMethod(other.to_owned())),
    }
}
