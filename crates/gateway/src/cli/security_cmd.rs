//! `clawgate security audit [--json] [--config FILE]`: gathers the config,
//! a snapshot of the store (the SQLite file, or the PostgreSQL database of
//! `gateway.store.url`) and the state files' modes, runs the library's
//! audit over them (`clawgate::audit`) and prints the findings. Exit status
//! 1 on any critical finding, 0 otherwise; nothing is written.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use clawgate::audit::{self, Finding, Severity, StoreSnapshot};
use clawgate::config::ConfigSources;
use clawgate::server::now_ms;
use clawgate::state::StateDir;
use clawgate::store::{PairingStore, PgStore, SqliteStore};

use super::config_args::{load_config_with, ConfigArgs};
use super::error::CliError;

#[derive(Subcommand)]
pub enum SecurityCommand {
    /// Check the config, the store and the state files for unsafe settings.
    Audit(AuditArgs),
}

#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: SecurityCommand) -> Result<ExitCode, CliError> {
    match cmd {
        SecurityCommand::Audit(a) => run_audit(a),
    }
}

fn run_audit(args: AuditArgs) -> Result<ExitCode, CliError> {
    // In token mode without a configured token the gateway uses the state
    // directory's (generating one on first start, which the audit never does).
    let loaded = load_config_with(&args.config, ConfigSources::default(), &mut |state: &StateDir| {
        let token = match state.token_or_new() {
            Ok((token, _)) => token,
            // Unsafe permissions are reported as a finding: read it anyway.
            Err(e) => std::fs::read_to_string(state.token_path()).map(|t| t.trim().to_owned()).map_err(|_| e)?,
        };
        Ok((token, state.token_path()))
    })?;
    let state = &loaded.state;
    let store_path = state.store_path();
    let wal = store_path.with_extension("sqlite-wal");
    let token_path = state.token_path();
    let mut files = vec![(audit::host::STATE_DIRECTORY, state.path.as_path()), ("token file", token_path.as_path())];
    // With a PostgreSQL store the device and service records come from the
    // database; a SQLite file left in the state directory is not the store
    // (the `store.postgres` finding says its checks are skipped).
    let store = match &loaded.config.store_url {
        Some(url) => snapshot(&PgStore::open(url.expose())?)?,
        None => {
            files.extend([("store", store_path.as_path()), ("store journal", wal.as_path())]);
            if store_path.exists() {
                snapshot(&SqliteStore::open(&store_path)?)?
            } else {
                StoreSnapshot::default()
            }
        }
    };
    if let Some(config) = &loaded.config_file {
        files.push((audit::host::CONFIG_FILE, config.as_path()));
    }
    let host = audit::host::gather(&files, now_ms());
    let findings = audit::audit(&loaded.config, &store, &host);

    if args.json {
        let out = json!({
            "ok": !audit::has_critical(&findings),
            "summary": {
                "critical": count(&findings, Severity::Critical),
                "warn": count(&findings, Severity::Warn),
                "info": count(&findings, Severity::Info),
            },
            "findings": findings,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        print_text(&findings);
    }
    Ok(if audit::has_critical(&findings) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn snapshot(store: &dyn PairingStore) -> Result<StoreSnapshot, CliError> {
    Ok(StoreSnapshot { devices: store.list_devices()?, services: store.list_services()? })
}

fn count(findings: &[Finding], severity: Severity) -> usize {
    findings.iter().filter(|f| f.severity == severity).count()
}

fn print_text(findings: &[Finding]) {
    if findings.is_empty() {
        println!("no findings");
        return;
    }
    for f in findings {
        println!("{:<8} {}  ({})", f.severity.as_str().to_uppercase(), f.id, f.key);
        println!("         {}", f.message);
        println!("         fix: {}", f.fix);
    }
    println!(
        "{} critical, {} warn, {} info",
        count(findings, Severity::Critical),
        count(findings, Severity::Warn),
        count(findings, Severity::Info)
    );
}
