//! How a client command finds and joins the gateway: `--url`, `--port`, else
//! the running gateway's runtime file in the state directory, else the
//! configured port; the secret from the flags, the environment, the config
//! or the generated file, checked against the running gateway's fingerprint
//! before a wrong one is sent (and counted as a failed attempt).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use clawgate::config::{AuthMode, Config, ConfigSources};
use clawgate::gateway_identity;
use clawgate::runtime_file::{self, Found, RuntimeInfo, SecretOrigin};
use clawgate::state::StateDir;
use clawgate_client::{Client, ClientError, ConnectOptions};
use clawgate_protocol::scopes::KNOWN_SCOPES;

use super::config_args::{load_config_with, ConfigArgs};
use super::error::CliError;

/// The flags every command that talks to the running gateway takes.
#[derive(Args, Clone)]
pub struct ClientArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Gateway URL. Default: the running gateway's (its runtime file in the
    /// state directory), else ws://127.0.0.1:<configured port>.
    #[arg(long, conflicts_with = "port")]
    pub url: Option<String>,
    /// Port of a gateway on this host (ws://127.0.0.1:PORT).
    #[arg(long)]
    pub port: Option<u16>,
    /// Token to present (default: the configured or generated one). Visible
    /// in the process list: prefer OPENCLAW_GATEWAY_TOKEN.
    #[arg(long)]
    pub token: Option<String>,
    /// Password to present (password mode). Visible in the process list:
    /// prefer OPENCLAW_GATEWAY_PASSWORD.
    #[arg(long, conflicts_with = "token")]
    pub password: Option<String>,
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
}

/// Where the gateway is, and what this command knows about it.
pub struct Located {
    pub url: String,
    /// How the URL was chosen, for messages.
    pub how: String,
    pub running: Option<RuntimeInfo>,
    /// A runtime file whose gateway is gone.
    pub stale: Option<RuntimeInfo>,
    pub config: Config,
    pub config_file: Option<PathBuf>,
    /// The state directory the config names (its gateway key proves the listener).
    pub state: StateDir,
}

/// The URL a local client uses for a gateway bound to `bind`:`port`.
pub fn local_url(bind: std::net::IpAddr, port: u16) -> String {
    let host = if bind.is_unspecified() {
        if bind.is_ipv6() {
            "[::1]".to_owned()
        } else {
            "127.0.0.1".to_owned()
        }
    } else if bind.is_ipv6() {
        format!("[{bind}]")
    } else {
        bind.to_string()
    };
    format!("ws://{host}:{port}")
}

/// Scope names checked before connecting: a typo is a usage error here,
/// not a refusal from the gateway.
pub fn checked_scopes(given: &[String]) -> Result<Vec<String>, CliError> {
    let scopes: Vec<String> = given.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
    let unknown: Vec<&str> = scopes.iter().map(String::as_str).filter(|s| !KNOWN_SCOPES.contains(s)).collect();
    if !unknown.is_empty() {
        return Err(CliError::InvalidScopes(format!(
            "unknown scope(s) {}; known scopes: {}",
            unknown.join(", "),
            KNOWN_SCOPES.join(", ")
        )));
    }
    Ok(scopes)
}

pub fn locate(args: &ClientArgs) -> Result<Located, CliError> {
    let sources = ConfigSources { token: args.token.clone(), ..Default::default() };
    // A client never generates the token: with none anywhere, it presents none.
    let loaded = load_config_with(&args.config, sources, &mut |state: &StateDir| match state.read_token()? {
        Some(t) => Ok((t, state.token_path())),
        None => Ok((String::new(), state.token_path())),
    })?;
    let (running, stale) = match runtime_file::read(&loaded.state.path) {
        Ok(Some(Found::Live(info))) => (Some(info), None),
        Ok(Some(Found::Stale(info))) => (None, Some(info)),
        Ok(None) => (None, None),
        Err(e) => {
            eprintln!("clawgate: warning: {e}; ignoring it");
            (None, None)
        }
    };
    let (url, how) = if let Some(url) = &args.url {
        (url.clone(), "--url".to_owned())
    } else if let Some(port) = args.port {
        (format!("ws://127.0.0.1:{port}"), "--port".to_owned())
    } else if let Some(info) = &running {
        (info.url.clone(), format!("the running gateway (pid {}, {})", info.pid, runtime_file::RUNTIME_FILE))
    } else {
        (local_url(loaded.config.bind, loaded.config.port), "the configured port".to_owned())
    };
    // The runtime file describes the gateway only when this command goes to it.
    let running = running.filter(|info| info.url == url || args.url.is_none() && args.port == Some(info.port));
    Ok(Located {
        url,
        how,
        running,
        stale,
        config: loaded.config,
        config_file: loaded.config_file,
        state: loaded.state,
    })
}

