//! `clawgate devices list | approve | reject | unreject | remove | rotate | revoke`.
//!
//! By default every command works through the running gateway: the CLI
//! connects as a local `cli`/`cli` client with the gateway credential, asks
//! for the least each step needs (`operator.pairing` to list; approving also
//! the scopes it grants; node roles and other devices' tokens also
//! `operator.admin`), and calls the `device.pair.*` and `device.token.*`
//! methods. With `--offline` it opens the pairing store
//! in the state directory directly (approvals are recorded as
//! `cli-offline`). `--offline` is never chosen automatically: when the
//! gateway cannot be reached, the error says to pass it.
//!
//! Approving works only on requests a device already opened; the CLI never
//! presents a device identity, so approving can never create a request.

mod backend;
mod commands;
mod render;

use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use clawgate::store::Role;

use super::client_conn::ClientArgs;
use super::error::CliError;
use backend::{DeviceAdmin, GatewayBackend, StoreBackend};

#[derive(Subcommand)]
pub enum DevicesCommand {
    /// List pending pairing requests, paired devices and recent rejections.
    List(ListArgs),
    /// Approve a pending pairing request (by id, by device, or the latest one).
    /// `--device` on a rejected device lifts its rejection instead.
    Approve(ApproveArgs),
    /// Reject a pending pairing request (the device may ask again after 10 minutes).
    Reject(RequestArgs),
    /// Lift a device's rejection so it may ask to pair again now.
    Unreject(UnrejectArgs),
    /// Remove a paired device and its tokens.
    Remove(DeviceArgs),
    /// Replace a device's token; the old one stops working at once.
    Rotate(RotateArgs),
    /// Revoke a device's token.
    Revoke(RoleArgs),
}

/// Where the command works: through the gateway, or on the store file.
#[derive(Args, Clone)]
pub struct Target {
    /// Work on the pairing store in the state directory directly, without the
    /// gateway (`$CLAWGATE_STATE_DIR/clawgate.sqlite`). Never chosen automatically.
    #[arg(long, conflicts_with_all = ["url", "port", "token", "password"])]
    offline: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
pub struct ListArgs {
    /// Print the raw result (`device.pair.list`'s JSON).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(Args)]
#[command(group(ArgGroup::new("which").required(true).args(["request_id", "device", "latest"])))]
pub struct ApproveArgs {
    /// The request id shown by `clawgate devices list` (a unique prefix is enough).
    request_id: Option<String>,
    /// Approve the open request of this device (id or unique prefix).
    #[arg(long)]
    device: Option<String>,
    /// Approve the single request that arrived or was retried in the last 5
    /// minutes; refuses when there are several.
    #[arg(long)]
    latest: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(Args)]
pub struct RequestArgs {
    /// The request id (a unique prefix is enough).
    request_id: String,
    #[command(flatten)]
    target: Target,
}

#[derive(Args)]
pub struct DeviceArgs {
    /// The device id (a unique prefix is enough).
    device_id: String,
    #[command(flatten)]
    target: Target,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Operator,
    Node,
}

impl RoleArg {
    fn role(self) -> Role {
        match self {
            RoleArg::Operator => Role::Operator,
            RoleArg::Node => Role::Node,
        }
    }
}

#[derive(Args)]
#[command(group(ArgGroup::new("which_device").required(true).args(["device_id", "device"])))]
pub struct RoleArgs {
    /// The device id (a unique prefix is enough).
    device_id: Option<String>,
    /// The same, as OpenClaw's CLI spells it.
    #[arg(long, value_name = "DEVICE_ID")]
    device: Option<String>,
    /// The token's role. Default: the device's only approved role.
    #[arg(long, value_enum)]
    role: Option<RoleArg>,
    #[command(flatten)]
    target: Target,
}

#[derive(Args)]
#[command(group(ArgGroup::new("which_rejected").required(true).args(["device_id", "device"])))]
pub struct UnrejectArgs {
    /// The rejected device's id (a unique prefix is enough).
    device_id: Option<String>,
    /// The same, as OpenClaw's CLI spells it.
    #[arg(long, value_name = "DEVICE_ID")]
    device: Option<String>,
    /// Lift the rejection of this role only. Default: every role's.
    #[arg(long, value_enum)]
    role: Option<RoleArg>,
    #[command(flatten)]
    target: Target,
}

impl UnrejectArgs {
    fn device_id(&self) -> &str {
        self.device_id.as_deref().or(self.device.as_deref()).unwrap_or_default()
    }
}

#[derive(Args)]
pub struct RotateArgs {
    #[command(flatten)]
    inner: RoleArgs,
    /// Scopes of the new operator token, comma-separated (within the approved
    /// scopes). Default: the current token's scopes.
    #[arg(long, value_delimiter = ',')]
    scopes: Option<Vec<String>>,
}

impl RoleArgs {
    fn device_id(&self) -> &str {
        self.device_id.as_deref().or(self.device.as_deref()).unwrap_or_default()
    }
}

impl DevicesCommand {
    fn target(&self) -> &Target {
        match self {
            DevicesCommand::List(a) => &a.target,
            DevicesCommand::Approve(a) => &a.target,
            DevicesCommand::Reject(a) => &a.target,
            DevicesCommand::Unreject(a) => &a.target,
            DevicesCommand::Remove(a) => &a.target,
            DevicesCommand::Rotate(a) => &a.inner.target,
            DevicesCommand::Revoke(a) => &a.target,
        }
    }
}

pub fn run(cmd: DevicesCommand) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("cannot start the async runtime", e))?;
    runtime.block_on(async move {
        let target = cmd.target().clone();
        if target.offline {
            exec(StoreBackend::open()?, cmd).await
        } else {
            exec(GatewayBackend::connect(&target.client).await?, cmd).await
        }
    })
}

/// Run the command on whichever backend was opened, then close it.
async fn exec<B: DeviceAdmin>(backend: B, cmd: DevicesCommand) -> Result<ExitCode, CliError> {
    let outcome = match cmd {
        DevicesCommand::List(a) => commands::list(&backend, &a).await,
        DevicesCommand::Approve(a) => commands::approve(&backend, &a).await,
        DevicesCommand::Reject(a) => commands::reject(&backend, &a).await,
        DevicesCommand::Unreject(a) => commands::unreject(&backend, &a).await,
        DevicesCommand::Remove(a) => commands::remove(&backend, &a).await,
        DevicesCommand::Rotate(a) => commands::rotate(&backend, a).await,
        DevicesCommand::Revoke(a) => commands::revoke(&backend, &a).await,
    };
    backend.close().await;
    outcome
}
