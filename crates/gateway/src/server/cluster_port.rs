//! What the server asks of the cluster bus (docs/cluster.md), as a trait
//! the cluster implements: the server never names the cluster's types, so
//! the bus is built beside the gateway (`clawgate::gateway`) and handed to
//! it, and the cluster's loops may work on the running gateway without an
//! import cycle between the two.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use super::node_catalog::LiveNode;
use super::node_invoke::NodeInvoke;
use super::wire::RequestError;
use super::Gateway;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A cluster operation that did not happen: its stable code and why.
#[derive(Debug, Clone)]
pub struct BusFailure {
    pub code: &'static str,
    pub message: String,
}

/// This instance's place on the bus, as the server uses it.
pub trait ClusterPort: Send + Sync {
    /// Whether NATS is reachable now.
    fn is_connected(&self) -> bool;

    /// The bus itself, for tests and embedders that know its type.
    fn as_any(&self) -> &dyn std::any::Any;

    /// Connect and run every cross-instance loop for `gateway` until the
    /// server aborts it at shutdown.
    fn run(self: Arc<Self>, gateway: Arc<Gateway>) -> BoxFuture<'static, ()>;

    /// Tell the other instances this one is leaving (bounded).
    fn leave(&self) -> BoxFuture<'_, ()>;

    /// Nodes connected to other instances.
    fn remote_nodes(&self) -> Vec<LiveNode>;

    /// Invoke a node another instance holds; the caller's scopes travel
    /// with the request.
    fn forward_invoke<'a>(
        &'a self,
        caller_scopes: &'a [String],
        invoke: NodeInvoke,
    ) -> BoxFuture<'a, Result<Value, RequestError>>;

    /// Hand a pairing event (already broadcast here) to the other instances.
    fn publish_pair_event<'a>(&'a self, gateway: &'a Gateway, event: &'static str, payload: Value)
        -> BoxFuture<'a, ()>;

    /// The shared failure-count key for a limiter key.
    fn failure_key(&self, limiter_key: &str) -> String;

    /// How long `key` stays locked out by every instance's failures
    /// together (from this instance's mirror: no round trip).
    fn failures_locked(&self, key: &str, now: u64) -> Option<u64>;

    /// Count one failure of `key` in the shared count.
    fn record_failure(
        self: Arc<Self>,
        key: String,
        now: u64,
        may_lock: bool,
    ) -> BoxFuture<'static, Result<(), BusFailure>>;

    /// Clear `key` in the shared count after a success.
    fn reset_failures(self: Arc<Self>, key: String) -> BoxFuture<'static, Result<(), BusFailure>>;
}
