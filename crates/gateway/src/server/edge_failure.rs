//! Failures at the HTTP edge, before any WebSocket exists: the request head,
//! the edge classification, the pre-auth budget and the upgrade headers.
//! They are one case of [`super::wire::Failure`]; [`super::wire::to_wire`]
//! turns each into an HTTP status and a JSON body through [`http_answer`].

use serde_json::Value;

use crate::admission::UpgradeRefusal;

use super::http::{error_body, BadUpgrade};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeFailure {
    /// The request head is over the size or header-count limit.
    HeadTooLarge,
    /// The request head does not parse.
    MalformedHead(String),
    /// The edge classification refused the upgrade (forwarding headers
    /// from an untrusted socket, a forged identity header, a foreign Host
    /// on loopback, duplicate headers).
    Upgrade(UpgradeRefusal),
    /// Too many unauthenticated sockets from this address.
    PreauthBudget,
    /// The WebSocket handshake headers are wrong.
    BadUpgrade(BadUpgrade),
    /// Closed at accept: over its connection budget (written without
    /// waiting, before the request is read).
    ConnectionBudget(super::conn_budget::OverBudget),
}

/// An HTTP answer: the status and the JSON body, in OpenClaw's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: Value,
}

pub(super) fn http_answer(f: &EdgeFailure) -> HttpAnswer {
    let (status, code, message): (u16, &str, &str) = match f {
        EdgeFailure::HeadTooLarge => (431, "headers_too_large", "request head too large"),
        EdgeFailure::MalformedHead(m) => (400, "bad_request", m),
        EdgeFailure::Upgrade(r) => (r.status(), r.code(), r.message()),
        EdgeFailure::PreauthBudget => (503, "preauth_budget", "too many unauthenticated connections from this address"),
        EdgeFailure::ConnectionBudget(over) => (503, "connection_budget", connection_budget_message(*over)),
        EdgeFailure::BadUpgrade(b) => match b {
            BadUpgrade::NotGet => (405, "bad_upgrade", "WebSocket upgrades must use GET"),
            BadUpgrade::UnsupportedVersion => (426, "bad_upgrade", "unsupported Sec-WebSocket-Version (13 required)"),
            BadUpgrade::MissingKey => (400, "bad_upgrade", "missing Sec-WebSocket-Key"),
            BadUpgrade::Write(e) => (500, "bad_upgrade", e),
        },
    };
    HttpAnswer { status, body: error_body(code, message) }
}

fn connection_budget_message(over: super::conn_budget::OverBudget) -> &'static str {
    use super::conn_budget::OverBudget::*;
    match over {
        Address => "too many unauthenticated connections from this address",
        Unauthenticated => "too many unauthenticated connections",
        Owner => "too many unauthenticated connections from the owner's local clients",
        Total => "too many connections (gateway.limits.maxConnections)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        let cases = [
            (EdgeFailure::HeadTooLarge, 431, "headers_too_large"),
            (EdgeFailure::MalformedHead("x".into()), 400, "bad_request"),
            (EdgeFailure::Upgrade(UpgradeRefusal::MisdirectedHost("h".into())), 421, "misdirected_host"),
            (
                EdgeFailure::Upgrade(UpgradeRefusal::ProxyAttributionRequired("p".into())),
                403,
                "proxy_attribution_required",
            ),
            (EdgeFailure::PreauthBudget, 503, "preauth_budget"),
            (EdgeFailure::ConnectionBudget(super::super::conn_budget::OverBudget::Total), 503, "connection_budget"),
            (EdgeFailure::BadUpgrade(BadUpgrade::NotGet), 405, "bad_upgrade"),
            (EdgeFailure::BadUpgrade(BadUpgrade::UnsupportedVersion), 426, "bad_upgrade"),
            (EdgeFailure::BadUpgrade(BadUpgrade::MissingKey), 400, "bad_upgrade"),
        ];
        for (failure, status, code) in cases {
            let answer = http_answer(&failure);
            assert_eq!(answer.status, status, "{failure:?}");
            assert_eq!(answer.body["error"]["type"], code, "{failure:?}");
            assert!(answer.body["error"]["message"].is_string());
        }
    }
}
