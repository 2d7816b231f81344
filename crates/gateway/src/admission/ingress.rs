//! Facts of the HTTP upgrade request, and the checks that happen before any
//! WebSocket exists: who is really behind this socket, and is the Host sane.
//!
//! - Forwarding headers from a socket that is not a trusted proxy: 403.
//! - A loopback socket whose Host is not a loopback name: 421 (a proxy or a
//!   DNS-rebinding page is in front; configure `gateway.trustedProxies`).
//! - Through a trusted proxy the client address comes from X-Forwarded-For
//!   and is never direct-local.
//! - The listener's trust level is part of the facts: a `proxy` listener
//!   accepts only trusted proxies, a `remote` one never yields direct-local
//!   and takes no forwarding headers, and once a `proxy` listener exists the
//!   main (`local`) one no longer honours trusted proxies at all.

use std::net::{IpAddr, SocketAddr};

use crate::config::{Config, Trust};
use crate::net::{self, client_ip_through_proxies, ForwardedError};

use super::facts::Locality;

/// Headers that say "a proxy is in front of this socket". Any header starting
/// with `x-forwarded-` counts too.
const PROXY_EVIDENCE: &[&str] = &[
    "forwarded",
    "x-real-ip",
    "via",
    "cf-connecting-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "fastly-client-ip",
    "x-envoy-external-address",
    "x-original-forwarded-for",
    "cdn-loop",
];

/// Does a header (lower-case name) say "a proxy is in front of this socket"?
/// The HTTP relay strips exactly these toward the upstream.
pub fn is_proxy_evidence(name: &str) -> bool {
    name.starts_with("x-forwarded-") || PROXY_EVIDENCE.contains(&name)
}

/// What the edge saw of one upgrade request. Header names are lower-case.
#[derive(Debug, Clone)]
pub struct EdgeFacts {
    pub peer: SocketAddr,
    /// The port of the listener the connection arrived on.
    pub local_port: u16,
    /// The trust level of that listener.
    pub trust: Trust,
    pub tls: bool,
    pub headers: Vec<(String, String)>,
}

impl EdgeFacts {
    /// The facts of a connection on a `local` listener (the main one).
    pub fn new(peer: SocketAddr, local_port: u16, headers: Vec<(String, String)>) -> Self {
        let headers = headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        EdgeFacts { peer, local_port, trust: Trust::Local, tls: false, headers }
    }

    /// The same facts, on a listener of another trust level.
    pub fn on_listener(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.header_values(name).next()
    }

    pub fn host(&self) -> Option<&str> {
        self.header("host")
    }

    pub fn origin(&self) -> Option<&str> {
        self.header("origin")
    }

    pub fn has_sec_fetch(&self) -> bool {
        self.headers.iter().any(|(k, _)| k.starts_with("sec-fetch-"))
    }

    /// The proxy-evidence headers present, by name.
    pub fn proxy_evidence(&self) -> Vec<&str> {
        let mut names: Vec<&str> =
            self.headers.iter().map(|(k, _)| k.as_str()).filter(|k| is_proxy_evidence(k)).collect();
        names.dedup();
        names
    }
}

/// Why an upgrade is refused before the WebSocket exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeRefusal {
    /// Duplicate Host or Origin, or no Host at all.
    BadHeaders(String),
    /// Forwarding headers from a socket that is not a trusted proxy, or a
    /// trusted proxy whose X-Forwarded-For does not name a client.
    ProxyAttributionRequired(String),
    /// A loopback socket with a non-loopback Host.
    MisdirectedHost(String),
    /// The configured trusted-proxy user header or a required header, from a
    /// socket that is not in `gateway.trustedProxies`: a forged identity.
    UntrustedIdentityHeader(String),
    /// A `proxy` listener reached by a peer that is not a trusted proxy.
    NotATrustedProxy(String),
}

