//! The `clawgate` command line.

mod auth_cmd;
mod auth_log_cmd;
mod client_conn;
mod completions_cmd;
mod config_args;
mod devices;
mod error;
mod gateway_cmd;
mod gateway_run;
mod port_holder;
mod security_cmd;
mod services_cmd;
mod store_open;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "clawgate", version = clawgate::version::LONG_VERSION, about = "A gateway for the OpenClaw Gateway protocol, with admission done right")]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run and talk to the gateway.
    #[command(subcommand)]
    Gateway(gateway_cmd::GatewayCommand),
    /// Explain admission decisions.
    #[command(subcommand)]
    Auth(auth_cmd::AuthCommand),
    /// Manage pairing requests, paired devices and device tokens.
    #[command(subcommand)]
    Devices(devices::DevicesCommand),
    /// Manage service principals: named tokens with a fixed role and scopes.
    #[command(subcommand)]
    Services(services_cmd::ServicesCommand),
    /// Check the configuration and the store for unsafe settings.
    #[command(subcommand)]
    Security(security_cmd::SecurityCommand),
    /// Print a shell completion script (bash, zsh or fish).
    Completions(completions_cmd::CompletionsArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gateway(cmd) => gateway_cmd::run(cmd),
        Command::Auth(cmd) => auth_cmd::run(cmd),
        Command::Devices(cmd) => devices::run(cmd),
        Command::Services(cmd) => services_cmd::run(cmd),
        Command::Security(cmd) => security_cmd::run(cmd),
        Command::Completions(args) => completions_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("clawgate: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
