//! `clawgate gateway run`: load and check the config, bind the listener,
//! and only then touch the state directory (token, store, runtime file), so
//! a start that fails leaves nothing behind.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use clawgate::config::runtime::RuntimeMode;
use clawgate::config::Trust;
use clawgate::config::{check_secret_strength, AuthMode, Config, ConfigSources, SecretSource};
use clawgate::runtime_file::{self, RuntimeInfo, SecretOrigin};
use clawgate::server::now_ms;
use clawgate::state::StateDir;
use clawgate::{serve_listeners, serve_per_core, Gateway, ReusePortGroup, ServerOptions};

use super::client_conn::local_url;
use super::config_args::{load_config_with, ConfigArgs};
use super::error::CliError;
use super::port_holder;

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum AuthArg {
    None,
    Token,
    Password,
    TrustedProxy,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[arg(long)]
    port: Option<u16>,
    /// `loopback`, `lan`, or an IP address.
    #[arg(long)]
    bind: Option<String>,
    #[arg(long, value_enum)]
    auth: Option<AuthArg>,
    /// The gateway token. Visible to other users in the process list: prefer
    /// OPENCLAW_GATEWAY_TOKEN or the config file.
    #[arg(long)]
    token: Option<String>,
    /// Upstream mode: the OpenClaw gateway behind clawgate, e.g.
    /// ws://127.0.0.1:18790 (loopback only). Its token comes from
    /// CLAWGATE_UPSTREAM_TOKEN[_FILE] or gateway.upstream in the config file.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Serve /metrics, /healthz and /readyz on this address, e.g.
    /// 127.0.0.1:9464 (gateway.admin.bind). Off by default.
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// `threadPerCore` (one single-threaded runtime per core) or
    /// `workStealing` (gateway.runtime; also CLAWGATE_RUNTIME).
    #[arg(long, value_name = "MODE")]
    runtime: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// The gateway's listeners, bound for the runtime that will serve them.
enum Bound {
    WorkStealing(Vec<(tokio::net::TcpListener, Trust)>),
    /// One socket per thread in each group.
    PerCore(Vec<(ReusePortGroup, Trust)>),
}

impl Bound {
    fn new(mode: RuntimeMode) -> Bound {
        match mode {
            RuntimeMode::WorkStealing => Bound::WorkStealing(Vec::new()),
            RuntimeMode::ThreadPerCore => Bound::PerCore(Vec::new()),
        }
    }

    /// Bind `addr` the way this runtime serves it; returns the address bound.
    async fn bind(&mut self, addr: std::net::SocketAddr, trust: Trust) -> std::io::Result<std::net::SocketAddr> {
        match self {
            Bound::WorkStealing(listeners) => {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                let local = listener.local_addr()?;
                listeners.push((listener, trust));
                Ok(local)
            }
            Bound::PerCore(groups) => {
                let group = ReusePortGroup::bind(addr, core_threads())?;
                let local = group.local_addr();
                groups.push((group, trust));
                Ok(local)
            }
        }
    }

    async fn serve(self, gateway: std::sync::Arc<Gateway>) -> std::io::Result<()> {
        match self {
            Bound::WorkStealing(listeners) => serve_listeners(listeners, gateway, shutdown_signal()).await,
            Bound::PerCore(groups) => serve_per_core(groups, gateway, shutdown_signal()).await,
        }
    }
}

/// One thread per core this process may run on.
fn core_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The target of the start-up lines: always logged, whatever CLAWGATE_LOG says.
const STARTUP: &str = "clawgate::startup";

/// Log to stderr at `CLAWGATE_LOG` (default info). A value that is not a
/// filter, or a bare word that is neither a level nor a clawgate module
/// (which would silence everything else), is warned about and replaced.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let given = std::env::var("CLAWGATE_LOG").ok().filter(|v| !v.trim().is_empty());
    let mut warning = None;
    let directives = match &given {
        Some(v) if suspicious_filter(v) => {
            warning = Some(format!(
                "CLAWGATE_LOG={v:?} is not a level (error, warn, info, debug, trace) or module=level; logging at info"
            ));
            "info".to_owned()
        }
        Some(v) => v.clone(),
        None => "info".to_owned(),
    };
    let filter = EnvFilter::try_new(format!("{directives},{STARTUP}=info")).unwrap_or_else(|e| {
        warning = Some(format!("CLAWGATE_LOG={directives:?} is not a valid filter ({e}); logging at info"));
        EnvFilter::new(format!("info,{STARTUP}=info"))
    });
    // Colours only for a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    if let Some(w) = warning {
        tracing::warn!(target: STARTUP, "{w}");
    }
}

