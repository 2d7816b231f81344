//! Upstream mode at the HTTP door: which requests clawgate answers itself
//! and which go to the upstream's HTTP relay, after the edge checks.
//!
//! The rule:
//! - `/healthz` is clawgate's own health check.
//! - A request carrying an `Upgrade` header is clawgate's gateway WebSocket
//!   on every path except the upstream's few non-gateway upgrade routes
//!   ([`RELAYED_UPGRADE_PREFIXES`], [`RELAYED_UPGRADE_PATHS`]). OpenClaw
//!   accepts its gateway WebSocket on ANY path it does not route elsewhere
//!   (`/`, `/ws`, `/foo/bar`, `/health` all answered with `connect.challenge`
//!   when tested), so a relayed upgrade on an unknown path would reach the
//!   upstream's own gateway from clawgate's loopback address, around
//!   clawgate's admission. The Control UI opens `ws://<host>/`.
//! - Everything else (the Control UI at `/` and its assets, `/health`,
//!   `/v1/*`, `/api/*`, hooks, plugin routes) is relayed.
//!
//! Plugin WebSocket routes on other paths are therefore answered by
//! clawgate as its gateway WebSocket, not relayed.
//!
//! Relayed requests hold a pre-auth slot of their client for as long as
//! they last: clawgate never authenticated the socket.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::admission::{EdgeFacts, Locality};
use crate::upstream::http_relay::{relay_http, HttpRelayOptions};
use crate::upstream::Upstream;

use super::http::{self, error_body, RequestHead};
use super::Gateway;

/// Upgrade routes of the upstream that are not its gateway WebSocket: the
/// capability-scoped plugin surfaces (hello-ok's `pluginSurfaceUrls`).
pub const RELAYED_UPGRADE_PREFIXES: &[&str] = &["/__openclaw__/cap/"];
/// The upstream's desktop and node stream attachments.
pub const RELAYED_UPGRADE_PATHS: &[&str] = &["/desktop/observe", "/node-desktop/attach", "/node-portal/attach"];

fn path_of(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or("")
}

/// Does this request go to the upstream (in upstream mode)?
pub fn goes_upstream(head: &RequestHead) -> bool {
    let path = path_of(&head.path);
    if head.header("upgrade").is_some() {
        return RELAYED_UPGRADE_PATHS.contains(&path)
            || RELAYED_UPGRADE_PREFIXES.iter().any(|p| path.len() > p.len() && path.starts_with(p));
    }
    path != "/healthz"
}

/// The relay's options from clawgate's configuration: the trusted proxy's
/// identity headers never reach the upstream.
fn relay_options(gw: &Gateway) -> HttpRelayOptions {
    let strip_headers = match &gw.config().trusted_proxy {
        Some(tp) => tp.identity_headers().map(str::to_owned).collect(),
        None => Vec::new(),
    };
    HttpRelayOptions { strip_headers, ..HttpRelayOptions::default() }
}

/// Relay one request whose head passed the edge checks.
#[allow(clippy::too_many_arguments)]
pub async fn relay(
    gw: &Arc<Gateway>,
    upstream: &Upstream,
    head: RequestHead,
    leftover: Vec<u8>,
    mut stream: TcpStream,
    peer: SocketAddr,
    edge: EdgeFacts,
    locality: Locality,
) {
    let Some(_preauth_slot) = gw.preauth.acquire(super::limits::PreauthKey::of(&locality, &edge)) else {
        tracing::info!(peer = %peer, "too many unauthenticated connections from this address");
        let body = error_body("preauth_budget", "too many unauthenticated connections from this address");
        http::respond_json(&mut stream, 503, &body).await;
        return;
    };
    let verify = super::upstream_bearer::verifier(gw.clone(), edge, locality);
    let options = Arc::new(relay_options(gw));
    relay_http(upstream.shared_config(), options, head, leftover, stream, peer, verify).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(path: &str, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: "GET".into(),
            path: path.into(),
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn the_routing_rule() {
        let ws = [("upgrade", "websocket"), ("connection", "Upgrade")];
        for gateway_ws in ["/", "/?x=1", "/ws", "/health", "/__openclaw__/worker", "/__openclaw__/cap/", "/x"] {
            assert!(!goes_upstream(&head(gateway_ws, &ws)), "{gateway_ws}");
        }
        // Any Upgrade header counts, whatever Connection says.
        assert!(!goes_upstream(&head("/ws", &[("upgrade", "websocket")])));
        assert!(!goes_upstream(&head("/ws", &[("upgrade", "h2c"), ("connection", "upgrade")])));
        for relayed in ["/__openclaw__/cap/abc/canvas", "/desktop/observe", "/node-portal/attach?x=1"] {
            assert!(goes_upstream(&head(relayed, &ws)), "{relayed}");
        }
        for relayed in ["/", "/health", "/agents", "/control-ui-config.json", "/v1/models", "/healthz/x", "/hooks/a"] {
            assert!(goes_upstream(&head(relayed, &[])), "{relayed}");
        }
        assert!(!goes_upstream(&head("/healthz", &[])));
        assert!(!goes_upstream(&head("/healthz?probe=1", &[])));
    }
}
