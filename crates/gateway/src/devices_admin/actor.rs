//! Who is acting: the scopes held, the device a session authenticated as,
//! and how an approval is recorded.

use clawgate_protocol::scopes::{self, not_covered, satisfied_by};

use crate::store::ApprovedVia;

#[derive(Debug, Clone)]
pub struct Actor {
    /// `None`: the owner of the store file itself (`--offline`), who holds
    /// every right.
    scopes: Option<Vec<String>>,
    /// Set only when the session authenticated with this device's token.
    own_device: Option<String>,
    /// How an approval by this actor is recorded.
    via: ApprovedVia,
}

impl Actor {
    /// A gateway session: its scopes, and its device when it authenticated
    /// with that device's token.
    pub fn session(scopes: &[String], own_device: Option<&str>, via: ApprovedVia) -> Actor {
        Actor { scopes: Some(scopes.to_vec()), own_device: own_device.map(str::to_owned), via }
    }

    /// Whoever can write the store file directly: approvals are recorded as
    /// `cli-offline`, and no scope ceiling applies.
    pub fn store_owner() -> Actor {
        Actor { scopes: None, own_device: None, via: ApprovedVia::CliOffline }
    }

    pub fn is_admin(&self) -> bool {
        self.scopes.as_ref().is_none_or(|held| satisfied_by(held, scopes::ADMIN))
    }

    pub fn own_device(&self) -> Option<&str> {
        self.own_device.as_deref()
    }

    pub fn via(&self) -> ApprovedVia {
        self.via
    }

    /// Non-admin device-token callers manage only their own device.
    pub fn may_manage(&self, device_id: &str) -> bool {
        self.is_admin() || self.own_device.as_deref().is_none_or(|own| own == device_id)
    }

    /// The scopes of `wanted` this actor does not hold (an actor grants only
    /// what it holds).
    pub fn lacks(&self, wanted: &[String]) -> Vec<String> {
        self.scopes.as_ref().map_or_else(Vec::new, |held| not_covered(wanted, held))
    }
}
