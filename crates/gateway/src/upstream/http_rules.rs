//! What the HTTP relay changes on the way to the upstream, decided without
//! I/O.
//!
//! Headers:
//! - Forwarding headers (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`, `Via`,
//!   … — the edge's own list, `admission::ingress::is_proxy_evidence`) never
//!   pass: OpenClaw answers 403 `proxy_attribution_required` to a relayed
//!   loopback address, and refuses `X-Forwarded-*` from a front it does not
//!   trust. With `gateway.upstream.forwardClientAddress`, clawgate adds its
//!   own `X-Forwarded-For` for a non-loopback client.
//! - Hop-by-hop headers are the connection's, not the request's (an upgrade
//!   keeps `Connection: upgrade` and `Upgrade`).
//!
//! `Authorization: Bearer <credential>`, the one rule:
//! - The caller's verifier says whether the credential is one clawgate
//!   accepts (its gateway token or password, a device token, a service
//!   token; behind a trusted proxy the user header counts without a bearer).
//! - On the Control UI's authenticated read routes ([`is_secret_swap_path`],
//!   GET/HEAD only) a clawgate credential is swapped for the upstream secret:
//!   the UI holds clawgate's credential, the upstream wants its own.
//! - Everywhere else a clawgate credential is removed: it means nothing to
//!   the upstream, it must not leak to it, and it never gains the upstream
//!   secret's power over the HTTP API (`/v1/*`, `/api/*`, hooks).
//! - A credential that is not clawgate's (a hook token, the upstream's own
//!   token) passes untouched: it is between the client and the upstream.
//! - The verifier may refuse outright (e.g. a rate limit): 401, nothing sent.

use std::net::IpAddr;

/// The routes on which OpenClaw's Control UI sends its credential as a
/// bearer and OpenClaw checks it as a read of the Control UI (no base path
/// configured upstream). Exact paths and path prefixes.
const SECRET_SWAP_EXACT: &[&str] = &[
    "/control-ui-config.json",
    "/__openclaw/control-ui-config.json",
    "/__openclaw__/control-ui-config.json",
    "/__openclaw__/assistant-media",
];
const SECRET_SWAP_PREFIXES: &[&str] = &[
    "/avatar/",
    "/__openclaw__/catalog-icon/",
    "/__openclaw__/channel-avatar/",
    "/__openclaw__/link-favicon/",
    "/__openclaw__/plugin-icon/",
    "/__openclaw__/plugin-activity-icon/",
    "/__openclaw__/plugin-theme-art/",
    "/__openclaw__/workspace-icon/",
    "/__openclaw__/plugins/control-ui/",
];
/// `/api/users/<id>/avatar`.
const USER_AVATAR: (&str, &str) = ("/api/users/", "/avatar");

/// Headers that belong to one connection, never forwarded as such.
const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

/// A path the upstream reads exactly as written: no dot segments, no
/// encoded dots, slashes or backslashes, no backslash. The upstream
/// normalizes such paths (`/avatar/../v1/x` is `/v1/x` to it), so only
/// these may earn the upstream secret.
fn is_plain_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    path.starts_with('/')
        && !path.contains('\\')
        && !["%2e", "%2f", "%5c", "%00"].iter().any(|e| lower.contains(e))
        && !path.split('/').any(|segment| segment == "." || segment == "..")
}

/// Does this request get the upstream secret in place of a clawgate
/// credential? `target` is the request target (path and query).
pub fn is_secret_swap_path(method: &str, target: &str) -> bool {
    if method != "GET" && method != "HEAD" {
        return false;
    }
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !is_plain_path(path) {
        return false;
    }
    if SECRET_SWAP_EXACT.contains(&path) {
        return true;
    }
    if SECRET_SWAP_PREFIXES.iter().any(|p| path.len() > p.len() && path.starts_with(p)) {
        return true;
    }
    let (prefix, suffix) = USER_AVATAR;
    path.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// The bearer credential of an `Authorization` header value, if it is one.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim()).filter(|t| !t.is_empty())
}

/// What the caller's verifier says about the credential of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialVerdict {
    /// A credential clawgate accepts.
    Clawgate,
    /// Not clawgate's (or none): leave it to the upstream.
    Foreign,
    /// Refuse the request without relaying it (401).
    Refuse,
}

/// What becomes of the request's `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationAction {
    Keep,
    Remove,
    /// Replace (or add) `Authorization: Bearer <upstream secret>`.
    UseUpstreamSecret,
    Refuse,
}

/// The rule of the module comment. `has_bearer`: the request carries a
/// bearer credential; `verdict`: the verifier's answer (asked also without a
/// bearer on swap paths, for trusted-proxy users).
pub fn authorization_action(swap_path: bool, has_bearer: bool, verdict: CredentialVerdict) -> AuthorizationAction {
    match (verdict, swap_path, has_bearer) {
        (CredentialVerdict::Refuse, _, _) => AuthorizationAction::Refuse,
        (CredentialVerdict::Clawgate, true, _) => AuthorizationAction::UseUpstreamSecret,
        (CredentialVerdict::Clawgate, false, true) => AuthorizationAction::Remove,
        (CredentialVerdict::Clawgate, false, false) | (CredentialVerdict::Foreign, _, _) => AuthorizationAction::Keep,
    }
}

