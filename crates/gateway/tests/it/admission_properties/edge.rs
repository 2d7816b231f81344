//! Properties of the HTTP edge (`classify_upgrade`), and of the edge then the decision.

use super::*;

/// Header names that are proxy evidence, in the form proxies send them.
pub(super) const EVIDENCE: &[&str] = &[
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Anything",
    "Forwarded",
    "X-Real-IP",
    "Via",
    "CF-Connecting-IP",
    "True-Client-IP",
    "X-Client-IP",
    "X-Cluster-Client-IP",
    "Fastly-Client-IP",
    "X-Envoy-External-Address",
    "X-Original-Forwarded-For",
    "CDN-Loop",
];

pub(super) fn arb_case(name: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), name.len()).prop_map(move |upper| {
        name.chars().zip(upper).map(|(c, u)| if u { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect()
    })
}

pub(super) fn arb_evidence_header() -> impl Strategy<Value = (String, String)> {
    (select(EVIDENCE.to_vec()).prop_flat_map(arb_case), select(vec!["1.2.3.4", "", "unknown", "127.0.0.1", "a, b"]))
        .prop_map(|(n, v)| (n, v.to_owned()))
}

/// Headers that never change a classification.
pub(super) fn arb_other_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let names = vec!["User-Agent", "Sec-WebSocket-Key", "Sec-Fetch-Mode", "Cookie", "Accept", "X-Request-Id"];
    prop::collection::vec((select(names), "[a-z0-9]{0,8}"), 0..3)
        .prop_map(|v| v.into_iter().map(|(n, val)| (n.to_owned(), val)).collect())
}

/// The trusted-proxy identity headers (user and required), in random case.
pub(super) fn arb_identity_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let user =
        (arb_case(USER_HEADER), select(vec!["alice", "bob", "svc-user", " ", ""])).prop_map(|(n, v)| (n, v.to_owned()));
    let required = arb_case(REQUIRED_HEADER).prop_map(|n| (n, "a@example.com".to_owned()));
    (prop::option::of(user), prop::option::of(required)).prop_map(|(u, r)| u.into_iter().chain(r).collect())
}

pub(super) fn edge(peer: IpAddr, headers: Vec<(String, String)>) -> EdgeFacts {
    EdgeFacts::new(SocketAddr::new(peer, 50_000), PORT, headers)
}

/// One X-Forwarded-For hop: an address in some form, or junk.
pub(super) fn arb_hop() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => arb_peer().prop_map(|ip| ip.to_string()),
        1 => arb_v4().prop_map(|ip| format!("{ip}:443")),
        1 => arb_peer().prop_map(|ip| format!("[{}]", ip.to_canonical())),
        1 => select(vec!["unknown", "_obf", "127.1", "2130706433", "host.example", "0x7f.0.0.1", ""])
            .prop_map(str::to_owned),
    ]
}