/// A bare word that is not a level: `tracing` reads it as "everything from
/// module <word>", which shows nothing of clawgate's.
fn suspicious_filter(value: &str) -> bool {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    value
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .any(|d| !d.contains('=') && !LEVELS.contains(&d.to_ascii_lowercase().as_str()) && !d.starts_with("clawgate"))
}

pub(super) async fn run_gateway(args: RunArgs) -> Result<ExitCode, CliError> {
    init_logging(args.log_format);
    if args.token.is_some() {
        tracing::warn!(
            target: STARTUP,
            "--token is visible to other users in the process list; prefer OPENCLAW_GATEWAY_TOKEN"
        );
    }
    let sources = ConfigSources {
        port: args.port,
        bind: args.bind.clone(),
        auth_mode: args.auth.map(|a| match a {
            AuthArg::None => AuthMode::None,
            AuthArg::Token => AuthMode::Token,
            AuthArg::Password => AuthMode::Password,
            AuthArg::TrustedProxy => AuthMode::TrustedProxy,
        }),
        token: args.token.clone(),
        upstream_url: args.upstream.clone(),
        admin: args.admin.clone(),
        runtime: args.runtime.clone(),
        ..Default::default()
    };
    let reload_sources = sources.clone();
    // A token generated now is written only once the listener is bound.
    let mut new_token: Option<String> = None;
    let loaded = load_config_with(&args.config, sources, &mut |state: &StateDir| {
        let (token, fresh) = state.token_or_new()?;
        if fresh {
            new_token = Some(token.clone());
        }
        Ok((token, state.token_path()))
    })?;
    let (config, state, config_file) = (loaded.config, loaded.state, loaded.config_file);
    for warning in check_secret_strength(&config)?.into_iter().chain(config.startup_warnings()) {
        tracing::warn!(target: STARTUP, "{warning}");
    }
    for warning in clawgate::config::readable_secret_files(&config, config_file.as_deref()) {
        tracing::warn!(target: STARTUP, "{warning}");
    }
    log_file_limit(&config);

    let addr = std::net::SocketAddr::new(config.bind, config.port);
    let mut listeners = Bound::new(config.runtime);
    let addr = listeners.bind(addr, Trust::Local).await.map_err(|e| bind_error(addr, e, &state))?;
    // gateway.listeners: every one bound before anything is written.
    for extra in &config.listeners {
        let at = std::net::SocketAddr::new(extra.bind, extra.port);
        let local = listeners.bind(at, extra.trust).await.map_err(|e| bind_error(at, e, &state))?;
        tracing::info!(
            target: STARTUP,
            listener = %local,
            trust = extra.trust.as_str(),
            "also listening on {local} (trust {})",
            extra.trust.as_str()
        );
    }
    match config.runtime {
        RuntimeMode::ThreadPerCore => tracing::info!(
            target: STARTUP,
            runtime = config.runtime.as_str(),
            threads = core_threads(),
            "runtime: thread-per-core, {} threads each accepting on its own socket",
            core_threads()
        ),
        RuntimeMode::WorkStealing => {
            tracing::info!(target: STARTUP, runtime = config.runtime.as_str(), "runtime: work-stealing")
        }
    }

    let admin = match config.admin {
        None => None,
        Some(at) => {
            let bound = tokio::net::TcpListener::bind(at).await.map_err(|e| bind_error(at, e, &state))?;
            let local = bound.local_addr().map_err(|e| CliError::io("cannot read the listening address", e))?;
            tracing::info!(target: STARTUP, admin = %local, "admin listener on http://{local} (/metrics, /healthz, /readyz)");
            Some(bound)
        }
    };

    state.ensure()?;
    state.check_writable()?;
    if let Some(token) = &new_token {
        state.persist_token(token)?;
    }
    let identity = clawgate::gateway_identity::GatewayIdentity::load_or_create(&state)?;
    // The store before serving: a store that cannot be read stops the start.
    let store = clawgate::store::open_configured(config.store_url.as_ref(), &state.store_path())?;
    let url = local_url(addr.ip(), addr.port());
    let info = runtime_info(&config, &url, addr, config_file.clone());
    runtime_file::write(&state.path, &info)
        .map_err(|e| CliError::io(format!("cannot write {}", runtime_file::path(&state.path).display()), e))?;
    log_listening(&config, &url, &state, config_file.as_ref());
    if let Some(upstream) = &config.upstream {
        log_upstream(upstream).await;
    }
    let options = ServerOptions { identity: Some(identity), ..ServerOptions::default() };
    let gateway = clawgate::gateway(config, options, store);
    if let Some(admin) = admin {
        tokio::spawn(clawgate::server::admin::serve(admin, gateway.clone()));
    }
    let reloader = Reloader {
        gateway: gateway.clone(),
        config: args.config.clone(),
        sources: reload_sources,
        url,
        addr,
        started_at_ms: info.started_at_ms,
    };
    tokio::spawn(reloader.on_hangup(state.path.clone()));
    let served = listeners.serve(gateway).await;
    runtime_file::remove_own(&state.path);
    served.map_err(|e| CliError::io("the gateway stopped", e))?;
    Ok(ExitCode::SUCCESS)
}

