//! `decide` and the credential check on service principals, trusted-proxy
//! users and `gateway.trustedLocalServices`: every new rule and refusal.

use std::net::IpAddr;

use clawgate_protocol::ConnectParams;

use super::credential::{AuthReason, Credential, CredentialCheck};
use super::credential_check::check_connect_credential;
use super::decide::decide;
use super::decision::{Decision, Principal, RefusalKind, Role};
use super::device_proof::{PayloadVersion, VerifiedDevice};
use super::facts::{ConnectFacts, DeviceFact, Locality};
use super::ingress::EdgeFacts;
use super::lookups::Lookups;
use super::rule_id::RuleId;
use super::test_records::connect_params;
use crate::config::{AuthMode, Config, TrustedLocalService, TrustedProxyConfig};
use crate::store::{DeviceView, ServicePrincipal, ServiceTokenCheck, StoreError, TokenCheck};

const READ: &str = "operator.read";
const WRITE: &str = "operator.write";
const ADMIN: &str = "operator.admin";

fn remote() -> Locality {
    Locality::Remote { client_ip: IpAddr::from([203, 0, 113, 5]), via_proxy: true }
}

fn params(client: (&str, &str), role: &str, scopes: &[&str]) -> ConnectParams {
    connect_params(client.0, client.1, role, scopes)
}

fn facts(locality: Locality, origin: Option<&str>, p: ConnectParams, credential: CredentialCheck) -> ConnectFacts {
    ConnectFacts {
        locality,
        peer_uid: None,
        origin: origin.map(Into::into),
        sec_fetch: false,
        listener_port: 18789,
        params: p,
        credential,
        proxy_user: None,
        device: DeviceFact::None,
    }
}

fn service(role: Role, scopes: &[&str]) -> CredentialCheck {
    CredentialCheck::Verified(Credential::ServiceToken {
        principal: "cron".into(),
        principal_id: "0123456789abcdef".into(),
        role,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        issued_at_ms: 1,
    })
}

fn proxy_user(user: &str, via_loopback_user: bool) -> CredentialCheck {
    CredentialCheck::Verified(Credential::ProxyUser { user: user.into(), via_loopback_user })
}

fn token_cfg() -> Config {
    Config::new(AuthMode::Token, Some("t"), None)
}

fn proxy_cfg() -> Config {
    let mut c = Config::new(AuthMode::TrustedProxy, None, Some("pw"));
    c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let mut tp = TrustedProxyConfig::new("x-forwarded-user", &["x-auth-request-email"]);
    tp.allow_loopback = true;
    tp.loopback_user = Some("svc".into());
    c.trusted_proxy = Some(tp);
    c.identity_scopes.insert("alice".into(), vec![READ.into(), WRITE.into()]);
    c.identity_scopes.insert("svc".into(), vec![READ.into()]);
    c
}

fn proven() -> DeviceFact {
    DeviceFact::Proven(VerifiedDevice {
        device_id: "ab".repeat(32),
        public_key: [7; 32],
        public_key_b64url: "key".into(),
        payload_version: PayloadVersion::V3,
    })
}

