//! The gateway's own origins (docs/admission.md, origin): `http(s)://localhost|127.0.0.1|[::1]:<port>`,
//! the bind address, and exact entries of `gateway.controlUi.allowedOrigins`.

use std::net::IpAddr;

use crate::config::Config;

/// Is `origin` one of the gateway's own loopback origins on `port`?
pub fn is_own_loopback_origin(origin: &str, port: u16) -> bool {
    let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let Some(rest) = o.strip_prefix("http://").or_else(|| o.strip_prefix("https://")) else {
        return false;
    };
    ["localhost", "127.0.0.1", "[::1]"].iter().any(|h| rest == format!("{h}:{port}"))
}

/// Is `origin` allowed at all (own loopback origin, bind address, or listed)?
pub fn is_allowed_origin(origin: &str, port: u16, config: &Config) -> bool {
    if is_own_loopback_origin(origin, port) {
        return true;
    }
    let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    if !config.bind.is_unspecified() && !config.bind.is_loopback() {
        let host = match config.bind {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        if o == format!("http://{host}:{port}") || o == format!("https://{host}:{port}") {
            return true;
        }
    }
    config.allowed_origins.iter().any(|a| a == "*" || *a == o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthMode;

    #[test]
    fn own_origins() {
        assert!(is_own_loopback_origin("http://localhost:18789", 18789));
        assert!(is_own_loopback_origin("https://[::1]:18789/", 18789));
        assert!(!is_own_loopback_origin("http://localhost:3000", 18789));
        assert!(!is_own_loopback_origin("null", 18789));
        assert!(!is_own_loopback_origin("", 18789));
        assert!(!is_own_loopback_origin("http://localhost.evil.example:18789", 18789));
    }

    #[test]
    fn listed_origins_are_exact() {
        let mut c = Config::new(AuthMode::Token, Some("t"), None);
        c.allowed_origins = vec!["https://ui.example".into()];
        assert!(is_allowed_origin("https://UI.example", 18789, &c));
        assert!(!is_allowed_origin("https://ui.example.evil", 18789, &c));
        assert!(!is_allowed_origin("null", 18789, &c));
    }
}