/// Should a request header (lower-case name) be dropped on the way up?
/// `connection_tokens`: the names listed in the request's `Connection`.
pub fn drop_request_header(name: &str, upgrade: bool, connection_tokens: &[String], extra: &[String]) -> bool {
    if crate::admission::ingress::is_proxy_evidence(name) || extra.iter().any(|e| e == name) {
        return true;
    }
    drop_hop_header(name, upgrade, connection_tokens)
}

/// Hop-by-hop, in either direction; an upgrade keeps `Connection` and `Upgrade`.
pub fn drop_hop_header(name: &str, upgrade: bool, connection_tokens: &[String]) -> bool {
    if upgrade && (name == "connection" || name == "upgrade") {
        return false;
    }
    HOP_BY_HOP.contains(&name) || connection_tokens.iter().any(|t| t == name)
}

/// The lower-case header names a `Connection` header lists (besides
/// `close`, `keep-alive` and `upgrade`, which are not header names here).
pub fn connection_tokens<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    values
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "close" && t != "keep-alive" && t != "upgrade")
        .collect()
}

/// `X-Forwarded-For` to add, if any.
pub fn forwarded_for(forward_client_address: bool, peer: IpAddr) -> Option<String> {
    (forward_client_address && !crate::net::is_loopback(peer)).then(|| crate::net::canonical(peer).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_paths_are_the_ui_reads_only() {
        for ok in [
            "/control-ui-config.json",
            "/__openclaw__/control-ui-config.json",
            "/__openclaw__/catalog-icon/openai",
            "/avatar/main?v=3",
            "/api/users/gateway-owner/avatar?v=1",
            "/__openclaw__/plugins/control-ui/p/1/index.js",
            "/__openclaw__/assistant-media?source=x",
        ] {
            assert!(is_secret_swap_path("GET", ok), "{ok}");
        }
        assert!(is_secret_swap_path("HEAD", "/avatar/main"));
        for no in [
            "/v1/chat/completions",
            "/api/users/u/profile",
            "/api/users/a/b/avatar",
            "/avatar/",
            "/avatar/../v1/chat/completions",
            "/avatar/%2e%2e/v1/models",
            "/avatar/x%2Fy",
            "/avatar\\..\\v1",
            "/hooks/agent",
            "/",
            "/control-ui-config.json/x",
        ] {
            assert!(!is_secret_swap_path("GET", no), "{no}");
        }
        assert!(!is_secret_swap_path("POST", "/__openclaw__/assistant-media?meta=1&allow=1"));
    }

    #[test]
    fn the_bearer_rule() {
        use AuthorizationAction::*;
        use CredentialVerdict::*;
        assert_eq!(authorization_action(true, true, Clawgate), UseUpstreamSecret);
        assert_eq!(authorization_action(true, false, Clawgate), UseUpstreamSecret, "trusted-proxy user");
        assert_eq!(authorization_action(false, true, Clawgate), Remove);
        assert_eq!(authorization_action(false, false, Clawgate), Keep);
        assert_eq!(authorization_action(true, true, Foreign), Keep);
        assert_eq!(authorization_action(false, true, Foreign), Keep);
        assert_eq!(authorization_action(false, true, CredentialVerdict::Refuse), AuthorizationAction::Refuse);
        assert_eq!(bearer("Bearer  abc "), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }

    #[test]
    fn headers_that_never_pass() {
        let none: Vec<String> = vec![];
        for h in ["x-forwarded-for", "x-forwarded-host", "forwarded", "x-real-ip", "via", "transfer-encoding", "te"] {
            assert!(drop_request_header(h, false, &none, &none), "{h}");
        }
        assert!(drop_request_header("connection", false, &none, &none));
        assert!(!drop_request_header("connection", true, &none, &none));
        assert!(!drop_request_header("upgrade", true, &none, &none));
        assert!(!drop_request_header("host", false, &none, &none));
        assert!(!drop_request_header("cookie", false, &none, &none));
        let tokens = connection_tokens(["keep-alive, X-Secret-Hop", "close"].into_iter());
        assert_eq!(tokens, ["x-secret-hop"]);
        assert!(drop_request_header("x-secret-hop", false, &tokens, &none));
        assert!(drop_request_header("x-forwarded-user", false, &none, &["x-forwarded-user".into()]));
        assert!(drop_request_header("x-auth-request-email", false, &none, &["x-auth-request-email".into()]));
    }

    #[test]
    fn client_address_only_when_asked_and_not_loopback() {
        let remote: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(forwarded_for(true, remote).as_deref(), Some("203.0.113.7"));
        assert_eq!(forwarded_for(false, remote), None);
        assert_eq!(forwarded_for(true, "127.0.0.1".parse().unwrap()), None);
        assert_eq!(forwarded_for(true, "::ffff:203.0.113.7".parse().unwrap()).as_deref(), Some("203.0.113.7"));
    }
}
