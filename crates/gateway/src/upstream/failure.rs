//! Why an upstream connection could not be opened, with the stable codes a
//! downstream client sees (`details.code`).

/// The retry delay suggested when the upstream gives none.
pub const DEFAULT_RETRY_AFTER_MS: u64 = 2_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamFailure {
    /// Not reachable now, or starting: connection refused, timeout, HTTP 503,
    /// `UNAVAILABLE`, close 1013. The client should retry after the delay.
    #[error("the upstream gateway is unavailable: {reason}")]
    Unavailable { retry_after_ms: u64, reason: String },
    /// The upstream answered clawgate's own connect with a refusal: a
    /// configuration problem on clawgate's side (wrong secret, …).
    #[error("the upstream gateway refused clawgate's connect: {message} ({code})")]
    Refused { code: String, message: String },
    /// The upstream did not speak the protocol as expected.
    #[error("the upstream gateway broke the protocol: {0}")]
    Protocol(String),
}

impl UpstreamFailure {
    pub fn unavailable(reason: impl Into<String>) -> UpstreamFailure {
        UpstreamFailure::Unavailable { retry_after_ms: DEFAULT_RETRY_AFTER_MS, reason: reason.into() }
    }

    /// The stable code clients and logs branch on.
    pub fn code(&self) -> &'static str {
        match self {
            UpstreamFailure::Unavailable { .. } | UpstreamFailure::Protocol(_) => "UPSTREAM_UNAVAILABLE",
            UpstreamFailure::Refused { .. } => "UPSTREAM_REFUSED",
        }
    }

    /// The config key an operator should look at, for the log line.
    pub fn key_to_fix(&self) -> Option<&'static str> {
        let UpstreamFailure::Refused { code, .. } = self else { return None };
        Some(match code.as_str() {
            c if c.starts_with("AUTH_PASSWORD") => "gateway.upstream.password",
            c if c.starts_with("AUTH_") => "gateway.upstream.token",
            "PROTOCOL_MISMATCH" => "gateway.upstream.url (an OpenClaw gateway of protocol 4)",
            _ => "gateway.upstream",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_shapes() {
        let u = UpstreamFailure::Unavailable { retry_after_ms: 500, reason: "refused".into() };
        assert_eq!(u.code(), "UPSTREAM_UNAVAILABLE");
        let r = UpstreamFailure::Refused { code: "AUTH_TOKEN_MISMATCH".into(), message: "unauthorized".into() };
        assert_eq!((r.code(), r.key_to_fix()), ("UPSTREAM_REFUSED", Some("gateway.upstream.token")));
        assert_eq!(UpstreamFailure::Protocol("x".into()).code(), "UPSTREAM_UNAVAILABLE");
    }
}
