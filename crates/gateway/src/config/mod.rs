//! Gateway configuration: OpenClaw's `gateway.*` key names, JSON5 on disk,
//! closed objects (an unknown key is an error naming it).

pub mod admin;
mod caps;
pub mod cluster;
pub mod error;
mod listeners;
mod load;
pub mod openclaw_compat;
pub mod runtime;
pub mod secret;
mod secret_policy;
pub mod store;
mod warnings;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Deserialize;

use crate::net::IpNet;
use clawgate_protocol::Role;

pub use error::ConfigError;
pub use listeners::{Listener, ListenerSection, Trust};
pub use load::{load, parse_file, resolve, ConfigSources};
pub use secret::{ResolvedSecret, SecretSource};
pub use secret_policy::{
    check_secret_strength, placeholder_reason, readable_secret_files, MIN_SECRET_CHARS, RECOMMENDED_SECRET_CHARS,
};

pub const DEFAULT_PORT: u16 = 18789;

/// The whole file, once OpenClaw's other sections and the gateway keys
/// clawgate does not act on are taken out (`openclaw_compat`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, rename = "$schema")]
    pub schema: Option<String>,
    #[serde(default)]
    pub gateway: GatewaySection,
    /// clawgate's own settings (OpenClaw has no such keys).
    #[serde(default)]
    pub clawgate: ClawgateSection,
}

/// The `clawgate` section of the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClawgateSection {
    #[serde(default)]
    pub sessions: SessionsSection,
}

/// `clawgate.sessions`: caps on admitted sessions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionsSection {
    pub max_per_address: Option<usize>,
    pub max_per_principal: Option<usize>,
}

/// How many sessions may be open at once from one address (IPv6: one /64)
/// and for one principal (the owner's secret, a device, a service, a proxy
/// user). A connect past either is refused with `SESSION_LIMIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub max_per_address: usize,
    pub max_per_principal: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits { max_per_address: 256, max_per_principal: 512 }
    }
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
    /// Limits `local-owner` to the listed local programs (docs/admission.md).
    pub trusted_local_services: Option<Vec<TrustedLocalServiceEntry>>,
    /// Upstream mode: an OpenClaw gateway behind clawgate.
    pub upstream: Option<crate::upstream::config::UpstreamSection>,
    /// Listeners beside the main one, each with a trust level.
    #[serde(default)]
    pub listeners: Vec<ListenerSection>,
    /// The admin listener (metrics and health).
    pub admin: Option<admin::AdminSection>,
    /// Where the pairing store lives (a shared PostgreSQL database).
    pub store: Option<store::StoreSection>,
    /// Several instances on NATS (docs/cluster.md).
    pub cluster: Option<cluster::ClusterSection>,
    /// `gateway.limits`: resource limits (docs/operations.md).
    #[serde(default)]
    pub limits: LimitsSection,
    /// `threadPerCore` or `workStealing` (docs/configuration.md).
    pub runtime: Option<String>,
}

/// `gateway.limits`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitsSection {
    /// Sockets open at once, all together; default from the open-file limit.
    pub max_connections: Option<usize>,
}

/// One `gateway.trustedLocalServices` entry: a local program, by the client
/// id and mode it declares, with the roles and the scope ceiling it may use
/// through `local-owner`. Client ids are self-declared: this guards against
/// accidents, not attackers (docs/threat-model.md, H14).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrustedLocalServiceEntry {
    pub client_id: String,
    pub mode: String,
    /// Roles it may take; default `["operator"]` (node only if listed).
    pub roles: Option<Vec<String>>,
    /// The most it may ask for; asking for more is refused, never trimmed.
    /// Absent: no ceiling beyond `local-owner`'s own.
    pub max_scopes: Option<Vec<String>>,
}

/// `gateway.auth.trustedProxy` (mode `trusted-proxy`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrustedProxySection {
    /// The header the proxy puts the authenticated user in.
    pub user_header: Option<String>,
    /// Headers the proxy always sends; missing ⇒ `trusted_proxy_missing_header_<name>`.
    #[serde(default)]
    pub required_headers: Vec<String>,
    /// When non-empty, only these users (exact, case-sensitive) get in.
    #[serde(default)]
    pub allow_users: Vec<String>,
    /// Accept a trusted proxy on a loopback address, and `loopbackUser`.
    pub allow_loopback: Option<bool>,
    /// The identity of a headerless direct-local caller (needs `allowLoopback`).
    pub loopback_user: Option<String>,
    /// Opt-in: approve a proxy user's device inline within these scopes
    /// (rule `proxy-device-auto-approve`).
    pub device_auto_approve: Option<DeviceAutoApproveSection>,
}

