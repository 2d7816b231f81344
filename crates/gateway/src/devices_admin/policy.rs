//! The operations: each checks what the actor may do, then changes the
//! store. Checks and change run against one store handle, in one call.

use crate::store::{
    Approval, PairedDevice, PairingStore, PendingRequest, Rejection, RejectionCooldown, Role, TokenInfo,
};

use super::{Action, Actor, AdminError, DenyReason};

/// Open requests, paired devices (with their tokens) and rejection
/// cool-downs in force, of the devices the actor may manage.
#[derive(Debug, Clone)]
pub struct Listing {
    pub pending: Vec<PendingRequest>,
    pub paired: Vec<(PairedDevice, Vec<TokenInfo>)>,
    pub rejected: Vec<RejectionCooldown>,
}

/// The cool-downs of one device that were lifted.
#[derive(Debug, Clone)]
pub struct Unrejection {
    pub device_id: String,
    /// Empty when the device was in no cool-down (nothing to do).
    pub roles: Vec<Role>,
}

/// A new token for (device, role).
#[derive(Debug, Clone)]
pub struct Rotation {
    pub device_id: String,
    pub role: Role,
    pub scopes: Vec<String>,
    pub rotated_at_ms: u64,
    /// The new token. Handed over only `in_band`.
    pub token: String,
    /// The actor rotated its own device's token and may receive the new one.
    pub in_band: bool,
}

/// A revoked token of (device, role).
#[derive(Debug, Clone, Copy)]
pub struct Revocation {
    pub role: Role,
    /// False when there was no live token to revoke.
    pub revoked: bool,
    pub revoked_at_ms: u64,
}

pub fn list(store: &dyn PairingStore, actor: &Actor, now: u64) -> Result<Listing, AdminError> {
    let pending = store.open_requests(now)?.into_iter().filter(|r| actor.may_manage(&r.device_id)).collect();
    let mut paired = Vec::new();
    for device in store.list_devices()? {
        if actor.may_manage(&device.device_id) {
            let tokens = store.tokens(&device.device_id)?;
            paired.push((device, tokens));
        }
    }
    let rejected = store.rejections(now)?.into_iter().filter(|c| actor.may_manage(&c.device_id)).collect();
    Ok(Listing { pending, paired, rejected })
}

/// A request (in any state) the actor may act on.
fn managed_request(
    store: &dyn PairingStore,
    actor: &Actor,
    request_id: &str,
    action: Action,
    now: u64,
) -> Result<PendingRequest, AdminError> {
    let request = store.request(request_id, now)?.ok_or(AdminError::UnknownRequest)?;
    if !actor.may_manage(&request.device_id) {
        return Err(AdminError::deny(action, DenyReason::NotOwnDevice));
    }
    Ok(request)
}

/// Approve a pending request, whether it is asked as a device pairing or a
/// node pairing (the same record). An approver grants only scopes it holds,
/// and a node role only with admin.
pub fn approve(store: &dyn PairingStore, actor: &Actor, request_id: &str, now: u64) -> Result<Approval, AdminError> {
    const ACTION: Action = Action::PairingApproval;
    let request = managed_request(store, actor, request_id, ACTION, now)?;
    if request.role != Role::Operator && !actor.is_admin() {
        return Err(AdminError::deny(ACTION, DenyReason::RoleNeedsAdmin));
    }
    if let Some(scope) = actor.lacks(&request.scopes).into_iter().next() {
        return Err(AdminError::deny(ACTION, DenyReason::CallerMissingScope(scope)));
    }
    Ok(store.approve(request_id, actor.via(), now)?)
}

pub fn reject(store: &dyn PairingStore, actor: &Actor, request_id: &str, now: u64) -> Result<Rejection, AdminError> {
    managed_request(store, actor, request_id, Action::PairingRejection, now)?;
    Ok(store.reject(request_id, now)?)
}

/// Lift the rejection cool-down of a device (of `role` only, if given) so
/// it may ask to pair again at once: the undoing of [`reject`], open to
/// whoever may reject. Approving what it then asks for is a separate step.
pub fn unreject(
    store: &dyn PairingStore,
    actor: &Actor,
    device_id: &str,
    role: Option<Role>,
    now: u64,
) -> Result<Unrejection, AdminError> {
    if !actor.may_manage(device_id) {
        return Err(AdminError::deny(Action::RejectionLift, DenyReason::NotOwnDevice));
    }
    let roles = store.lift_rejection(device_id, role, now)?;
    Ok(Unrejection { device_id: device_id.to_owned(), roles })
}

