//! The cluster as the server sees it ([`ClusterPort`]): each call handed to
//! the file of its concern.

use std::sync::Arc;

use serde_json::Value;

use super::{failures, invoke, pair_events, Cluster, ClusterError};
use crate::server::cluster_port::{BoxFuture, BusFailure, ClusterPort};
use crate::server::node_catalog::LiveNode;
use crate::server::node_invoke::NodeInvoke;
use crate::server::wire::RequestError;
use crate::server::Gateway;

fn failure(e: ClusterError) -> BusFailure {
    BusFailure { code: e.code(), message: e.to_string() }
}

impl ClusterPort for Cluster {
    fn is_connected(&self) -> bool {
        Cluster::is_connected(self)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn run(self: Arc<Self>, gateway: Arc<Gateway>) -> BoxFuture<'static, ()> {
        Box::pin(super::run(self, gateway))
    }

    fn leave(&self) -> BoxFuture<'_, ()> {
        Box::pin(super::leave(self))
    }

    fn remote_nodes(&self) -> Vec<LiveNode> {
        self.node_directory().remote_nodes()
    }

    fn forward_invoke<'a>(
        &'a self,
        caller_scopes: &'a [String],
        request: NodeInvoke,
    ) -> BoxFuture<'a, Result<Value, RequestError>> {
        Box::pin(invoke::forward(self, caller_scopes, request))
    }

    fn publish_pair_event<'a>(
        &'a self,
        gateway: &'a Gateway,
        event: &'static str,
        payload: Value,
    ) -> BoxFuture<'a, ()> {
        Box::pin(pair_events::publish(self, gateway, event, payload))
    }

    fn failure_key(&self, limiter_key: &str) -> String {
        failures::bucket_key(self, limiter_key)
    }

    fn failures_locked(&self, key: &str, now: u64) -> Option<u64> {
        failures::locked(self, key, now)
    }

    fn record_failure(
        self: Arc<Self>,
        key: String,
        now: u64,
        may_lock: bool,
    ) -> BoxFuture<'static, Result<(), BusFailure>> {
        Box::pin(async move { failures::record_failure(&self, &key, now, may_lock).await.map_err(failure) })
    }

    fn reset_failures(self: Arc<Self>, key: String) -> BoxFuture<'static, Result<(), BusFailure>> {
        Box::pin(async move { failures::reset(&self, &key).await.map_err(failure) })
    }
}
