//! Why an administration request was refused, with stable codes.

use std::fmt;

use crate::store::{Role, StoreError};

/// What was asked, as refusals name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    PairingApproval,
    PairingRejection,
    RejectionLift,
    Removal,
    Rename,
    TokenRotation,
    TokenRevocation,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::PairingApproval => "device pairing approval",
            Action::PairingRejection => "device pairing rejection",
            Action::RejectionLift => "lifting a device pairing rejection",
            Action::Removal => "device removal",
            Action::Rename => "device rename",
            Action::TokenRotation => "device token rotation",
            Action::TokenRevocation => "device token revocation",
        }
    }
}

/// Why the actor may not do it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    /// A non-admin device-token caller asked about another device.
    NotOwnDevice,
    /// Approving a node role needs `operator.admin`.
    RoleNeedsAdmin,
    /// The actor lacks a scope it would grant or manage.
    CallerMissingScope(String),
    /// Managing a device paired for a non-operator role needs admin.
    NodeDeviceNeedsAdmin,
    /// Another device's token needs admin.
    CrossDeviceNeedsAdmin,
    /// A node token needs admin.
    NodeRoleNeedsAdmin,
    /// The device is not paired.
    UnknownDevice { device_id: String },
    /// The device is paired, but not for this role.
    RoleNotApproved { device_id: String, role: Role },
    /// The token would carry scopes the device was never approved for.
    ScopesExceedApproval { device_id: String, missing: Vec<String> },
}

impl DenyReason {
    /// The kebab-case reason on the wire (`details.reason`). Unknown device
    /// and unapproved role read the same there, so the answer does not say
    /// which devices exist.
    pub fn as_str(&self) -> &'static str {
        match self {
            DenyReason::NotOwnDevice => "not-own-device",
            DenyReason::RoleNeedsAdmin => "role-needs-admin",
            DenyReason::CallerMissingScope(_) => "caller-missing-scope",
            DenyReason::NodeDeviceNeedsAdmin => "node-device-needs-admin",
            DenyReason::CrossDeviceNeedsAdmin => "cross-device-needs-admin",
            DenyReason::NodeRoleNeedsAdmin => "node-role-needs-admin",
            DenyReason::UnknownDevice { .. } | DenyReason::RoleNotApproved { .. } => "unknown-device-or-role",
            DenyReason::ScopesExceedApproval { .. } => "scopes-exceed-approval",
        }
    }

    /// What a local reader (the CLI) may be told beyond the wire reason.
    fn detail(&self) -> Option<String> {
        match self {
            DenyReason::UnknownDevice { device_id } => {
                Some(StoreError::UnknownDevice { device_id: device_id.clone() }.to_string())
            }
            DenyReason::RoleNotApproved { device_id, role } => {
                Some(StoreError::RoleNotApproved { device_id: device_id.clone(), role: *role }.to_string())
            }
            DenyReason::ScopesExceedApproval { device_id, missing } => Some(
                StoreError::ScopesNotApproved { device_id: device_id.clone(), missing: missing.clone() }.to_string(),
            ),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub enum AdminError {
    /// The actor may not do this.
    Denied { action: Action, reason: DenyReason },
    /// No request has this id.
    UnknownRequest,
    /// No paired device has this id.
    UnknownDevice { device_id: String },
    /// The store refused or failed; its own code.
    Store(StoreError),
}

impl AdminError {
    pub(super) fn deny(action: Action, reason: DenyReason) -> AdminError {
        AdminError::Denied { action, reason }
    }

    /// A stable code. Refusals of rotation that the store would have made
    /// itself carry the store's code, so `--offline` reports the same code
    /// whether the policy or the store caught it.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::Denied { reason: DenyReason::UnknownDevice { .. }, .. } => "DEVICE_UNKNOWN",
            AdminError::Denied { reason: DenyReason::RoleNotApproved { .. }, .. } => "DEVICE_ROLE_NOT_APPROVED",
            AdminError::Denied { reason: DenyReason::ScopesExceedApproval { .. }, .. } => "DEVICE_SCOPES_NOT_APPROVED",
            AdminError::Denied { .. } => "DENIED",
            AdminError::UnknownRequest => "PAIRING_UNKNOWN_REQUEST",
            AdminError::UnknownDevice { .. } => "DEVICE_UNKNOWN",
            AdminError::Store(e) => e.code(),
        }
    }

    /// The message a gateway client sees. Approval refusals say why after
    /// "device pairing approval denied" (the OpenClaw CLI retries with admin
    /// on exactly that prefix); the others name only the action.
    pub fn message(&self) -> String {
        match self {
            AdminError::Denied { action: Action::PairingApproval, reason: DenyReason::RoleNeedsAdmin } => {
                "device pairing approval denied: a node role needs operator.admin".to_owned()
            }
            AdminError::Denied { action: Action::PairingApproval, reason: DenyReason::CallerMissingScope(scope) } => {
                format!("device pairing approval denied: missing scope: {scope}")
            }
            AdminError::Denied { action, .. } => format!("{} denied", action.as_str()),
            AdminError::UnknownRequest => "unknown requestId".to_owned(),
            AdminError::UnknownDevice { device_id } => format!("unknown device {device_id}"),
            AdminError::Store(e) => e.to_string(),
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Store(e)
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())?;
        if let AdminError::Denied { reason, .. } = self {
            if let Some(detail) = reason.detail() {
                write!(f, ": {detail}")?;
            }
            write!(f, " ({})", reason.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for AdminError {}
