//! Gateway configuration: OpenClaw's `gateway.*` key names, JSON5 on disk,
//! closed objects (an unknown key is an error naming it).

mod load;

use std::net::IpAddr;

use serde::Deserialize;

use crate::net::IpNet;

pub use load::{load, ConfigError, ConfigSources, ResolvedSecret, SecretSource};

pub const DEFAULT_PORT: u16 = 18789;

/// The whole file. Only the `gateway` section is read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, rename = "$schema")]
    pub schema: Option<String>,
    #[serde(default)]
    pub gateway: GatewaySection,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewaySection {
    pub port: Option<u16>,
    /// `loopback` (127.0.0.1), `lan` (0.0.0.0), or an IP literal.
    pub bind: Option<String>,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub control_ui: ControlUiSection,
    #[serde(default)]
    pub nodes: NodesSection,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthSection {
    pub mode: Option<AuthMode>,
    pub token: Option<String>,
    pub password: Option<String>,
    /// Off turns the `local-owner` rule off (DESIGN.md §2).
    pub local_owner: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ControlUiSection {
    pub enabled: Option<bool>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodesSection {
    #[serde(default)]
    pub pairing: NodePairingSection,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodePairingSection {
    pub auto_approve_local: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    None,
    Token,
    Password,
    TrustedProxy,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Token => "token",
            AuthMode::Password => "password",
            AuthMode::TrustedProxy => "trusted-proxy",
        }
    }
}

/// The configuration the gateway runs with: validated, secrets resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    pub auth_mode: AuthMode,
    /// The shared token (token mode), if any.
    pub token: Option<ResolvedSecret>,
    /// The shared password (password mode, or trusted-proxy fallback), if any.
    pub password: Option<ResolvedSecret>,
    pub local_owner: bool,
    pub trusted_proxies: Vec<IpNet>,
    /// Exact origins allowed besides the gateway's own loopback origins.
    pub allowed_origins: Vec<String>,
    pub auto_approve_local: bool,
}

impl Config {
    /// Defaults with the given auth mode and secrets; for tests and embedders.
    pub fn for_tests(auth_mode: AuthMode, token: Option<&str>, password: Option<&str>) -> Config {
        let secret = |v: &str| ResolvedSecret::new(v.to_owned(), SecretSource::Flag);
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: DEFAULT_PORT,
            auth_mode,
            token: token.map(secret),
            password: password.map(secret),
            local_owner: true,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            auto_approve_local: true,
        }
    }

    pub fn is_loopback_bind(&self) -> bool {
        self.bind.is_loopback()
    }

    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        let peer = crate::net::canonical(peer);
        self.trusted_proxies.iter().any(|net| net.contains(peer))
    }
}
