//! trusted-proxy mode: who the proxy in front of the gateway says the user
//! is, checked in OpenClaw's order and with its reasons (docs/admission.md,
//! trusted-proxy and trusted-proxy-loopback-user).
//!
//! - The user header and the required headers are honoured only from a
//!   socket in `gateway.trustedProxies`. From any other socket they are
//!   refused (`trusted_proxy_untrusted_source`), never ignored; the edge
//!   already answers such an upgrade with 403 (they are proxy evidence).
//! - A trusted proxy on a loopback address needs `allowLoopback`.
//! - `loopbackUser` is the identity of a *headerless direct-local* caller
//!   (loopback socket not in `trustedProxies`, no proxy evidence, loopback
//!   Host) when `allowLoopback` is on. Required headers are skipped for it
//!   only; `allowUsers` applies to it too. It is a `ProxyUser`, never the
//!   owner's secret, so it never reaches `local-owner` or silent pairing.

use crate::config::{Config, TrustedProxyConfig};
use crate::net;

use super::credential::{AuthReason, Credential};
use super::facts::Locality;
use super::ingress::EdgeFacts;

/// The first value of a header, trimmed, if it is not blank.
fn non_blank<'a>(edge: &'a EdgeFacts, name: &'a str) -> Option<&'a str> {
    edge.header(name).map(str::trim).filter(|v| !v.is_empty())
}

/// Any configured identity header (user or required) present at all.
pub fn has_identity_header(edge: &EdgeFacts, tp: &TrustedProxyConfig) -> bool {
    tp.identity_headers().any(|h| edge.header(h).is_some())
}

