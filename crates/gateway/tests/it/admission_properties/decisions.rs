//! Properties of `decide`: every invariant, remote never gains, browsers, credentials.

use super::*;

proptest! {
    #![proptest_config(proptest_config(1500))]

    /// Every invariant of a single decision, on generated localities.
    #[test]
    fn decisions_keep_every_invariant(c in arb_connect(), locality in arb_locality(), config in arb_config()) {
        check_decision(&c.facts(locality), &config, c.view.as_ref())?;
    }

    /// Turning a direct-local connection into a remote one never raises the
    /// outcome (Refuse < PairingRequired < Admit), for any remote address.
    #[test]
    fn remote_never_gains(
        c in arb_connect(),
        ip in arb_peer(),
        via_proxy in any::<bool>(),
        config in arb_config(),
    ) {
        let local = check_decision(&c.facts(Locality::DirectLocal), &config, c.view.as_ref())?;
        let remote = Locality::Remote { client_ip: ip.to_canonical(), via_proxy };
        let remote = check_decision(&c.facts(remote), &config, c.view.as_ref())?;
        prop_assert!(rank(&remote) <= rank(&local), "remote {:?} beats local {:?}", remote, local);
    }
}

pub(super) fn arb_browser_signal() -> impl Strategy<Value = (Option<String>, bool, Option<(String, String)>)> {
    let origins = select(vec![
        "null",
        "",
        "http://localhost:18789",
        "http://127.0.0.1:18789",
        "https://ui.example",
        "http://localhost:3000",
        "http://evil.example",
    ]);
    prop_oneof![
        origins.prop_map(|o| (Some(o.to_owned()), false, None)),
        Just((None, true, None)),
        (select(BROWSER_CLIENT_IDS.to_vec()), select(CLIENT_MODES.to_vec())).prop_map(|(id, mode)| (
            None,
            false,
            Some((id.to_owned(), mode.to_owned()))
        )),
        select(CLIENT_IDS.to_vec()).prop_map(|id| (None, false, Some((id.to_owned(), "webchat".to_owned())))),
    ]
}

proptest! {
    #![proptest_config(proptest_config(800))]

    /// A browser — any Origin (also `null` and empty), any Sec-Fetch-*
    /// header, a browser client id or mode webchat — never reaches
    /// local-owner or the loopback user, even direct-local with the owner's
    /// secret (or as the loopback user) and no device.
    #[test]
    fn browsers_never_reach_local_owner(
        c in arb_connect(),
        (origin, sec_fetch, client) in arb_browser_signal(),
        owner in select(vec![
            Credential::SharedToken,
            Credential::SharedPassword,
            Credential::NoneMode,
            Credential::ProxyUser { user: "svc-user".into(), via_loopback_user: true },
        ]),
        config in arb_config(),
    ) {
        let mut c = c;
        if origin.is_some() {
            c.origin = origin;
        }
        c.sec_fetch |= sec_fetch;
        if let Some((id, mode)) = client {
            c.params.client.id = id;
            c.params.client.mode = mode;
        }
        c.credential = CredentialCheck::Verified(owner);
        c.device = DeviceFact::None;
        c.params.device = None;
        let f = c.facts(Locality::DirectLocal);
        prop_assert!(f.is_browser());
        let d = check_decision(&f, &config, None)?;
        prop_assert!(!NEVER_FOR_BROWSERS.contains(&d.rule()));
    }

    /// Nothing is admitted, and no pairing request opened, without a
    /// verified credential: none presented, a wrong one, or a locked-out address.
    #[test]
    fn no_admission_without_a_credential(
        c in arb_connect(),
        locality in arb_locality(),
        config in arb_config(),
        absent in prop_oneof![
            Just(CredentialCheck::Absent),
            Just(CredentialCheck::Failed(AuthReason::TokenMismatch)),
            Just(CredentialCheck::RateLimited { retry_after_ms: 1000 }),
        ],
    ) {
        let mut c = c;
        c.credential = absent;
        let d = check_decision(&c.facts(locality), &config, c.view.as_ref())?;
        prop_assert!(matches!(d, Decision::Refuse(_)), "not refused without a credential: {:?}", d);
    }
}

proptest! {
    #![proptest_config(proptest_config(800))]

    /// Through the whole pipeline (the edge's locality, the credential
    /// check, the rules): a loopback peer whose socket belongs to a uid
    /// outside `localOwnerUids` is never direct-local and never reaches a
    /// loopback-only rule, and knowing the owner's uid changes nothing.
    #[test]
    fn a_known_foreign_uid_never_yields_local_only_rules(
        c in arb_connect(),
        config in arb_config(),
        foreign in select(FOREIGN_UIDS.to_vec()),
    ) {
        let edge = EdgeFacts::new(SocketAddr::from(([127, 0, 0, 1], 40000)), PORT, vec![
            ("host".to_owned(), format!("localhost:{PORT}")),
        ]);
        let mut c = c;
        c.peer_uid = Some(foreign);
        let f = real_facts(&c, &config, &edge, Locality::DirectLocal);
        prop_assert!(!f.locality.is_direct_local(), "uid {} is direct-local", foreign);
        let d = check_decision(&f, &config, c.view.as_ref())?;
        prop_assert!(!LOOPBACK_ONLY.contains(&d.rule()), "uid {} decided by {}", foreign, d.rule());

        c.peer_uid = Some(OWNER_UID);
        let owner = real_facts(&c, &config, &edge, Locality::DirectLocal);
        c.peer_uid = None;
        let unknown = real_facts(&c, &config, &edge, Locality::DirectLocal);
        prop_assert_eq!(owner.locality, unknown.locality, "the owner's uid is like an unknown one");
        prop_assert_eq!(
            decide(&owner, &config, c.view.as_ref()).decision.rule(),
            decide(&unknown, &config, c.view.as_ref()).decision.rule()
        );
    }
}
