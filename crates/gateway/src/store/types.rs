//! The records the pairing store keeps and the answers it gives.

use std::fmt;

pub use clawgate_protocol::Role;

/// How a device's latest approval was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApprovedVia {
    /// The owner approved it through the gateway (`device.pair.approve`).
    Owner,
    /// Approved without asking (rule `silent-local-pairing`).
    Silent,
    /// `clawgate devices approve` through the running gateway.
    Cli,
    /// `clawgate devices approve --offline`, writing the store directly.
    CliOffline,
    /// Approved inline for a trusted-proxy user (rule
    /// `proxy-device-auto-approve`, `trustedProxy.deviceAutoApprove`).
    ProxyAuto,
}

impl ApprovedVia {
    pub const ALL: &'static [ApprovedVia] =
        &[ApprovedVia::Owner, ApprovedVia::Silent, ApprovedVia::Cli, ApprovedVia::CliOffline, ApprovedVia::ProxyAuto];

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovedVia::Owner => "owner",
            ApprovedVia::Silent => "silent",
            ApprovedVia::Cli => "cli",
            ApprovedVia::CliOffline => "cli-offline",
            ApprovedVia::ProxyAuto => "proxy-auto",
        }
    }

    pub fn parse(s: &str) -> Option<ApprovedVia> {
        ApprovedVia::ALL.iter().copied().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for ApprovedVia {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A device that asks to be paired (or is paired silently). Everything but
/// the device id and key is self-reported by the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    /// 64 lowercase hex: SHA-256 of the public key, checked by the caller.
    pub device_id: String,
    /// As sent: base64url of the raw 32-byte key.
    pub public_key: String,
    pub role: Role,
    pub scopes: Vec<String>,
    pub client_id: Option<String>,
    pub client_mode: Option<String>,
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub device_family: Option<String>,
    pub remote_ip: Option<String>,
    /// The trusted-proxy user the device connected as: approving the
    /// request binds the device to this user (docs/admission.md).
    pub proxy_user: Option<String>,
}

impl NewRequest {
    /// A request with no self-reported details and no client IP.
    pub fn new(device_id: impl Into<String>, public_key: impl Into<String>, role: Role, scopes: &[&str]) -> NewRequest {
        NewRequest {
            device_id: device_id.into(),
            public_key: public_key.into(),
            role,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            client_id: None,
            client_mode: None,
            display_name: None,
            platform: None,
            device_family: None,
            remote_ip: None,
            proxy_user: None,
        }
    }

    /// The same request, made by (and binding the device to) a proxy user.
    pub fn for_proxy_user(mut self, user: &str) -> NewRequest {
        self.proxy_user = Some(user.to_owned());
        self
    }
}

/// A paired device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairedDevice {
    pub device_id: String,
    pub public_key: String,
    /// Self-reported by the device.
    pub display_name: Option<String>,
    /// Set by the operator (`rename_device`).
    pub label: Option<String>,
    pub platform: Option<String>,
    pub device_family: Option<String>,
    pub client_id: Option<String>,
    pub client_mode: Option<String>,
    /// Approved roles, operator before node.
    pub roles: Vec<Role>,
    /// Normalized (trimmed, deduplicated, sorted).
    pub approved_scopes: Vec<String>,
    /// How the latest approval was made.
    pub approved_via: ApprovedVia,
    pub created_at_ms: u64,
    /// The latest approval.
    pub approved_at_ms: u64,
    pub last_seen_at_ms: Option<u64>,
    pub remote_ip: Option<String>,
    /// The trusted-proxy user the device is bound to: it is admitted only
    /// with that same user, within the user's `identityScopes`.
    pub proxy_user: Option<String>,
}

impl PairedDevice {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Metadata of a device token. The token itself exists only in the answer
/// of `issue_token`; the store keeps its SHA-256 digest, never shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub device_id: String,
    pub role: Role,
    pub scopes: Vec<String>,
    /// When this token was issued.
    pub created_at_ms: u64,
    /// Set when a rotation minted this token (ending the earlier ones).
    pub rotated_at_ms: Option<u64>,
    pub revoked_at_ms: Option<u64>,
    pub last_used_at_ms: Option<u64>,
}

