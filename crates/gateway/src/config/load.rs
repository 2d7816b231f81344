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
    /// `--upstream URL`: turns upstream mode on (`gateway.upstream`).
    pub upstream_url: Option<String>,
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
    /// A file named by an environment variable.
    File(PathBuf),
    Generated(PathBuf),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::ConfigKey(k) => write!(f, "config key {k}"),
            SecretSource::Env(v) => write!(f, "environment variable {v}"),
            SecretSource::Flag => f.write_str("command-line flag"),
            SecretSource::File(p) => write!(f, "secret file {}", p.display()),
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
    // A secret may also come from a file (CLAWGATE_GATEWAY_TOKEN_FILE): kept
    // out of the environment of child processes and out of the process list.
    let token_file = secret_from_file(&env, "CLAWGATE_GATEWAY_TOKEN_FILE")?;
    let password_file = secret_from_file(&env, "CLAWGATE_GATEWAY_PASSWORD_FILE")?;
    let token = pick_secret(
        sources.token.clone().map(|v| (v, SecretSource::Flag)),
        &[("CLAWGATE_GATEWAY_TOKEN", &env)],
        token_file.or_else(|| pick_secret(None, &[("OPENCLAW_GATEWAY_TOKEN", &env)], None)),
    )
    .or_else(|| g.auth.token.clone().map(|v| (v, SecretSource::ConfigKey("gateway.auth.token"))));
    let password = pick_secret(
        None,
        &[("CLAWGATE_GATEWAY_PASSWORD", &env)],
        password_file.or_else(|| pick_secret(None, &[("OPENCLAW_GATEWAY_PASSWORD", &env)], None)),
    )
    .or_else(|| g.auth.password.clone().map(|v| (v, SecretSource::ConfigKey("gateway.auth.password"))));

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

    let token_source = token.clone();
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
        _ => {}
    }

    let mut trusted_proxies = Vec::with_capacity(g.trusted_proxies.len());
    for (i, entry) in g.trusted_proxies.iter().enumerate() {
        let net: IpNet = entry.parse().map_err(|e| unsafe_key(&format!("gateway.trustedProxies[{i}]"), e))?;
        trusted_proxies.push(net);
    }

    let trusted_proxy = match auth_mode {
        AuthMode::TrustedProxy => {
            if let Some((_, source)) = &token_source {
                return Err(unsafe_key(
                    &source_key(source, "token"),
                    "a gateway token is configured, but trusted-proxy mode has no token fallback: the proxy's \
                     user header is the credential. Remove the token (service tokens still work), or use token mode"
                        .into(),
                ));
            }
            Some(trusted_proxy_config(g.auth.trusted_proxy.as_ref(), &trusted_proxies)?)
        }
        AuthMode::None => {
            // Mode none makes every local process the owner; nothing may widen
            // who counts as local (security review H4).
            if !trusted_proxies.is_empty() {
                return Err(unsafe_key(
                    "gateway.trustedProxies",
                    "auth mode \"none\" cannot be combined with trusted proxies: whatever the proxy forwards \
                     would reach a gateway without a secret; use token mode"
                        .into(),
                ));
            }
            if let Some(tp) = &g.auth.trusted_proxy {
                if tp.allow_loopback.is_some() || tp.loopback_user.is_some() {
                    return Err(unsafe_key(
                        "gateway.auth.trustedProxy",
                        "auth mode \"none\" cannot be combined with trustedProxy.allowLoopback or loopbackUser".into(),
                    ));
                }
            }
            None
        }
        // OpenClaw configs may carry a trustedProxy section while another mode
        // is active; it is not used then.
        AuthMode::Token | AuthMode::Password => None,
    };

    let mut identity_scopes = std::collections::BTreeMap::new();
    for (user, scopes) in &g.auth.identity_scopes {
        let key = format!("gateway.auth.identityScopes[{user:?}]");
        if user.trim().is_empty() || user.trim() != user {
            return Err(unsafe_key(&key, "user names must be non-empty, without surrounding spaces".into()));
        }
        identity_scopes.insert(user.clone(), checked_scope_list(&key, scopes)?);
    }

    let trusted_local_services = match &g.trusted_local_services {
        None => None,
        Some(entries) => Some(trusted_local_services(entries)?),
    };

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

    let upstream = crate::upstream::config::resolve(
        g.upstream.as_ref(),
        &crate::upstream::config::UpstreamInputs {
            url_flag: sources.upstream_url.as_deref(),
            env: &env,
            home: sources.env.get("HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(PathBuf::from)),
            own_port: port,
        },
    )?;

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
        trusted_proxy,
        identity_scopes,
        trusted_local_services,
        upstream,
    })
}

