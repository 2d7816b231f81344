//! Coverage: every rule id is reachable, by hand-built connections and by the generators.

use super::*;

pub(super) fn base_params(client: (&str, &str), role: &str, scopes: &[&str]) -> ConnectParams {
    typed_connect_params(client.0, client.1, role, scopes)
}

pub(super) fn facts(
    locality: Locality,
    origin: Option<&str>,
    params: ConnectParams,
    credential: CredentialCheck,
    device: DeviceFact,
) -> ConnectFacts {
    let mut params = params;
    if let DeviceFact::Proven(d) = &device {
        params.device = Some(clawgate_protocol::DeviceParams {
            id: d.device_id.clone(),
            public_key: d.public_key_b64url.clone(),
            signature: "s".into(),
            signed_at: 1,
            nonce: "n".into(),
        });
    }
    ConnectFacts {
        locality,
        peer_uid: None,
        origin: origin.map(str::to_owned),
        sec_fetch: false,
        listener_port: PORT,
        params,
        credential,
        proxy_user: None,
        device,
    }
}

pub(super) fn paired(d: &VerifiedDevice, role: Role, scopes: &[&str]) -> DeviceView {
    DeviceView {
        generation: 1,
        device: Some(
            paired_device(d.device_id.clone(), d.public_key_b64url.clone())
                .roles(&[role])
                .scopes(scopes)
                .platform("linux")
                .build(),
        ),
        tokens: Vec::new(),
    }
}

/// One hand-built connection per implemented rule.
pub(super) fn one_fact_set_per_rule() -> Vec<(RuleId, ConnectFacts, Option<DeviceView>)> {
    let remote = Locality::Remote { client_ip: IpAddr::from([203, 0, 113, 5]), via_proxy: false };
    let local = Locality::DirectLocal;
    let token = || CredentialCheck::Verified(Credential::SharedToken);
    let cli = ("cli", "cli");
    let dev = device(0);
    let mut old_protocol = base_params(cli, "operator", &[]);
    old_protocol.min_protocol = 3;
    old_protocol.max_protocol = 3;
    vec![
        (RuleId::Protocol, facts(local, None, old_protocol, token(), DeviceFact::None), None),
        (
            RuleId::Origin,
            facts(local, Some("http://evil.example"), base_params(cli, "operator", &[]), token(), DeviceFact::None),
            None,
        ),
        (
            RuleId::Credential,
            facts(
                remote,
                None,
                base_params(cli, "operator", &[]),
                CredentialCheck::Failed(AuthReason::TokenMismatch),
                DeviceFact::None,
            ),
            None,
        ),
        (
            RuleId::DeviceProof,
            facts(
                remote,
                None,
                base_params(cli, "operator", &[]),
                token(),
                DeviceFact::Failed(ProofError::SignatureInvalid),
            ),
            None,
        ),
        (
            RuleId::DevicePaired,
            facts(
                remote,
                None,
                base_params(cli, "operator", &["operator.read"]),
                token(),
                DeviceFact::Proven(dev.clone()),
            ),
            Some(paired(&dev, Role::Operator, &["operator.read"])),
        ),
        (
            RuleId::SilentLocalPairing,
            facts(
                local,
                None,
                base_params(cli, "operator", &["operator.read"]),
                token(),
                DeviceFact::Proven(dev.clone()),
            ),
            None,
        ),
        (
            RuleId::PairingRequired,
            facts(remote, None, base_params(cli, "operator", &["operator.read"]), token(), DeviceFact::Proven(dev)),
            None,
        ),
        (
            RuleId::LocalOwner,
            facts(local, None, base_params(cli, "operator", &["operator.admin"]), token(), DeviceFact::None),
            None,
        ),
        (
            RuleId::BrowserNeedsDevice,
            facts(
                local,
                Some("http://localhost:18789"),
                base_params(("openclaw-control-ui", "webchat"), "operator", &["operator.read"]),
                token(),
                DeviceFact::None,
            ),
            None,
        ),
        (RuleId::Scopeless, facts(remote, None, base_params(cli, "operator", &[]), token(), DeviceFact::None), None),
        (
            RuleId::NoIdentity,
            facts(remote, None, base_params(cli, "operator", &["operator.read"]), token(), DeviceFact::None),
            None,
        ),
        (
            RuleId::ServicePrincipal,
            facts(
                remote,
                None,
                base_params(("gateway-client", "backend"), "operator", &["operator.read"]),
                CredentialCheck::Verified(Credential::ServiceToken {
                    principal: "cron".into(),
                    principal_id: "0123456789abcdef".into(),
                    role: Role::Operator,
                    scopes: vec!["operator.read".into()],
                    issued_at_ms: 1,
                }),
                DeviceFact::None,
            ),
            None,
        ),
        (
            RuleId::TrustedProxy,
            facts(
                Locality::Remote { client_ip: IpAddr::from([198, 51, 100, 7]), via_proxy: true },
                None,
                base_params(cli, "operator", &["operator.read"]),
                CredentialCheck::Verified(Credential::ProxyUser { user: "alice".into(), via_loopback_user: false }),
                DeviceFact::None,
            ),
            None,
        ),
        (
            RuleId::ProxyDeviceAutoApprove,
            facts(
                Locality::Remote { client_ip: IpAddr::from([198, 51, 100, 7]), via_proxy: true },
                None,
                base_params(cli, "operator", &["operator.read"]),
                CredentialCheck::Verified(Credential::ProxyUser { user: "alice".into(), via_loopback_user: false }),
                DeviceFact::Proven(device(1)),
            ),
            None,
        ),
        (
            RuleId::TrustedProxyLoopbackUser,
            facts(
                local,
                None,
                base_params(("gateway-client", "backend"), "operator", &["operator.read"]),
                CredentialCheck::Verified(Credential::ProxyUser { user: "alice".into(), via_loopback_user: true }),
                DeviceFact::None,
            ),
            None,
        ),
    ]
}

