//! What `decide` returns: an admission or a typed refusal, each naming the
//! rule that produced it, plus the trace of rules considered.

use clawgate_protocol::version::Negotiated;

use super::credential::{AuthReason, Credential};
use super::device_proof::{ProofError, VerifiedDevice};
use super::rule_id::RuleId;

/// The role vocabulary is the protocol's; named here too for admission's users.
pub use clawgate_protocol::Role;

/// Who the gateway admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A local program holding the owner's secret (rule `local-owner`).
    LocalOwner,
    /// A holder of the shared secret admitted with no scopes (rule `scopeless`).
    ScopelessSecretHolder,
    /// A paired device (or one being paired silently right now).
    Device { device_id: String },
    /// A service principal (rule `service-principal`).
    Service { name: String, principal_id: String },
    /// A user the trusted proxy vouched for, or `loopbackUser` (rules
    /// `trusted-proxy`, `trusted-proxy-loopback-user`).
    ProxyUser { user: String },
}

/// Why a device needs (re-)approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingReason {
    NotPaired,
    ScopeUpgrade,
    RoleUpgrade,
    MetadataUpgrade,
    /// The device is bound to another trusted-proxy user (or to none).
    UserMismatch,
}

impl PairingReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "not-paired",
            PairingReason::ScopeUpgrade => "scope-upgrade",
            PairingReason::RoleUpgrade => "role-upgrade",
            PairingReason::MetadataUpgrade => "metadata-upgrade",
            PairingReason::UserMismatch => "user-mismatch",
        }
    }

    /// The reference's wording, used in the message and close reason.
    pub fn requirement(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "device is not approved yet",
            PairingReason::ScopeUpgrade => "device is asking for more scopes than currently approved",
            PairingReason::RoleUpgrade => "device is asking for a higher role than currently approved",
            PairingReason::MetadataUpgrade => "device identity changed and must be re-approved",
            PairingReason::UserMismatch => "device is paired to another user and must be approved for this one",
        }
    }
}

/// What applying an admission must do to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceAction {
    /// Already paired and covered: refresh last-seen, mint a token when the
    /// credential was the owner's secret (a device-token reconnect keeps its token).
    Paired { issue_token: bool },
    /// Approve silently now (recorded as `silent`), then mint a token.
    PairSilently { reason: PairingReason },
    /// Approve inline for this trusted-proxy user (recorded as `proxy-auto`,
    /// the device bound to `user`), then mint a token.
    ProxyAutoApprove { reason: PairingReason, user: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmittedDevice {
    pub device: VerifiedDevice,
    pub action: DeviceAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub rule: RuleId,
    pub principal: Principal,
    pub role: Role,
    /// Exactly what was requested (deduplicated, the client's order kept).
    pub scopes: Vec<String>,
    pub credential: Credential,
    pub negotiated: Negotiated,
    pub device: Option<AdmittedDevice>,
}

/// A device that must be approved before it may connect: applying this
/// creates or refreshes the pending request, then refuses with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingNeeded {
    pub reason: PairingReason,
    pub device: VerifiedDevice,
    pub role: Role,
    pub scopes: Vec<String>,
    pub approved_roles: Vec<Role>,
    pub approved_scopes: Vec<String>,
    /// The trusted-proxy user asking: the request, and the pairing that
    /// approving it makes, are bound to this user.
    pub proxy_user: Option<String>,
    pub hint: String,
}

/// Why a connection is refused. Each maps to one `details.code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalKind {
    ProtocolMismatch {
        client_min: u64,
        client_max: u64,
    },
    InvalidRole(String),
    /// Worker clients use another protocol entirely.
    WorkerHandshake,
    OriginNotAllowed {
        origin: String,
    },
    Auth {
        reason: AuthReason,
        can_retry_with_device_token: bool,
    },
    ControlUiDeviceIdentityRequired,
    DeviceIdentityRequired {
        role: Role,
        requested_scopes: Vec<String>,
    },
    ScopesNotGranted {
        not_granted: Vec<String>,
        why: &'static str,
    },
    LocalOwnerDisabled,
    DeviceAuth(ProofError),
    PairingRequired {
        reason: PairingReason,
        request_id: String,
        device_id: String,
        role: Role,
        requested_scopes: Vec<String>,
        approved_roles: Vec<Role>,
        approved_scopes: Vec<String>,
    },
    /// The device's last request for this role was rejected recently.
    PairingRejected {
        retry_after_ms: u64,
    },
    /// Too many failed attempts from this address.
    RateLimited {
        retry_after_ms: u64,
    },
    /// A service token together with a device block: a service principal
    /// is its own identity and never pairs a device.
    ServiceTokenWithDevice,
    /// The requested role is not one this credential may take.
    RoleNotGranted {
        requested: Role,
        allowed: Vec<Role>,
        why: &'static str,
    },
    /// A `gateway.trustedLocalServices` entry's `maxScopes` ceiling was
    /// exceeded: refused, never trimmed.
    LocalServiceCeiling {
        client_id: String,
        mode: String,
        not_granted: Vec<String>,
        max_scopes: Vec<String>,
    },
    /// `gateway.trustedLocalServices` is set and does not list this client.
    LocalServiceNotListed {
        client_id: String,
        mode: String,
    },
}

