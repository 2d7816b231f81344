//! The method → scope table of the protocol, taken from
//! `protocol.schema.json` (`methods`) of `@openclaw/gateway-protocol@2026.9.1`.
//! `method_scopes.json` is extracted from that schema, never typed by hand;
//! the gateway's `method_table` test fails when the two differ and can
//! rewrite the file (`UPDATE_METHOD_SCOPES=1`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::scopes;

/// The extracted table, as shipped.
pub const METHOD_SCOPES_JSON: &str = include_str!("method_scopes.json");

/// What a method requires, as the schema classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodScope {
    /// Role operator holding this scope (or one implying it).
    Operator(&'static str),
    /// Role node; no scopes.
    Node,
    /// Computed from the params; `base` is what the method needs at least.
    Dynamic { base: &'static str },
}

fn table() -> &'static BTreeMap<String, String> {
    static TABLE: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    // The file is part of the crate and checked by a test; a parse failure is a build defect.
    TABLE.get_or_init(|| serde_json::from_str(METHOD_SCOPES_JSON).expect("method_scopes.json is valid JSON"))
}

fn intern(scope: &str) -> Option<&'static str> {
    scopes::KNOWN_SCOPES.iter().copied().find(|s| *s == scope)
}

/// The least a dynamic method needs; its handler may demand more from the params.
fn dynamic_base(method: &str) -> &'static str {
    match method {
        "node.invoke" | "agent" | "fs.listDir" => scopes::WRITE,
        m if m.starts_with("sessions.") && m != "sessions.delete" => scopes::WRITE,
        "talk.config" | "environments.list" => scopes::READ,
        "channels.pairing.approve" => scopes::PAIRING,
        _ => scopes::ADMIN,
    }
}

/// The schema's classification of `method`; `None` for methods it does not list.
pub fn method_scope(method: &str) -> Option<MethodScope> {
    let scope = table().get(method)?;
    Some(match scope.as_str() {
        "node" => MethodScope::Node,
        "dynamic" => MethodScope::Dynamic { base: dynamic_base(method) },
        // An operator scope this crate does not know is treated as admin-only.
        other => MethodScope::Operator(intern(other).unwrap_or(scopes::ADMIN)),
    })
}

/// Every method the schema lists, with its raw scope string.
pub fn all_methods() -> impl Iterator<Item = (&'static str, &'static str)> {
    table().iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_entries() {
        assert_eq!(method_scope("health"), Some(MethodScope::Operator(scopes::READ)));
        assert_eq!(method_scope("config.set"), Some(MethodScope::Operator(scopes::ADMIN)));
        assert_eq!(method_scope("node.invoke.result"), Some(MethodScope::Node));
        assert_eq!(method_scope("node.invoke"), Some(MethodScope::Dynamic { base: scopes::WRITE }));
        assert_eq!(method_scope("device.pair.approve"), Some(MethodScope::Operator(scopes::PAIRING)));
        assert_eq!(method_scope("no.such.method"), None);
        assert!(all_methods().count() > 400);
    }
}
