//! Method authorization and dispatch, both driven by the method table
//! ([`table`]). Every request is authorized first; only then is it served,
//! or answered as not implemented (listed by the protocol, not served here)
//! or unknown.

mod auth_log;
mod authorize;
mod call;
mod devices;
mod nodes;
mod system;
mod table;

use std::sync::Arc;

use clawgate_protocol::methods::method_scope;
use serde_json::Value;

pub use authorize::authorize;
pub use system::health_payload;
use table::Handler;
#[cfg(test)]
use table::{MethodEntry, Requirement};

use super::registry::SessionInfo;
use super::wire::RequestError;
use super::Gateway;

/// Methods this gateway serves, for `hello-ok.features.methods`.
pub fn advertised() -> Vec<String> {
    table::all().iter().filter(|e| e.advertised).map(|e| e.name.to_owned()).collect()
}

/// A method of the protocol schema or of clawgate's table (metric labels
/// name these; any other counts as `other`).
pub fn is_known(method: &str) -> bool {
    table::lookup(method).is_some() || method_scope(method).is_some()
}

/// Whether `method` is relayed to the upstream gateway (upstream mode only).
pub fn is_relayed(method: &str, upstream_mode: bool) -> bool {
    matches!(table::handler(method, upstream_mode), Some(Handler::Relay))
}

/// Methods that wait on another party and must not hold up the session.
pub fn is_long_running(method: &str) -> bool {
    table::lookup(method).is_some_and(|e| e.long_running)
}

/// Serve one request that `authorize` allowed.
pub async fn serve(
    gw: &Arc<Gateway>,
    session: &Arc<SessionInfo>,
    method: &str,
    params: Option<Value>,
) -> Result<Value, RequestError> {
    match table::handler(method, false) {
        Some(Handler::Local(handler)) => handler(call::Call { gw, session, method, params }).await,
        // Relayed methods never get here: the session sends them up itself.
        Some(Handler::Relay) => Err(RequestError::NotImplemented(method.to_owned())),
        None if method_scope(method).is_some() => Err(RequestError::NotImplemented(method.to_owned())),
        None => Err(RequestError::UnknownMethod(method.to_owned())),
    }
}

/// Params as an object, or an error naming the method.
pub(crate) fn object_params<'a>(
    method: &str,
    params: &'a Option<Value>,
) -> Result<&'a serde_json::Map<String, Value>, RequestError> {
    params.as_ref().and_then(Value::as_object).ok_or_else(|| RequestError::InvalidParams {
        method: method.to_owned(),
        message: "params must be an object".into(),
    })
}

pub(crate) fn string_param(method: &str, params: &Option<Value>, key: &str) -> Result<String, RequestError> {
    object_params(method, params)?
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_owned())
        .ok_or_else(|| RequestError::InvalidParams { method: method.to_owned(), message: format!("{key} is required") })
}

#[cfg(test)]
mod dispatch_tests;