/// The paired record, if the actor may manage it: its own device, and a
/// device paired for a node role only with admin.
fn managed_device(
    store: &dyn PairingStore,
    actor: &Actor,
    device_id: &str,
    action: Action,
) -> Result<PairedDevice, AdminError> {
    if !actor.may_manage(device_id) {
        return Err(AdminError::deny(action, DenyReason::NotOwnDevice));
    }
    let device =
        store.device(device_id)?.ok_or_else(|| AdminError::UnknownDevice { device_id: device_id.to_owned() })?;
    if device.roles.iter().any(|r| *r != Role::Operator) && !actor.is_admin() {
        return Err(AdminError::deny(action, DenyReason::NodeDeviceNeedsAdmin));
    }
    Ok(device)
}

/// Unpair a device; its tokens go with it.
pub fn remove(store: &dyn PairingStore, actor: &Actor, device_id: &str, now: u64) -> Result<PairedDevice, AdminError> {
    managed_device(store, actor, device_id, Action::Removal)?;
    Ok(store.remove_device(device_id, now)?)
}

/// Give a device the operator's label.
pub fn rename(
    store: &dyn PairingStore,
    actor: &Actor,
    device_id: &str,
    label: &str,
    now: u64,
) -> Result<PairedDevice, AdminError> {
    managed_device(store, actor, device_id, Action::Rename)?;
    Ok(store.rename_device(device_id, label, now)?)
}

/// The gates rotate and revoke share: another device's token needs admin,
/// and so does a node token.
fn token_gate(actor: &Actor, device_id: &str, role: Role, action: Action) -> Result<(), AdminError> {
    if actor.own_device() != Some(device_id) && !actor.is_admin() {
        return Err(AdminError::deny(action, DenyReason::CrossDeviceNeedsAdmin));
    }
    if role != Role::Operator && !actor.is_admin() {
        return Err(AdminError::deny(action, DenyReason::NodeRoleNeedsAdmin));
    }
    Ok(())
}

/// Replace the tokens of (device, role) with one new token; every old one
/// stops working at once. Scopes default to the newest live token's, else
/// the approval; they must stay
/// within the approval and, for operator tokens, within the actor's scopes.
pub fn rotate(
    store: &dyn PairingStore,
    actor: &Actor,
    device_id: &str,
    role: Role,
    scopes: Option<Vec<String>>,
    now: u64,
) -> Result<Rotation, AdminError> {
    const ACTION: Action = Action::TokenRotation;
    token_gate(actor, device_id, role, ACTION)?;
    let view = store.view(device_id)?;
    let Some(device) = view.device else {
        return Err(AdminError::deny(ACTION, DenyReason::UnknownDevice { device_id: device_id.to_owned() }));
    };
    if !device.has_role(role) {
        return Err(AdminError::deny(ACTION, DenyReason::RoleNotApproved { device_id: device_id.to_owned(), role }));
    }
    let current = view.tokens.iter().find(|t| t.role == role && !t.is_revoked());
    let scopes = match role {
        Role::Node => Vec::new(),
        Role::Operator => {
            scopes.or_else(|| current.map(|t| t.scopes.clone())).unwrap_or_else(|| device.approved_scopes.clone())
        }
    };
    let missing = clawgate_protocol::scopes::not_covered(&scopes, &device.approved_scopes);
    if !missing.is_empty() {
        let reason = DenyReason::ScopesExceedApproval { device_id: device_id.to_owned(), missing };
        return Err(AdminError::deny(ACTION, reason));
    }
    if role == Role::Operator {
        if let Some(scope) = actor.lacks(&scopes).into_iter().next() {
            return Err(AdminError::deny(ACTION, DenyReason::CallerMissingScope(scope)));
        }
    }
    let token = store.rotate_token(device_id, role, &scopes, now)?;
    Ok(Rotation {
        device_id: device_id.to_owned(),
        role,
        scopes,
        rotated_at_ms: now,
        token,
        in_band: actor.own_device() == Some(device_id),
    })
}

/// Revoke every token of (device, role); the device stays paired.
pub fn revoke(
    store: &dyn PairingStore,
    actor: &Actor,
    device_id: &str,
    role: Role,
    now: u64,
) -> Result<Revocation, AdminError> {
    const ACTION: Action = Action::TokenRevocation;
    token_gate(actor, device_id, role, ACTION)?;
    if role == Role::Operator {
        let tokens = store.tokens(device_id)?;
        let mut live = tokens.iter().filter(|t| t.role == role && !t.is_revoked());
        if let Some(scope) = live.find_map(|t| actor.lacks(&t.scopes).into_iter().next()) {
            return Err(AdminError::deny(ACTION, DenyReason::CallerMissingScope(scope)));
        }
    }
    let revoked = store.revoke_token(device_id, role, now)?;
    Ok(Revocation { role, revoked, revoked_at_ms: now })
}
