//! `auth explain` on described connections: the same decisions the server makes.

use serde_json::json;

use super::*;
use crate::admission::decision::Decision;
use crate::admission::rule_id::RuleId;
use crate::admission::test_records::{paired_device, token_info};
use crate::store::PairedDevice;

const T: &str = "explain-test-token-0123456789abcdef";

fn cfg() -> Config {
    Config::new(AuthMode::Token, Some(T), None)
}

fn desc(f: impl FnOnce(&mut Description)) -> Description {
    let mut d = Description::default();
    f(&mut d);
    d
}

fn run(d: &Description) -> Explanation {
    explain(d, &cfg(), None, None).unwrap()
}

fn rule(e: &Explanation) -> Option<RuleId> {
    e.decided.as_ref().map(|d| d.decision.rule())
}

fn code(e: &Explanation) -> Option<&'static str> {
    match &e.decided.as_ref()?.decision {
        Decision::Refuse(r) => Some(r.kind.details_code()),
        _ => None,
    }
}

fn paired_view(role: Role, scopes: &[&str], token_scopes: &[&str]) -> (DeviceView, String) {
    let key = [7u8; 32];
    let id = derive_device_id(&key);
    let device = PairedDevice {
        platform: Some("macos".into()),
        client_id: Some("cli".into()),
        client_mode: Some("cli".into()),
        ..paired_device(&id, &encode_public_key(&key), &[role], scopes)
    };
    let token = token_info(&id, role, token_scopes);
    (DeviceView { generation: 3, device: Some(device), tokens: vec![token] }, id)
}

#[test]
fn local_program_with_the_token_is_the_local_owner() {
    let e = run(&desc(|d| d.scopes = vec!["operator.write".into()]));
    assert_eq!(e.edge, Ok(Locality::DirectLocal));
    assert_eq!(rule(&e), Some(RuleId::LocalOwner));
    assert_eq!(outcome(&e), "admit");
    let text = render_text(&e);
    assert!(text.contains("outcome:     admit"), "{text}");
    assert!(text.contains("rule:        local-owner"), "{text}");
    assert!(text.contains("> local-owner"), "{text}");
    let j = render_json(&e);
    assert_eq!(j["outcome"], "admit");
    assert_eq!(j["rule"], "local-owner");
    assert_eq!(j["scopes"], json!(["operator.write"]));
    assert_eq!(j["credential"]["kind"], "shared-token");
    assert_eq!(j["trace"][0]["rule"], "edge");
    let last = j["trace"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last, json!({"rule": "local-owner", "decided": true, "note": last["note"]}));
}

#[test]
fn a_foreign_origin_is_refused_by_the_origin_rule() {
    let e = run(&desc(|d| d.origin = Some("http://evil.example".into())));
    assert_eq!(rule(&e), Some(RuleId::Origin));
    assert_eq!(code(&e), Some("CONTROL_UI_ORIGIN_NOT_ALLOWED"));
    let j = render_json(&e);
    assert_eq!(j["outcome"], "refuse");
    assert_eq!(j["code"], "CONTROL_UI_ORIGIN_NOT_ALLOWED");
    assert!(j["hint"].as_str().unwrap().contains("allowedOrigins"));
}

#[test]
fn a_remote_peer_asking_scopes_has_no_identity() {
    let e = run(&desc(|d| {
        d.peer = Some("203.0.113.5".into());
        d.host = Some("gw.example:18789".into());
        d.scopes = vec!["operator.read".into()];
    }));
    assert_eq!(e.edge, Ok(Locality::Remote { client_ip: "203.0.113.5".parse().unwrap(), via_proxy: false }));
    assert_eq!(rule(&e), Some(RuleId::NoIdentity));
    assert_eq!(code(&e), Some("DEVICE_IDENTITY_REQUIRED"));
    assert!(render_text(&e).contains("remote, client 203.0.113.5"));
}