impl UpgradeRefusal {
    pub fn status(&self) -> u16 {
        match self {
            UpgradeRefusal::BadHeaders(_) => 400,
            UpgradeRefusal::ProxyAttributionRequired(_)
            | UpgradeRefusal::UntrustedIdentityHeader(_)
            | UpgradeRefusal::NotATrustedProxy(_) => 403,
            UpgradeRefusal::MisdirectedHost(_) => 421,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            UpgradeRefusal::BadHeaders(_) => "bad_request_headers",
            UpgradeRefusal::ProxyAttributionRequired(_) => "proxy_attribution_required",
            UpgradeRefusal::MisdirectedHost(_) => "misdirected_host",
            // The reference's reason for the same situation (§4.3 step 2).
            UpgradeRefusal::UntrustedIdentityHeader(_) => "trusted_proxy_untrusted_source",
            UpgradeRefusal::NotATrustedProxy(_) => "proxy_listener_untrusted_peer",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            UpgradeRefusal::BadHeaders(m)
            | UpgradeRefusal::ProxyAttributionRequired(m)
            | UpgradeRefusal::MisdirectedHost(m)
            | UpgradeRefusal::UntrustedIdentityHeader(m)
            | UpgradeRefusal::NotATrustedProxy(m) => m,
        }
    }
}

/// The host name of a Host header value: port and brackets removed,
/// lower-cased, a trailing dot stripped.
pub fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // `[::1]` or `[::1]:port`, nothing else: `[::1]evil.com` and
        // `[::1]@evil.com` name no loopback host.
        match rest.split_once(']') {
            Some((literal, "")) => literal,
            Some((literal, port)) if port.strip_prefix(':').is_some_and(|p| p.chars().all(|c| c.is_ascii_digit())) => {
                literal
            }
            _ => return host.to_ascii_lowercase(),
        }
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host })
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// An absolute-form request target (`GET http://host/ HTTP/1.1`) names the
/// host the request is for, and HTTP lets it override Host. Locality is
/// judged on Host, so a target naming another host than Host is refused.
pub fn check_request_target(target: &str, host: Option<&str>) -> Result<(), UpgradeRefusal> {
    if target.starts_with('/') || target == "*" {
        return Ok(());
    }
    let authority = target.split_once("://").map_or(target, |(_, rest)| rest);
    let authority = authority.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host {
        Some(h) if host_name(h) == host_name(authority) && !authority.is_empty() => Ok(()),
        _ => Err(UpgradeRefusal::BadHeaders(format!(
            "the request target names host {:?}, the Host header another; send an origin-form target (a path)",
            host_name(authority)
        ))),
    }
}

/// `localhost`, `127.0.0.1` or `::1` (written `[::1]` in a Host header).
pub fn is_loopback_host_name(name: &str) -> bool {
    matches!(name, "localhost" | "127.0.0.1" | "::1")
}

