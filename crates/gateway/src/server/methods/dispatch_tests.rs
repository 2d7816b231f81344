//! Every advertised method reaches its handler: dispatched with empty params
//! by a session its requirement admits, none answers "not implemented" or
//! "unknown method".

use std::sync::Arc;

use clawgate_protocol::methods::{method_scope, MethodScope};
use clawgate_protocol::scopes;
use serde_json::json;

use super::*;
use crate::admission::decision::Role;
use crate::admission::RuleId;
use crate::config::{AuthMode, Config};
use crate::server::ServerOptions;
use crate::store::SqliteStore;

fn session(role: Role, held: &[&str]) -> Arc<SessionInfo> {
    Arc::new(SessionInfo {
        conn_id: "c".into(),
        role,
        scopes: held.iter().map(|s| (*s).to_owned()).collect(),
        client: clawgate_protocol::ClientInfo::new("cli", "1", "linux", "cli"),
        client_ip: "127.0.0.1".parse().unwrap(),
        rule: RuleId::LocalOwner,
        connected_at_ms: 0,
        device_id: None,
        token_issued_at_ms: None,
        node: None,
        service: None,
    })
}

/// A session the entry's requirement admits.
fn admitted_by(entry: &MethodEntry) -> Arc<SessionInfo> {
    match entry.requirement {
        Requirement::Scope(MethodScope::Node) => session(Role::Node, &[]),
        _ => session(Role::Operator, &[scopes::ADMIN]),
    }
}

#[tokio::test]
async fn every_advertised_method_reaches_its_handler() {
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    let gw = Gateway::new(Config::new(AuthMode::Token, Some("t"), None), ServerOptions::default(), store);
    let advertised = advertised();
    let listed: Vec<&MethodEntry> = table::all().iter().filter(|e| e.advertised).collect();
    assert_eq!(advertised.len(), listed.len());
    for (entry, name) in listed.into_iter().zip(&advertised) {
        assert_eq!(entry.name, name, "hello-ok lists the table in order");
        assert!(method_scope(entry.name).is_some(), "{} is not a protocol method", entry.name);
        let session = admitted_by(entry);
        assert_eq!(authorize(entry.name, &session), Ok(()), "{} admits nobody", entry.name);
        let answer = serve(&gw, &session, entry.name, Some(json!({}))).await;
        assert!(
            !matches!(answer, Err(RequestError::NotImplemented(_) | RequestError::UnknownMethod(_))),
            "{} is advertised but not routed: {answer:?}",
            entry.name
        );
    }
}

#[test]
fn names_are_unique_and_only_node_invoke_waits() {
    let mut names: Vec<&str> = table::all().iter().map(|e| e.name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "a method is listed twice");
    let waiting: Vec<&str> = table::all().iter().filter(|e| e.long_running).map(|e| e.name).collect();
    assert_eq!(waiting, ["node.invoke"]);
    assert!(is_long_running("node.invoke") && !is_long_running("health") && !is_long_running("no.such"));
}

#[test]
fn upstream_mode_keeps_devices_tokens_and_presence_and_relays_the_rest() {
    for kept in
        ["device.pair.list", "device.pair.approve", "device.token.rotate", "device.token.revoke", "system-presence"]
    {
        assert!(!is_relayed(kept, true), "{kept} stays clawgate's");
    }
    for relayed in ["health", "status", "node.list", "node.invoke", "node.invoke.result", "sessions.list", "no.such"] {
        assert!(is_relayed(relayed, true), "{relayed} is the upstream's");
    }
    for name in ["health", "device.pair.list", "sessions.list", "no.such"] {
        assert!(!is_relayed(name, false), "standalone, nothing is relayed: {name}");
    }
}

/// clawgate's own methods are routed and authorized like the schema's, but
/// hello-ok does not list them: a client learns only protocol methods there.
#[tokio::test]
async fn extensions_are_routed_and_authorized_but_not_advertised() {
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    let gw = Gateway::new(Config::new(AuthMode::Token, Some("t"), None), ServerOptions::default(), store);
    let extensions: Vec<&MethodEntry> = table::all().iter().filter(|e| !e.advertised).collect();
    assert_eq!(extensions.iter().map(|e| e.name).collect::<Vec<_>>(), ["device.pair.unreject", "clawgate.auth.log"]);
    for entry in extensions {
        let scope = if entry.name == "clawgate.auth.log" { scopes::ADMIN } else { scopes::PAIRING };
        assert!(method_scope(entry.name).is_none(), "{} is a protocol method: advertise it", entry.name);
        assert!(!advertised().iter().any(|m| m == entry.name));
        assert_eq!(entry.requirement, Requirement::Scope(MethodScope::Operator(scope)));
        assert_eq!(authorize(entry.name, &session(Role::Operator, &[scope])), Ok(()));
        assert!(authorize(entry.name, &session(Role::Operator, &[scopes::READ])).is_err());
        let answer = serve(&gw, &session(Role::Operator, &[scope]), entry.name, Some(json!({ "bogus": 1 }))).await;
        assert!(matches!(answer, Err(RequestError::InvalidParams { .. })), "{}: {answer:?}", entry.name);
    }
}