#[test]
fn forwarding_headers_from_an_untrusted_peer_stop_at_the_edge() {
    let e = run(&desc(|d| d.headers = vec!["X-Forwarded-For: 198.51.100.7".into()]));
    assert_eq!(e.edge.as_ref().unwrap_err().status(), 403);
    assert!(e.decided.is_none() && e.credential.is_none());
    let j = render_json(&e);
    assert_eq!(j["outcome"], "refuse");
    assert_eq!(j["stage"], "edge");
    assert_eq!(j["httpStatus"], 403);
    assert_eq!(j["code"], "proxy_attribution_required");
    assert_eq!(j["trace"].as_array().unwrap().len(), 1);
    let text = render_text(&e);
    assert!(text.contains("HTTP 403 proxy_attribution_required"), "{text}");
}

#[test]
fn credential_kinds_are_checked_by_the_server_check() {
    let wrong = run(&desc(|d| d.credential = CredentialDesc::WrongToken));
    assert_eq!(code(&wrong), Some("AUTH_TOKEN_MISMATCH"));
    assert!(render_text(&wrong).contains("next step:   update_auth_credentials"));
    let in_password_field = run(&desc(|d| d.credential = CredentialDesc::SharedPassword));
    assert_eq!(rule(&in_password_field), Some(RuleId::LocalOwner), "token mode accepts either field");
    let none = run(&desc(|d| {
        d.credential = CredentialDesc::None;
        d.scopes = vec!["operator.read".into()];
    }));
    assert_eq!(rule(&none), Some(RuleId::NoIdentity));
    let mode_none = explain(
        &desc(|d| d.credential = CredentialDesc::WrongToken),
        &Config::new(AuthMode::None, None, None),
        None,
        None,
    )
    .unwrap();
    assert_eq!(rule(&mode_none), Some(RuleId::LocalOwner), "mode none ignores what is sent");
    assert_eq!(render_json(&mode_none)["method"], "none");
}

#[test]
fn a_paired_device_is_read_from_the_view() {
    let (view, id) = paired_view(Role::Operator, &["operator.read"], &["operator.read"]);
    let d = desc(|d| {
        d.device = DeviceDesc::Proven;
        d.device_id = Some(id.clone());
        d.peer = Some("203.0.113.5".into());
        d.credential = CredentialDesc::DeviceToken;
        d.scopes = vec!["operator.read".into()];
    });
    assert_eq!(d.device_to_look_up(), Some(id.clone()));
    let e = explain(&d, &cfg(), Some(&view), None).unwrap();
    assert_eq!(rule(&e), Some(RuleId::DevicePaired));
    assert_eq!(render_json(&e)["method"], "device-token");
    assert!(render_text(&e).contains("keeps its device token"));

    // Asking beyond the token: scope mismatch, never a silent upgrade.
    let mut more = d.clone();
    more.scopes.push("operator.write".into());
    let e = explain(&more, &cfg(), Some(&view), None).unwrap();
    assert_eq!(code(&e), Some("AUTH_SCOPE_MISMATCH"));

    // The shared token from remote asking more: a scope-upgrade request.
    more.credential = CredentialDesc::SharedToken;
    let e = explain(&more, &cfg(), Some(&view), None).unwrap();
    assert_eq!(outcome(&e), "pairing-required");
    let j = render_json(&e);
    assert_eq!(j["reason"], "scope-upgrade");
    assert_eq!(j["approvedScopes"], json!(["operator.read"]));

    // A device token without a live token in the store does not verify.
    let mut other_role = d.clone();
    other_role.role = Some("node".into());
    other_role.scopes.clear();
    let e = explain(&other_role, &cfg(), Some(&view), None).unwrap();
    assert_eq!(code(&e), Some("AUTH_DEVICE_TOKEN_MISMATCH"));

    // Unpaired device, no store: local with the token pairs silently.
    let fresh = desc(|d| d.device = DeviceDesc::Proven);
    assert!(fresh.device_to_look_up().is_some());
    let e = run(&fresh);
    assert_eq!(rule(&e), Some(RuleId::SilentLocalPairing));
    assert!(render_text(&e).contains("paired silently now (not-paired)"));
}