/// Classify an upgrade request: its locality, or why it is refused.
pub fn classify_upgrade(edge: &EdgeFacts, config: &Config) -> Result<Locality, UpgradeRefusal> {
    // Duplicates of a header that decides who is calling are refused, never
    // resolved by picking a line: a proxy that appends rather than replaces
    // would let the client choose (its line first, the proxy's second).
    let identity = config.trusted_proxy.as_ref().into_iter().flat_map(|tp| tp.identity_headers());
    for name in ["host", "origin"].into_iter().chain(identity) {
        if edge.header_values(name).count() > 1 {
            return Err(UpgradeRefusal::BadHeaders(format!("more than one {name} header")));
        }
    }
    let Some(host) = edge.host() else {
        return Err(UpgradeRefusal::BadHeaders("a Host header is required".into()));
    };
    let peer = net::canonical(edge.peer.ip());
    let proxies_count = config.proxies_count_on(edge.trust);

    if edge.trust == Trust::Proxy {
        if !config.is_trusted_proxy(peer) {
            return Err(UpgradeRefusal::NotATrustedProxy(format!(
                "this listener (port {}) is for the reverse proxy only, and {peer} is not in gateway.trustedProxies; \
                 connect to the gateway's main port, or add the proxy's address to gateway.trustedProxies",
                edge.local_port
            )));
        }
        return through_proxy(edge, config);
    }

    // A headerless request from a trusted proxy on loopback is ambiguous: the
    // proxy forgot its headers, or a local program connected directly (the
    // gateway's own loopback callers behind a sidecar, field report 5). It is
    // classified like any loopback connection; `decide` then keeps silent
    // pairing off while loopback is a trusted proxy (docs/threat-model.md, H2).
    let identity_headers = config.trusted_proxy.as_ref().is_some_and(|tp| {
        let present = |h: &str| edge.header(&h.to_ascii_lowercase()).is_some();
        tp.identity_headers().any(present)
    });
    let headerless_loopback = net::is_loopback(peer) && edge.proxy_evidence().is_empty() && !identity_headers;
    if proxies_count && config.is_trusted_proxy(peer) && !headerless_loopback {
        return through_proxy(edge, config);
    }

    // Why a forwarding or identity header from this peer does not count.
    let untrusted = match edge.trust {
        Trust::Remote => format!(
            "this listener (port {}) is gateway.listeners trust \"remote\", which takes no forwarding headers",
            edge.local_port
        ),
        _ if config.is_trusted_proxy(peer) => format!(
            "{peer} is a trusted proxy, but trusted proxies count only on the \"proxy\" listener \
             (gateway.listeners), not on port {}",
            edge.local_port
        ),
        _ => format!("{peer} is not in gateway.trustedProxies"),
    };

    // The configured identity headers are proxy evidence too, and a forgery
    // from anyone but a trusted proxy: refused, never ignored.
    if let Some(tp) = &config.trusted_proxy {
        let forged: Vec<&str> = tp.identity_headers().filter(|h| edge.header(h).is_some()).collect();
        if !forged.is_empty() {
            return Err(UpgradeRefusal::UntrustedIdentityHeader(format!(
                "trusted_proxy_untrusted_source: {} sent, but {untrusted}; identity headers are honoured only \
                 from the authenticating proxy",
                forged.join(", ")
            )));
        }
    }

    let evidence = edge.proxy_evidence();
    if !evidence.is_empty() {
        return Err(UpgradeRefusal::ProxyAttributionRequired(format!(
            "proxy client attribution is required: {} sent, but {untrusted}; point the proxy at the right \
             listener with its address in gateway.trustedProxies, or stop sending forwarding headers",
            evidence.join(", ")
        )));
    }

    // A `remote` listener is where tunnels and port-forwards arrive: on
    // loopback, but never the owner's local program.
    if edge.trust == Trust::Remote {
        return Ok(Locality::Remote { client_ip: peer, via_proxy: false });
    }
    if net::is_loopback(peer) {
        let name = host_name(host);
        if !is_loopback_host_name(&name) {
            return Err(UpgradeRefusal::MisdirectedHost(format!(
                "Host {name:?} on a loopback connection: a proxy or tunnel is in front of the gateway, or a web page \
                 is rebinding DNS; point the proxy at the gateway with its address in gateway.trustedProxies"
            )));
        }
        return Ok(Locality::DirectLocal);
    }
    Ok(Locality::Remote { client_ip: peer, via_proxy: false })
}

/// The client behind a trusted proxy: X-Forwarded-For read right to left;
/// never direct-local.
fn through_proxy(edge: &EdgeFacts, config: &Config) -> Result<Locality, UpgradeRefusal> {
    let xff: Vec<&str> = edge.header_values("x-forwarded-for").collect();
    match client_ip_through_proxies(&xff, &config.trusted_proxies) {
        Ok(ip) if net::is_loopback(ip) => Err(UpgradeRefusal::ProxyAttributionRequired(
            "the trusted proxy forwarded a loopback client address; proxied requests are never local".into(),
        )),
        Ok(ip) => Ok(Locality::Remote { client_ip: ip, via_proxy: true }),
        Err(e) => Err(UpgradeRefusal::ProxyAttributionRequired(match e {
            ForwardedError::Missing => "the trusted proxy sent no X-Forwarded-For naming the client".into(),
            ForwardedError::UnparsableHop(h) => format!("X-Forwarded-For hop {h:?} is not an IP address"),
            ForwardedError::OnlyTrustedHops => "X-Forwarded-For names only trusted proxies".into(),
        })),
    }
}

