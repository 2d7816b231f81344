//! `gateway.upstream`: where the OpenClaw gateway behind clawgate listens and
//! the secret clawgate presents to it, validated at start-up.
//!
//! - `url`: `ws://` only to a loopback address (the upstream runs beside
//!   clawgate, and the secret travels in clear). `wss://` is recognised but
//!   refused: this build has no TLS client, and saying so at start-up beats
//!   failing on the first connect.
//! - The secret: `token`, `password` or `tokenFile` (at most one), overridden
//!   by `CLAWGATE_UPSTREAM_TOKEN` or `CLAWGATE_UPSTREAM_TOKEN_FILE`.
//! - `openclawConfig`: the upstream's own `openclaw.json`; its `gateway.port`
//!   gives the URL (`ws://127.0.0.1:<port>`) and its `gateway.auth.token` or
//!   `gateway.auth.password` the secret, unless one is set above. A file
//!   without a secret needs one from the keys or the environment: OpenClaw's
//!   own environment variables are clawgate's downstream secret, never the
//!   upstream's.
//!
//! - `handshakeTimeoutMs`, `livenessTimeoutMs`: when a silent upstream
//!   counts as gone (`timeouts.rs`).
//!
//! Every refusal names the key to fix.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::config::secret::{ResolvedSecret, SecretSource};

use super::timeouts::UpstreamTimeouts;

/// OpenClaw's default port, used when its config file names none.
pub const OPENCLAW_DEFAULT_PORT: u16 = 18789;

/// `gateway.upstream` as written in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpstreamSection {
    pub url: Option<String>,
    pub token: Option<String>,
    pub password: Option<String>,
    pub token_file: Option<String>,
    pub openclaw_config: Option<String>,
    pub forward_client_address: Option<bool>,
    pub handshake_timeout_ms: Option<u64>,
    pub liveness_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamScheme {
    Ws,
    Wss,
}

/// A parsed upstream URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub scheme: UpstreamScheme,
    /// Without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl UpstreamUrl {
    pub fn parse(text: &str) -> Result<UpstreamUrl, String> {
        let uri: hyper::Uri = text.trim().parse().map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        let scheme = match uri.scheme_str() {
            Some("ws") => UpstreamScheme::Ws,
            Some("wss") => UpstreamScheme::Wss,
            _ => return Err(format!("{text:?} is not a ws:// or wss:// URL")),
        };
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(format!("{text:?} carries credentials; put the secret in gateway.upstream.token"));
        }
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| format!("{text:?} has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(match scheme {
            UpstreamScheme::Ws => 80,
            UpstreamScheme::Wss => 443,
        });
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let path = if path.is_empty() { "/".to_owned() } else { path };
        Ok(UpstreamUrl { scheme, host, port, path })
    }

    /// An IP literal on loopback, or `localhost`.
    pub fn is_loopback(&self) -> bool {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => crate::net::is_loopback(ip),
            Err(_) => self.host.eq_ignore_ascii_case("localhost"),
        }
    }

    /// `host:port` as put in a URL (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            UpstreamScheme::Ws => "ws",
            UpstreamScheme::Wss => "wss",
        };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    Token,
    Password,
}

/// The secret clawgate presents to the upstream, and what kind it is.
#[derive(Debug, Clone)]
pub struct UpstreamSecret {
    pub kind: SecretKind,
    pub value: ResolvedSecret,
}

/// `gateway.upstream`, validated and resolved.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub url: UpstreamUrl,
    pub secret: UpstreamSecret,
    /// Add `X-Forwarded-For` for non-loopback clients on relayed HTTP.
    pub forward_client_address: bool,
    /// How long a handshake and a silent live link may take (`timeouts.rs`).
    pub timeouts: UpstreamTimeouts,
}

/// What resolving `gateway.upstream` reads besides the section itself.
pub struct UpstreamInputs<'a> {
    /// `--upstream URL` on the command line; wins over `gateway.upstream.url`.
    pub url_flag: Option<&'a str>,
    /// Environment lookup (empty values already filtered out).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// For `~` in `openclawConfig`.
    pub home: Option<PathBuf>,
    /// clawgate's own listener, so pointing the upstream at it is refused.
    pub own_port: u16,
}

const KEY: &str = "gateway.upstream";

fn refuse(key: &str, message: String) -> ConfigError {
    ConfigError::Unsafe { key: key.to_owned(), message }
}

