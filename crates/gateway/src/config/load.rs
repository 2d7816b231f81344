//! Reading the config file, applying environment and flag overrides, and
//! refusing unsafe combinations with a message that names the key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::net::IpNet;
use crate::secrets::SecretDigest;

use super::{AuthMode, Config, ConfigFile, DEFAULT_PORT};

/// Everything `load` reads besides the file: environment and command-line flags.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    pub file: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    pub port: Option<u16>,
    pub bind: Option<String>,
    pub auth_mode: Option<AuthMode>,
    pub token: Option<String>,
}

impl ConfigSources {
    /// The process environment's variables that config reads.
    pub fn from_process_env() -> BTreeMap<String, String> {
        std::env::vars().filter(|(k, _)| k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_")).collect()
    }
}

/// Where a secret came from, so errors and `gateway token` can say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    ConfigKey(&'static str),
    Env(&'static str),
    Flag,
    Generated(PathBuf),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::ConfigKey(k) => write!(f, "config key {k}"),
            SecretSource::Env(v) => write!(f, "environment variable {v}"),
            SecretSource::Flag => f.write_str("command-line flag"),
            SecretSource::Generated(p) => write!(f, "generated token file {}", p.display()),
        }
    }
}

/// A shared secret as configured. Only its digest is used to compare; the
/// value is kept so `clawgate gateway token` can print it. Never logged.
#[derive(Clone)]
pub struct ResolvedSecret {
    value: String,
    digest: SecretDigest,
    pub source: SecretSource,
}

impl ResolvedSecret {
    pub fn new(value: String, source: SecretSource) -> Self {
        let digest = SecretDigest::of(value.as_bytes());
        ResolvedSecret { value, digest, source }
    }

    pub fn digest(&self) -> &SecretDigest {
        &self.digest
    }

    pub fn reveal(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for ResolvedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResolvedSecret(<redacted>, from {})", self.source)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid JSON5: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Unsafe { key: String, message: String },
    #[error("{0}")]
    Other(String),
}

impl ConfigError {
    /// A stable code for scripts and logs.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "CONFIG_UNREADABLE",
            ConfigError::Syntax { .. } => "CONFIG_SYNTAX",
            ConfigError::Invalid { .. } => "CONFIG_INVALID",
            ConfigError::Unsafe { .. } => "CONFIG_UNSAFE",
            ConfigError::Other(_) => "CONFIG_ERROR",
        }
    }
}

/// Parse a config file's text (JSON5). Unknown keys are named with their path.
pub fn parse_file(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
    let value: serde_json::Value =
        json5::from_str(text).map_err(|e| ConfigError::Syntax { path: path.to_owned(), message: e.to_string() })?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let message = if at == "." { e.inner().to_string() } else { format!("at {at}: {}", e.inner()) };
        ConfigError::Invalid { path: path.to_owned(), message }
    })
}

/// Values that are not secrets even though they were put where one goes.
fn is_placeholder(v: &str) -> bool {
    let t = v.trim();
    t.is_empty() || t == "undefined" || t == "null"
}