/// The proxy user of this request, or the reason there is none.
pub fn proxy_user(edge: &EdgeFacts, locality: &Locality, config: &Config) -> Result<Credential, AuthReason> {
    let Some(tp) = config.trusted_proxy.as_ref() else {
        return Err(AuthReason::TrustedProxyConfigMissing);
    };
    if config.trusted_proxies.is_empty() {
        return Err(AuthReason::TrustedProxyConfigMissing);
    }
    let peer = net::canonical(edge.peer.ip());
    let identity_headers = has_identity_header(edge, tp);

    // loopbackUser: a headerless direct-local caller (the edge classifies a
    // loopback connection with no proxy evidence and no identity header as
    // direct-local, even from a trusted proxy's loopback address). Real
    // headers, when present, take the proxy path below instead.
    if let (Some(user), Locality::DirectLocal, false) = (&tp.loopback_user, locality, identity_headers) {
        if tp.allow_loopback {
            if !tp.allows(user) {
                return Err(AuthReason::TrustedProxyUserNotAllowed);
            }
            return Ok(Credential::ProxyUser { user: user.clone(), via_loopback_user: true });
        }
    }

    if !config.is_trusted_proxy(peer) || !config.proxies_count_on(edge.trust) {
        // Identity headers from anyone but the proxy (or on a listener where
        // proxies do not count) are a forgery; without them, this is not the
        // proxy either.
        return Err(AuthReason::TrustedProxyUntrustedSource);
    }

    if net::is_loopback(peer) && !tp.allow_loopback {
        return Err(AuthReason::TrustedProxyLoopbackSource);
    }
    for required in &tp.required_headers {
        if non_blank(edge, &required.name).is_none() {
            return Err(AuthReason::TrustedProxyMissingHeader(required.reason));
        }
    }
    let Some(user) = non_blank(edge, &tp.user_header) else {
        return Err(AuthReason::TrustedProxyUserMissing);
    };
    if !tp.allows(user) {
        return Err(AuthReason::TrustedProxyUserNotAllowed);
    }
    Ok(Credential::ProxyUser { user: user.to_owned(), via_loopback_user: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthMode;

    fn cfg(proxies: &[&str], allow_loopback: bool, loopback_user: Option<&str>, allow_users: &[&str]) -> Config {
        let mut c = Config::new(AuthMode::TrustedProxy, None, None);
        c.trusted_proxies = proxies.iter().map(|p| p.parse().unwrap()).collect();
        let mut tp = TrustedProxyConfig::new("X-Forwarded-User", &["X-Auth-Request-Email"]);
        tp.allow_loopback = allow_loopback;
        tp.loopback_user = loopback_user.map(Into::into);
        tp.allow_users = allow_users.iter().map(|u| (*u).to_owned()).collect();
        c.trusted_proxy = Some(tp);
        c
    }

    fn edge(peer: &str, headers: &[(&str, &str)]) -> EdgeFacts {
        EdgeFacts::new(
            peer.parse().unwrap(),
            18789,
            headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        )
    }

    const REMOTE: Locality =
        Locality::Remote { client_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 5)), via_proxy: true };
    const FULL: &[(&str, &str)] = &[("x-forwarded-user", " alice "), ("x-auth-request-email", "a@example.com")];

    fn user(u: &str, via: bool) -> Result<Credential, AuthReason> {
        Ok(Credential::ProxyUser { user: u.into(), via_loopback_user: via })
    }

    #[test]
    fn the_reference_order_and_reasons() {
        let c = cfg(&["10.0.0.0/8"], false, None, &[]);
        assert_eq!(proxy_user(&edge("10.1.2.3:1", FULL), &REMOTE, &c), user("alice", false));
        assert_eq!(proxy_user(&edge("192.0.2.1:1", &[]), &REMOTE, &c), Err(AuthReason::TrustedProxyUntrustedSource));
        let missing = proxy_user(&edge("10.1.2.3:1", &[("x-forwarded-user", "alice")]), &REMOTE, &c).unwrap_err();
        assert_eq!(missing.as_str(), "trusted_proxy_missing_header_X-Auth-Request-Email");
        assert_eq!(missing.details_code(), "AUTH_IDENTITY_HEADER_REQUIRED");
        let blank = [("x-forwarded-user", "  "), ("x-auth-request-email", "a@example.com")];
        assert_eq!(proxy_user(&edge("10.1.2.3:1", &blank), &REMOTE, &c), Err(AuthReason::TrustedProxyUserMissing));
        let c = cfg(&["10.0.0.0/8"], false, None, &["bob"]);
        assert_eq!(proxy_user(&edge("10.1.2.3:1", FULL), &REMOTE, &c), Err(AuthReason::TrustedProxyUserNotAllowed));
        assert_eq!(AuthReason::TrustedProxyUserNotAllowed.details_code(), "AUTH_UNAUTHORIZED");
    }

    #[test]
    fn a_loopback_proxy_needs_allow_loopback() {
        let c = cfg(&["127.0.0.1"], false, None, &[]);
        assert_eq!(proxy_user(&edge("127.0.0.1:1", FULL), &REMOTE, &c), Err(AuthReason::TrustedProxyLoopbackSource));
        let c = cfg(&["127.0.0.1"], true, None, &[]);
        assert_eq!(proxy_user(&edge("127.0.0.1:1", FULL), &REMOTE, &c), user("alice", false));
    }

    #[test]
    fn loopback_user_only_for_headerless_direct_local_callers() {
        let c = cfg(&["127.0.0.1"], true, Some("svc"), &[]);
        // Headerless, direct-local, not the proxy: the loopback user; required headers skipped.
        assert_eq!(proxy_user(&edge("127.0.0.2:1", &[]), &Locality::DirectLocal, &c), user("svc", true));
        // A forged user header from a local socket that is not the proxy.
        let forged = proxy_user(&edge("127.0.0.2:1", &[("x-forwarded-user", "admin")]), &Locality::DirectLocal, &c);
        assert_eq!(forged, Err(AuthReason::TrustedProxyUntrustedSource));
        let forged = proxy_user(&edge("127.0.0.2:1", &[("x-auth-request-email", "x")]), &Locality::DirectLocal, &c);
        assert_eq!(forged, Err(AuthReason::TrustedProxyUntrustedSource));
        // Real headers from the trusted proxy win.
        assert_eq!(proxy_user(&edge("127.0.0.1:1", FULL), &REMOTE, &c), user("alice", false));
        // A headerless caller on the proxy's own loopback address (a sidecar
        // neighbour) that the edge classified direct-local: the loopback user.
        assert_eq!(proxy_user(&edge("127.0.0.1:1", &[]), &Locality::DirectLocal, &c), user("svc", true));
        // Not direct-local (a remote socket): no loopback user.
        assert_eq!(proxy_user(&edge("192.0.2.1:1", &[]), &REMOTE, &c), Err(AuthReason::TrustedProxyUntrustedSource));
        // allowLoopback off: no loopback user.
        let off = cfg(&["10.0.0.1"], false, Some("svc"), &[]);
        assert_eq!(
            proxy_user(&edge("127.0.0.2:1", &[]), &Locality::DirectLocal, &off),
            Err(AuthReason::TrustedProxyUntrustedSource)
        );
        // allowUsers applies to it too.
        let listed = cfg(&["127.0.0.1"], true, Some("svc"), &["alice"]);
        assert_eq!(
            proxy_user(&edge("127.0.0.2:1", &[]), &Locality::DirectLocal, &listed),
            Err(AuthReason::TrustedProxyUserNotAllowed)
        );
    }

    #[test]
    fn without_proxy_config_nothing_is_honoured() {
        let c = Config::new(AuthMode::TrustedProxy, None, None);
        assert_eq!(proxy_user(&edge("10.0.0.1:1", FULL), &REMOTE, &c), Err(AuthReason::TrustedProxyConfigMissing));
    }
}
