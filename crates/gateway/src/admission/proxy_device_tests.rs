//! Devices of trusted-proxy users: bound to the user who paired them,
//! admitted only with that user and within its identityScopes, approved
//! inline by `proxy-device-auto-approve` when configured.

use std::net::IpAddr;

use clawgate_protocol::ConnectParams;
use serde_json::json;

use super::credential::{Credential, CredentialCheck};
use super::decide::decide;
use super::decision::{Decision, DeviceAction, PairingReason, RefusalKind};
use super::device_proof::{PayloadVersion, VerifiedDevice};
use super::facts::{ConnectFacts, DeviceFact, Locality};
use super::rule_id::RuleId;
use crate::config::{AuthMode, Config, TrustedProxyConfig};
use crate::store::{ApprovedVia, DeviceView, PairedDevice, Role};

const READ: &str = "operator.read";
const WRITE: &str = "operator.write";
const ADMIN: &str = "operator.admin";
const KEY: &str = "key";

fn config(auto: Option<&[&str]>) -> Config {
    let mut c = Config::new(AuthMode::TrustedProxy, None, None);
    c.trusted_proxies = vec!["10.0.0.1".parse().unwrap()];
    let mut tp = TrustedProxyConfig::new("x-forwarded-user", &[]);
    tp.device_auto_approve = auto.map(|s| s.iter().map(|x| (*x).to_owned()).collect());
    c.trusted_proxy = Some(tp);
    c.identity_scopes.insert("alice".into(), vec![READ.into(), WRITE.into()]);
    c.identity_scopes.insert("bob".into(), vec![READ.into()]);
    c
}

fn connect(credential: Credential, proxy_user: Option<&str>, scopes: &[&str]) -> ConnectFacts {
    let v = json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": { "id": "openclaw-control-ui", "version": "1", "platform": "linux", "mode": "webchat" },
        "role": "operator", "scopes": scopes,
    });
    ConnectFacts {
        locality: Locality::Remote { client_ip: IpAddr::from([203, 0, 113, 5]), via_proxy: true },
        origin: None,
        sec_fetch: false,
        listener_port: 18789,
        params: ConnectParams::parse(Some(&v)).unwrap(),
        credential: CredentialCheck::Verified(credential),
        proxy_user: proxy_user.map(Into::into),
        device: DeviceFact::Proven(VerifiedDevice {
            device_id: "ab".repeat(32),
            public_key: [7; 32],
            public_key_b64url: KEY.into(),
            payload_version: PayloadVersion::V3,
        }),
        peer_uid: None,
    }
}

fn user(name: &str, scopes: &[&str]) -> ConnectFacts {
    connect(Credential::ProxyUser { user: name.into(), via_loopback_user: false }, Some(name), scopes)
}

fn paired_to(user: Option<&str>, scopes: &[&str]) -> DeviceView {
    DeviceView {
        generation: 1,
        device: Some(PairedDevice {
            device_id: "ab".repeat(32),
            public_key: KEY.into(),
            display_name: None,
            label: None,
            platform: Some("linux".into()),
            device_family: None,
            client_id: None,
            client_mode: None,
            roles: vec![Role::Operator],
            approved_scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            approved_via: ApprovedVia::Cli,
            created_at_ms: 1,
            approved_at_ms: 1,
            last_seen_at_ms: None,
            remote_ip: None,
            proxy_user: user.map(Into::into),
        }),
        tokens: Vec::new(),
    }
}

fn pairing_reason(d: Decision) -> (PairingReason, Option<String>) {
    match d {
        Decision::PairingRequired(n) => (n.reason, n.proxy_user),
        other => panic!("expected pairing, got {other:?}"),
    }
}

