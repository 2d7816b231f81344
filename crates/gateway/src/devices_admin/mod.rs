//! Device administration as one piece of policy: who may list, approve,
//! reject (and lift a rejection), remove, rename, rotate and revoke, and what each does to the
//! store. The gateway's `device.pair.*`, `device.token.*` and `node.pair.*`
//! methods and the CLI's `--offline` mode both call it; what only a running
//! gateway does (broadcasts, closing sessions) stays with the methods.
//!
//! Every operation is synchronous over a [`PairingStore`]: the gateway runs
//! it on the blocking pool, the CLI directly.

mod actor;
mod error;
mod policy;
pub mod views;

pub use actor::Actor;
pub use error::{Action, AdminError, DenyReason};
pub use policy::{
    approve, list, reject, remove, rename, revoke, rotate, unreject, Listing, Revocation, Rotation, Unrejection,
};

#[cfg(test)]
mod tests;