/// A header name as HTTP allows it (a token), checked and named by key.
fn header_name(key: &str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(unsafe_key(key, format!("{value:?} is not a valid HTTP header name")))
    }
}

/// Operator scopes, normalized. Unknown `operator.*` names are kept (the
/// protocol may grow), anything else is an error.
fn checked_scope_list(key: &str, scopes: &[String]) -> Result<Vec<String>, ConfigError> {
    for (i, scope) in scopes.iter().enumerate() {
        if !scope.trim().starts_with("operator.") {
            return Err(unsafe_key(&format!("{key}[{i}]"), format!("{scope:?} is not an operator scope (operator.*)")));
        }
    }
    Ok(clawgate_protocol::scopes::normalize(scopes))
}

/// `gateway.auth.trustedProxy` for trusted-proxy mode: every key it needs,
/// and none of the combinations that hand out identities by accident.
fn trusted_proxy_config(
    section: Option<&super::TrustedProxySection>,
    trusted_proxies: &[IpNet],
) -> Result<super::TrustedProxyConfig, ConfigError> {
    const KEY: &str = "gateway.auth.trustedProxy";
    let Some(tp) = section else {
        return Err(unsafe_key(
            KEY,
            "trusted-proxy mode needs gateway.auth.trustedProxy with at least userHeader".into(),
        ));
    };
    if trusted_proxies.is_empty() {
        return Err(unsafe_key(
            "gateway.trustedProxies",
            "trusted-proxy mode needs the proxy's address (IP or CIDR) in gateway.trustedProxies: the user \
             header is honoured only from there"
                .into(),
        ));
    }
    let user_header = match &tp.user_header {
        None => {
            return Err(unsafe_key(
                &format!("{KEY}.userHeader"),
                "trusted-proxy mode needs the header the proxy puts the user in (e.g. \"x-forwarded-user\")".into(),
            ))
        }
        Some(h) => header_name(&format!("{KEY}.userHeader"), h)?,
    };
    let mut required_headers = Vec::with_capacity(tp.required_headers.len());
    for (i, h) in tp.required_headers.iter().enumerate() {
        required_headers.push(super::RequiredHeader::new(&header_name(&format!("{KEY}.requiredHeaders[{i}]"), h)?));
    }
    for (i, u) in tp.allow_users.iter().enumerate() {
        if u.trim().is_empty() {
            return Err(unsafe_key(&format!("{KEY}.allowUsers[{i}]"), "an empty user name".into()));
        }
    }
    let allow_loopback = tp.allow_loopback.unwrap_or(false);
    let loopback_user = match &tp.loopback_user {
        None => None,
        Some(u) => {
            let key = format!("{KEY}.loopbackUser");
            if u.trim().is_empty() || u.trim() != u {
                return Err(unsafe_key(&key, "must be a user name, without surrounding spaces".into()));
            }
            if !allow_loopback {
                return Err(unsafe_key(
                    &key,
                    "has no effect unless gateway.auth.trustedProxy.allowLoopback is true; set both, or remove it"
                        .into(),
                ));
            }
            if !tp.allow_users.is_empty() && !tp.allow_users.contains(u) {
                return Err(unsafe_key(
                    &key,
                    format!("{u:?} is not in gateway.auth.trustedProxy.allowUsers, which applies to it too"),
                ));
            }
            Some(u.clone())
        }
    };
    Ok(super::TrustedProxyConfig {
        user_header: user_header.to_ascii_lowercase(),
        required_headers,
        allow_users: tp.allow_users.clone(),
        allow_loopback,
        loopback_user,
    })
}