/// The secret this command presents: (is_password, value, where from).
fn secret(args: &ClientArgs, loc: &Located) -> Option<(bool, String, String)> {
    if let Some(p) = &args.password {
        return Some((true, p.clone(), "--password".into()));
    }
    let password_mode = matches!(loc.config.auth_mode, AuthMode::Password)
        || loc.running.as_ref().is_some_and(|r| r.secret.as_ref().is_some_and(|s| s.kind == "password"));
    if password_mode {
        if let Some(p) = &loc.config.password {
            return Some((true, p.reveal().to_owned(), p.source.to_string()));
        }
    }
    loc.config
        .token
        .as_ref()
        .filter(|t| !t.reveal().is_empty())
        .map(|t| (false, t.reveal().to_owned(), t.source.to_string()))
}

/// How to give this command the secret the running gateway uses.
fn how_to_pass(origin: &SecretOrigin) -> String {
    let var = if origin.kind == "password" { "OPENCLAW_GATEWAY_PASSWORD" } else { "OPENCLAW_GATEWAY_TOKEN" };
    format!("set {var} to the {} the gateway was started with (or pass --{})", origin.kind, origin.kind)
}

/// Refuse to send a secret the running gateway does not use (a wrong secret
/// counts towards the lockout); service tokens are not the gateway's secret
/// and are never compared.
fn check_secret(loc: &Located, ours: &Option<(bool, String, String)>) -> Result<(), CliError> {
    let Some(info) = &loc.running else { return Ok(()) };
    let Some(origin) = &info.secret else { return Ok(()) };
    match ours {
        Some((_, value, _)) if value.starts_with("cgs_") => Ok(()),
        Some((_, value, from)) if runtime_file::fingerprint(value) != origin.fingerprint => {
            Err(CliError::SecretMismatch {
                detail: format!(
                    "the running gateway (pid {}) uses a {} from {}; this command has a different one (from {from})",
                    info.pid, origin.kind, origin.described
                ),
                hint: how_to_pass(origin),
            })
        }
        Some(_) => Ok(()),
        None => Err(CliError::SecretMismatch {
            detail: format!(
                "the running gateway (pid {}) uses a {} from {}, which this command cannot read",
                info.pid, origin.kind, origin.described
            ),
            hint: how_to_pass(origin),
        }),
    }
}

/// Connect as the local `cli`/`cli` client asking for exactly `scopes`.
pub async fn connect(args: &ClientArgs, scopes: &[String]) -> Result<(Client, Located), CliError> {
    for (flag, given) in [("--token", args.token.is_some()), ("--password", args.password.is_some())] {
        if given {
            let var = if flag == "--token" { "OPENCLAW_GATEWAY_TOKEN" } else { "OPENCLAW_GATEWAY_PASSWORD" };
            eprintln!("clawgate: warning: {flag} is visible to other users in the process list; prefer {var}");
        }
    }
    let loc = locate(args)?;
    let ours = secret(args, &loc);
    check_secret(&loc, &ours)?;
    let mut opts = ConnectOptions::new(loc.url.clone()).client("cli", "cli").scopes(scopes);
    opts.token = None;
    opts.password = None;
    match &ours {
        Some((true, v, _)) => opts.password = Some(v.clone()),
        Some((false, v, _)) => opts.token = Some(v.clone()),
        None => {}
    }
    opts.timeout = Duration::from_millis(args.timeout_ms);
    opts.gateway_key = expected_gateway_key(&loc)?;
    match Client::connect(opts).await {
        Ok(c) => Ok((c, loc)),
        Err(e) => Err(connect_error(e, &loc, scopes)),
    }
}