/// The config each hand-built connection is decided under: token mode,
/// except for the trusted-proxy rules.
pub(super) fn config_for(rule: RuleId) -> Config {
    match rule {
        RuleId::TrustedProxy | RuleId::TrustedProxyLoopbackUser | RuleId::ProxyDeviceAutoApprove => {
            let mut c = Config::new(AuthMode::TrustedProxy, None, Some(PASSWORD));
            c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
            let mut tp = TrustedProxyConfig::new(USER_HEADER, &[]);
            tp.allow_loopback = true;
            tp.loopback_user = Some("alice".into());
            if rule == RuleId::ProxyDeviceAutoApprove {
                tp.device_auto_approve = Some(vec!["operator.read".into()]);
            }
            c.trusted_proxy = Some(tp);
            c.identity_scopes.insert("alice".into(), vec!["operator.read".into()]);
            c
        }
        _ => Config::new(AuthMode::Token, Some(TOKEN), None),
    }
}

#[test]
pub(super) fn every_rule_is_reachable() {
    let mut reached = BTreeSet::new();
    for (expected, f, view) in one_fact_set_per_rule() {
        let config = config_for(expected);
        let d = check_decision(&f, &config, view.as_ref()).unwrap_or_else(|e| panic!("{expected}: {e}"));
        assert_eq!(d.rule(), expected, "the fact set for {expected} reached {}: {d:?}", d.rule());
        reached.insert(expected);
    }
    let expected: BTreeSet<RuleId> = RuleId::ALL.iter().copied().filter(|r| !NOT_YET_IMPLEMENTED.contains(r)).collect();
    assert_eq!(reached, expected, "rules reached vs RuleId::ALL minus {NOT_YET_IMPLEMENTED:?}");
    for r in NOT_YET_IMPLEMENTED {
        assert!(RuleId::ALL.contains(r), "{r} is no longer a rule: drop it from NOT_YET_IMPLEMENTED");
    }
}

/// The generators are good enough to reach every implemented rule on
/// their own (a deterministic sample, so the test is stable).
#[test]
pub(super) fn generators_reach_every_rule() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = (arb_connect(), arb_locality(), arb_config());
    let mut reached = BTreeSet::new();
    let mut outcomes = [0u32; 3];
    for _ in 0..4000 {
        let (c, locality, config) = strategy.new_tree(&mut runner).unwrap().current();
        let d = decide(&c.facts(locality), &config, c.view.as_ref()).decision;
        reached.insert(d.rule());
        outcomes[usize::from(rank(&d))] += 1;
    }
    let expected: BTreeSet<RuleId> = RuleId::ALL.iter().copied().filter(|r| !NOT_YET_IMPLEMENTED.contains(r)).collect();
    assert_eq!(reached, expected);
    assert!(outcomes.iter().all(|n| *n >= 100), "refuse / pairing / admit counts too uneven: {outcomes:?}");
}
