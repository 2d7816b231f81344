//! What `decide` returns: an admission or a typed refusal, each naming the
//! rule that produced it, plus the trace of rules considered.

use clawgate_protocol::version::Negotiated;

use super::credential::{AuthReason, Credential};
use super::rules::RuleId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Operator,
    Node,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "operator" => Some(Role::Operator),
            "node" => Some(Role::Node),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Node => "node",
        }
    }
}

/// Who the gateway admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A local program holding the owner's secret (rule `local-owner`).
    LocalOwner,
    /// A holder of the shared secret admitted with no scopes (rule `scopeless`).
    ScopelessSecretHolder,
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
    Refuse(Refusal),
}

impl Decision {
    pub fn rule(&self) -> RuleId {
        match self {
            Decision::Admit(a) => a.rule,
            Decision::Refuse(r) => r.rule,
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
