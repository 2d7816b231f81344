//! What every rule after `protocol` reads: the facts, the config, and what
//! follows from them once — the role, the requested scopes, the owner's
//! secret, and for a proven device its pairing record.

use clawgate_protocol::device_auth::normalize_metadata;
use clawgate_protocol::scopes::{covered_by, dedupe_in_order};
use clawgate_protocol::version::Negotiated;

use crate::config::Config;
use crate::store::{DeviceView, PairedDevice};

use super::super::credential::{Credential, CredentialCheck};
use super::super::decision::{PairingReason, Role};
use super::super::device_proof::VerifiedDevice;
use super::super::facts::{ConnectFacts, DeviceFact};

/// What the `protocol` rule accepted.
pub(super) struct Accepted {
    pub role: Role,
    pub negotiated: Negotiated,
    pub note: String,
}

pub(super) struct Ctx<'a> {
    pub facts: &'a ConnectFacts,
    pub config: &'a Config,
    pub role: Role,
    pub negotiated: Negotiated,
    /// Deduplicated, the client's order kept.
    pub requested: Vec<String>,
    /// The verified credential, when it is the owner's secret.
    pub owner: Option<&'a Credential>,
    /// The trusted-proxy user this connection came with, unless the owner's
    /// secret verified (the owner is not held to a proxy user's binding):
    /// the proxy user credential, or the user beside a device token.
    pub user: Option<&'a str>,
    pub browser: bool,
    /// Present when the device block proved its key.
    pub device: Option<DeviceCtx<'a>>,
}

pub(super) struct DeviceCtx<'a> {
    pub verified: &'a VerifiedDevice,
    /// The store's pairing of this device id, when it is for this same key.
    pub paired: Option<&'a PairedDevice>,
    /// The proxy user the pairing is bound to, when it is this connection's
    /// user: then the request is also held within that user's identityScopes.
    pub bound_user: Option<&'a str>,
    /// Why the device needs (re-)approval; `None` when its pairing covers the request.
    pub needs: Option<PairingReason>,
}

impl<'a> Ctx<'a> {
    pub fn new(facts: &'a ConnectFacts, config: &'a Config, view: Option<&'a DeviceView>, accepted: Accepted) -> Self {
        let requested = dedupe_in_order(facts.params.scopes());
        let owner = owner_secret(&facts.credential, config);
        let user = match (owner, facts.credential.verified()) {
            (Some(_), _) => None,
            (None, Some(Credential::ProxyUser { user, .. })) => Some(user.as_str()),
            (None, Some(Credential::DeviceToken { .. })) => facts.proxy_user.as_deref(),
            (None, _) => None,
        };
        let device = match &facts.device {
            DeviceFact::Proven(verified) => {
                let paired =
                    view.and_then(|v| v.device.as_ref()).filter(|d| d.public_key == verified.public_key_b64url);
                let same_user = paired.is_some_and(|d| owner.is_some() || d.proxy_user.as_deref() == user);
                let needs = if paired.is_some() && !same_user {
                    Some(PairingReason::UserMismatch)
                } else {
                    pairing_need(facts, paired, accepted.role, &requested)
                };
                let bound_user = paired.and_then(|d| d.proxy_user.as_deref()).filter(|u| Some(*u) == user);
                Some(DeviceCtx { verified, paired, bound_user, needs })
            }
            DeviceFact::None | DeviceFact::Failed(_) => None,
        };
        Ctx {
            facts,
            config,
            role: accepted.role,
            negotiated: accepted.negotiated,
            requested,
            owner,
            user,
            browser: facts.is_browser(),
            device,
        }
    }

    /// Direct-local, and not a program of another uid (the edge already
    /// made such a peer remote; checked again so `decide` alone keeps it).
    pub fn direct_local(&self) -> bool {
        self.facts.locality.is_direct_local() && self.foreign_local_uid().is_none()
    }

    /// The uid of a loopback peer that is not the owner's, when known.
    pub fn foreign_local_uid(&self) -> Option<u32> {
        self.facts.foreign_local_uid(self.config)
    }
}

/// The owner's secret: the shared token or password, or mode none on a loopback bind.
pub(super) fn owner_secret<'a>(check: &'a CredentialCheck, config: &Config) -> Option<&'a Credential> {
    check.verified().filter(|c| match c {
        Credential::SharedToken | Credential::SharedPassword => true,
        Credential::NoneMode => config.is_loopback_bind(),
        // Holding some credential never counts as holding the owner's.
        Credential::DeviceToken { .. } | Credential::ServiceToken { .. } | Credential::ProxyUser { .. } => false,
    })
}

fn pairing_need(
    facts: &ConnectFacts,
    paired: Option<&PairedDevice>,
    role: Role,
    requested: &[String],
) -> Option<PairingReason> {
    let client = &facts.params.client;
    match paired {
        None => Some(PairingReason::NotPaired),
        Some(d)
            if metadata_changed(d.platform.as_deref(), Some(&client.platform), true)
                || metadata_changed(d.device_family.as_deref(), client.device_family.as_deref(), false) =>
        {
            Some(PairingReason::MetadataUpgrade)
        }
        Some(d) if !d.has_role(role) => Some(PairingReason::RoleUpgrade),
        Some(d) if !requested.is_empty() && !covered_by(requested, &d.approved_scopes) => {
            Some(PairingReason::ScopeUpgrade)
        }
        Some(_) => None,
    }
}

/// Platforms the same host may report under two names (node-host runtimes).
fn platform_alias(p: &str) -> &str {
    match p {
        "darwin" => "macos",
        "win32" => "windows",
        other => other,
    }
}

/// Does the connecting client claim other pinned metadata than the pairing?
fn metadata_changed(paired: Option<&str>, now: Option<&str>, alias: bool) -> bool {
    let (a, b) = (normalize_metadata(paired), normalize_metadata(now));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if alias {
        platform_alias(&a) != platform_alias(&b)
    } else {
        a != b
    }
}
