//! `gateway.listeners`: more listeners beside the main one, each with a
//! trust level (docs/admission.md, "Listener trust").
//!
//! - `local` (the main listener): a loopback peer may be direct-local;
//!   forwarding headers count only from `gateway.trustedProxies`, and only
//!   while no `proxy` listener exists.
//! - `proxy`: only peers in `gateway.trustedProxies`; the client address
//!   comes from X-Forwarded-For; never direct-local; the only place the
//!   trusted-proxy user header counts once such a listener exists.
//! - `remote`: never direct-local, and forwarding headers are refused (for
//!   tunnels and port-forwards that arrive on loopback).

use std::net::IpAddr;

use serde::Deserialize;

use super::error::ConfigError;
use crate::net::IpNet;

/// How far a listener's connections may be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    #[default]
    Local,
    Proxy,
    Remote,
}

impl Trust {
    pub const ALL: &'static [Trust] = &[Trust::Local, Trust::Proxy, Trust::Remote];

    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Local => "local",
            Trust::Proxy => "proxy",
            Trust::Remote => "remote",
        }
    }

    pub fn parse(s: &str) -> Option<Trust> {
        Trust::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

/// One `gateway.listeners` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenerSection {
    pub port: u16,
    /// `loopback` (default), `lan`, or an IP literal.
    pub bind: Option<String>,
    pub trust: Trust,
}

/// A listener besides the main one, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub bind: IpAddr,
    pub port: u16,
    pub trust: Trust,
}

/// Validate `gateway.listeners`: addresses parse, no two listeners (the main
/// one included) share an address, and a `proxy` listener has proxies to
/// accept.
pub(super) fn listeners(
    entries: &[ListenerSection],
    main: (IpAddr, u16),
    trusted_proxies: &[IpNet],
    parse_bind: impl Fn(&str) -> Result<IpAddr, ConfigError>,
) -> Result<Vec<Listener>, ConfigError> {
    let mut out: Vec<Listener> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let key = format!("gateway.listeners[{i}]");
        let bind = parse_bind(e.bind.as_deref().unwrap_or("loopback")).map_err(|err| match err {
            ConfigError::Unsafe { message, .. } => ConfigError::Unsafe { key: format!("{key}.bind"), message },
            other => other,
        })?;
        let taken = e.port != 0 && (main == (bind, e.port) || out.iter().any(|l| (l.bind, l.port) == (bind, e.port)));
        if taken {
            return Err(ConfigError::Unsafe {
                key: format!("{key}.port"),
                message: format!("{bind}:{} is already a listener of this gateway; pick another port", e.port),
            });
        }
        if e.trust == Trust::Proxy && trusted_proxies.is_empty() {
            return Err(ConfigError::Unsafe {
                key: format!("{key}.trust"),
                message: "a \"proxy\" listener accepts only gateway.trustedProxies, and none are configured; add \
                          the proxy's address there"
                    .into(),
            });
        }
        out.push(Listener { bind, port: e.port, trust: e.trust });
    }
    Ok(out)
}