/// The address a connection is attributed to (rate limits, logs).
pub fn client_ip(locality: &Locality, edge: &EdgeFacts) -> IpAddr {
    match locality {
        Locality::DirectLocal => net::canonical(edge.peer.ip()),
        Locality::Remote { client_ip, .. } => *client_ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthMode;

    fn edge(peer: &str, headers: &[(&str, &str)]) -> EdgeFacts {
        EdgeFacts::new(
            peer.parse().unwrap(),
            18789,
            headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        )
    }

    fn cfg(proxies: &[&str]) -> Config {
        let mut c = Config::new(AuthMode::Token, Some("t"), None);
        c.trusted_proxies = proxies.iter().map(|p| p.parse().unwrap()).collect();
        c
    }

    #[test]
    fn loopback_with_local_host_is_direct_local() {
        for host in ["localhost:18789", "127.0.0.1", "[::1]:18789", "LOCALHOST.:1"] {
            assert_eq!(
                classify_upgrade(&edge("127.0.0.1:5000", &[("Host", host)]), &cfg(&[])),
                Ok(Locality::DirectLocal),
                "{host}"
            );
        }
        assert_eq!(
            classify_upgrade(&edge("[::ffff:127.0.0.1]:5000", &[("host", "localhost")]), &cfg(&[])),
            Ok(Locality::DirectLocal)
        );
    }

    #[test]
    fn loopback_with_foreign_host_is_misdirected() {
        let r = classify_upgrade(&edge("127.0.0.1:5000", &[("host", "gateway.example.com")]), &cfg(&[]));
        assert_eq!(r.unwrap_err().status(), 421);
    }

    #[test]
    fn forwarding_headers_from_untrusted_sockets_are_refused() {
        for h in ["X-Forwarded-For", "x-forwarded-proto", "Forwarded", "Via", "CF-Connecting-IP", "x-real-ip"] {
            let r = classify_upgrade(&edge("127.0.0.1:5000", &[("host", "localhost"), (h, "1.2.3.4")]), &cfg(&[]));
            assert_eq!(r.unwrap_err().status(), 403, "{h}");
        }
    }

    #[test]
    fn trusted_proxy_yields_remote_client() {
        let e = edge("127.0.0.1:5000", &[("host", "gw.example"), ("x-forwarded-for", "203.0.113.5")]);
        assert_eq!(
            classify_upgrade(&e, &cfg(&["127.0.0.1"])),
            Ok(Locality::Remote { client_ip: "203.0.113.5".parse().unwrap(), via_proxy: true })
        );
        let e = edge("127.0.0.1:5000", &[("host", "localhost"), ("x-forwarded-for", "127.0.0.1")]);
        assert_eq!(classify_upgrade(&e, &cfg(&["127.0.0.1"])).unwrap_err().status(), 403);
        // Headerless from a loopback trusted proxy: ambiguous, classified as a
        // loopback connection (decide keeps silent pairing off).
        let e = edge("127.0.0.1:5000", &[("host", "localhost")]);
        assert_eq!(classify_upgrade(&e, &cfg(&["127.0.0.1"])), Ok(Locality::DirectLocal));
        // A non-loopback trusted proxy must always say who the client is.
        let e = edge("10.0.0.2:5000", &[("host", "gw.example")]);
        assert_eq!(classify_upgrade(&e, &cfg(&["10.0.0.2"])).unwrap_err().status(), 403);
    }

    #[test]
    fn bracketed_hosts_with_anything_after_are_not_loopback() {
        assert_eq!(host_name("[::1]:18789"), "::1");
        assert_eq!(host_name("[::1]"), "::1");
        for h in ["[::1]evil.com", "[::1]@evil.com", "[::1]:80x", "[::1"] {
            assert!(!is_loopback_host_name(&host_name(h)), "{h}");
            let r = classify_upgrade(&edge("127.0.0.1:5000", &[("host", h)]), &cfg(&[]));
            assert_eq!(r.unwrap_err().status(), 421, "{h}");
        }
    }

    #[test]
    fn an_absolute_form_target_must_name_the_host_header() {
        assert!(check_request_target("/", Some("localhost:1")).is_ok());
        assert!(check_request_target("http://localhost:1/", Some("localhost:1")).is_ok());
        assert!(check_request_target("ws://127.0.0.1:1/?x", Some("127.0.0.1:1")).is_ok());
        for t in ["http://evil.example/", "http://localhost@evil.example/", "evil.example:80", "http:///"] {
            assert_eq!(check_request_target(t, Some("localhost:1")).unwrap_err().status(), 400, "{t}");
        }
    }

    #[test]
    fn duplicate_or_missing_host() {
        assert_eq!(classify_upgrade(&edge("127.0.0.1:1", &[]), &cfg(&[])).unwrap_err().status(), 400);
        let e = edge("127.0.0.1:1", &[("host", "localhost"), ("host", "evil.example")]);
        assert_eq!(classify_upgrade(&e, &cfg(&[])).unwrap_err().status(), 400);
    }

    #[test]
    fn duplicate_identity_headers_from_a_trusted_proxy_are_refused() {
        let mut c = cfg(&["10.0.0.1"]);
        c.auth_mode = crate::config::AuthMode::TrustedProxy;
        c.trusted_proxy = Some(crate::config::TrustedProxyConfig::new("X-Forwarded-User", &["X-Auth-Request-Email"]));
        let base = [("host", "gw.example"), ("x-forwarded-for", "203.0.113.5")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut h = base.to_vec();
            h.extend_from_slice(extra);
            classify_upgrade(&edge("10.0.0.1:5000", &h), &c)
        };
        assert!(with(&[("x-forwarded-user", "alice"), ("x-auth-request-email", "a@x")]).is_ok());
        let r = with(&[("x-forwarded-user", "mallory"), ("X-Forwarded-User", "alice")]);
        assert_eq!(r.unwrap_err().status(), 400);
        let r =
            with(&[("x-forwarded-user", "alice"), ("x-auth-request-email", "m@x"), ("x-auth-request-email", "a@x")]);
        assert_eq!(r.unwrap_err().status(), 400);
    }

    #[test]
    fn identity_headers_from_untrusted_sockets_are_refused() {
        let mut c = cfg(&["10.0.0.1"]);
        c.auth_mode = AuthMode::TrustedProxy;
        c.token = None;
        c.trusted_proxy =
            Some(crate::config::TrustedProxyConfig::new("X-Auth-Request-User", &["X-Auth-Request-Email"]));
        for h in ["x-auth-request-user", "X-Auth-Request-Email"] {
            for peer in ["127.0.0.1:5000", "192.0.2.7:5000"] {
                let e = edge(peer, &[("host", "localhost"), (h, "alice")]);
                let r = classify_upgrade(&e, &c).unwrap_err();
                assert_eq!((r.status(), r.code()), (403, "trusted_proxy_untrusted_source"), "{h} from {peer}");
            }
        }
        // From the trusted proxy, they are what it is there for.
        let e = edge(
            "10.0.0.1:5000",
            &[("host", "gw.example"), ("x-forwarded-for", "203.0.113.5"), ("x-auth-request-user", "alice")],
        );
        assert!(classify_upgrade(&e, &c).is_ok());
        // Without trusted-proxy mode the header means nothing special.
        let e = edge("127.0.0.1:5000", &[("host", "localhost"), ("x-auth-request-user", "alice")]);
        assert_eq!(classify_upgrade(&e, &cfg(&[])), Ok(Locality::DirectLocal));
    }

    #[test]
    fn remote_peer_is_remote() {
        let e = edge("203.0.113.9:1", &[("host", "gw.example")]);
        assert_eq!(
            classify_upgrade(&e, &cfg(&[])),
            Ok(Locality::Remote { client_ip: "203.0.113.9".parse().unwrap(), via_proxy: false })
        );
    }
}
