//! Method authorization and dispatch. Every request is authorized against
//! the protocol's method → scope table first; only then is it served or
//! answered as not implemented.

mod authorize;
mod devices;
mod nodes;
mod system;

use std::sync::Arc;

use clawgate_protocol::methods::method_scope;
use serde_json::Value;

pub use authorize::authorize;
pub use system::health_payload;

use super::registry::SessionInfo;
use super::wire::RequestError;
use super::Gateway;

/// Methods this gateway serves, for `hello-ok.features.methods`.
pub const METHODS: &[&str] = &[
    "health",
    "status",
    "system-presence",
    "device.pair.list",
    "device.pair.approve",
    "device.pair.reject",
    "device.pair.remove",
    "device.pair.rename",
    "device.token.rotate",
    "device.token.revoke",
    "node.list",
    "node.describe",
    "node.invoke",
    "node.invoke.result",
    "node.invoke.progress",
    "node.event",
    "node.runnerInventory.update",
    "node.skills.update",
    "node.pluginTools.update",
    "node.pair.list",
    "node.pair.approve",
    "node.pair.reject",
    "node.pair.remove",
    "node.rename",
];

/// Methods that wait on another party and must not hold up the session.
pub fn is_long_running(method: &str) -> bool {
    method == "node.invoke"
}

/// Serve one request that `authorize` allowed.
pub async fn serve(
    gw: &Arc<Gateway>,
    session: &Arc<SessionInfo>,
    method: &str,
    params: Option<Value>,
) -> Result<Value, RequestError> {
    match method {
        "health" => Ok(health_payload(gw)),
        "status" => Ok(system::status(gw, session)),
        "system-presence" => Ok(system::presence(gw)),
        m if m.starts_with("device.pair.")
            || m.starts_with("device.token.")
            || m.starts_with("node.pair.")
            || m == "node.rename" =>
        {
            devices::call(gw, session, m, params).await
        }
        "node.list"
        | "node.describe"
        | "node.invoke"
        | "node.invoke.result"
        | "node.invoke.progress"
        | "node.event" => nodes::call(gw, session, method, params).await,
        m if method_scope(m).is_some() => Err(RequestError::NotImplemented(m.to_owned())),
        m => Err(RequestError::UnknownMethod(m.to_owned())),
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