/// `gateway.trustedLocalServices`, validated: one entry per (client id, mode),
/// never a browser client, roles operator or node.
fn trusted_local_services(
    entries: &[super::TrustedLocalServiceEntry],
) -> Result<Vec<super::TrustedLocalService>, ConfigError> {
    use clawgate_protocol::Role;
    let mut out: Vec<super::TrustedLocalService> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let key = format!("gateway.trustedLocalServices[{i}]");
        let client_id = e.client_id.trim();
        let mode = e.mode.trim();
        if client_id.is_empty() || mode.is_empty() {
            return Err(unsafe_key(&key, "clientId and mode are both required".into()));
        }
        if clawgate_protocol::client_info::is_browser_client(client_id, mode) {
            return Err(unsafe_key(
                &key,
                format!("{client_id}/{mode} is a browser client: browsers never use local-owner, they pair a device"),
            ));
        }
        if out.iter().any(|o| o.client_id == client_id && o.mode == mode) {
            return Err(unsafe_key(&key, format!("{client_id}/{mode} is listed twice")));
        }
        let roles = match &e.roles {
            None => vec![Role::Operator],
            Some(list) => {
                let mut roles = Vec::new();
                for (j, r) in list.iter().enumerate() {
                    let role = Role::parse(r.trim()).ok_or_else(|| {
                        unsafe_key(&format!("{key}.roles[{j}]"), format!("{r:?} is not \"operator\" or \"node\""))
                    })?;
                    if !roles.contains(&role) {
                        roles.push(role);
                    }
                }
                if roles.is_empty() {
                    return Err(unsafe_key(&format!("{key}.roles"), "list at least one role".into()));
                }
                roles
            }
        };
        let max_scopes = match &e.max_scopes {
            None => None,
            Some(list) => Some(checked_scope_list(&format!("{key}.maxScopes"), list)?),
        };
        out.push(super::TrustedLocalService {
            client_id: client_id.to_owned(),
            mode: mode.to_owned(),
            roles,
            max_scopes,
        });
    }
    Ok(out)
}

type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn pick_secret(
    flag: Option<(String, SecretSource)>,
    envs: &[(&'static str, EnvLookup<'_>)],
    file: Option<(String, SecretSource)>,
) -> Option<(String, SecretSource)> {
    flag.or_else(|| envs.iter().find_map(|(name, get)| get(name).map(|v| (v, SecretSource::Env(name))))).or(file)
}

/// The secret in the file named by environment variable `var`, if it is set.
fn secret_from_file(
    env: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<Option<(String, SecretSource)>, ConfigError> {
    let Some(path) = env(var) else { return Ok(None) };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| unsafe_key(var, format!("cannot read the secret file {path:?}: {e}")))?;
    Ok(Some((text.trim().to_owned(), SecretSource::File(PathBuf::from(path)))))
}