/// The key a local gateway of this state directory signs its challenges
/// with: checked before the secret goes out, so a process squatting the port
/// while the gateway is down receives nothing. A remote URL, or a state
/// directory no gateway ever started from, is not checked.
fn expected_gateway_key(loc: &Located) -> Result<Option<[u8; 32]>, CliError> {
    if !is_local_url(&loc.url) {
        return Ok(None);
    }
    gateway_identity::read_public_key(&loc.state).map_err(|detail| CliError::GatewayIdentityMismatch {
        detail,
        hint: format!(
            "the gateway recreates it on start: remove it and restart the gateway of {}",
            loc.state.path.display()
        ),
    })
}

/// A `ws://`/`wss://` URL whose host is this machine (loopback or localhost).
fn is_local_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("ws://").or_else(|| url.strip_prefix("wss://")) else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn connect_error(e: ClientError, loc: &Located, scopes: &[String]) -> CliError {
    let url = &loc.url;
    let stale = loc
        .stale
        .as_ref()
        .map(|s| {
            format!(
                "; a stale {} says a gateway (pid {}) ran at {}, but it is gone",
                runtime_file::RUNTIME_FILE,
                s.pid,
                s.url
            )
        })
        .unwrap_or_default();
    match e {
        ClientError::Connect { message, .. } if message.starts_with("HTTP error") => {
            CliError::GatewayRefusedUpgrade { url: url.clone(), detail: message }
        }
        ClientError::Connect { message, .. } => CliError::GatewayUnreachable {
            detail: format!("nothing answers at {url} (from {}): {message}{stale}", loc.how),
            offline_hint: false,
        },
        e @ (ClientError::Timeout(_) | ClientError::Closed(None)) => CliError::GatewayUnreachable {
            detail: format!("no answer from the gateway at {url} ({e}){stale}"),
            offline_hint: false,
        },
        ClientError::Refused(shape) => {
            let code = shape.details_code().unwrap_or(&shape.code).to_owned();
            let recipe = match code.as_str() {
                "DEVICE_IDENTITY_REQUIRED" | "LOCAL_SERVICE_SCOPE_CEILING" | "ROLE_NOT_GRANTED" => {
                    Some(service_token_recipe(scopes))
                }
                _ => None,
            };
            let err = CliError::Client(ClientError::Refused(shape));
            match recipe {
                Some(r) => err.hinted(r),
                None => err,
            }
        }
        ClientError::GatewayIdentity(why) => CliError::GatewayIdentityMismatch {
            detail: format!(
                "the listener at {url} (from {}) is not the gateway of this state directory ({why}); the secret was \
                 not sent",
                loc.how
            ),
            hint: format!(
                "is the gateway of {} running? Check what holds the port (e.g. `ss -ltnp`); another program or \
                 another user's gateway may have taken it",
                loc.state.path.display()
            ),
        },
        other => CliError::Client(other),
    }
}

/// The way in for this CLI when the gateway does not let local programs use
/// its secret (`gateway.auth.localOwner: false`, `gateway.trustedLocalServices`).
pub fn service_token_recipe(scopes: &[String]) -> String {
    let scopes = if scopes.is_empty() { "operator.read".to_owned() } else { scopes.join(",") };
    format!(
        "this CLI connects without a device; give it a service token:\n    \
         export OPENCLAW_GATEWAY_TOKEN=\"$(clawgate services add admin-cli --role operator --scopes {scopes})\"\n  \
         (or list cli/cli in gateway.trustedLocalServices)"
    )
}

#[cfg(test)]
mod tests {
    use super::is_local_url;

    #[test]
    fn only_this_machine_is_local() {
        for url in
            ["ws://127.0.0.1:18789", "ws://localhost:1/x", "ws://[::1]:18789", "wss://127.0.0.2", "ws://LOCALHOST"]
        {
            assert!(is_local_url(url), "{url}");
        }
        for url in [
            "ws://example.com:18789",
            "ws://10.0.0.1",
            "ws://[2001:db8::1]:1",
            "ws://127.0.0.1.evil.com",
            "http://127.0.0.1",
        ] {
            assert!(!is_local_url(url), "{url}");
        }
    }
}
