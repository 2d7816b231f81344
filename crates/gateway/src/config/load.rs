//! Reading the config file, applying environment and flag overrides, and
//! refusing unsafe combinations with a message that names the key.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::secret::{ResolvedSecret, SecretSource};
use super::{AuthMode, Config, ConfigFile, DEFAULT_PORT};
use crate::net::IpNet;

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
    /// `--admin ADDR`: the admin listener (`gateway.admin.bind`).
    pub admin: Option<String>,
    /// `--runtime MODE` (`gateway.runtime`).
    pub runtime: Option<String>,
}

impl ConfigSources {
    /// The process environment's variables that config reads.
    pub fn from_process_env() -> BTreeMap<String, String> {
        std::env::vars().filter(|(k, _)| k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_")).collect()
    }
}

/// Parse a config file's text (JSON5), which may be a whole openclaw.json.
/// Returns it with the lines to log about the keys left out; unknown keys
/// are named with their path.
pub fn parse_file(path: &Path, text: &str) -> Result<(ConfigFile, Vec<String>), ConfigError> {
    let value: serde_json::Value =
        json5::from_str(text).map_err(|e| ConfigError::Syntax { path: path.to_owned(), message: e.to_string() })?;
    let sorted = super::openclaw_compat::sort_keys(value)?;
    let file = serde_path_to_error::deserialize(sorted.value).map_err(|e| {
        let at = e.path().to_string();
        let message = if at == "." { e.inner().to_string() } else { format!("at {at}: {}", e.inner()) };
        ConfigError::Invalid { path: path.to_owned(), message }
    })?;
    Ok((file, sorted.notes))
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
    let (file, file_notes) = match &sources.file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            parse_file(path, &text)?
        }
        None => (ConfigFile::default(), Vec::new()),
    };
    resolve(file, file_notes, sources, generate_token)
}

/// Resolve a parsed file (see [`parse_file`]) with the environment and
/// flags of `sources` into the validated configuration; `sources.file` is
/// not read again.
pub fn resolve(
    file: ConfigFile,
    file_notes: Vec<String>,
    sources: &ConfigSources,
    generate_token: &mut dyn FnMut() -> Result<(String, PathBuf), ConfigError>,
) -> Result<Config, ConfigError> {
    let g = file.gateway;
    let session_limits = super::caps::session_limits(&file.clawgate.sessions)?;
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
            // who counts as local (docs/threat-model.md, H4).
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

    let listeners = super::listeners::listeners(&g.listeners, (bind, port), &trusted_proxies, parse_bind)?;

    let upstream = crate::upstream::config::resolve(
        g.upstream.as_ref(),
        &crate::upstream::config::UpstreamInputs {
            url_flag: sources.upstream_url.as_deref(),
            env: &env,
            home: sources.env.get("HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(PathBuf::from)),
            own_port: port,
        },
    )?;

    let admin = super::admin::resolve(g.admin.as_ref(), sources.admin.as_deref())?;
    let store_url = super::store::resolve(g.store.as_ref(), env(super::store::STORE_URL_ENV))?;
    let cluster = super::cluster::resolve(
        g.cluster.as_ref(),
        env(super::cluster::NATS_ENV),
        env(super::cluster::INSTANCE_ENV),
        store_url.is_some(),
    )?;

    Ok(Config {
        bind,
        port,
        auth_mode,
        token,
        password,
        local_owner: g.auth.local_owner.unwrap_or(true),
        local_owner_uids: g.auth.local_owner_uids.clone().unwrap_or_else(|| vec![crate::net::peer_uid::own_uid()]),
        trusted_proxies,
        allowed_origins,
        auto_approve_local: g.nodes.pairing.auto_approve_local.unwrap_or(true),
        trusted_proxy,
        identity_scopes,
        trusted_local_services,
        upstream,
        listeners,
        session_limits,
        max_connections: super::caps::max_connections(g.limits.max_connections)?,
        admin,
        store_url,
        cluster,
        runtime: super::runtime::resolve(
            g.runtime.as_deref(),
            env(super::runtime::RUNTIME_ENV).as_deref(),
            sources.runtime.as_deref(),
        )?,
        file_notes,
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
    let device_auto_approve = match &tp.device_auto_approve {
        None | Some(super::DeviceAutoApproveSection { enabled: Some(false), .. }) => None,
        Some(section) => Some(checked_scope_list(&format!("{KEY}.deviceAutoApprove.scopes"), &section.scopes)?),
    };
    Ok(super::TrustedProxyConfig {
        user_header: user_header.to_ascii_lowercase(),
        required_headers,
        allow_users: tp.allow_users.clone(),
        allow_loopback,
        loopback_user,
        device_auto_approve,
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
#[path = "load_tests.rs"]
mod tests;