#[test]
fn the_same_user_is_admitted_with_a_token_issued() {
    let view = paired_to(Some("alice"), &[READ, WRITE]);
    match decide(&user("alice", &[READ]), &config(None), Some(&view)).decision {
        Decision::Admit(a) => {
            assert_eq!(a.rule, RuleId::DevicePaired);
            assert_eq!(a.device.unwrap().action, DeviceAction::Paired { issue_token: true });
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn another_user_needs_pairing_with_reason_user_mismatch() {
    let view = paired_to(Some("alice"), &[READ]);
    let (reason, asked_by) = pairing_reason(decide(&user("bob", &[READ]), &config(None), Some(&view)).decision);
    assert_eq!((reason.as_str(), asked_by.as_deref()), ("user-mismatch", Some("bob")));
    // A device the owner paired belongs to no proxy user either.
    let view = paired_to(None, &[READ]);
    let (reason, _) = pairing_reason(decide(&user("bob", &[READ]), &config(None), Some(&view)).decision);
    assert_eq!(reason, PairingReason::UserMismatch);
    // Nor does a device token beside another user (or none) count.
    let token = Credential::DeviceToken {
        device_id: "ab".repeat(32),
        role: Role::Operator,
        scopes: vec![READ.into()],
        issued_at_ms: 1,
    };
    let view = paired_to(Some("alice"), &[READ]);
    for beside in [Some("bob"), None] {
        let f = connect(token.clone(), beside, &[READ]);
        assert_eq!(pairing_reason(decide(&f, &config(None), Some(&view)).decision).0, PairingReason::UserMismatch);
    }
    let f = connect(token, Some("alice"), &[READ]);
    assert!(matches!(decide(&f, &config(None), Some(&view)).decision, Decision::Admit(_)));
}

#[test]
fn identity_scopes_are_the_ceiling_at_every_connect_never_trimmed() {
    // Approved read+write earlier, alice's identityScopes narrowed to read since.
    let view = paired_to(Some("alice"), &[READ, WRITE]);
    let mut narrowed = config(None);
    narrowed.identity_scopes.insert("alice".into(), vec![READ.into()]);
    match decide(&user("alice", &[READ, WRITE]), &narrowed, Some(&view)).decision {
        Decision::Refuse(r) => {
            assert_eq!(r.rule, RuleId::DevicePaired);
            assert_eq!(
                r.kind,
                RefusalKind::ScopesNotGranted { not_granted: vec![WRITE.into()], why: "beyond-identity-scopes" }
            );
        }
        other => panic!("{other:?}"),
    }
    // A new device never opens a request beyond them either.
    match decide(&user("bob", &[READ, ADMIN]), &config(None), None).decision {
        Decision::Refuse(r) => assert_eq!(r.kind.details_code(), "SCOPE_NOT_GRANTED"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn auto_approve_within_its_scopes_and_the_users() {
    let c = config(Some(&[READ, WRITE, ADMIN]));
    match decide(&user("alice", &[READ, WRITE]), &c, None).decision {
        Decision::Admit(a) => {
            assert_eq!(a.rule, RuleId::ProxyDeviceAutoApprove);
            assert_eq!(
                a.device.unwrap().action,
                DeviceAction::ProxyAutoApprove { reason: PairingReason::NotPaired, user: "alice".into() }
            );
        }
        other => panic!("{other:?}"),
    }
    // Beyond deviceAutoApprove.scopes: a pending request instead.
    let c = config(Some(&[READ]));
    assert_eq!(pairing_reason(decide(&user("alice", &[READ, WRITE]), &c, None).decision).0, PairingReason::NotPaired);
    // A scope upgrade of alice's own device is approved inline...
    let c = config(Some(&[READ, WRITE]));
    let view = paired_to(Some("alice"), &[READ]);
    match decide(&user("alice", &[READ, WRITE]), &c, Some(&view)).decision {
        Decision::Admit(a) => assert_eq!(a.rule, RuleId::ProxyDeviceAutoApprove),
        other => panic!("{other:?}"),
    }
    // ...but another user's device is never taken over inline.
    let view = paired_to(Some("bob"), &[READ]);
    assert_eq!(
        pairing_reason(decide(&user("alice", &[READ]), &c, Some(&view)).decision).0,
        PairingReason::UserMismatch
    );
}