/// Resolve the section. `None` when upstream mode is off (no section, no flag).
pub fn resolve(
    section: Option<&UpstreamSection>,
    inputs: &UpstreamInputs<'_>,
) -> Result<Option<UpstreamConfig>, ConfigError> {
    let empty = UpstreamSection::default();
    let s = match (section, inputs.url_flag) {
        (None, None) => return Ok(None),
        (Some(s), _) => s,
        (None, Some(_)) => &empty,
    };
    let openclaw = match &s.openclaw_config {
        Some(path) => Some(read_openclaw_config(&expand_home(path, inputs.home.as_deref()))?),
        None => None,
    };

    let (url_key, url) = match (inputs.url_flag, &s.url, &openclaw) {
        (Some(flag), _, _) => ("--upstream", UpstreamUrl::parse(flag)),
        (None, Some(url), _) => ("gateway.upstream.url", UpstreamUrl::parse(url)),
        (None, None, Some(oc)) => ("gateway.upstream.openclawConfig", UpstreamUrl::parse(&oc.url())),
        (None, None, None) => {
            return Err(refuse(KEY, "set gateway.upstream.url or gateway.upstream.openclawConfig".into()));
        }
    };
    let url = url.map_err(|e| refuse(url_key, e))?;
    if url.scheme == UpstreamScheme::Ws && !url.is_loopback() {
        return Err(refuse(
            url_key,
            format!(
                "{url} is plain ws:// to a non-loopback host: the upstream secret would cross the network in \
                 clear; run OpenClaw beside clawgate on loopback, or use wss://"
            ),
        ));
    }
    if url.scheme == UpstreamScheme::Wss {
        return Err(refuse(
            url_key,
            format!(
                "{url}: wss:// upstreams are not supported by this build (no TLS client); run OpenClaw beside \
                 clawgate and use ws://127.0.0.1:<port>"
            ),
        ));
    }
    if url.is_loopback() && url.port == inputs.own_port {
        return Err(refuse(
            url_key,
            format!("{url} is clawgate's own port; move the OpenClaw gateway to another port (gateway.port)"),
        ));
    }

    let secret = resolve_secret(s, inputs, openclaw.as_ref())?;
    if secret.value.reveal().trim().is_empty() || matches!(secret.value.reveal().trim(), "undefined" | "null") {
        return Err(refuse(
            &secret_key(&secret.value.source),
            "the upstream secret is blank or a placeholder; set the upstream's real token".into(),
        ));
    }
    let timeouts = UpstreamTimeouts::from_keys(s.handshake_timeout_ms, s.liveness_timeout_ms)?;
    Ok(Some(UpstreamConfig {
        url,
        secret,
        forward_client_address: s.forward_client_address.unwrap_or(false),
        timeouts,
    }))
}

fn secret_key(source: &SecretSource) -> String {
    match source {
        SecretSource::ConfigKey(k) | SecretSource::Env(k) => (*k).to_owned(),
        SecretSource::File(p) | SecretSource::Generated(p) => p.display().to_string(),
        SecretSource::Flag => "--upstream-token".to_owned(),
    }
}

