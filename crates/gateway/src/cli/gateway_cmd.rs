//! `clawgate gateway run | call | status | token`. Running the gateway is
//! in `gateway_run.rs`; this file holds the commands that talk to it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use clawgate_protocol::methods::{method_scope, MethodScope};
use clawgate_protocol::scopes;
use serde_json::{json, Value};

use clawgate::config::{AuthMode, ConfigSources};
use clawgate::runtime_file::{self, Found, RuntimeInfo};
use clawgate::state::StateDir;

use super::client_conn::{checked_scopes, connect, ClientArgs, Located};
use super::config_args::{load_config, load_config_with, ConfigArgs};
use super::error::CliError;
use super::gateway_run::{run_gateway, RunArgs};

#[derive(Subcommand)]
pub enum GatewayCommand {
    /// Run the gateway in the foreground.
    Run(RunArgs),
    /// Call one method on the running gateway and print the JSON result.
    Call(CallArgs),
    /// Show the running gateway's status (exit status 3: not running).
    Status(StatusArgs),
    /// Print the token the running gateway uses (or say why it cannot).
    Token(TokenArgs),
}

#[derive(Args)]
pub struct CallArgs {
    method: String,
    /// Request params as JSON.
    #[arg(long)]
    params: Option<String>,
    /// Scopes to ask for, comma-separated. Default: the least the method needs.
    #[arg(long, value_delimiter = ',')]
    scopes: Option<Vec<String>>,
    /// Print JSON (the default: accepted for OpenClaw's habit).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: ClientArgs,
}

#[derive(Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: ClientArgs,
}

#[derive(Args)]
pub struct TokenArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON: {"token": …, "source": …} (or why there is none).
    #[arg(long)]
    json: bool,
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

/// The least `method` needs, from the protocol's method table; methods the
/// table does not know need `operator.admin` (clawgate fails closed).
fn least_scopes(method: &str) -> Result<Vec<String>, CliError> {
    match method_scope(method) {
        Some(MethodScope::Operator(s)) => Ok(vec![s.to_owned()]),
        Some(MethodScope::Dynamic { base }) => Ok(vec![base.to_owned()]),
        Some(MethodScope::Node) => {
            Err(CliError::InvalidInput(format!("{method} is a node method: only a node's own connection may call it")))
        }
        None => Ok(vec![scopes::ADMIN.to_owned()]),
    }
}