/// Raise the soft open-file limit to the hard one and say, in one line,
/// both limits and the connection cap that follows (docs/operations.md,
/// resource limits).
fn log_file_limit(config: &clawgate::config::Config) {
    use clawgate::fd_limit::{raise_soft_to_hard, show};
    let raised = raise_soft_to_hard();
    // After raising: the default follows the limit now in force.
    let max = clawgate::server::max_connections(config);
    match raised {
        Ok(r) => tracing::info!(
            target: STARTUP,
            soft = %show(r.after.soft),
            soft_before = %show(r.before.soft),
            hard = %show(r.after.hard),
            max_connections = max,
            "open-file limit: soft {} (was {}), hard {}; gateway.limits.maxConnections {max}",
            show(r.after.soft),
            show(r.before.soft),
            show(r.after.hard)
        ),
        Err(e) => tracing::warn!(
            target: STARTUP,
            error = %e,
            max_connections = max,
            "cannot raise the open-file limit; gateway.limits.maxConnections {max}"
        ),
    }
    let soft = clawgate::fd_limit::current().map(|l| l.soft).unwrap_or(u64::MAX);
    let needed =
        max as u64 * if config.upstream.is_some() { 2 } else { 1 } + clawgate::server::conn_budget::FD_HEADROOM;
    if config.max_connections.is_some() && needed > soft {
        tracing::warn!(
            target: STARTUP,
            "gateway.limits.maxConnections {max} needs about {needed} open files, more than the limit of {soft}: \
             accepts will fail for want of descriptors before the cap is reached"
        );
    }
}

/// A taken port, with who holds it when that can be found.
fn bind_error(addr: std::net::SocketAddr, e: std::io::Error, state: &StateDir) -> CliError {
    if e.kind() != std::io::ErrorKind::AddrInUse {
        return CliError::io(format!("cannot listen on {addr}"), e);
    }
    let ours = match runtime_file::read(&state.path) {
        Ok(Some(runtime_file::Found::Live(info))) if info.port == addr.port() => {
            Some(format!("a clawgate gateway of this state directory (pid {}) already runs there", info.pid))
        }
        _ => None,
    };
    let holder = ours.or_else(|| port_holder::describe(addr.port()).map(|who| format!("held by {who}")));
    let detail = holder.unwrap_or_else(|| "held by another process".to_owned());
    CliError::io(format!("cannot listen on {addr}: the port is in use, {detail}; pick another with --port"), e)
}