/// `gateway.auth.trustedProxy.deviceAutoApprove`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceAutoApproveSection {
    /// OpenClaw's switch: `false` turns the section off; absent means on.
    pub enabled: Option<bool>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthSection {
    pub mode: Option<AuthMode>,
    pub token: Option<String>,
    pub password: Option<String>,
    /// Off turns the `local-owner` rule off (docs/admission.md).
    pub local_owner: Option<bool>,
    /// The uids whose loopback programs count as the owner's (Linux; default:
    /// the gateway's own uid). docs/admission.md, peer uid.
    pub local_owner_uids: Option<Vec<u32>>,
    pub trusted_proxy: Option<TrustedProxySection>,
    /// Proxy user → the scopes that user may ask for (`"*"`: any other user).
    #[serde(default)]
    pub identity_scopes: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ControlUiSection {
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
    /// A loopback peer whose socket is owned by another uid is not
    /// direct-local (where the uid can be looked up).
    pub local_owner_uids: Vec<u32>,
    pub trusted_proxies: Vec<IpNet>,
    /// Exact origins allowed besides the gateway's own loopback origins.
    pub allowed_origins: Vec<String>,
    pub auto_approve_local: bool,
    /// Set exactly when the mode is `trusted-proxy` (validated at load).
    pub trusted_proxy: Option<TrustedProxyConfig>,
    /// Proxy user → the scopes that user may ask for, normalized; `"*"` is
    /// the entry for users not listed.
    pub identity_scopes: BTreeMap<String, Vec<String>>,
    /// `None`: every local program may use `local-owner`. `Some`: only these.
    pub trusted_local_services: Option<Vec<TrustedLocalService>>,
    /// Set in upstream mode.
    pub upstream: Option<crate::upstream::config::UpstreamConfig>,
    /// Listeners beside the main one (which is `bind`:`port`, trust `local`).
    pub listeners: Vec<Listener>,
    /// `clawgate.sessions`.
    pub session_limits: SessionLimits,
    /// `gateway.limits.maxConnections`; `None`: derived from the open-file
    /// limit (`server::max_connections`).
    pub max_connections: Option<usize>,
    /// The admin listener's address (`gateway.admin.bind`, `--admin`); `None`: off.
    pub admin: Option<std::net::SocketAddr>,
    /// `gateway.store.url` / `CLAWGATE_STORE_URL`: the PostgreSQL store;
    /// `None`: the SQLite file in the state directory.
    pub store_url: Option<store::StoreUrl>,
    /// `gateway.cluster`: this instance's place in a cluster; `None`: alone.
    pub cluster: Option<cluster::ClusterConfig>,
    /// `gateway.runtime` / `CLAWGATE_RUNTIME` / `--runtime`: how `clawgate
    /// gateway run` schedules connections (the library's `serve` takes
    /// whatever runtime it is called on).
    pub runtime: runtime::RuntimeMode,
    /// Lines about what the config file held that clawgate does not read.
    pub file_notes: Vec<String>,
}

/// `gateway.auth.trustedProxy`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxyConfig {
    /// Lower-case.
    pub user_header: String,
    pub required_headers: Vec<RequiredHeader>,
    pub allow_users: Vec<String>,
    pub allow_loopback: bool,
    pub loopback_user: Option<String>,
    /// `deviceAutoApprove.scopes`, normalized: a proxy user's device asking
    /// within these (and the user's `identityScopes`) is approved inline.
    /// `None`: every device of a proxy user waits for an explicit approval.
    pub device_auto_approve: Option<Vec<String>>,
}

/// A required header: the lower-case name looked up, and the refusal reason
/// naming it as configured (`trusted_proxy_missing_header_<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredHeader {
    pub name: String,
    pub reason: &'static str,
}

impl TrustedProxyConfig {
    pub fn new(user_header: &str, required_headers: &[&str]) -> TrustedProxyConfig {
        TrustedProxyConfig {
            user_header: user_header.trim().to_ascii_lowercase(),
            required_headers: required_headers.iter().map(|h| RequiredHeader::new(h)).collect(),
            allow_users: Vec::new(),
            allow_loopback: false,
            loopback_user: None,
            device_auto_approve: None,
        }
    }