fn refusal(d: Decision) -> (RefusalKind, RuleId) {
    match d {
        Decision::Refuse(r) => (r.kind, r.rule),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn admitted(d: &Decision) -> (RuleId, &Principal, Role, &[String]) {
    match d {
        Decision::Admit(a) => (a.rule, &a.principal, a.role, &a.scopes),
        other => panic!("expected an admission, got {other:?}"),
    }
}

// ---- service-principal ------------------------------------------------------

#[test]
fn a_service_token_admits_its_role_and_requested_scopes_from_anywhere() {
    for locality in [remote(), Locality::DirectLocal] {
        let f = facts(
            locality,
            None,
            params(("gateway-client", "backend"), "operator", &[READ]),
            service(Role::Operator, &[WRITE]),
        );
        let d = decide(&f, &token_cfg(), None).decision;
        let (rule, principal, role, scopes) = admitted(&d);
        assert_eq!(rule, RuleId::ServicePrincipal);
        assert_eq!(principal, &Principal::Service { name: "cron".into(), principal_id: "0123456789abcdef".into() });
        assert_eq!((role, scopes), (Role::Operator, &[READ.to_owned()][..]), "exactly what was asked");
    }
}

#[test]
fn a_service_token_never_counts_as_the_owners_secret() {
    // H1: a read-only service token on loopback asking for admin is refused
    // by service-principal, never admitted by local-owner.
    let f = facts(
        Locality::DirectLocal,
        None,
        params(("cli", "cli"), "operator", &[READ, ADMIN]),
        service(Role::Operator, &[READ]),
    );
    let decided = decide(&f, &token_cfg(), None);
    let (kind, rule) = refusal(decided.decision.clone());
    assert_eq!(rule, RuleId::ServicePrincipal);
    assert_eq!(
        kind,
        RefusalKind::ScopesNotGranted { not_granted: vec![ADMIN.into()], why: "beyond-service-principal-scopes" }
    );
    assert_eq!(kind.details_code(), "SCOPE_NOT_GRANTED");
    assert!(decided.trace.iter().any(|s| s.rule == RuleId::LocalOwner && !s.decided));

    // Nor does it make a node of an operator principal, locally or not.
    let f = facts(
        Locality::DirectLocal,
        None,
        params(("node-host", "node"), "node", &[]),
        service(Role::Operator, &[READ]),
    );
    let (kind, rule) = refusal(decide(&f, &token_cfg(), None).decision);
    assert_eq!(rule, RuleId::ServicePrincipal);
    assert_eq!(kind.details_code(), "ROLE_NOT_GRANTED");
    assert_eq!(
        kind,
        RefusalKind::RoleNotGranted {
            requested: Role::Node,
            allowed: vec![Role::Operator],
            why: "service-principal-role"
        }
    );
}

#[test]
fn a_node_principal_is_a_node_without_scopes() {
    let f = facts(remote(), None, params(("node-host", "node"), "node", &[]), service(Role::Node, &[]));
    let d = decide(&f, &token_cfg(), None).decision;
    assert_eq!(admitted(&d).0, RuleId::ServicePrincipal);
    assert_eq!(admitted(&d).2, Role::Node);
    let f = facts(remote(), None, params(("node-host", "node"), "node", &[READ]), service(Role::Node, &[]));
    let (kind, _) = refusal(decide(&f, &token_cfg(), None).decision);
    assert_eq!(
        kind,
        RefusalKind::ScopesNotGranted { not_granted: vec![READ.into()], why: "beyond-service-principal-scopes" }
    );
}

#[test]
fn a_service_token_with_a_device_block_is_refused() {
    for locality in [Locality::DirectLocal, remote()] {
        let mut f =
            facts(locality, None, params(("cli", "cli"), "operator", &[READ]), service(Role::Operator, &[ADMIN]));
        f.device = proven();
        let (kind, rule) = refusal(decide(&f, &token_cfg(), None).decision);
        assert_eq!((kind.details_code(), rule), ("SERVICE_TOKEN_WITH_DEVICE", RuleId::ServicePrincipal));
    }
}

#[test]
fn a_browser_page_with_a_service_token_still_passes_the_origin_rule_first() {
    let f = facts(
        remote(),
        Some("https://evil.example"),
        params(("gateway-client", "backend"), "operator", &[READ]),
        service(Role::Operator, &[READ]),
    );
    assert_eq!(refusal(decide(&f, &token_cfg(), None).decision).1, RuleId::Origin);
}

// ---- trusted-proxy ------------------------------------------------------------

#[test]
fn a_proxy_user_gets_exactly_what_it_asks_within_its_identity_scopes() {
    let c = proxy_cfg();
    let f =
        facts(remote(), None, params(("openclaw-tui", "ui"), "operator", &[READ, WRITE]), proxy_user("alice", false));
    let d = decide(&f, &c, None).decision;
    let (rule, principal, role, scopes) = admitted(&d);
    assert_eq!((rule, role), (RuleId::TrustedProxy, Role::Operator));
    assert_eq!(principal, &Principal::ProxyUser { user: "alice".into() });
    assert_eq!(scopes, [READ.to_owned(), WRITE.to_owned()]);

    // H16: never silently trimmed.
    let f = facts(remote(), None, params(("cli", "cli"), "operator", &[READ, ADMIN]), proxy_user("alice", false));
    let (kind, rule) = refusal(decide(&f, &c, None).decision);
    assert_eq!(rule, RuleId::TrustedProxy);
    assert_eq!(kind, RefusalKind::ScopesNotGranted { not_granted: vec![ADMIN.into()], why: "beyond-identity-scopes" });

    // A user without an identityScopes entry (and no "*") gets no scopes.
    let f = facts(remote(), None, params(("cli", "cli"), "operator", &[READ]), proxy_user("bob", false));
    assert_eq!(refusal(decide(&f, &c, None).decision).0.details_code(), "SCOPE_NOT_GRANTED");
    let f = facts(remote(), None, params(("cli", "cli"), "operator", &[]), proxy_user("bob", false));
    assert_eq!(admitted(&decide(&f, &c, None).decision).0, RuleId::TrustedProxy);

    // Proxy users are operators.
    let f = facts(remote(), None, params(("node-host", "node"), "node", &[]), proxy_user("alice", false));
    let (kind, _) = refusal(decide(&f, &c, None).decision);
    assert_eq!(
        kind,
        RefusalKind::RoleNotGranted {
            requested: Role::Node,
            allowed: vec![Role::Operator],
            why: "proxy-users-are-operators"
        }
    );
}

#[test]
fn the_loopback_user_has_its_own_rule_and_never_reaches_local_owner() {
    let c = proxy_cfg();
    let f = facts(Locality::DirectLocal, None, params(("cli", "cli"), "operator", &[READ]), proxy_user("svc", true));
    let d = decide(&f, &c, None).decision;
    assert_eq!(admitted(&d).0, RuleId::TrustedProxyLoopbackUser);
    // Asking beyond its identityScopes: refused, not local-owner's "anything".
    let f = facts(Locality::DirectLocal, None, params(("cli", "cli"), "operator", &[ADMIN]), proxy_user("svc", true));
    let decided = decide(&f, &c, None);
    let (kind, rule) = refusal(decided.decision.clone());
    assert_eq!((kind.details_code(), rule), ("SCOPE_NOT_GRANTED", RuleId::TrustedProxyLoopbackUser));
    // A browser never gets it.
    let f = facts(
        Locality::DirectLocal,
        Some("http://localhost:18789"),
        params(("openclaw-control-ui", "webchat"), "operator", &[READ]),
        proxy_user("svc", true),
    );
    assert_eq!(refusal(decide(&f, &c, None).decision).1, RuleId::BrowserNeedsDevice);
    // Nor does a connection that is not direct-local.
    let f = facts(remote(), None, params(("cli", "cli"), "operator", &[READ]), proxy_user("svc", true));
    assert_eq!(refusal(decide(&f, &c, None).decision).1, RuleId::NoIdentity);
}

#[test]
fn a_proxy_user_with_a_new_device_waits_for_approval_bound_to_that_user() {
    let mut f = facts(remote(), None, params(("cli", "cli"), "operator", &[READ]), proxy_user("alice", false));
    f.device = proven();
    match decide(&f, &proxy_cfg(), None).decision {
        Decision::PairingRequired(need) => assert_eq!(need.proxy_user.as_deref(), Some("alice")),
        other => panic!("expected pairing, got {other:?}"),
    }
}

// ---- trustedLocalServices -----------------------------------------------------

fn with_services(list: Vec<TrustedLocalService>) -> Config {
    let mut c = token_cfg();
    c.trusted_local_services = Some(list);
    c
}

fn entry(id: &str, mode: &str, roles: &[Role], max: Option<&[&str]>) -> TrustedLocalService {
    TrustedLocalService {
        client_id: id.into(),
        mode: mode.into(),
        roles: roles.to_vec(),
        max_scopes: max.map(|m| m.iter().map(|s| (*s).to_owned()).collect()),
    }
}

fn owner() -> CredentialCheck {
    CredentialCheck::Verified(Credential::SharedToken)
}

#[test]
fn trusted_local_services_narrow_local_owner_and_refuse_above_the_ceiling() {
    let c = with_services(vec![
        entry("gateway-client", "backend", &[Role::Operator], Some(&[WRITE])),
        entry("node-host", "node", &[Role::Node], None),
    ]);
    let local =
        |client, role, scopes: &[&str]| facts(Locality::DirectLocal, None, params(client, role, scopes), owner());

    // Within the ceiling (write implies read): admitted with exactly the request.
    let d = decide(&local(("gateway-client", "backend"), "operator", &[READ, WRITE]), &c, None).decision;
    assert_eq!(admitted(&d).0, RuleId::LocalOwner);
    assert_eq!(admitted(&d).3, [READ.to_owned(), WRITE.to_owned()]);

    // Above it: refused with the ceiling named, never trimmed.
    let (kind, rule) =
        refusal(decide(&local(("gateway-client", "backend"), "operator", &[WRITE, ADMIN]), &c, None).decision);
    assert_eq!(rule, RuleId::LocalOwner);
    assert_eq!(kind.details_code(), "LOCAL_SERVICE_SCOPE_CEILING");
    assert_eq!(
        kind,
        RefusalKind::LocalServiceCeiling {
            client_id: "gateway-client".into(),
            mode: "backend".into(),
            not_granted: vec![ADMIN.into()],
            max_scopes: vec![WRITE.into()],
        }
    );

    // A role the entry does not list.
    let (kind, _) = refusal(decide(&local(("gateway-client", "backend"), "node", &[]), &c, None).decision);
    assert_eq!(kind.details_code(), "ROLE_NOT_GRANTED");

    // A listed node service.
    let d = decide(&local(("node-host", "node"), "node", &[]), &c, None).decision;
    assert_eq!((admitted(&d).0, admitted(&d).2), (RuleId::LocalOwner, Role::Node));

    // Not listed: local-owner does not apply; the refusal says why.
    let (kind, rule) = refusal(decide(&local(("cli", "cli"), "operator", &[READ]), &c, None).decision);
    assert_eq!(rule, RuleId::NoIdentity);
    assert_eq!((kind.details_code(), kind.reason()), ("DEVICE_IDENTITY_REQUIRED", "local-service-not-listed"));
    // …yet a scopeless probe is still a probe.
    assert_eq!(admitted(&decide(&local(("cli", "cli"), "operator", &[]), &c, None).decision).0, RuleId::Scopeless);

    // An empty list lets no local program use local-owner.
    let none = with_services(Vec::new());
    assert_eq!(
        refusal(decide(&local(("gateway-client", "backend"), "operator", &[READ]), &none, None).decision).1,
        RuleId::NoIdentity
    );
}

// ---- the credential check -------------------------------------------------------

fn edge(peer: &str, headers: &[(&str, &str)]) -> EdgeFacts {
    EdgeFacts::new(
        peer.parse().unwrap(),
        18789,
        headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    )
}

fn auth(token: Option<&str>, password: Option<&str>) -> clawgate_protocol::AuthParams {
    clawgate_protocol::AuthParams {
        token: token.map(Into::into),
        password: password.map(Into::into),
        ..Default::default()
    }
}

fn principal() -> ServicePrincipal {
    ServicePrincipal {
        principal_id: "0123456789abcdef".into(),
        name: "cron".into(),
        role: Role::Operator,
        scopes: vec![READ.into()],
        created_at_ms: 5,
        rotated_at_ms: None,
        revoked_at_ms: None,
        last_used_at_ms: None,
    }
}

fn check(
    a: Option<&clawgate_protocol::AuthParams>,
    c: &Config,
    e: &EdgeFacts,
    l: &Locality,
    svc: ServiceTokenCheck,
) -> CredentialCheck {
    check_connect_credential(a, c, e, l, None, Some(Role::Operator), &mut OneService(svc)).unwrap()
}

/// A store that knows no device and answers every service token alike.
struct OneService(ServiceTokenCheck);

impl Lookups for OneService {
    fn device_token(&mut self, _: &str, _: Role, _: &str) -> Result<TokenCheck, StoreError> {
        Ok(TokenCheck::Missing)
    }

    fn service_token(&mut self, _: &str) -> Result<ServiceTokenCheck, StoreError> {
        Ok(self.0.clone())
    }

    fn device_view(&mut self, _: &str) -> Result<DeviceView, StoreError> {
        Ok(DeviceView { generation: 0, device: None, tokens: Vec::new() })
    }
}

#[test]
fn service_tokens_are_checked_in_auth_token_only_and_fail_alike() {
    let c = token_cfg();
    let e = edge("203.0.113.5:1", &[]);
    let t = "cgs_0123456789abcdef_secret";
    let ok = check(Some(&auth(Some(t), None)), &c, &e, &remote(), ServiceTokenCheck::Valid(principal()));
    assert_eq!(
        ok,
        CredentialCheck::Verified(Credential::ServiceToken {
            principal: "cron".into(),
            principal_id: "0123456789abcdef".into(),
            role: Role::Operator,
            scopes: vec![READ.into()],
            issued_at_ms: 5,
        })
    );
    for bad in [
        ServiceTokenCheck::Unknown,
        ServiceTokenCheck::Mismatch,
        ServiceTokenCheck::Revoked,
        ServiceTokenCheck::Malformed,
    ] {
        let r = check(Some(&auth(Some(t), None)), &c, &e, &remote(), bad);
        assert_eq!(r, CredentialCheck::Failed(AuthReason::ServiceTokenInvalid));
    }
    assert!(AuthReason::ServiceTokenInvalid.counts_as_failure());
    assert_eq!(AuthReason::ServiceTokenInvalid.details_code(), "AUTH_SERVICE_TOKEN_INVALID");
    // In auth.password it is not a service token: a wrong shared secret.
    let r = check(Some(&auth(None, Some(t))), &c, &e, &remote(), ServiceTokenCheck::Valid(principal()));
    assert_eq!(r, CredentialCheck::Failed(AuthReason::TokenMismatch));
    // The shared token itself, should it start with the prefix, stays the shared token.
    let odd = Config::new(AuthMode::Token, Some(t), None);
    let r = check(Some(&auth(Some(t), None)), &odd, &e, &remote(), ServiceTokenCheck::Unknown);
    assert_eq!(r, CredentialCheck::Verified(Credential::SharedToken));
}

#[test]
fn trusted_proxy_mode_credentials() {
    let c = proxy_cfg();
    let full = [("x-forwarded-user", "alice"), ("x-auth-request-email", "a@example.com")];
    let from_proxy = edge("127.0.0.1:1", &full);
    assert_eq!(
        check(None, &c, &from_proxy, &remote(), ServiceTokenCheck::Unknown),
        CredentialCheck::Verified(Credential::ProxyUser { user: "alice".into(), via_loopback_user: false })
    );
    let local = edge("127.0.0.2:1", &[]);
    assert_eq!(
        check(None, &c, &local, &Locality::DirectLocal, ServiceTokenCheck::Unknown),
        CredentialCheck::Verified(Credential::ProxyUser { user: "svc".into(), via_loopback_user: true })
    );
    // The password fallback: direct-local callers only, and a wrong one is refused.
    assert_eq!(
        check(Some(&auth(None, Some("pw"))), &c, &local, &Locality::DirectLocal, ServiceTokenCheck::Unknown),
        CredentialCheck::Verified(Credential::SharedPassword)
    );
    assert_eq!(
        check(Some(&auth(None, Some("nope"))), &c, &local, &Locality::DirectLocal, ServiceTokenCheck::Unknown),
        CredentialCheck::Failed(AuthReason::PasswordMismatch)
    );
    let remote_edge = edge("192.0.2.9:1", &[]);
    assert_eq!(
        check(Some(&auth(None, Some("pw"))), &c, &remote_edge, &remote(), ServiceTokenCheck::Unknown),
        CredentialCheck::Failed(AuthReason::TrustedProxyUntrustedSource)
    );
    // No token fallback in this mode (a service token is not the shared token).
    assert_eq!(
        check(Some(&auth(Some("pw"), None)), &c, &remote_edge, &remote(), ServiceTokenCheck::Unknown),
        CredentialCheck::Failed(AuthReason::TrustedProxyUntrustedSource)
    );
    assert_eq!(
        check(
            Some(&auth(Some("cgs_0123456789abcdef_x"), None)),
            &c,
            &remote_edge,
            &remote(),
            ServiceTokenCheck::Valid(principal())
        )
        .verified()
        .map(Credential::kind_name),
        Some("service-token")
    );
}