/// Resolve the configuration. `generate_token` is called only in token mode
/// when no token is configured anywhere; it returns a persisted token.
pub fn load(
    sources: &ConfigSources,
    generate_token: &mut dyn FnMut() -> Result<(String, PathBuf), ConfigError>,
) -> Result<Config, ConfigError> {
    let file = match &sources.file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            parse_file(path, &text)?
        }
        None => ConfigFile::default(),
    };
    let g = file.gateway;
    let env = |k: &str| sources.env.get(k).filter(|v| !v.is_empty()).cloned();

    let port = match sources.port.or(g.port) {
        Some(p) => p,
        None => match env("CLAWGATE_PORT") {
            Some(p) => p.parse().map_err(|_| unsafe_key("CLAWGATE_PORT", format!("not a port number: {p:?}")))?,
            None => DEFAULT_PORT,
        },
    };
    let bind_text =
        sources.bind.clone().or_else(|| env("CLAWGATE_BIND")).or(g.bind).unwrap_or_else(|| "loopback".into());
    let bind = parse_bind(&bind_text)?;

    // Secrets: flag, then CLAWGATE_*, then OPENCLAW_*, then the config file.
    let token = pick_secret(
        sources.token.clone().map(|v| (v, SecretSource::Flag)),
        &[("CLAWGATE_GATEWAY_TOKEN", &env), ("OPENCLAW_GATEWAY_TOKEN", &env)],
        g.auth.token.clone().map(|v| (v, SecretSource::ConfigKey("gateway.auth.token"))),
    );
    let password = pick_secret(
        None,
        &[("CLAWGATE_GATEWAY_PASSWORD", &env), ("OPENCLAW_GATEWAY_PASSWORD", &env)],
        g.auth.password.clone().map(|v| (v, SecretSource::ConfigKey("gateway.auth.password"))),
    );

    let auth_mode = sources.auth_mode.or(g.auth.mode).unwrap_or(if password.is_some() && token.is_none() {
        AuthMode::Password
    } else {
        AuthMode::Token
    });

    for (secret, what) in [(&token, "token"), (&password, "password")] {
        if let Some((v, source)) = secret {
            if is_placeholder(v) {
                return Err(unsafe_key(
                    &source_key(source, what),
                    format!("the gateway {what} is blank or a placeholder (\"undefined\"/\"null\"); set a real secret"),
                ));
            }
        }
    }

    let token = match (auth_mode, token) {
        (AuthMode::Token, None) => {
            let (value, path) = generate_token()?;
            Some(ResolvedSecret::new(value, SecretSource::Generated(path)))
        }
        (_, t) => t.map(|(v, s)| ResolvedSecret::new(v, s)),
    };
    let password = password.map(|(v, s)| ResolvedSecret::new(v, s));

    match auth_mode {
        AuthMode::Password if password.is_none() => {
            return Err(unsafe_key(
                "gateway.auth.password",
                "password mode needs a password (gateway.auth.password or OPENCLAW_GATEWAY_PASSWORD)".into(),
            ));
        }
        AuthMode::None if !bind.is_loopback() => {
            return Err(unsafe_key(
                "gateway.auth.mode",
                format!(
                    "mode \"none\" on a non-loopback bind ({bind}) would let anyone on the network in; use token mode"
                ),
            ));
        }
        AuthMode::TrustedProxy => {
            return Err(unsafe_key(
                "gateway.auth.mode",
                "trusted-proxy mode is not available in this version of clawgate".into(),
            ));
        }
        _ => {}
    }

    let mut trusted_proxies = Vec::with_capacity(g.trusted_proxies.len());
    for (i, entry) in g.trusted_proxies.iter().enumerate() {
        let net: IpNet = entry.parse().map_err(|e| unsafe_key(&format!("gateway.trustedProxies[{i}]"), e))?;
        trusted_proxies.push(net);
    }

    let mut allowed_origins = Vec::with_capacity(g.control_ui.allowed_origins.len());
    for (i, origin) in g.control_ui.allowed_origins.iter().enumerate() {
        let key = format!("gateway.controlUi.allowedOrigins[{i}]");
        let o = origin.trim();
        if o.eq_ignore_ascii_case("null") {
            return Err(unsafe_key(&key, "\"null\" would admit sandboxed and file: pages; list exact origins".into()));
        }
        if o == "*" && auth_mode == AuthMode::None {
            return Err(unsafe_key(&key, "\"*\" together with auth mode \"none\" lets any web page in".into()));
        }
        allowed_origins.push(o.trim_end_matches('/').to_ascii_lowercase());
    }

    Ok(Config {
        bind,
        port,
        auth_mode,
        token,
        password,
        local_owner: g.auth.local_owner.unwrap_or(true),
        trusted_proxies,
        allowed_origins,
        auto_approve_local: g.nodes.pairing.auto_approve_local.unwrap_or(true),
    })
}