#[test]
fn service_tokens_are_the_named_principal() {
    let principal = ServicePrincipal {
        principal_id: "0123456789abcdef".into(),
        name: "cron".into(),
        role: Role::Operator,
        scopes: vec!["operator.read".into()],
        created_at_ms: 1,
        rotated_at_ms: None,
        revoked_at_ms: None,
        last_used_at_ms: None,
    };
    let d = desc(|d| {
        d.credential = CredentialDesc::ServiceToken;
        d.service = Some("cron".into());
        d.peer = Some("203.0.113.5".into());
        d.scopes = vec!["operator.read".into()];
    });
    let e = explain(&d, &cfg(), None, Some(&principal)).unwrap();
    assert_eq!(rule(&e), Some(RuleId::ServicePrincipal));
    assert_eq!(render_json(&e)["credential"]["kind"], "service-token");
    assert!(render_text(&e).contains("service principal cron (0123456789abcdef)"), "{}", render_text(&e));

    let mut more = d.clone();
    more.scopes.push("operator.admin".into());
    let e = explain(&more, &cfg(), None, Some(&principal)).unwrap();
    assert_eq!(code(&e), Some("SCOPE_NOT_GRANTED"));

    let unknown = explain(&d, &cfg(), None, None).unwrap();
    assert_eq!(code(&unknown), Some("AUTH_SERVICE_TOKEN_INVALID"));
    let revoked = ServicePrincipal { revoked_at_ms: Some(2), ..principal };
    let e = explain(&d, &cfg(), None, Some(&revoked)).unwrap();
    assert_eq!(code(&e), Some("AUTH_SERVICE_TOKEN_INVALID"));
}

#[test]
fn trusted_proxy_headers_are_read_like_the_server_reads_them() {
    let mut c = Config::new(AuthMode::TrustedProxy, None, Some("pw"));
    c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    c.trusted_proxy = Some(crate::config::TrustedProxyConfig::new("X-Auth-User", &[]));
    c.identity_scopes.insert("alice".into(), vec!["operator.read".into()]);
    let through_proxy = desc(|d| {
        d.peer = Some("10.0.0.2".into());
        d.host = Some("gw.example".into());
        d.credential = CredentialDesc::None;
        d.headers = vec!["X-Forwarded-For: 198.51.100.7".into(), "X-Auth-User: alice".into()];
        d.scopes = vec!["operator.read".into()];
    });
    let e = explain(&through_proxy, &c, None, None).unwrap();
    assert_eq!(rule(&e), Some(RuleId::TrustedProxy));
    assert_eq!(render_json(&e)["locality"]["viaProxy"], true);

    // The same header from anyone else is a forgery, refused at the edge.
    let mut forged = through_proxy.clone();
    forged.peer = Some("127.0.0.1".into());
    forged.host = None;
    forged.headers = vec!["X-Auth-User: alice".into()];
    let e = explain(&forged, &c, None, None).unwrap();
    assert_eq!(e.edge.as_ref().unwrap_err().code(), "trusted_proxy_untrusted_source");
}

#[test]
fn failed_proofs_and_bad_params() {
    let e = run(&desc(|d| d.device = DeviceDesc::Failed));
    assert_eq!(rule(&e), Some(RuleId::DeviceProof));
    assert_eq!(code(&e), Some("DEVICE_AUTH_SIGNATURE_INVALID"));
    assert!(explain(&desc(|d| d.client_id = Some("nope".into())), &cfg(), None, None)
        .unwrap_err()
        .contains("client.id"));
    assert!(explain(&desc(|d| d.peer = Some("localhost".into())), &cfg(), None, None).is_err());
    assert!(explain(&desc(|d| d.headers = vec!["no-colon".into()]), &cfg(), None, None).is_err());
    let bad_role = run(&desc(|d| d.role = Some("admin".into())));
    assert_eq!(code(&bad_role), Some("INVALID_ROLE"));
}

