//! The one method table: every method clawgate serves, with what it
//! requires, who handles it and whether it waits on another party. It drives
//! hello-ok's `features.methods`, authorization and dispatch, so a method
//! cannot be advertised without being routed.

use std::collections::HashMap;
use std::sync::LazyLock;

use clawgate_protocol::methods::{method_scope, MethodScope};
use clawgate_protocol::scopes;

use super::call::LocalHandler;
use super::{auth_log, devices, nodes, system};

/// Who answers a method.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Served inside this process.
    Local(LocalHandler),
    /// In upstream mode: sent to the upstream gateway over the session's
    /// link, with the caller's request id, after clawgate authorized it.
    Relay,
}

/// What a caller needs before the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone who completed the handshake (probes and health checks).
    Anyone,
    /// The role and scope of the protocol schema's method table.
    Scope(MethodScope),
}

impl Requirement {
    /// The schema's entry; methods it does not list need `operator.admin`.
    pub fn from_schema(method: &str) -> Requirement {
        Requirement::Scope(method_scope(method).unwrap_or(MethodScope::Operator(scopes::ADMIN)))
    }
}

/// One row of the table.
pub struct MethodEntry {
    pub name: &'static str,
    pub requirement: Requirement,
    pub handler: Handler,
    /// Waits on another party (a node) and must not hold up the session.
    pub long_running: bool,
    /// In upstream mode clawgate still serves it: its own devices, device
    /// tokens and presence. Every other method is then the upstream's.
    pub kept_in_upstream_mode: bool,
    /// Listed in hello-ok's `features.methods`: only methods of the
    /// protocol schema are; clawgate's own extensions are served unlisted.
    pub advertised: bool,
}

/// A method with the schema's requirement, answered quickly.
fn local(name: &'static str, handler: LocalHandler) -> MethodEntry {
    MethodEntry {
        name,
        requirement: Requirement::from_schema(name),
        handler: Handler::Local(handler),
        long_running: false,
        kept_in_upstream_mode: name.starts_with("device.pair.")
            || name.starts_with("device.token.")
            || name == "system-presence",
        advertised: true,
    }
}

/// A method of clawgate's own, not in the protocol schema: its requirement
/// is stated here, and hello-ok does not list it.
fn extension(name: &'static str, scope: &'static str, handler: LocalHandler) -> MethodEntry {
    MethodEntry {
        requirement: Requirement::Scope(MethodScope::Operator(scope)),
        advertised: false,
        ..local(name, handler)
    }
}

fn entries() -> Vec<MethodEntry> {
    vec![
        MethodEntry { requirement: Requirement::Anyone, ..local("health", system::health) },
        local("status", system::status),
        local("system-presence", system::presence),
        local("device.pair.list", devices::list),
        local("device.pair.approve", devices::approve),
        local("device.pair.reject", devices::reject),
        local("device.pair.remove", devices::remove),
        local("device.pair.rename", devices::rename),
        extension("device.pair.unreject", scopes::PAIRING, devices::unreject),
        local("device.token.rotate", devices::rotate),
        local("device.token.revoke", devices::revoke),
        local("node.list", nodes::list),
        local("node.describe", nodes::describe),
        MethodEntry { long_running: true, ..local("node.invoke", nodes::invoke) },
        local("node.invoke.result", nodes::invoke_result),
        local("node.invoke.progress", nodes::invoke_progress),
        local("node.event", nodes::node_event),
        local("node.runnerInventory.update", nodes::runner_inventory_update),
        local("node.skills.update", nodes::skills_update),
        local("node.pluginTools.update", nodes::plugin_tools_update),
        local("node.pair.list", devices::node_list),
        local("node.pair.approve", devices::node_approve),
        local("node.pair.reject", devices::reject),
        local("node.pair.remove", devices::node_remove),
        local("node.rename", devices::node_rename),
        // The gateway's own decisions: served by clawgate in upstream mode too.
        MethodEntry { kept_in_upstream_mode: true, ..extension("clawgate.auth.log", scopes::ADMIN, auth_log::read) },
    ]
}

struct Table {
    /// In advertising order.
    entries: Vec<MethodEntry>,
    by_name: HashMap<&'static str, usize>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let entries = entries();
    let by_name = entries.iter().enumerate().map(|(i, e)| (e.name, i)).collect();
    Table { entries, by_name }
});

/// Every method clawgate serves, in the order hello-ok lists the
/// [`advertised`](MethodEntry::advertised) ones.
pub fn all() -> &'static [MethodEntry] {
    &TABLE.entries
}

/// The entry of `method`, if clawgate serves it.
pub fn lookup(method: &str) -> Option<&'static MethodEntry> {
    TABLE.by_name.get(method).map(|&i| &TABLE.entries[i])
}

/// Who answers `method` (already authorized): in upstream mode the
/// upstream, except for the methods clawgate keeps; `None` when nobody does
/// (standalone, a method clawgate does not serve).
pub fn handler(method: &str, upstream_mode: bool) -> Option<Handler> {
    match lookup(method) {
        Some(entry) if !upstream_mode || entry.kept_in_upstream_mode => Some(entry.handler),
        _ if upstream_mode => Some(Handler::Relay),
        _ => None,
    }
}
