//! clawgate: a gateway for the OpenClaw Gateway protocol, with admission done right.
//!
//! Map of the crate:
//! - [`config`]: the `gateway.*` configuration, validated.
//! - [`admission`]: edge facts, credentials, and the pure `decide` function.
//! - [`server`]: HTTP + WebSocket on one port, handshake, sessions, broadcasts.
//! - [`state`]: the state directory and the generated token.
//! - [`cli`]: the `clawgate` command.
//! - [`upstream`]: upstream mode, clawgate in front of an OpenClaw gateway.

pub mod admission;
pub mod cli;
pub mod config;
pub mod net;
pub mod secrets;
pub mod server;
pub mod state;
pub mod store;
pub mod upstream;

pub use server::{serve, Gateway, ServerOptions};