#[test]
fn descriptions_parse_from_json() {
    let d = Description::from_json(
        r#"{"peer":"[::1]:4000","host":"localhost","origin":"null","headers":["Sec-Fetch-Mode: websocket"],
            "clientId":"openclaw-tui","client-mode":"ui","role":"operator","scopes":["operator.read"],
            "credential":"shared-password","device":"none"}"#,
    )
    .unwrap();
    assert_eq!(d.client_id.as_deref(), Some("openclaw-tui"));
    assert_eq!(d.client_mode.as_deref(), Some("ui"));
    assert_eq!(d.credential, CredentialDesc::SharedPassword);
    let e = run(&d);
    assert_eq!(e.peer, "[::1]:4000".parse().unwrap());
    assert_eq!(rule(&e), Some(RuleId::Origin), "Origin null is foreign");
    let err = Description::from_json(r#"{"peer":"127.0.0.1","tokn":"x"}"#).unwrap_err();
    assert!(err.contains("tokn"), "{err}");
    assert_eq!("device-token".parse::<CredentialDesc>(), Ok(CredentialDesc::DeviceToken));
    assert_eq!("service-token".parse::<CredentialDesc>(), Ok(CredentialDesc::ServiceToken));
    assert!("owner".parse::<CredentialDesc>().is_err());
    assert_eq!("proven".parse::<DeviceDesc>(), Ok(DeviceDesc::Proven));
}

#[test]
fn headers_parse() {
    assert_eq!(parse_header("X-Forwarded-For: 1.2.3.4").unwrap(), ("X-Forwarded-For".into(), "1.2.3.4".into()));
    assert_eq!(parse_header("Origin:").unwrap(), ("Origin".into(), String::new()));
    assert!(parse_header(": x").is_err());
}

#[test]
fn a_proxy_users_device_and_the_listener_are_described_like_the_server_sees_them() {
    let mut c = Config::new(AuthMode::TrustedProxy, None, Some("pw"));
    c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    c.trusted_proxy = Some(crate::config::TrustedProxyConfig::new("X-Auth-User", &[]));
    c.identity_scopes.insert("bob".into(), vec!["operator.read".into()]);
    let (mut view, id) = paired_view(Role::Operator, &["operator.read"], &["operator.read"]);
    if let Some(d) = view.device.as_mut() {
        d.proxy_user = Some("alice".into());
    }
    let bob = desc(|d| {
        d.peer = Some("10.0.0.2".into());
        d.host = Some("gw.example".into());
        d.credential = CredentialDesc::None;
        d.headers = vec!["X-Forwarded-For: 198.51.100.7".into(), "X-Auth-User: bob".into()];
        d.scopes = vec!["operator.read".into()];
        d.device = DeviceDesc::Proven;
        d.device_id = Some(id.clone());
    });
    let e = explain(&bob, &c, Some(&view), None).unwrap();
    match &e.decided.as_ref().unwrap().decision {
        Decision::PairingRequired(n) => assert_eq!(n.reason.as_str(), "user-mismatch"),
        other => panic!("{other:?}"),
    }
    let text = render_text(&e);
    assert!(text.contains("proxy user:  bob"), "{text}");
    assert!(text.contains("paired to proxy user alice"), "{text}");
    let j = render_json(&e);
    assert_eq!((j["proxyUser"].as_str(), j["deviceProxyUser"].as_str()), (Some("bob"), Some("alice")));

    // A loopback program with the token on a `remote` listener: no local-owner.
    let e = run(&desc(|d| {
        d.listener = Some("remote".into());
        d.scopes = vec!["operator.read".into()];
    }));
    assert_eq!(rule(&e), Some(RuleId::NoIdentity));
    assert_eq!(render_json(&e)["listener"], "remote");
    assert!(explain(&desc(|d| d.listener = Some("lan".into())), &cfg(), None, None).is_err());
}
