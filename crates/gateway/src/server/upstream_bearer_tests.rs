use std::net::SocketAddr;

use super::*;
use crate::admission::classify_upgrade;
use crate::config::{Config, TrustedProxyConfig};
use crate::server::ServerOptions;
use crate::store::{NewRequest, SqliteStore};

const TOKEN: &str = "gateway-token-for-bearer-tests";
const T0: u64 = 1_700_000_000_000;

fn gateway(config: Config) -> Arc<Gateway> {
    Gateway::new(config, ServerOptions::default(), Arc::new(SqliteStore::open_in_memory().unwrap()))
}

/// The verdict for a request from `peer` with these headers.
fn ask(gw: &Gateway, peer: &str, headers: &[(&str, &str)], bearer: Option<&str>, swap_path: bool) -> CredentialVerdict {
    let peer: SocketAddr = peer.parse().unwrap();
    let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let edge = EdgeFacts::new(peer, 18789, headers.clone());
    let locality = classify_upgrade(&edge, &gw.config()).expect("edge checks pass");
    let target = if swap_path { "/control-ui-config.json" } else { "/v1/models" };
    verdict(gw, &edge, &locality, &CredentialQuery { peer, target, swap_path, bearer, headers: &headers })
}

const LOCAL: &str = "127.0.0.1:50000";
const HOST: (&str, &str) = ("host", "127.0.0.1:18789");

#[test]
fn the_gateway_token_is_clawgates_and_others_are_foreign() {
    let gw = gateway(Config::new(AuthMode::Token, Some(TOKEN), None));
    assert_eq!(ask(&gw, LOCAL, &[HOST], Some(TOKEN), true), CredentialVerdict::Clawgate);
    assert_eq!(ask(&gw, LOCAL, &[HOST], Some(TOKEN), false), CredentialVerdict::Clawgate);
    assert_eq!(ask(&gw, LOCAL, &[HOST], Some("hook-token"), false), CredentialVerdict::Foreign);
    assert_eq!(ask(&gw, LOCAL, &[HOST], Some("wrong"), true), CredentialVerdict::Foreign);
    assert_eq!(ask(&gw, LOCAL, &[HOST], None, true), CredentialVerdict::Foreign);
}

#[test]
fn live_operator_device_and_service_tokens_are_clawgates() {
    let gw = gateway(Config::new(AuthMode::Token, Some(TOKEN), None));
    let id = "ab".repeat(32);
    gw.store.pair_silently(&NewRequest::new(&id, "key", Role::Operator, &["operator.read"]), T0).unwrap();
    let device_token = gw.store.issue_token(&id, Role::Operator, &["operator.read".to_owned()], T0).unwrap();
    assert_eq!(ask(&gw, LOCAL, &[HOST], Some(&device_token), true), CredentialVerdict::Clawgate);
    gw.store.revoke_token(&id, Role::Operator, T0 + 1).unwrap();
    assert_eq!(ask(&gw, LOCAL, &[HOST], Some(&device_token), true), CredentialVerdict::Foreign);

    let service = gw.store.add_service("ci", Role::Operator, &["operator.read".to_owned()], T0).unwrap();
    assert_eq!(ask(&gw, LOCAL, &[HOST], Some(&service.token), false), CredentialVerdict::Clawgate);
    let node = gw.store.add_service("sensor", Role::Node, &[], T0).unwrap();
    assert_eq!(ask(&gw, LOCAL, &[HOST], Some(&node.token), true), CredentialVerdict::Refuse, "node role");
    gw.store.revoke_service("ci", T0 + 2).unwrap();
    assert_eq!(ask(&gw, LOCAL, &[HOST], Some(&service.token), false), CredentialVerdict::Refuse, "revoked");
}

#[test]
fn failures_on_the_credential_routes_lock_the_client_out() {
    let gw = gateway(Config::new(AuthMode::Token, Some(TOKEN), None));
    let remote = "203.0.113.9:40000";
    let host = ("host", "gw.example.test");
    // Elsewhere a foreign bearer (a hook token) is not counted.
    for _ in 0..20 {
        assert_eq!(ask(&gw, remote, &[host], Some("hook-token"), false), CredentialVerdict::Foreign);
    }
    for _ in 0..crate::server::limits::MAX_ATTEMPTS {
        assert_eq!(ask(&gw, remote, &[host], Some("guess"), true), CredentialVerdict::Foreign);
    }
    // Locked: even the right token is refused now, on every route.
    assert_eq!(ask(&gw, remote, &[host], Some(TOKEN), true), CredentialVerdict::Refuse);
    assert_eq!(ask(&gw, remote, &[host], Some("hook-token"), false), CredentialVerdict::Refuse);
    // Another client is not affected.
    assert_eq!(ask(&gw, "203.0.113.10:40000", &[host], Some(TOKEN), true), CredentialVerdict::Clawgate);
}

#[test]
fn a_direct_local_program_is_never_locked_out() {
    let gw = gateway(Config::new(AuthMode::Token, Some(TOKEN), None));
    for _ in 0..30 {
        ask(&gw, LOCAL, &[HOST], Some("typo"), true);
    }
    assert_eq!(ask(&gw, LOCAL, &[HOST], Some(TOKEN), true), CredentialVerdict::Clawgate);
}

#[test]
fn a_trusted_proxy_user_needs_no_bearer_and_a_forged_one_gets_nothing() {
    let mut config = Config::new(AuthMode::TrustedProxy, None, None);
    config.trusted_proxies = vec!["10.0.0.5".parse().unwrap()];
    config.trusted_proxy = Some(TrustedProxyConfig::new("x-forwarded-user", &[]));
    let gw = gateway(config);
    let proxied = [("host", "gw.example.test"), ("x-forwarded-for", "198.51.100.7"), ("x-forwarded-user", "alice")];
    assert_eq!(ask(&gw, "10.0.0.5:1234", &proxied, None, true), CredentialVerdict::Clawgate);
    assert_eq!(ask(&gw, "10.0.0.5:1234", &proxied, Some("stale-device-token"), true), CredentialVerdict::Clawgate);
    // The same header straight from a client is a forgery (the edge refuses
    // forwarding headers from it; the user header alone proves nothing).
    let forged = [("host", "gw.example.test"), ("x-forwarded-user", "alice")];
    let peer: SocketAddr = "198.51.100.7:1234".parse().unwrap();
    let edge = EdgeFacts::new(peer, 18789, forged.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect());
    if let Ok(locality) = classify_upgrade(&edge, &gw.config()) {
        let query = CredentialQuery {
            peer,
            target: "/control-ui-config.json",
            swap_path: true,
            bearer: None,
            headers: &edge.headers,
        };
        assert_eq!(verdict(&gw, &edge, &locality, &query), CredentialVerdict::Foreign);
    }
}

#[test]
fn mode_none_needs_nothing_on_the_credential_routes_only() {
    let gw = gateway(Config::new(AuthMode::None, None, None));
    assert_eq!(ask(&gw, LOCAL, &[HOST], None, true), CredentialVerdict::Clawgate);
    assert_eq!(ask(&gw, LOCAL, &[HOST], Some("anything"), true), CredentialVerdict::Clawgate);
    assert_eq!(ask(&gw, LOCAL, &[HOST], Some("hook-token"), false), CredentialVerdict::Foreign);
}
