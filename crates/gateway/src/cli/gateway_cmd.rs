//! `clawgate gateway run | call | status | token`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use clawgate_client::{Client, ConnectOptions};
use serde_json::Value;

use clawgate::config::{self, AuthMode, Config, ConfigError, ConfigSources};
use clawgate::state::StateDir;
use clawgate::{serve, Gateway, ServerOptions};

use super::error::CliError;

#[derive(Subcommand)]
pub enum GatewayCommand {
    /// Run the gateway in the foreground.
    Run(RunArgs),
    /// Call one method on the running gateway and print the JSON result.
    Call(CallArgs),
    /// Show the running gateway's status.
    Status(ConnArgs),
    /// Print the gateway token clients must present.
    Token(ConfigArgs),
}

#[derive(Args, Clone)]
pub struct ConfigArgs {
    /// Config file (JSON5). Default: $CLAWGATE_CONFIG, else config.json5 in the state directory if present.
    #[arg(long)]
    config: Option<PathBuf>,
}

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
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Args, Clone)]
pub struct ConnArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Gateway URL. Default: ws://127.0.0.1:<configured port>.
    #[arg(long)]
    url: Option<String>,
    /// Token to present (default: the configured or generated one). Visible
    /// in the process list: prefer OPENCLAW_GATEWAY_TOKEN.
    #[arg(long)]
    token: Option<String>,
    /// Scopes to ask for, comma-separated.
    #[arg(long, default_value = "operator.admin", value_delimiter = ',')]
    scopes: Vec<String>,
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

#[derive(Args)]
pub struct CallArgs {
    method: String,
    /// Request params as JSON.
    #[arg(long)]
    params: Option<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

pub fn run(cmd: GatewayCommand) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("cannot start the async runtime", e))?;
    match cmd {
        GatewayCommand::Run(args) => runtime.block_on(run_gateway(args)),
        GatewayCommand::Call(args) => runtime.block_on(call(args)),
        GatewayCommand::Status(args) => runtime.block_on(status(args)),
        GatewayCommand::Token(args) => token(args),
    }
}

pub(crate) struct Loaded {
    pub(crate) config: Config,
    pub(crate) state: StateDir,
}

