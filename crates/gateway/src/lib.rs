//! clawgate: a gateway for the OpenClaw Gateway protocol, with admission done right.
//!
//! Map of the crate:
//! - [`config`]: the `gateway.*` configuration, validated.
//! - [`admission`]: edge facts, credentials, and the pure `decide` function.
//! - [`server`]: HTTP + WebSocket on one port, handshake, sessions, broadcasts.
//! - [`state`]: the state directory and the generated token.
//! - [`runtime_file`]: where a running gateway says it listens (for the CLI).
//! - [`upstream`]: upstream mode, clawgate in front of an OpenClaw gateway.
//! - [`store`]: the pairing store (SQLite).
//! - [`devices_admin`]: who may approve, reject, remove, rotate and revoke.
//! - Leaves both [`server`] and [`upstream`] use: [`clock`], [`version`],
//!   [`http_head`], [`close_code`] and the per-connection outbox.
//!
//! The `clawgate` command line is not part of the library: it is the
//! binary's own module tree (`src/main.rs`, `src/cli/`), built with the `cli`
//! feature.

pub mod admission;
pub mod audit;
pub mod clock;
pub mod close_code;
pub mod cluster;
pub mod config;
pub mod devices_admin;
pub mod fd_limit;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod gateway_identity;
pub mod http_head;
pub mod net;
pub(crate) mod outbox;
pub mod runtime_file;
pub mod secrets;
pub mod server;
pub mod state;
pub mod store;
pub mod upstream;
pub mod version;

pub use server::{serve, serve_listeners, serve_per_core, Gateway, ReusePortGroup, ServerOptions};

/// A gateway for `config`, with its cluster bus when `gateway.cluster` is
/// set (docs/cluster.md): what `clawgate gateway run` serves.
pub fn gateway(
    config: config::Config,
    options: server::ServerOptions,
    store: std::sync::Arc<dyn store::PairingStore>,
) -> std::sync::Arc<server::Gateway> {
    let bus = config.cluster.clone();
    server::Gateway::with_cluster(config, options, store, move |boot_id| {
        bus.map(|c| cluster::Cluster::new(c, boot_id) as std::sync::Arc<dyn server::cluster_port::ClusterPort>)
    })
}
