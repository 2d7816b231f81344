//! `clawgate auth explain`: how would the gateway decide this connection, and why?
//!
//! Parses the description (flags or `--file`), loads the config the way
//! `gateway run` does, reads the store's record of a proven device (and of a
//! named service principal) when the store exists, and prints what
//! [`clawgate::admission::explain`] finds. The store is never created here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use clawgate::admission::explain::{self, CredentialDesc, Description, DeviceDesc};
use clawgate::config::ConfigSources;
use clawgate::store::{PairingStore, PgStore, SqliteStore};

use super::config_args::{load_config, ConfigArgs};
use super::error::CliError;

#[derive(Subcommand)]
pub enum AuthCommand {
    /// Explain how the gateway would decide a described connection: the
    /// outcome, the rule, the refusal code and hint, and every rule considered.
    Explain(Box<ExplainArgs>),
    /// The running gateway's recent admission decisions: time, client
    /// address, client id and mode, device, rule, outcome and code.
    Log(Box<super::auth_log_cmd::LogArgs>),
}

#[derive(Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Read the description from a JSON file (same fields as the flags, in
    /// camelCase: peer, host, origin, headers, clientId, clientMode, role,
    /// scopes, credential, device, deviceId, publicKey, platform,
    /// deviceFamily, minProtocol, maxProtocol, peerUid). Flags override it.
    #[arg(long, value_name = "CONN.JSON")]
    file: Option<PathBuf>,
    /// Socket peer address, IP or IP:port [default: 127.0.0.1].
    #[arg(long)]
    peer: Option<String>,
    /// Host header [default: localhost:<configured port>].
    #[arg(long)]
    host: Option<String>,
    /// Origin header (browsers always send one; "null" and "" count too).
    #[arg(long)]
    origin: Option<String>,
    /// Another request header, NAME:VALUE (repeatable).
    #[arg(long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// client.id [default: cli].
    #[arg(long)]
    client_id: Option<String>,
    /// client.mode [default: cli].
    #[arg(long)]
    client_mode: Option<String>,
    /// Requested role [default: operator].
    #[arg(long)]
    role: Option<String>,
    /// Requested scopes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    scopes: Option<Vec<String>>,
    /// What the client presents: shared-token | shared-password | none |
    /// wrong-token | device-token | service-token [default: shared-token, the
    /// configured secret].
    #[arg(long, value_parser = parse_credential)]
    credential: Option<CredentialDesc>,
    /// The device block: none | proven | failed [default: none].
    #[arg(long, value_parser = parse_device)]
    device: Option<DeviceDesc>,
    /// The proven device's id; its pairing record and tokens are read from the store.
    #[arg(long)]
    device_id: Option<String>,
    /// With --credential service-token: the service principal's name (read from the store).
    #[arg(long)]
    service: Option<String>,
    /// The proven device's public key (base64url) [default: the paired key].
    #[arg(long)]
    public_key: Option<String>,
    /// client.platform [default: the paired record's, else linux].
    #[arg(long)]
    platform: Option<String>,
    /// The uid owning the peer's socket, as the gateway looks it up for a
    /// loopback peer on Linux [default: unknown].
    #[arg(long)]
    peer_uid: Option<u32>,
    /// minProtocol [default: 4].
    #[arg(long)]
    min_protocol: Option<u64>,
    /// maxProtocol [default: 4].
    #[arg(long)]
    max_protocol: Option<u64>,
    /// The trust level of the listener it arrives on: local (the main
    /// port), proxy or remote (gateway.listeners) [default: local].
    #[arg(long)]
    listener: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_credential(s: &str) -> Result<CredentialDesc, String> {
    s.parse()
}

fn parse_device(s: &str) -> Result<DeviceDesc, String> {
    s.parse()
}

pub fn run(cmd: AuthCommand) -> Result<ExitCode, CliError> {
    match cmd {
        AuthCommand::Explain(args) => explain_cmd(*args),
        AuthCommand::Log(args) => super::auth_log_cmd::run(*args),
    }
}