proptest! {
    #![proptest_config(proptest_config(1000))]

    /// A forwarding header from a socket that is not a trusted proxy is
    /// refused with 403, whatever else the request carries.
    #[test]
    fn forwarding_headers_need_a_trusted_proxy(
        peer in arb_peer(),
        host in arb_host(),
        origin in arb_origin(),
        evidence in prop::collection::vec(arb_evidence_header(), 1..3),
        others in arb_other_headers(),
        config in arb_config(),
    ) {
        prop_assume!(!config.is_trusted_proxy(peer));
        let mut headers = vec![("Host".to_owned(), host)];
        headers.extend(origin.map(|o| ("Origin".to_owned(), o)));
        headers.extend(others);
        headers.extend(evidence);
        let r = classify_upgrade(&edge(peer, headers), &config);
        prop_assert_eq!(r.as_ref().map_err(|e| e.status()), Err(403), "{:?}", r);
    }

    /// In trusted-proxy mode, the user header or a required header from a
    /// socket that is not a trusted proxy is a forgery: 403 at the edge.
    #[test]
    fn identity_headers_need_a_trusted_proxy(
        peer in arb_peer(),
        host in arb_host(),
        identity in arb_identity_headers(),
        others in arb_other_headers(),
        config in arb_config(),
        tp in arb_trusted_proxy(),
    ) {
        let configured: Vec<&str> = tp.identity_headers().collect();
        let sends_one = identity.iter().any(|(n, _)| configured.contains(&n.to_ascii_lowercase().as_str()));
        prop_assume!(sends_one && !config.is_trusted_proxy(peer));
        let mut config = config;
        config.auth_mode = AuthMode::TrustedProxy;
        config.trusted_proxy = Some(tp);
        let mut headers = vec![("Host".to_owned(), host)];
        headers.extend(others);
        headers.extend(identity);
        let r = classify_upgrade(&edge(peer, headers), &config);
        prop_assert_eq!(r.as_ref().map_err(|e| e.status()), Err(403), "{:?}", r);
    }

    /// An identity header (user or required) sent twice is refused (400),
    /// even from a trusted proxy: one that appends rather than replaces
    /// would let the client choose which line counts.
    #[test]
    fn duplicate_identity_headers_are_refused(
        host in arb_host(),
        identity in arb_identity_headers(),
        twice in any::<prop::sample::Index>(),
        second_case in any::<bool>(),
        tp in arb_trusted_proxy(),
    ) {
        prop_assume!(!identity.is_empty());
        let (name, value) = identity[twice.index(identity.len())].clone();
        let configured: Vec<String> = tp.identity_headers().map(str::to_owned).collect();
        prop_assume!(configured.contains(&name.to_ascii_lowercase()));
        let again = if second_case { name.to_ascii_uppercase() } else { name.clone() };
        let mut config = Config::new(AuthMode::TrustedProxy, None, Some("local-password-0123456789"));
        config.trusted_proxies = vec!["10.0.0.2".parse().unwrap()];
        config.trusted_proxy = Some(tp);
        let mut headers = vec![("Host".to_owned(), host), ("X-Forwarded-For".to_owned(), "203.0.113.5".to_owned())];
        headers.extend(identity);
        headers.push((again, format!("{value}-other")));
        let r = classify_upgrade(&edge("10.0.0.2".parse().unwrap(), headers), &config);
        prop_assert_eq!(r.as_ref().map_err(|e| e.status()), Err(400), "{:?}", r);
    }

    /// Direct-local means: loopback socket, not a trusted proxy, no proxy
    /// evidence, a loopback Host name (§2.1). Through a trusted proxy, never.
    #[test]
    fn direct_local_is_exactly_defined(
        peer in arb_peer(),
        host in arb_host(),
        origin in arb_origin(),
        evidence in prop::collection::vec(arb_evidence_header(), 0..2),
        others in arb_other_headers(),
        config in arb_config(),
    ) {
        let mut headers = vec![("Host".to_owned(), host.clone())];
        headers.extend(origin.map(|o| ("Origin".to_owned(), o)));
        headers.extend(others);
        headers.extend(evidence);
        let e = edge(peer, headers);
        match classify_upgrade(&e, &config) {
            Ok(Locality::DirectLocal) => {
                // A loopback trusted proxy's *headerless* requests stay
                // loopback connections (docs/threat-model.md, H2; `decide` then
                // keeps silent pairing off), so only the headers are checked.
                prop_assert!(is_loopback(peer));
                prop_assert!(e.proxy_evidence().is_empty());
                prop_assert!(matches!(host_name(&host).as_str(), "localhost" | "127.0.0.1" | "::1"), "{}", host);
            }
            Ok(Locality::Remote { client_ip, via_proxy }) => {
                prop_assert_eq!(via_proxy, config.is_trusted_proxy(peer));
                prop_assert_eq!(client_ip, client_ip.to_canonical());
                if !via_proxy {
                    prop_assert_eq!(client_ip, peer.to_canonical());
                    prop_assert!(!is_loopback(peer), "a loopback peer classified remote without a proxy");
                } else {
                    prop_assert!(!is_loopback(client_ip), "a proxied client classified loopback");
                }
            }
            Err(_) => {}
        }
    }

    /// Through trusted proxies: hops added left of the rightmost untrusted
    /// hop never change the result; several X-Forwarded-For lines mean the
    /// same as one comma-joined line; header-name case and the order of
    /// unrelated headers never matter.
    #[test]
    fn forwarded_for_is_read_right_to_left(
        proxy_net in select(vec!["127.0.0.1/32", "10.0.0.0/8", "::1/128", "2001:db8::/32"]),
        proxy_index in any::<u8>(),
        client in arb_hop(),
        trusted_hops in prop::collection::vec(any::<u8>(), 0..3),
        left in prop::collection::vec(arb_hop(), 0..4),
        more_left in prop::collection::vec(arb_hop(), 0..3),
        split_at in prop::collection::vec(any::<bool>(), 8),
        host in arb_host(),
        others in arb_other_headers(),
        name_case in arb_case("X-Forwarded-For"),
        host_case in arb_case("Host"),
    ) {
        let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
        config.trusted_proxies = vec![proxy_net.parse().unwrap()];
        let in_net = |i: u8| -> IpAddr {
            match proxy_net {
                "127.0.0.1/32" => IpAddr::from([127, 0, 0, 1]),
                "10.0.0.0/8" => IpAddr::from([10, 0, 1, i]),
                "::1/128" => IpAddr::V6(Ipv6Addr::LOCALHOST),
                _ => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(i))),
            }
        };
        let peer = in_net(proxy_index);
        // The hops a chain of trusted proxies appended after the client.
        let trusted: Vec<String> = trusted_hops.iter().map(|i| in_net(*i).to_string()).collect();

        let hops = |prefix: &[String]| -> Vec<String> {
            prefix.iter().cloned().chain(std::iter::once(client.clone())).chain(trusted.iter().cloned()).collect()
        };
        let one_line = |hops: &[String]| vec![("X-Forwarded-For".to_owned(), hops.join(", "))];
        let classify = |xff: Vec<(String, String)>, host_name: &str, others: &[(String, String)]| {
            let mut headers = vec![(host_name.to_owned(), host.clone())];
            headers.extend(others.iter().cloned());
            headers.extend(xff);
            classify_upgrade(&edge(peer, headers), &config)
        };

        let base = classify(one_line(&hops(&left)), "Host", &others);

        // Is the client hop the rightmost untrusted one? (It may be junk, or
        // itself trusted, in which case the walk goes on to the left.)
        let client_ip = client.parse::<IpAddr>().ok().or_else(|| client.parse::<SocketAddr>().ok().map(|s| s.ip()))
            .or_else(|| client.strip_prefix('[').and_then(|c| c.strip_suffix(']')).and_then(|c| c.parse().ok()));
        let client_decides = !client.trim().is_empty() && match client_ip {
            Some(ip) => !config.is_trusted_proxy(ip),
            None => true,
        };
        if client_decides {
            let mut longer = more_left.clone();
            longer.extend(left.iter().cloned());
            prop_assert_eq!(&classify(one_line(&hops(&longer)), "Host", &others), &base, "hops left of the client");
        }

        // Several lines ≡ one comma-joined line.
        let all = hops(&left);
        let mut lines: Vec<Vec<String>> = vec![Vec::new()];
        for (i, hop) in all.iter().enumerate() {
            if i > 0 && split_at[i % split_at.len()] {
                lines.push(Vec::new());
            }
            lines.last_mut().unwrap().push(hop.clone());
        }
        let split: Vec<(String, String)> =
            lines.into_iter().map(|l| ("X-Forwarded-For".to_owned(), l.join(","))).collect();
        prop_assert_eq!(&classify(split.clone(), "Host", &others), &base, "split lines");

        // Header-name case, and unrelated headers in another order.
        let recased: Vec<(String, String)> = split.into_iter().map(|(_, v)| (name_case.clone(), v)).collect();
        let reordered: Vec<(String, String)> = others.iter().rev().cloned().collect();
        prop_assert_eq!(&classify(recased, &host_case, &reordered), &base, "case and order");
    }

    /// An IPv4 peer and its ::ffff: mapped form are the same peer, through
    /// the edge and through `decide`; IPv4-compatible (::a.b.c.d) and NAT64
    /// (64:ff9b::/96) forms of 127.0.0.1 are never loopback.
    #[test]
    fn address_forms(
        v4 in arb_v4(),
        host in arb_host(),
        origin in arb_origin(),
        evidence in prop::collection::vec(arb_evidence_header(), 0..2),
        xff_mapped in any::<bool>(),
        c in arb_connect(),
        config in arb_config(),
    ) {
        let mut headers = vec![("Host".to_owned(), host.clone())];
        headers.extend(origin.map(|o| ("Origin".to_owned(), o)));
        headers.extend(evidence);
        let mapped_headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| match v.parse::<Ipv4Addr>() {
                Ok(ip) if xff_mapped && k.eq_ignore_ascii_case("x-forwarded-for") => {
                    (k.clone(), ip.to_ipv6_mapped().to_string())
                }
                _ => (k.clone(), v.clone()),
            })
            .collect();
        let plain = classify_upgrade(&edge(IpAddr::V4(v4), headers), &config);
        let mapped = classify_upgrade(&edge(IpAddr::V6(v4.to_ipv6_mapped()), mapped_headers), &config);
        prop_assert_eq!(&plain, &mapped);
        if let Ok(locality) = plain {
            let a = decide(&c.facts(locality), &config, c.view.as_ref());
            let b = decide(&c.facts(mapped.unwrap()), &config, c.view.as_ref());
            prop_assert_eq!(a, b);
        }

        // Look-alikes of loopback are remote, and stay what they are.
        let mut no_proxies = config.clone();
        no_proxies.trusted_proxies.clear();
        for ip in [IpAddr::V6(v4.to_ipv6_compatible()), IpAddr::V6(nat64(v4))] {
            prop_assert!(!is_loopback(ip), "{} counted as loopback", ip);
            let r = classify_upgrade(&edge(ip, vec![("Host".into(), "localhost".into())]), &no_proxies);
            prop_assert_eq!(r, Ok(Locality::Remote { client_ip: ip, via_proxy: false }));
        }
    }

    /// The trusted-proxy path end to end: a request through a trusted proxy
    /// (or a loopback caller) with generated identity headers, the real
    /// credential check, then `decide`. A user from headers only ever comes
    /// through a trusted proxy, within allowUsers and identityScopes.
    #[test]
    fn trusted_proxy_path(
        via_proxy in any::<bool>(),
        proxy_host in any::<u8>(),
        client in arb_hop(),
        identity in arb_identity_headers(),
        tp in arb_trusted_proxy(),
        identity_scopes in arb_identity_scopes(),
        c in arb_connect_with(Just(None).boxed()),
    ) {
        let mut config = Config::new(AuthMode::TrustedProxy, None, Some(PASSWORD));
        config.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
        config.trusted_proxy = Some(tp.clone());
        config.identity_scopes = identity_scopes;
        let (peer, host) = if via_proxy {
            (IpAddr::from([10, 0, 0, proxy_host]), "gw.example".to_owned())
        } else {
            (IpAddr::from([127, 0, 0, 1]), format!("localhost:{PORT}"))
        };
        let mut headers = vec![("Host".to_owned(), host)];
        if via_proxy {
            headers.push(("X-Forwarded-For".to_owned(), client));
        }
        headers.extend(identity);
        let e = edge(peer, headers);
        let Ok(locality) = classify_upgrade(&e, &config) else { return Ok(()) };
        let f = real_facts(&c, &config, &e, locality);
        let d = check_decision(&f, &config, c.view.as_ref())?;
        if let Some(Credential::ProxyUser { user, via_loopback_user }) = f.credential.verified() {
            prop_assert_eq!(*via_loopback_user, !via_proxy);
            prop_assert!(tp.allows(user), "{} is not in allowUsers", user);
            if !via_proxy {
                prop_assert_eq!(Some(user), tp.loopback_user.as_ref());
            }
        }
        if let Decision::Admit(a) = &d {
            if let Credential::ProxyUser { .. } = a.credential {
                if a.device.is_some() {
                    prop_assert!(matches!(a.rule, RuleId::DevicePaired | RuleId::ProxyDeviceAutoApprove));
                } else {
                    prop_assert!(matches!(a.rule, RuleId::TrustedProxy | RuleId::TrustedProxyLoopbackUser));
                }
            }
        }
    }

    /// The whole path: a generated upgrade request through the edge, then
    /// the connect through `decide`, with the Origin the edge saw.
    #[test]
    fn edge_then_decide(
        peer in arb_peer(),
        host in arb_host(),
        origin in arb_origin(),
        evidence in prop::collection::vec(arb_evidence_header(), 0..2),
        identity in arb_identity_headers(),
        others in arb_other_headers(),
        c in arb_connect_with(Just(None).boxed()),
        config in arb_config(),
        real_check in any::<bool>(),
        trust in arb_trust(),
        proxy_listener in any::<bool>(),
    ) {
        let mut headers = vec![("Host".to_owned(), host)];
        headers.extend(origin.map(|o| ("Origin".to_owned(), o)));
        headers.extend(others);
        headers.extend(evidence);
        headers.extend(identity);
        let e = edge(peer, headers).on_listener(trust);
        let mut config = config;
        if proxy_listener || trust == Trust::Proxy {
            config.listeners.push(Listener { bind: IpAddr::from([127, 0, 0, 1]), port: 18790, trust: Trust::Proxy });
        }
        let classified = classify_upgrade(&e, &config);
        // Remote gains nothing: a `proxy` or `remote` listener never yields
        // direct-local; a `proxy` listener only admits trusted proxies; with
        // a proxy listener, proxies count nowhere else.
        if trust != Trust::Local {
            prop_assert!(!matches!(classified, Ok(Locality::DirectLocal)), "{:?} listener gave direct-local", trust);
        }
        if trust == Trust::Proxy && classified.is_ok() {
            prop_assert!(config.is_trusted_proxy(peer), "proxy listener accepted an untrusted peer");
            let via_proxy = matches!(classified, Ok(Locality::Remote { via_proxy: true, .. }));
            prop_assert!(via_proxy, "a proxy listener's client not read from X-Forwarded-For");
        }
        if trust == Trust::Remote || (trust == Trust::Local && config.has_proxy_listener()) {
            let via_proxy = matches!(classified, Ok(Locality::Remote { via_proxy: true, .. }));
            prop_assert!(!via_proxy, "trusted proxies counted on a {:?} listener", trust);
            if !e.proxy_evidence().is_empty() {
                prop_assert!(classified.is_err(), "forwarding headers accepted on a {:?} listener", trust);
            }
        }
        if let Ok(locality) = classified {
            let mut c = c;
            c.origin = e.origin().map(str::to_owned);
            c.sec_fetch = e.has_sec_fetch();
            let f = if real_check { real_facts(&c, &config, &e, locality) } else { c.facts(locality) };
            let d = check_decision(&f, &config, c.view.as_ref())?;
            if LOOPBACK_ONLY.contains(&d.rule()) {
                prop_assert_eq!(trust, Trust::Local, "a local-only rule on a {:?} listener", trust);
                prop_assert!(is_loopback(peer));
                prop_assert!(e.proxy_evidence().is_empty());
                let tp = config.trusted_proxy.as_ref();
                prop_assert!(!tp.is_some_and(|tp| tp.identity_headers().any(|h| e.header(h).is_some())));
            }
            if e.origin().is_some() || e.has_sec_fetch() {
                prop_assert!(!NEVER_FOR_BROWSERS.contains(&d.rule()));
            }
            // A proxy user from headers only ever comes through a trusted proxy;
            // the loopback user only to a headerless direct-local caller (§2.9).
            if real_check {
                match f.credential.verified() {
                    Some(Credential::ProxyUser { via_loopback_user: false, .. }) => {
                        prop_assert!(config.is_trusted_proxy(peer), "proxy user from an untrusted socket");
                        prop_assert!(config.proxies_count_on(trust), "proxy user on a listener without proxies");
                    }
                    Some(Credential::ProxyUser { via_loopback_user: true, .. }) => {
                        prop_assert!(locality.is_direct_local(), "loopback user for a non-local caller");
                        let tp = config.trusted_proxy.as_ref().unwrap();
                        prop_assert!(tp.allow_loopback, "loopback user without allowLoopback");
                        prop_assert!(tp.allows(tp.loopback_user.as_deref().unwrap()), "loopback user not in allowUsers");
                        prop_assert!(!tp.identity_headers().any(|h| e.header(h).is_some()));
                    }
                    _ => {}
                }
            }
        }
    }
}