impl TokenInfo {
    /// When this token was issued.
    pub fn issued_at_ms(&self) -> u64 {
        self.rotated_at_ms.unwrap_or(self.created_at_ms)
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked_at_ms.is_some()
    }
}

/// A device, its tokens and the store generation, read in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceView {
    pub generation: u64,
    pub device: Option<PairedDevice>,
    pub tokens: Vec<TokenInfo>,
}

/// Where a pairing request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestState {
    Open,
    /// A broader retry replaced it; `by` is the request that did.
    Superseded {
        by: String,
    },
    Approved,
    Rejected,
    Expired,
}

impl RequestState {
    pub fn as_str(&self) -> &'static str {
        match self {
            RequestState::Open => "open",
            RequestState::Superseded { .. } => "superseded",
            RequestState::Approved => "approved",
            RequestState::Rejected => "rejected",
            RequestState::Expired => "expired",
        }
    }
}

/// A pairing request, in any state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    pub request_id: String,
    pub device_id: String,
    pub public_key: String,
    pub role: Role,
    /// Normalized. Never changes under the same id.
    pub scopes: Vec<String>,
    pub client_id: Option<String>,
    pub client_mode: Option<String>,
    /// Self-reported by the device.
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub device_family: Option<String>,
    pub remote_ip: Option<String>,
    /// The trusted-proxy user who asked; approving binds the device to it.
    pub proxy_user: Option<String>,
    pub created_at_ms: u64,
    pub refreshed_at_ms: u64,
    pub state: RequestState,
    /// When it left the open state (for `Expired`: when it expired).
    pub resolved_at_ms: Option<u64>,
}

impl PendingRequest {
    /// When an open request stops being approvable.
    pub fn expires_at_ms(&self) -> u64 {
        self.refreshed_at_ms.saturating_add(super::PENDING_TTL_MS)
    }

    pub fn is_open(&self) -> bool {
        self.state == RequestState::Open
    }

    /// The request as a grant: what approving it pairs.
    pub(crate) fn as_new_request(&self) -> NewRequest {
        NewRequest {
            device_id: self.device_id.clone(),
            public_key: self.public_key.clone(),
            role: self.role,
            scopes: self.scopes.clone(),
            client_id: self.client_id.clone(),
            client_mode: self.client_mode.clone(),
            display_name: self.display_name.clone(),
            platform: self.platform.clone(),
            device_family: self.device_family.clone(),
            remote_ip: self.remote_ip.clone(),
            proxy_user: self.proxy_user.clone(),
        }
    }
}

/// What `request_pairing` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A new request; there was none open for this (device, role).
    Created { request_id: String },
    /// The open request covered the retry: same id, expiry pushed back.
    Refreshed { request_id: String },
    /// The retry asked for more: `old` now answers "superseded by `new`".
    Superseded { old: String, new: String },
}

impl RequestOutcome {
    /// The id the device should wait on.
    pub fn request_id(&self) -> &str {
        match self {
            RequestOutcome::Created { request_id } | RequestOutcome::Refreshed { request_id } => request_id,
            RequestOutcome::Superseded { new, .. } => new,
        }
    }
}

/// An approval: the request as approved and the paired record after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub request: PendingRequest,
    pub device: PairedDevice,
}

/// A rejection: the request as rejected and when its cooldown ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub request: PendingRequest,
    pub cooldown_until_ms: u64,
}

/// A (device, role) that may not ask to pair until `until_ms`: it was
/// rejected at `rejected_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionCooldown {
    pub device_id: String,
    pub role: Role,
    pub rejected_at_ms: u64,
    pub until_ms: u64,
    /// The request rejected, if the store still has it.
    pub request: Option<PendingRequest>,
}

/// A live device token found by its value alone
/// ([`super::PairingStore::device_token_by_value`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveToken {
    pub device_id: String,
    pub role: Role,
    pub scopes: Vec<String>,
}

/// The answer to a presented device token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// It is a live token of (device, role): its scopes and issue time.
    Valid { scopes: Vec<String>, issued_at_ms: u64 },
    /// Not a token of (device, role), live or recently revoked.
    Mismatch,
    /// It was the token, and it has been revoked.
    Revoked,
    /// The device holds no token for this role (or the role is not approved).
    Missing,
    /// The device is not paired.
    DeviceNotPaired,
}