/// Resolve config the same way for every subcommand. `generate` allows
/// creating the token on first start (only `gateway run` does that).
pub(crate) fn load_config(
    args: &ConfigArgs,
    mut sources: ConfigSources,
    generate: bool,
) -> Result<Loaded, ConfigError> {
    sources.env = ConfigSources::from_process_env();
    let state = StateDir::locate(&sources.env)?;
    sources.file = args
        .config
        .clone()
        .or_else(|| sources.env.get("CLAWGATE_CONFIG").filter(|p| !p.is_empty()).map(PathBuf::from))
        .or_else(|| Some(state.default_config_path()).filter(|p| p.exists()));
    let config = config::load(&sources, &mut || {
        if generate {
            state.token_or_generate()
        } else {
            match state.read_token()? {
                Some(t) => Ok((t, state.token_path())),
                None => Err(ConfigError::Other(format!(
                    "no gateway token yet: start the gateway once (clawgate gateway run) to generate {}, or set OPENCLAW_GATEWAY_TOKEN",
                    state.token_path().display()
                ))),
            }
        }
    })?;
    Ok(Loaded { config, state })
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CLAWGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn warn_token_flag(token: &Option<String>) {
    if token.is_some() {
        eprintln!(
            "clawgate: warning: --token is visible to other users in the process list; prefer OPENCLAW_GATEWAY_TOKEN"
        );
    }
}

async fn run_gateway(args: RunArgs) -> Result<ExitCode, CliError> {
    init_logging(args.log_format);
    warn_token_flag(&args.token);
    let sources = ConfigSources {
        port: args.port,
        bind: args.bind.clone(),
        auth_mode: args.auth.map(|a| match a {
            AuthArg::None => AuthMode::None,
            AuthArg::Token => AuthMode::Token,
            AuthArg::Password => AuthMode::Password,
        }),
        token: args.token.clone(),
        upstream_url: args.upstream.clone(),
        ..Default::default()
    };
    let Loaded { config, state } = load_config(&args.config, sources, true)?;
    state.ensure()?;
    // The store first: a store that cannot be read stops the start, before anything listens.
    let store_path = state.store_path();
    let store = clawgate::store::SqliteStore::open(&store_path)?;
    let addr = std::net::SocketAddr::new(config.bind, config.port);
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| CliError::io(format!("cannot listen on {addr}"), e))?;
    let addr = listener.local_addr().map_err(|e| CliError::io("cannot read the listening address", e))?;
    let auth_line = match (&config.auth_mode, &config.token, &config.password) {
        (AuthMode::Token, Some(t), _) => {
            format!("token auth (token from {}; print it with `clawgate gateway token`)", t.source)
        }
        (AuthMode::Password, _, Some(p)) => format!("password auth (password from {})", p.source),
        (mode, _, _) => format!("auth mode {}", mode.as_str()),
    };
    tracing::info!(url = %format!("ws://{addr}"), state_dir = %state.path.display(), "clawgate listening; {auth_line}");
    if let Some(upstream) = &config.upstream {
        log_upstream(upstream).await;
    }
    let gateway = Gateway::new(config, ServerOptions::default(), std::sync::Arc::new(store));
    serve(listener, gateway, shutdown_signal()).await.map_err(|e| CliError::io("the gateway stopped", e))?;
    Ok(ExitCode::SUCCESS)
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

async fn connect(args: &ConnArgs) -> Result<Client, CliError> {
    warn_token_flag(&args.token);
    let sources = ConfigSources { token: args.token.clone(), ..Default::default() };
    let loaded = load_config(&args.config, sources, false)?;
    let url = args.url.clone().unwrap_or_else(|| format!("ws://127.0.0.1:{}", loaded.config.port));
    let mut opts = ConnectOptions::new(url).client("cli", "cli").scopes(&args.scopes);
    opts.token = loaded.config.token.as_ref().map(|t| t.reveal().to_owned());
    opts.password = loaded.config.password.as_ref().map(|p| p.reveal().to_owned());
    opts.timeout = std::time::Duration::from_millis(args.timeout_ms);
    Client::connect(opts).await.map_err(CliError::Client)
}

async fn call(args: CallArgs) -> Result<ExitCode, CliError> {
    let params = match &args.params {
        Some(p) => Some(
            serde_json::from_str::<Value>(p)
                .map_err(|e| CliError::InvalidInput(format!("--params is not JSON: {e}")))?,
        ),
        None => None,
    };
    let client = connect(&args.conn).await?;
    let result = client.request(&args.method, params).await;
    client.close().await;
    match result {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(CliError::Client(e)),
    }
}

async fn status(args: ConnArgs) -> Result<ExitCode, CliError> {
    let client = connect(&args).await?;
    let result = client.request("status", None).await;
    client.close().await;
    let v = result.map_err(CliError::Client)?;
    let c = &v["connections"];
    println!(
        "clawgate {} — up {} s, auth mode {}",
        v["version"].as_str().unwrap_or("?"),
        v["uptimeMs"].as_u64().unwrap_or(0) / 1000,
        v["authMode"].as_str().unwrap_or("?")
    );
    println!(
        "sessions: {} ({} operators, {} nodes), {} handshaking",
        c["sessions"], c["operators"], c["nodes"], c["handshaking"]
    );
    Ok(ExitCode::SUCCESS)
}

fn token(args: ConfigArgs) -> Result<ExitCode, CliError> {
    let loaded = load_config(&args, ConfigSources::default(), false)?;
    match (&loaded.config.auth_mode, &loaded.config.token) {
        (AuthMode::Token, Some(t)) => {
            println!("{}", t.reveal());
            eprintln!("(from {})", t.source);
            Ok(ExitCode::SUCCESS)
        }
        (mode, _) => Err(CliError::NoToken { auth_mode: mode.as_str() }),
    }
}