type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn pick_secret(
    flag: Option<(String, SecretSource)>,
    envs: &[(&'static str, EnvLookup<'_>)],
    file: Option<(String, SecretSource)>,
) -> Option<(String, SecretSource)> {
    flag.or_else(|| envs.iter().find_map(|(name, get)| get(name).map(|v| (v, SecretSource::Env(name))))).or(file)
}

fn source_key(source: &SecretSource, what: &str) -> String {
    match source {
        SecretSource::ConfigKey(k) => (*k).to_owned(),
        SecretSource::Env(v) => (*v).to_owned(),
        SecretSource::Flag => format!("--{what}"),
        SecretSource::Generated(p) => p.display().to_string(),
    }
}

fn unsafe_key(key: &str, message: String) -> ConfigError {
    ConfigError::Unsafe { key: key.to_owned(), message }
}

fn parse_bind(text: &str) -> Result<IpAddr, ConfigError> {
    match text {
        "loopback" | "localhost" => Ok(IpAddr::from([127, 0, 0, 1])),
        "lan" | "all" => Ok(IpAddr::from([0, 0, 0, 0])),
        other => other.parse().map_err(|_| {
            unsafe_key("gateway.bind", format!("{other:?} is not \"loopback\", \"lan\" or an IP address"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_generation() -> impl FnMut() -> Result<(String, PathBuf), ConfigError> {
        || Err(ConfigError::Other("generation not expected".into()))
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let err = parse_file(Path::new("c.json5"), "{gateway: {auth: {tokn: 'x'}}}").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("gateway.auth") && text.contains("tokn"), "{text}");
        let err = parse_file(Path::new("c.json5"), "{agents: {}}").unwrap_err();
        assert!(err.to_string().contains("agents"), "{err}");
    }

    #[test]
    fn json5_syntax_is_accepted() {
        let f =
            parse_file(Path::new("c.json5"), "// comment\n{gateway: {port: 1234, auth: {mode: 'none',},},}").unwrap();
        assert_eq!(f.gateway.port, Some(1234));
        assert_eq!(f.gateway.auth.mode, Some(AuthMode::None));
    }

    #[test]
    fn defaults_generate_a_token_on_loopback() {
        let mut called = false;
        let cfg = load(&ConfigSources::default(), &mut || {
            called = true;
            Ok(("generated-secret-generated-secret".into(), PathBuf::from("state/gateway.token")))
        })
        .unwrap();
        assert!(called);
        assert_eq!(cfg.port, DEFAULT_PORT);
        assert!(cfg.bind.is_loopback());
        assert_eq!(cfg.auth_mode, AuthMode::Token);
        assert_eq!(cfg.token.unwrap().reveal(), "generated-secret-generated-secret");
    }

    #[test]
    fn env_overrides_and_placeholders() {
        let mut s = ConfigSources::default();
        s.env.insert("OPENCLAW_GATEWAY_TOKEN".into(), "from-env".into());
        let cfg = load(&s, &mut no_generation()).unwrap();
        assert_eq!(cfg.token.as_ref().unwrap().reveal(), "from-env");
        assert_eq!(cfg.token.unwrap().source, SecretSource::Env("OPENCLAW_GATEWAY_TOKEN"));

        s.env.insert("CLAWGATE_GATEWAY_TOKEN".into(), "undefined".into());
        let err = load(&s, &mut no_generation()).unwrap_err();
        assert!(err.to_string().starts_with("CLAWGATE_GATEWAY_TOKEN"), "{err}");
    }

    #[test]
    fn unsafe_combinations_name_the_key() {
        let s = ConfigSources { bind: Some("lan".into()), auth_mode: Some(AuthMode::None), ..Default::default() };
        assert!(load(&s, &mut no_generation()).unwrap_err().to_string().starts_with("gateway.auth.mode"));
        let s = ConfigSources { auth_mode: Some(AuthMode::Password), ..Default::default() };
        assert!(load(&s, &mut no_generation()).unwrap_err().to_string().starts_with("gateway.auth.password"));
        let s = ConfigSources { bind: Some("nowhere".into()), ..Default::default() };
        assert!(load(&s, &mut no_generation()).unwrap_err().to_string().starts_with("gateway.bind"));
    }
}