fn runtime_info(config: &Config, url: &str, addr: std::net::SocketAddr, config_file: Option<PathBuf>) -> RuntimeInfo {
    let secret = match config.auth_mode {
        AuthMode::Token => config.token.as_ref().map(|t| SecretOrigin::of("token", t)),
        AuthMode::Password => config.password.as_ref().map(|p| SecretOrigin::of("password", p)),
        AuthMode::None | AuthMode::TrustedProxy => None,
    };
    RuntimeInfo {
        url: url.to_owned(),
        bind: addr.ip().to_string(),
        port: addr.port(),
        pid: std::process::id(),
        started_at_ms: now_ms(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        config_file,
        auth_mode: config.auth_mode.as_str().to_owned(),
        secret,
    }
}

/// How to pass the secret in a command line someone can paste, never the secret.
fn secret_argument(flag: &str, source: &SecretSource) -> String {
    match source {
        SecretSource::Env(var) => format!("--{flag} \"${var}\""),
        SecretSource::Flag => format!("--{flag} <the --{flag} value the gateway was started with>"),
        _ if flag == "token" => "--token \"$(clawgate gateway token)\"".to_owned(),
        other => format!("--{flag} <the {flag} from {other}>"),
    }
}

fn log_listening(config: &Config, url: &str, state: &StateDir, config_file: Option<&PathBuf>) {
    let (auth_line, openclaw_secret) = match (&config.auth_mode, &config.token, &config.password) {
        (AuthMode::Token, Some(t), _) => {
            (format!("token auth (token from {})", t.source), Some(secret_argument("token", &t.source)))
        }
        (AuthMode::Password, _, Some(p)) => {
            (format!("password auth (password from {})", p.source), Some(secret_argument("password", &p.source)))
        }
        (mode, _, _) => (format!("auth mode {}", mode.as_str()), None),
    };
    let config_text = config_file.map_or_else(|| "none".to_owned(), |p| p.display().to_string());
    tracing::info!(
        target: STARTUP,
        url = %url,
        state_dir = %state.path.display(),
        config_file = %config_text,
        "clawgate listening on {url}; {auth_line}"
    );
    let openclaw = format!("openclaw gateway call health --url {url} {}", openclaw_secret.unwrap_or_default());
    tracing::info!(
        target: STARTUP,
        check = "clawgate gateway call health",
        openclaw_check = %openclaw.trim_end(),
        "check it: `clawgate gateway call health`, or with OpenClaw: `{}`",
        openclaw.trim_end()
    );
}

/// Which upstream, with which kind of secret from where (never the secret),
/// and whether it answered a quick probe. Not answering is a warning only:
/// OpenClaw takes ~17 s to start, often beside clawgate.
async fn log_upstream(upstream: &clawgate::upstream::UpstreamConfig) {
    use clawgate::upstream::probe::{probe, ProbeOutcome, PROBE_TIMEOUT};
    let secret = match upstream.secret.kind {
        clawgate::upstream::SecretKind::Token => "token",
        clawgate::upstream::SecretKind::Password => "password",
    };
    let source = upstream.secret.value.source.to_string();
    match probe(upstream, PROBE_TIMEOUT).await {
        ProbeOutcome::Answered => tracing::info!(
            upstream = %upstream.url,
            "upstream mode: in front of the OpenClaw gateway at {} ({secret} from {source}); it answered",
            upstream.url
        ),
        ProbeOutcome::NotAnswering(why) => tracing::warn!(
            upstream = %upstream.url,
            reason = %why,
            "upstream mode: in front of the OpenClaw gateway at {} ({secret} from {source}); it is not answering \
             yet, sessions get UPSTREAM_UNAVAILABLE until it does",
            upstream.url
        ),
    }
}

/// What a SIGHUP needs to load the config again the way the start did.
struct Reloader {
    gateway: std::sync::Arc<Gateway>,
    config: ConfigArgs,
    sources: ConfigSources,
    url: String,
    addr: std::net::SocketAddr,
    started_at_ms: u64,
}

impl Reloader {
    /// On each SIGHUP: load and check the config as at start; a valid one
    /// replaces the config in force and every live session is judged again
    /// (`clawgate::server::reload`); an invalid one is refused, logged, and
    /// the old one stays.
    async fn on_hangup(self, state_path: PathBuf) {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else { return };
        while hangups.recv().await.is_some() {
            self.reload(&state_path).await;
        }
    }

    async fn reload(&self, state_path: &std::path::Path) {
        let loaded = super::config_args::load_config(&self.config, self.sources.clone()).and_then(|loaded| {
            let warnings = check_secret_strength(&loaded.config)?;
            Ok((loaded, warnings))
        });
        let (loaded, warnings) = match loaded {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(code = e.code(), error = %e, "config reload refused; the config in force is kept");
                return;
            }
        };
        for warning in warnings.into_iter().chain(loaded.config.startup_warnings()) {
            tracing::warn!("{warning}");
        }
        let mut info = runtime_info(&loaded.config, &self.url, self.addr, loaded.config_file.clone());
        info.started_at_ms = self.started_at_ms;
        match clawgate::server::reload::apply(&self.gateway, loaded.config).await {
            Err(e) => tracing::error!(code = e.code(), key = e.key, "config reload refused: {e}"),
            Ok(done) => {
                // The runtime file tells client commands which secret is in force now.
                if let Err(e) = runtime_file::write(state_path, &info) {
                    tracing::warn!(error = %e, "cannot update the runtime file after the reload");
                }
                tracing::info!(
                    checked = done.checked,
                    closed = done.closed,
                    "config reloaded: {} live sessions judged again, {} closed",
                    done.checked,
                    done.closed
                );
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_word_that_is_not_a_level_is_suspicious() {
        assert!(suspicious_filter("bogus"));
        assert!(suspicious_filter("info,bogus"));
        assert!(!suspicious_filter("debug"));
        assert!(!suspicious_filter("info,clawgate::admission=debug"));
        assert!(!suspicious_filter("clawgate"));
    }
}