fn description(args: &ExplainArgs) -> Result<Description, CliError> {
    let mut d = match &args.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::io(format!("cannot read {}", path.display()), e))?;
            Description::from_json(&text).map_err(|e| CliError::InvalidInput(format!("{}: {e}", path.display())))?
        }
        None => Description::default(),
    };
    let set = |slot: &mut Option<String>, v: &Option<String>| {
        if v.is_some() {
            slot.clone_from(v);
        }
    };
    set(&mut d.peer, &args.peer);
    set(&mut d.host, &args.host);
    set(&mut d.origin, &args.origin);
    set(&mut d.client_id, &args.client_id);
    set(&mut d.client_mode, &args.client_mode);
    set(&mut d.role, &args.role);
    set(&mut d.device_id, &args.device_id);
    set(&mut d.public_key, &args.public_key);
    set(&mut d.service, &args.service);
    set(&mut d.platform, &args.platform);
    set(&mut d.listener, &args.listener);
    if args.peer_uid.is_some() {
        d.peer_uid = args.peer_uid;
    }
    d.headers.extend(args.headers.iter().cloned());
    if let Some(s) = &args.scopes {
        d.scopes = s.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
    }
    if let Some(c) = args.credential {
        d.credential = c;
    }
    if let Some(dev) = args.device {
        d.device = dev;
    }
    if args.device_id.is_some() && args.device.is_none() && d.device == DeviceDesc::None {
        d.device = DeviceDesc::Proven;
    }
    d.min_protocol = args.min_protocol.or(d.min_protocol);
    d.max_protocol = args.max_protocol.or(d.max_protocol);
    Ok(d)
}

/// A device id as the `devices` commands take it: the full id or a unique
/// prefix of a paired device's id; anything else is left as given.
fn resolve_device_id(store: &dyn PairingStore, given: &str) -> Result<String, CliError> {
    crate::cli::error::check_id_prefix(given, "paired device")?;
    let ids: Vec<String> = store.list_devices()?.into_iter().map(|d| d.device_id).collect();
    if ids.iter().any(|id| id == given) {
        return Ok(given.to_owned());
    }
    let matches: Vec<String> = ids.into_iter().filter(|id| id.starts_with(given)).collect();
    match matches.len() {
        0 => Ok(given.to_owned()),
        1 => Ok(matches.into_iter().next().unwrap_or_default()),
        _ => Err(CliError::AmbiguousId { given: given.to_owned(), what: "paired device", matches }),
    }
}

fn explain_cmd(args: ExplainArgs) -> Result<ExitCode, CliError> {
    let mut desc = description(&args)?;
    let loaded = load_config(&args.config, ConfigSources::default())?;
    let store_path = loaded.state.store_path();
    let needed = desc.device_to_look_up().is_some() || desc.service.is_some();
    // The configured store: the shared PostgreSQL one, else the file if it exists.
    let store: Option<Box<dyn PairingStore>> = match &loaded.config.store_url {
        Some(url) if needed => Some(Box::new(PgStore::open(url.expose())?)),
        None if needed && store_path.exists() => Some(Box::new(SqliteStore::open(&store_path)?)),
        _ => None,
    };
    if let (Some(store), Some(given)) = (&store, desc.device_id.clone()) {
        desc.device_id = Some(resolve_device_id(store.as_ref(), &given)?);
    }
    let view = match (&store, desc.device_to_look_up()) {
        (Some(store), Some(device_id)) => Some(store.view(&device_id)?),
        _ => None,
    };
    let service = match (&store, &desc.service) {
        (Some(store), Some(name)) => {
            let all = store.list_services()?;
            // The live principal of that name, else a revoked one.
            all.into_iter().filter(|p| &p.name == name).min_by_key(|p| p.is_revoked())
        }
        _ => None,
    };
    if desc.credential == CredentialDesc::ServiceToken && service.is_none() {
        match &desc.service {
            Some(name) => eprintln!("(no service principal named {name} in the store: its token reads as unknown)"),
            None => eprintln!("(no --service given: the service token reads as unknown)"),
        }
    }
    let explanation =
        explain::explain(&desc, &loaded.config, view.as_ref(), service.as_ref()).map_err(CliError::InvalidInput)?;
    if args.json {
        let text = serde_json::to_string_pretty(&explain::render_json(&explanation)).unwrap_or_default();
        println!("{}", clawgate_protocol::text::printable_json(&text));
    } else {
        if desc.device_to_look_up().is_some() && view.is_none() {
            println!("(no pairing store yet: the device is treated as unpaired)");
        }
        // Header values and the store's names are not ours: escaped line by line.
        for line in explain::render_text(&explanation).lines() {
            println!("{}", clawgate_protocol::text::printable(line));
        }
    }
    // Like `kubectl auth can-i`: 0 only when the connection would be admitted.
    Ok(if explain::outcome(&explanation) == "admit" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
