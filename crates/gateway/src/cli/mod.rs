//! The `clawgate` command line.

mod gateway_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "clawgate", version, about = "A gateway for the OpenClaw Gateway protocol, with admission done right")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run and talk to the gateway.
    #[command(subcommand)]
    Gateway(gateway_cmd::GatewayCommand),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gateway(cmd) => gateway_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("clawgate: {e}");
            ExitCode::from(2)
        }
    }
}