/// Environment first, then the section's keys (at most one), then the
/// upstream's own config file.
fn resolve_secret(
    s: &UpstreamSection,
    inputs: &UpstreamInputs<'_>,
    openclaw: Option<&OpenclawFile>,
) -> Result<UpstreamSecret, ConfigError> {
    let token = |value: String, source: SecretSource| UpstreamSecret {
        kind: SecretKind::Token,
        value: ResolvedSecret::new(value, source),
    };
    if let Some(v) = (inputs.env)("CLAWGATE_UPSTREAM_TOKEN") {
        return Ok(token(v, SecretSource::Env("CLAWGATE_UPSTREAM_TOKEN")));
    }
    if let Some(path) = (inputs.env)("CLAWGATE_UPSTREAM_TOKEN_FILE") {
        let v = read_secret_file("CLAWGATE_UPSTREAM_TOKEN_FILE", Path::new(&path))?;
        return Ok(token(v, SecretSource::File(PathBuf::from(path))));
    }
    let set: Vec<&str> = [
        s.token.as_ref().map(|_| "gateway.upstream.token"),
        s.password.as_ref().map(|_| "gateway.upstream.password"),
        s.token_file.as_ref().map(|_| "gateway.upstream.tokenFile"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if set.len() > 1 {
        return Err(refuse(set[1], format!("set only one of {}", set.join(", "))));
    }
    if let Some(v) = &s.token {
        return Ok(token(v.clone(), SecretSource::ConfigKey("gateway.upstream.token")));
    }
    if let Some(v) = &s.password {
        return Ok(UpstreamSecret {
            kind: SecretKind::Password,
            value: ResolvedSecret::new(v.clone(), SecretSource::ConfigKey("gateway.upstream.password")),
        });
    }
    if let Some(path) = &s.token_file {
        let path = expand_home(path, inputs.home.as_deref());
        let v = read_secret_file("gateway.upstream.tokenFile", &path)?;
        return Ok(token(v, SecretSource::File(path)));
    }
    if let Some(oc) = openclaw {
        if let Some((kind, value)) = &oc.secret {
            return Ok(UpstreamSecret {
                kind: *kind,
                value: ResolvedSecret::new(value.clone(), SecretSource::File(oc.path.clone())),
            });
        }
        return Err(refuse(
            "gateway.upstream.openclawConfig",
            format!(
                "{} has no gateway.auth.token or gateway.auth.password; set gateway.upstream.token or \
                 CLAWGATE_UPSTREAM_TOKEN to the upstream's token",
                oc.path.display()
            ),
        ));
    }
    Err(refuse(
        "gateway.upstream.token",
        "the upstream needs a secret: set gateway.upstream.token (or password, tokenFile, openclawConfig) \
         or CLAWGATE_UPSTREAM_TOKEN"
            .into(),
    ))
}

fn read_secret_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_owned())
        .map_err(|e| refuse(key, format!("cannot read {}: {e}", path.display())))
}

/// `~` or `~/…` with the home directory; anything else as is.
pub fn expand_home(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(h)) => h.to_owned(),
        (Some(rest), Some(h)) if rest.starts_with('/') => h.join(rest.trim_start_matches('/')),
        _ => PathBuf::from(path),
    }
}

/// What clawgate reads from the upstream's `openclaw.json`.
#[derive(Debug)]
pub(crate) struct OpenclawFile {
    path: PathBuf,
    port: u16,
    secret: Option<(SecretKind, String)>,
}

impl OpenclawFile {
    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
}

const OPENCLAW_CONFIG_KEY: &str = "gateway.upstream.openclawConfig";

fn read_openclaw_config(path: &Path) -> Result<OpenclawFile, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| refuse(OPENCLAW_CONFIG_KEY, format!("cannot read {}: {e}", path.display())))?;
    parse_openclaw_config(path, &text)
}

/// The upstream's port and secret from the text of its `openclaw.json`.
pub(crate) fn parse_openclaw_config(path: &Path, text: &str) -> Result<OpenclawFile, ConfigError> {
    const K: &str = OPENCLAW_CONFIG_KEY;
    let doc: serde_json::Value =
        json5::from_str(text).map_err(|e| refuse(K, format!("{} is not valid JSON5: {e}", path.display())))?;
    let gateway = doc.get("gateway");
    let port = match gateway.and_then(|g| g.get("port")) {
        None => OPENCLAW_DEFAULT_PORT,
        Some(p) => p
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| refuse(K, format!("{}: gateway.port {p} is not a port number", path.display())))?,
    };
    let auth = gateway.and_then(|g| g.get("auth"));
    let plain = |name: &str| -> Result<Option<String>, ConfigError> {
        match auth.and_then(|a| a.get(name)) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(serde_json::Value::String(_)) => Ok(None),
            Some(_) => Err(refuse(
                K,
                format!(
                    "{}: gateway.auth.{name} is not a plain string (a secret reference?); set \
                     gateway.upstream.token or CLAWGATE_UPSTREAM_TOKEN instead",
                    path.display()
                ),
            )),
        }
    };
    let token = plain("token")?;
    let password = plain("password")?;
    let mode = auth.and_then(|a| a.get("mode")).and_then(|m| m.as_str());
    let secret = match (mode, token, password) {
        (Some("password"), _, Some(p)) => Some((SecretKind::Password, p)),
        (_, Some(t), _) => Some((SecretKind::Token, t)),
        (_, None, Some(p)) => Some((SecretKind::Password, p)),
        (_, None, None) => None,
    };
    Ok(OpenclawFile { path: path.to_owned(), port, secret })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