    /// The configured identity headers (user header and required headers):
    /// honoured only from a socket in `gateway.trustedProxies`.
    pub fn identity_headers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.user_header.as_str()).chain(self.required_headers.iter().map(|h| h.name.as_str()))
    }

    /// `allowUsers` is empty, or lists `user` exactly.
    pub fn allows(&self, user: &str) -> bool {
        self.allow_users.is_empty() || self.allow_users.iter().any(|u| u == user)
    }
}

impl RequiredHeader {
    pub fn new(configured: &str) -> RequiredHeader {
        let configured = configured.trim();
        RequiredHeader {
            name: configured.to_ascii_lowercase(),
            reason: intern(format!("trusted_proxy_missing_header_{configured}")),
        }
    }
}

/// `gateway.trustedLocalServices[i]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedLocalService {
    pub client_id: String,
    pub mode: String,
    pub roles: Vec<Role>,
    /// Normalized; `None`: no ceiling of its own.
    pub max_scopes: Option<Vec<String>>,
}

/// A string that lives as long as the process, made once per distinct value
/// (refusal reasons that name a configured header must be `&'static str`).
pub(crate) fn intern(s: String) -> &'static str {
    static SEEN: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = seen.get(s.as_str()) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    seen.insert(leaked);
    leaked
}

impl Config {
    /// Defaults with the given auth mode and secrets, for embedders that do
    /// not read a configuration file.
    pub fn new(auth_mode: AuthMode, token: Option<&str>, password: Option<&str>) -> Config {
        let secret = |v: &str| ResolvedSecret::new(v.to_owned(), SecretSource::Flag);
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: DEFAULT_PORT,
            auth_mode,
            token: token.map(secret),
            password: password.map(secret),
            local_owner: true,
            local_owner_uids: vec![crate::net::peer_uid::own_uid()],
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            auto_approve_local: true,
            trusted_proxy: None,
            identity_scopes: BTreeMap::new(),
            trusted_local_services: None,
            upstream: None,
            listeners: Vec::new(),
            session_limits: SessionLimits::default(),
            max_connections: None,
            admin: None,
            store_url: None,
            cluster: None,
            runtime: runtime::RuntimeMode::default(),
            file_notes: Vec::new(),
        }
    }

    /// The scopes a proxy user may ask for: its `identityScopes` entry, else
    /// the `"*"` entry, else none.
    pub fn identity_scopes_for(&self, user: &str) -> &[String] {
        self.identity_scopes.get(user).or_else(|| self.identity_scopes.get("*")).map_or(&[], Vec::as_slice)
    }

    pub fn is_loopback_bind(&self) -> bool {
        self.bind.is_loopback()
    }

    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        let peer = crate::net::canonical(peer);
        self.trusted_proxies.iter().any(|net| net.contains(peer))
    }

    /// Is there a `proxy` listener? Then `trustedProxies` count there only.
    pub fn has_proxy_listener(&self) -> bool {
        self.listeners.iter().any(|l| l.trust == Trust::Proxy)
    }

    /// Do `gateway.trustedProxies` (their forwarding and identity headers)
    /// count on a listener of this trust level?
    pub fn proxies_count_on(&self, trust: Trust) -> bool {
        match trust {
            Trust::Local => !self.has_proxy_listener(),
            Trust::Proxy => true,
            Trust::Remote => false,
        }
    }

    /// Is a headerless loopback connection on the main listener possibly a
    /// proxied one? Only while a trusted proxy covers loopback and no `proxy`
    /// listener takes the proxies elsewhere (docs/threat-model.md, H2).
    pub fn loopback_is_ambiguous(&self) -> bool {
        self.loopback_is_trusted_proxy() && !self.has_proxy_listener()
    }

    /// Does a `gateway.trustedProxies` entry cover loopback? Then a headerless
    /// loopback connection may be a proxied one (docs/threat-model.md, H2).
    pub fn loopback_is_trusted_proxy(&self) -> bool {
        self.trusted_proxies.iter().any(|net| {
            crate::net::is_loopback(net.addr())
                || net.contains(IpAddr::from([127, 0, 0, 1]))
                || net.contains(IpAddr::from(std::net::Ipv6Addr::LOCALHOST))
        })
    }
}