fn source_key(source: &SecretSource, what: &str) -> String {
    match source {
        SecretSource::ConfigKey(k) => (*k).to_owned(),
        SecretSource::Env(v) => (*v).to_owned(),
        SecretSource::Flag => format!("--{what}"),
        SecretSource::File(p) | SecretSource::Generated(p) => p.display().to_string(),
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
    fn secrets_from_a_file() {
        let dir = std::env::temp_dir().join(format!("clawgate-secret-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let mut s = ConfigSources::default();
        s.env.insert("CLAWGATE_GATEWAY_TOKEN_FILE".into(), file.display().to_string());
        s.env.insert("OPENCLAW_GATEWAY_TOKEN".into(), "loses-to-the-file".into());
        let cfg = load(&s, &mut no_generation()).unwrap();
        assert_eq!(cfg.token.as_ref().unwrap().reveal(), "from-a-file");
        assert_eq!(cfg.token.unwrap().source, SecretSource::File(file.clone()));
        s.env.insert("CLAWGATE_GATEWAY_TOKEN_FILE".into(), dir.join("missing").display().to_string());
        let err = load(&s, &mut no_generation()).unwrap_err();
        assert!(err.to_string().starts_with("CLAWGATE_GATEWAY_TOKEN_FILE"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
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

    fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json5");
        std::fs::write(&path, text).unwrap();
        let mut s = ConfigSources { file: Some(path), ..Default::default() };
        for (k, v) in env {
            s.env.insert((*k).to_owned(), (*v).to_owned());
        }
        load(&s, &mut || Ok(("generated-secret-generated-secret".into(), PathBuf::from("t"))))
    }

    fn err_key(text: &str) -> String {
        match load_text(text, &[]) {
            Ok(_) => panic!("should not load: {text}"),
            Err(e) => {
                assert_eq!(e.code(), "CONFIG_UNSAFE", "{e}");
                e.to_string()
            }
        }
    }

    const PROXY_OK: &str = r#"{gateway: {trustedProxies: ["10.0.0.0/8"], auth: {mode: "trusted-proxy",
        trustedProxy: {userHeader: "X-Forwarded-User", requiredHeaders: ["X-Auth-Request-Email"],
                       allowUsers: ["alice", "svc"], allowLoopback: true, loopbackUser: "svc"},
        identityScopes: {alice: ["operator.write", "operator.read"], "*": ["operator.read"]}}}}"#;

    #[test]
    fn trusted_proxy_mode_loads() {
        let c = load_text(PROXY_OK, &[]).unwrap();
        assert_eq!(c.auth_mode, AuthMode::TrustedProxy);
        assert!(c.token.is_none());
        let tp = c.trusted_proxy.as_ref().unwrap();
        assert_eq!(tp.user_header, "x-forwarded-user");
        assert_eq!(tp.required_headers[0].name, "x-auth-request-email");
        assert_eq!(tp.required_headers[0].reason, "trusted_proxy_missing_header_X-Auth-Request-Email");
        assert_eq!(tp.loopback_user.as_deref(), Some("svc"));
        assert_eq!(c.identity_scopes_for("alice"), ["operator.read", "operator.write"]);
        assert_eq!(c.identity_scopes_for("bob"), ["operator.read"]);
    }

    #[test]
    fn trusted_proxy_mistakes_name_their_key() {
        let no_proxies = r#"{gateway: {auth: {mode: "trusted-proxy", trustedProxy: {userHeader: "x-user"}}}}"#;
        assert!(err_key(no_proxies).starts_with("gateway.trustedProxies:"));
        let no_section = r#"{gateway: {trustedProxies: ["10.0.0.1"], auth: {mode: "trusted-proxy"}}}"#;
        assert!(err_key(no_section).starts_with("gateway.auth.trustedProxy:"));
        let no_header = r#"{gateway: {trustedProxies: ["10.0.0.1"], auth: {mode: "trusted-proxy", trustedProxy: {}}}}"#;
        assert!(err_key(no_header).starts_with("gateway.auth.trustedProxy.userHeader:"));
        let with_token = r#"{gateway: {trustedProxies: ["10.0.0.1"],
            auth: {mode: "trusted-proxy", token: "abc", trustedProxy: {userHeader: "x-user"}}}}"#;
        assert!(err_key(with_token).starts_with("gateway.auth.token:"));
        let ok = r#"{gateway: {trustedProxies: ["10.0.0.1"], auth: {mode: "trusted-proxy", trustedProxy: {userHeader: "x-user"}}}}"#;
        let e = load_text(ok, &[("OPENCLAW_GATEWAY_TOKEN", "t")]).unwrap_err();
        assert!(e.to_string().starts_with("OPENCLAW_GATEWAY_TOKEN:"), "{e}");
        let not_allowed = r#"{gateway: {trustedProxies: ["10.0.0.1"], auth: {mode: "trusted-proxy",
            trustedProxy: {userHeader: "x-user", allowUsers: ["alice"], allowLoopback: true, loopbackUser: "svc"}}}}"#;
        assert!(err_key(not_allowed).starts_with("gateway.auth.trustedProxy.loopbackUser:"));
        let without_allow = r#"{gateway: {trustedProxies: ["10.0.0.1"], auth: {mode: "trusted-proxy",
            trustedProxy: {userHeader: "x-user", loopbackUser: "svc"}}}}"#;
        assert!(err_key(without_allow).starts_with("gateway.auth.trustedProxy.loopbackUser:"));
        let bad_header = r#"{gateway: {trustedProxies: ["10.0.0.1"], auth: {mode: "trusted-proxy",
            trustedProxy: {userHeader: "x user"}}}}"#;
        assert!(err_key(bad_header).starts_with("gateway.auth.trustedProxy.userHeader:"));
        let bad_scope = r#"{gateway: {auth: {identityScopes: {alice: ["admin"]}}}}"#;
        assert!(err_key(bad_scope).starts_with("gateway.auth.identityScopes[\"alice\"][0]:"));
    }

    #[test]
    fn upstream_is_a_known_key_and_its_errors_name_it() {
        let c = load_text(r#"{gateway: {upstream: {url: "ws://127.0.0.1:18790", token: "up"}}}"#, &[]).unwrap();
        assert_eq!(c.upstream.unwrap().url.port, 18790);
        assert!(load_text("{}", &[]).unwrap().upstream.is_none());
        assert!(err_key(r#"{gateway: {upstream: {url: "ws://10.1.1.1:18790", token: "up"}}}"#)
            .starts_with("gateway.upstream.url:"));
        let e = load_text(r#"{gateway: {upstream: {url: "ws://127.0.0.1:1", tokn: "x"}}}"#, &[]).unwrap_err();
        assert!(e.to_string().contains("tokn"), "{e}");
    }

    #[test]
    fn mode_none_never_widens_who_is_local() {
        let with_proxies = r#"{gateway: {trustedProxies: ["127.0.0.1"], auth: {mode: "none"}}}"#;
        assert!(err_key(with_proxies).starts_with("gateway.trustedProxies:"));
        let with_loopback_user = r#"{gateway: {auth: {mode: "none", trustedProxy: {allowLoopback: true}}}}"#;
        assert!(err_key(with_loopback_user).starts_with("gateway.auth.trustedProxy:"));
    }

    #[test]
    fn trusted_local_services_shape() {
        let c = load_text(
            r#"{gateway: {auth: {token: "t0123456789"}, trustedLocalServices: [
                {clientId: "gateway-client", mode: "backend", maxScopes: ["operator.write"]},
                {clientId: "node-host", mode: "node", roles: ["node"]}]}}"#,
            &[],
        )
        .unwrap();
        let list = c.trusted_local_services.unwrap();
        assert_eq!(list[0].roles, [clawgate_protocol::Role::Operator]);
        assert_eq!(list[0].max_scopes.as_deref(), Some(&["operator.write".to_owned()][..]));
        assert_eq!(list[1].max_scopes, None);
        let twice = r#"{gateway: {auth: {token: "t0123456789"}, trustedLocalServices: [
            {clientId: "cli", mode: "cli"}, {clientId: "cli", mode: "cli"}]}}"#;
        assert!(err_key(twice).starts_with("gateway.trustedLocalServices[1]:"));
        let browser = r#"{gateway: {auth: {token: "t0123456789"}, trustedLocalServices: [
            {clientId: "openclaw-control-ui", mode: "webchat"}]}}"#;
        assert!(err_key(browser).starts_with("gateway.trustedLocalServices[0]:"));
        let role = r#"{gateway: {auth: {token: "t0123456789"}, trustedLocalServices: [
            {clientId: "cli", mode: "cli", roles: ["admin"]}]}}"#;
        assert!(err_key(role).starts_with("gateway.trustedLocalServices[0].roles[0]:"));
        let unknown = r#"{gateway: {trustedLocalServices: [{clientId: "cli", mode: "cli", maxScope: []}]}}"#;
        let e = load_text(unknown, &[]).unwrap_err();
        assert!(e.to_string().contains("maxScope"), "{e}");
    }
}