async fn call(args: CallArgs) -> Result<ExitCode, CliError> {
    let params = match &args.params {
        Some(p) => Some(
            serde_json::from_str::<Value>(p)
                .map_err(|e| CliError::InvalidInput(format!("--params is not JSON: {e}")))?,
        ),
        None => None,
    };
    let scopes = match &args.scopes {
        Some(given) => checked_scopes(given)?,
        None => least_scopes(&args.method)?,
    };
    let (client, _) = connect(&args.conn, &scopes).await?;
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

/// Exit status of `gateway status` when nothing answers.
const NOT_RUNNING: u8 = 3;

async fn status(args: StatusArgs) -> Result<ExitCode, CliError> {
    let (client, loc) = match connect(&args.conn, &[scopes::READ.to_owned()]).await {
        Ok(c) => c,
        Err(CliError::GatewayUnreachable { detail, .. }) => {
            if args.json {
                println!("{}", json!({ "running": false, "detail": detail }));
            } else {
                println!("clawgate gateway: not running ({detail})");
                println!("  start it with `clawgate gateway run` (or pass --port/--url if it listens elsewhere)");
            }
            return Ok(ExitCode::from(NOT_RUNNING));
        }
        Err(e) => return Err(e),
    };
    let result = client.request("status", None).await;
    client.close().await;
    let v = result.map_err(CliError::Client)?;
    let info = loc.running.as_ref();
    let config_file = info.map_or_else(|| loc.config_file.clone(), |i| i.config_file.clone());
    if args.json {
        let out = json!({
            "running": true,
            "url": loc.url,
            "pid": info.map(|i| i.pid),
            "configFile": config_file,
            "secretSource": info.and_then(|i| i.secret.as_ref()).map(|s| &s.described),
            "status": v,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    print_status(&v, &loc, info, config_file);
    Ok(ExitCode::SUCCESS)
}

fn print_status(v: &Value, loc: &Located, info: Option<&RuntimeInfo>, config_file: Option<PathBuf>) {
    let c = &v["connections"];
    let shown = |x: &Value| if x.is_null() { "?".to_owned() } else { x.to_string() };
    println!(
        "clawgate {} — running, up {} s",
        v["version"].as_str().unwrap_or("?"),
        v["uptimeMs"].as_u64().unwrap_or(0) / 1000
    );
    let pid = info.map(|i| format!(" (pid {})", i.pid)).unwrap_or_default();
    println!("  url          {}{pid}", loc.url);
    println!("  bind         {}", v["bind"].as_str().or(info.map(|i| i.bind.as_str())).unwrap_or("?"));
    println!(
        "  config file  {}",
        config_file.map_or_else(|| "none (built-in defaults)".to_owned(), |p| p.display().to_string())
    );
    let secret = info.and_then(|i| i.secret.as_ref()).map(|s| format!(" ({} from {})", s.kind, s.described));
    println!("  auth mode    {}{}", v["authMode"].as_str().unwrap_or("?"), secret.unwrap_or_default());
    println!(
        "  sessions     {} ({} operators, {} nodes), {} handshaking",
        shown(&c["sessions"]),
        shown(&c["operators"]),
        shown(&c["nodes"]),
        shown(&c["handshaking"])
    );
    println!("  pending      {} pairing request(s)", shown(&v["pendingPairingRequests"]));
    println!("  locked out   {} address(es)", shown(&v["lockedOutAddresses"]));
}

/// What `gateway token` can say about the secret in use.
enum TokenAnswer {
    Token { value: String, source: String },
    Unknowable { why: String },
}

fn token(args: TokenArgs) -> Result<ExitCode, CliError> {
    let env = ConfigSources::from_process_env();
    let state = StateDir::locate(&env)?;
    let answer = match runtime_file::read(&state.path) {
        Ok(Some(Found::Live(info))) => running_token(&args, &info)?,
        _ => configured_token(&args)?,
    };
    match answer {
        TokenAnswer::Token { value, source } => {
            if args.json {
                println!("{}", json!({ "token": value, "source": source }));
            } else {
                println!("{value}");
                eprintln!("(from {source})");
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenAnswer::Unknowable { why } => {
            if args.json {
                println!("{}", json!({ "token": null, "why": why }));
            }
            Err(CliError::NoToken { why })
        }
    }
}

/// The token the running gateway uses, read from where it came from and
/// checked against the fingerprint it recorded.
fn running_token(args: &TokenArgs, info: &RuntimeInfo) -> Result<TokenAnswer, CliError> {
    let pid = info.pid;
    let Some(origin) = &info.secret else {
        return Ok(TokenAnswer::Unknowable {
            why: format!("the running gateway (pid {pid}) runs in auth mode {}, which has no token", info.auth_mode),
        });
    };
    if origin.kind != "token" {
        return Ok(TokenAnswer::Unknowable {
            why: format!(
                "the running gateway (pid {pid}) runs in password mode; its password came from {}",
                origin.described
            ),
        });
    }
    if !origin.readable_elsewhere() {
        return Ok(TokenAnswer::Unknowable {
            why: format!(
                "the running gateway (pid {pid}) took its token from {}; no other process can read that, so this \
                 command cannot print it",
                origin.described
            ),
        });
    }
    let value = match origin.source.as_str() {
        "config" => {
            let file = ConfigArgs { config: info.config_file.clone().or_else(|| args.config.config.clone()) };
            let loaded =
                load_config_with(&file, ConfigSources::default(), &mut |_| Ok((String::new(), PathBuf::new())))?;
            loaded.config.token.map(|t| t.reveal().to_owned()).unwrap_or_default()
        }
        _ => {
            let path = origin.name.clone().unwrap_or_default();
            std::fs::read_to_string(&path)
                .map_err(|e| CliError::io(format!("cannot read {path}"), e))?
                .trim()
                .to_owned()
        }
    };
    if runtime_file::fingerprint(&value) != origin.fingerprint {
        return Ok(TokenAnswer::Unknowable {
            why: format!(
                "{} changed since the running gateway (pid {pid}) started; restart it to use the new token",
                origin.described
            ),
        });
    }
    Ok(TokenAnswer::Token { value, source: format!("{}, in use by the running gateway (pid {pid})", origin.described) })
}

/// No gateway running: the token `gateway run` would use now.
fn configured_token(args: &TokenArgs) -> Result<TokenAnswer, CliError> {
    let loaded = load_config(&args.config, ConfigSources::default())?;
    Ok(match (&loaded.config.auth_mode, &loaded.config.token) {
        (AuthMode::Token, Some(t)) => TokenAnswer::Token {
            value: t.reveal().to_owned(),
            source: format!("{}; no gateway is running, this is the token `clawgate gateway run` would use", t.source),
        },
        (mode, _) => TokenAnswer::Unknowable {
            why: format!("the configured auth mode is {}, which has no token", mode.as_str()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_asks_for_the_least_its_method_needs() {
        assert_eq!(least_scopes("health").unwrap(), [scopes::READ]);
        assert_eq!(least_scopes("device.pair.list").unwrap(), [scopes::PAIRING]);
        assert_eq!(least_scopes("no.such.method").unwrap(), [scopes::ADMIN]);
        assert_eq!(least_scopes("node.invoke.result").unwrap_err().code(), "INVALID_INPUT");
    }
}
