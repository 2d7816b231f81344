//! `clawgate services add | list | rotate | revoke`: service principals, the
//! headless way in: a named token with a fixed role and scope ceiling, for
//! automation that has no device key to pair.
//!
//! The commands work on the store file in the state directory directly
//! (`$CLAWGATE_STATE_DIR/clawgate.sqlite`), whether or not the gateway runs:
//! a running gateway notices the change within one store poll and closes the
//! sessions of a rotated or revoked principal with 4001.
//!
//! A token is printed once, on stdout and alone on its line (so
//! `TOKEN=$(clawgate services add …)` works); everything else goes to stderr.
//! The store keeps only the SHA-256 of its secret.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use clawgate_protocol::scopes::KNOWN_SCOPES;
use serde_json::{json, Value};

use clawgate::config::ConfigSources;
use clawgate::server::now_ms;
use clawgate::state::StateDir;
use clawgate::store::{PairingStore, PgStore, Role, ServicePrincipal, SqliteStore};

use super::error::CliError;

#[derive(Subcommand)]
pub enum ServicesCommand {
    /// Create a service principal and print its token (shown only once).
    Add(AddArgs),
    /// List service principals (never their tokens).
    List(ListArgs),
    /// Give a principal a new token; the old one stops working at once.
    Rotate(NameArgs),
    /// Revoke a principal; its live sessions are closed.
    Revoke(NameArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Operator,
    Node,
}

#[derive(Args)]
pub struct AddArgs {
    /// A name: letters, digits, '.', '_' or '-' (a node principal's node id is `svc:<name>`).
    name: String,
    #[arg(long, value_enum)]
    role: RoleArg,
    /// Its scopes, comma-separated (operators only; none for nodes). A client
    /// may ask for these or fewer; asking for more is refused.
    #[arg(long, value_delimiter = ',')]
    scopes: Vec<String>,
}

#[derive(Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct NameArgs {
    name: String,
}

pub fn run(cmd: ServicesCommand) -> Result<ExitCode, CliError> {
    match cmd {
        ServicesCommand::Add(a) => add(a),
        ServicesCommand::List(a) => list(a),
        ServicesCommand::Rotate(a) => rotate(a),
        ServicesCommand::Revoke(a) => revoke(a),
    }
}

/// The configured store: the shared PostgreSQL database when a store URL is
/// set, else the state directory's file. `create`: make the directory
/// (0700) and the file if missing (adding a principal before the first start).
fn open_store(create: bool) -> Result<Box<dyn PairingStore>, CliError> {
    let env = ConfigSources::from_process_env();
    let state = StateDir::locate(&env)?;
    if let Some(url) = super::store_open::configured_store_url(&env, &state)? {
        return Ok(Box::new(PgStore::open(url.expose())?));
    }
    let path: PathBuf = state.store_path();
    if !create && !path.exists() {
        return Err(CliError::StoreMissing {
            what: "store",
            path,
            why: "no service principal was added yet",
            state_dir: state.path.clone(),
        });
    }
    state.ensure()?;
    Ok(Box::new(SqliteStore::open(&path)?))
}

fn role_of(r: RoleArg) -> Role {
    match r {
        RoleArg::Operator => Role::Operator,
        RoleArg::Node => Role::Node,
    }
}

fn scopes_text(scopes: &[String]) -> String {
    if scopes.is_empty() {
        "(none)".to_owned()
    } else {
        scopes.join(", ")
    }
}

fn print_token(p: &ServicePrincipal, token: &str, what: &str) {
    eprintln!(
        "service principal {:?} {what} (id {}, role {}, scopes {})",
        p.name,
        p.principal_id,
        p.role.as_str(),
        scopes_text(&p.scopes)
    );
    println!("{token}");
    eprintln!("This token is shown only once: store it now (clawgate keeps only its hash).");
    eprintln!(
        "Clients send it as auth.token, with role {}{}, without a device identity.",
        p.role.as_str(),
        if p.scopes.is_empty() { String::new() } else { format!(" and at most these scopes: {}", p.scopes.join(",")) }
    );
}

fn add(args: AddArgs) -> Result<ExitCode, CliError> {
    let role = role_of(args.role);
    let scopes: Vec<String> = args.scopes.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
    if role == Role::Node && !scopes.is_empty() {
        return Err(CliError::InvalidScopes(
            "a node principal holds no scopes; drop --scopes, or use --role operator".into(),
        ));
    }
    let unknown: Vec<&String> = scopes.iter().filter(|s| !KNOWN_SCOPES.contains(&s.as_str())).collect();
    if !unknown.is_empty() {
        return Err(CliError::InvalidScopes(format!(
            "unknown scope(s) {}; known scopes: {}",
            unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            KNOWN_SCOPES.join(", ")
        )));
    }
    let store = open_store(true)?;
    let issued = store.add_service(&args.name, role, &scopes, now_ms()).map_err(CliError::Store)?;
    print_token(&issued.principal, &issued.token, "added");
    Ok(ExitCode::SUCCESS)
}

fn rotate(args: NameArgs) -> Result<ExitCode, CliError> {
    let store = open_store(false)?;
    let issued = store.rotate_service(&args.name, now_ms()).map_err(CliError::Store)?;
    print_token(&issued.principal, &issued.token, "rotated; the old token stopped working");
    Ok(ExitCode::SUCCESS)
}

fn revoke(args: NameArgs) -> Result<ExitCode, CliError> {
    let store = open_store(false)?;
    let p = store.revoke_service(&args.name, now_ms()).map_err(CliError::Store)?;
    println!(
        "revoked service principal {:?} (id {}); a running gateway closes its sessions within a second",
        p.name, p.principal_id
    );
    Ok(ExitCode::SUCCESS)
}

fn relative(ms: u64, now: u64) -> String {
    let secs = now.saturating_sub(ms) / 1000;
    match secs {
        0..=4 => "just now".into(),
        5..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

fn principal_json(p: &ServicePrincipal) -> Value {
    json!({
        "id": p.principal_id,
        "name": p.name,
        "role": p.role.as_str(),
        "scopes": p.scopes,
        "nodeId": (p.role == Role::Node).then(|| p.node_id()),
        "createdAtMs": p.created_at_ms,
        "rotatedAtMs": p.rotated_at_ms,
        "revokedAtMs": p.revoked_at_ms,
        "lastUsedAtMs": p.last_used_at_ms,
    })
}

fn list(args: ListArgs) -> Result<ExitCode, CliError> {
    let store = open_store(false)?;
    let all = store.list_services().map_err(CliError::Store)?;
    if args.json {
        let v: Vec<Value> = all.iter().map(principal_json).collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        println!("no service principals; add one with `clawgate services add NAME --role operator --scopes ...`");
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    for p in &all {
        let status = match p.revoked_at_ms {
            Some(t) => format!("revoked {}", relative(t, now)),
            None => "active".to_owned(),
        };
        println!("{}  ({}, id {})", p.name, status, p.principal_id);
        println!("    role:      {}", p.role.as_str());
        if p.role == Role::Operator {
            println!("    scopes:    {}", scopes_text(&p.scopes));
        } else {
            println!("    node id:   {}", p.node_id());
        }
        let rotated = p.rotated_at_ms.map(|t| format!(", rotated {}", relative(t, now))).unwrap_or_default();
        println!("    created:   {}{rotated}", relative(p.created_at_ms, now));
        println!("    last used: {}", p.last_used_at_ms.map_or_else(|| "never".to_owned(), |t| relative(t, now)));
    }
    Ok(ExitCode::SUCCESS)
}