impl RefusalKind {
    /// `details.code`: stable, what clients branch on.
    pub fn details_code(&self) -> &'static str {
        match self {
            RefusalKind::ProtocolMismatch { .. } => "PROTOCOL_MISMATCH",
            RefusalKind::InvalidRole(_) => "INVALID_ROLE",
            RefusalKind::WorkerHandshake => "INVALID_HANDSHAKE",
            RefusalKind::OriginNotAllowed { .. } => "CONTROL_UI_ORIGIN_NOT_ALLOWED",
            RefusalKind::Auth { reason, .. } => reason.details_code(),
            RefusalKind::ControlUiDeviceIdentityRequired => "CONTROL_UI_DEVICE_IDENTITY_REQUIRED",
            RefusalKind::DeviceIdentityRequired { .. } => "DEVICE_IDENTITY_REQUIRED",
            RefusalKind::ScopesNotGranted { .. } => "SCOPE_NOT_GRANTED",
            RefusalKind::LocalOwnerDisabled => "DEVICE_IDENTITY_REQUIRED",
            RefusalKind::DeviceAuth(e) => e.details_code(),
            RefusalKind::PairingRequired { .. } => "PAIRING_REQUIRED",
            RefusalKind::PairingRejected { .. } => "PAIRING_REJECTED",
            RefusalKind::RateLimited { .. } => "AUTH_RATE_LIMITED",
            RefusalKind::ServiceTokenWithDevice => "SERVICE_TOKEN_WITH_DEVICE",
            RefusalKind::RoleNotGranted { .. } => "ROLE_NOT_GRANTED",
            RefusalKind::LocalServiceCeiling { .. } => "LOCAL_SERVICE_SCOPE_CEILING",
            RefusalKind::LocalServiceNotListed { .. } => "DEVICE_IDENTITY_REQUIRED",
        }
    }

    /// `details.reason`: a short machine-readable cause.
    pub fn reason(&self) -> &'static str {
        match self {
            RefusalKind::ProtocolMismatch { .. } => "protocol-mismatch",
            RefusalKind::InvalidRole(_) => "invalid-role",
            RefusalKind::WorkerHandshake => "worker-protocol",
            RefusalKind::OriginNotAllowed { .. } => "origin-not-allowed",
            RefusalKind::Auth { reason, .. } => reason.as_str(),
            RefusalKind::ControlUiDeviceIdentityRequired => "browser-without-device",
            RefusalKind::DeviceIdentityRequired { .. } => "no-identity",
            RefusalKind::ScopesNotGranted { why, .. } => why,
            RefusalKind::LocalOwnerDisabled => "local-owner-disabled",
            RefusalKind::DeviceAuth(e) => e.reason(),
            RefusalKind::PairingRequired { reason, .. } => reason.as_str(),
            RefusalKind::PairingRejected { .. } => "recently-rejected",
            RefusalKind::RateLimited { .. } => "rate_limited",
            RefusalKind::ServiceTokenWithDevice => "service-token-with-device",
            RefusalKind::RoleNotGranted { why, .. } => why,
            RefusalKind::LocalServiceCeiling { .. } => "above-local-service-ceiling",
            RefusalKind::LocalServiceNotListed { .. } => "local-service-not-listed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub rule: RuleId,
    /// One sentence naming the config key or command that fixes it.
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Admit(Admission),
    PairingRequired(PairingNeeded),
    Refuse(Refusal),
}

impl Decision {
    pub fn rule(&self) -> RuleId {
        match self {
            Decision::Admit(a) => a.rule,
            Decision::PairingRequired(_) => RuleId::PairingRequired,
            Decision::Refuse(r) => r.rule,
        }
    }

    /// The outcome's stable name in logs, metrics and the decision log.
    pub fn outcome_name(&self) -> &'static str {
        match self {
            Decision::Admit(_) => "admit",
            Decision::PairingRequired(_) => "pairing-required",
            Decision::Refuse(_) => "refuse",
        }
    }
}

/// One rule considered, and why it did or did not decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    pub rule: RuleId,
    pub decided: bool,
    pub note: String,
}

/// A decision and the rules considered on the way to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub decision: Decision,
    pub trace: Vec<TraceStep>,
}
