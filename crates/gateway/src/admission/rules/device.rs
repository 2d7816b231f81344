//! The device branch: a connection whose device block proved its key is
//! admitted as a paired device (`device-paired`), approved silently when it
//! is the owner's own local program (`silent-local-pairing`), approved
//! inline for a trusted-proxy user when that is configured
//! (`proxy-device-auto-approve`), or sent to pairing (`pairing-required`).
//!
//! A device paired through a proxy user is bound to that user: only the same
//! user gets it (another one needs pairing, reason `user-mismatch`), and
//! every connect stays within the user's current `identityScopes`.

use clawgate_protocol::scopes::{covered_by, not_covered};

use crate::config::AuthMode;

use super::super::credential::{AuthReason, Credential, CredentialCheck};
use super::super::decision::{
    Admission, AdmittedDevice, Decision, DeviceAction, PairingNeeded, PairingReason, Principal, RefusalKind, Role,
};
use super::super::origin::is_own_loopback_origin;
use super::super::rule_id::RuleId;
use super::context::{Ctx, DeviceCtx};
use super::step::{admit, list_or_none, pass, refuse, Step, Verdict};

/// device-paired: the pairing (and the device token, when it is the
/// credential) covers the request. Before that, the device must have a
/// credential behind it, and a node asks for no scopes.
pub(super) fn device_paired(ctx: &Ctx) -> Step {
    let Some(dev) = &ctx.device else { return Step::NotThisBranch };
    let credential = match backing_credential(ctx, dev) {
        Ok(credential) => credential,
        Err(step) => return step,
    };
    // A node carries no operator scopes, paired or not (as in local-owner):
    // refuse rather than admit them or record them in a pairing.
    if ctx.role == Role::Node && !ctx.requested.is_empty() {
        return refuse(
            RuleId::DevicePaired,
            RefusalKind::ScopesNotGranted { not_granted: ctx.requested.clone(), why: "node-role-has-no-scopes" },
            "connect with role node and no scopes; operator scopes belong to role operator",
        );
    }
    if matches!(credential, Credential::ProxyUser { .. }) && ctx.role != Role::Operator {
        return refuse(
            RuleId::DevicePaired,
            RefusalKind::RoleNotGranted {
                requested: ctx.role,
                allowed: vec![Role::Operator],
                why: "proxy-users-are-operators",
            },
            "a user authenticated by the proxy connects as operator; nodes use the gateway token or a service token",
        );
    }
    // A proxy user's device never asks beyond the user's identityScopes: not
    // at pairing (an approval could not grant it) and not afterwards (a
    // narrowed user is refused at the next connect, never trimmed).
    if let Some(user) = ctx.user {
        let ceiling = ctx.config.identity_scopes_for(user);
        let excess = not_covered(&ctx.requested, ceiling);
        if !excess.is_empty() {
            return refuse(
                RuleId::DevicePaired,
                RefusalKind::ScopesNotGranted { not_granted: excess, why: "beyond-identity-scopes" },
                format!(
                    "gateway.auth.identityScopes grants user {user} {}; ask for no more, or add the scopes there",
                    list_or_none(ceiling)
                ),
            );
        }
    }
    if let Some(reason) = dev.needs {
        return pass(format!("needs approval: {}", reason.as_str()));
    }
    if let Credential::DeviceToken { scopes, .. } = credential {
        if !covered_by(&ctx.requested, scopes) {
            return refuse(
                RuleId::DevicePaired,
                RefusalKind::Auth { reason: AuthReason::ScopeMismatch, can_retry_with_device_token: false },
                format!(
                    "the device token grants {}; ask for no more, or reconnect with the gateway token",
                    list_or_none(scopes)
                ),
            );
        }
    }
    admit(
        Admission {
            rule: RuleId::DevicePaired,
            principal: Principal::Device { device_id: dev.verified.device_id.clone() },
            role: ctx.role,
            scopes: ctx.requested.clone(),
            credential: credential.clone(),
            negotiated: ctx.negotiated,
            device: Some(AdmittedDevice {
                device: dev.verified.clone(),
                action: DeviceAction::Paired {
                    issue_token: ctx.owner.is_some() || matches!(credential, Credential::ProxyUser { .. }),
                },
            }),
        },
        match dev.bound_user {
            Some(user) => format!(
                "paired for {} to user {user}; the scopes are within its approval and identityScopes",
                ctx.role.as_str()
            ),
            None => format!("paired for {} and the scopes are covered", ctx.role.as_str()),
        },
    )
}

/// A device needs a credential behind it: the owner's secret, a proxy user,
/// or its own device token. A service token is refused by its own rule.
// One call per connection: a large error variant costs nothing worth boxing for.
#[allow(clippy::result_large_err)]
fn backing_credential<'a>(ctx: &Ctx<'a>, dev: &DeviceCtx) -> Result<&'a Credential, Step> {
    match &ctx.facts.credential {
        CredentialCheck::Verified(Credential::DeviceToken { device_id, role: token_role, .. })
            if device_id != &dev.verified.device_id || *token_role != ctx.role =>
        {
            Err(refuse(
                RuleId::Credential,
                RefusalKind::Auth { reason: AuthReason::DeviceTokenMismatch, can_retry_with_device_token: false },
                "a device token only works for the device and role it was issued to",
            ))
        }
        CredentialCheck::Verified(c)
            if ctx.owner.is_some() || matches!(c, Credential::DeviceToken { .. } | Credential::ProxyUser { .. }) =>
        {
            Ok(c)
        }
        CredentialCheck::Verified(Credential::ServiceToken { .. }) => Err(refuse(
            RuleId::ServicePrincipal,
            RefusalKind::ServiceTokenWithDevice,
            "a service token is an identity of its own: connect without a device block \
             (skip the device identity in the client)",
        )),
        _ => {
            let reason = if ctx.config.auth_mode == AuthMode::Password {
                AuthReason::PasswordMissing
            } else {
                AuthReason::TokenMissing
            };
            Err(refuse(
                RuleId::Credential,
                RefusalKind::Auth { reason, can_retry_with_device_token: false },
                "a device connects with the gateway token (first time) or with its device token",
            ))
        }
    }
}

/// silent-local-pairing: the owner's own program (or own loopback page) on
/// this host is approved without asking.
pub(super) fn silent_local_pairing(ctx: &Ctx) -> Step {
    let Some(dev) = &ctx.device else { return Step::NotThisBranch };
    let reason = dev.needs.unwrap_or(PairingReason::NotPaired);
    // A device token never upgrades itself: asking beyond it is a scope
    // mismatch, decided before any approval is considered.
    if let Some(Credential::DeviceToken { scopes, .. }) = ctx.facts.credential.verified() {
        if reason == PairingReason::ScopeUpgrade {
            let excess = not_covered(&ctx.requested, scopes);
            return refuse(
                RuleId::DevicePaired,
                RefusalKind::Auth { reason: AuthReason::ScopeMismatch, can_retry_with_device_token: false },
                format!(
                    "the device token does not grant {}; reconnect with the gateway token to ask",
                    excess.join(", ")
                ),
            );
        }
    }
    let f = ctx.facts;
    let own_loopback_page = f.origin.as_deref().is_some_and(|o| is_own_loopback_origin(o, f.listener_port));
    let silent_reason = matches!(reason, PairingReason::NotPaired | PairingReason::ScopeUpgrade);
    let why_not = if ctx.owner.is_none() {
        Some("needs the owner's secret")
    } else if ctx.foreign_local_uid().is_some() {
        Some("a program of another uid than gateway.auth.localOwnerUids")
    } else if !ctx.direct_local() {
        Some("not direct-local")
    } else if ctx.browser && !own_loopback_page {
        Some("a browser page that is not the gateway's own loopback origin")
    } else if !silent_reason {
        Some("role and metadata changes always need an explicit approval")
    } else if !ctx.config.auto_approve_local {
        Some("turned off by gateway.nodes.pairing.autoApproveLocal = false")
    } else if ctx.config.loopback_is_ambiguous() {
        Some("a trusted proxy runs on loopback, so a local-looking caller may be a proxied one")
    } else {
        None
    };
    if let Some(why) = why_not {
        return pass(why);
    }
    let Some(credential) = ctx.owner else { return pass("needs the owner's secret") };
    admit(
        Admission {
            rule: RuleId::SilentLocalPairing,
            principal: Principal::Device { device_id: dev.verified.device_id.clone() },
            role: ctx.role,
            scopes: ctx.requested.clone(),
            credential: credential.clone(),
            negotiated: ctx.negotiated,
            device: Some(AdmittedDevice {
                device: dev.verified.clone(),
                action: DeviceAction::PairSilently { reason },
            }),
        },
        format!("approved silently ({}) for a local program with the owner's secret", reason.as_str()),
    )
}

/// proxy-device-auto-approve: a trusted-proxy user's new device (or a scope
/// upgrade of a device bound to this same user) is approved inline when
/// `trustedProxy.deviceAutoApprove` is set and the request is within its
/// scopes and the user's identityScopes.
pub(super) fn proxy_device_auto_approve(ctx: &Ctx) -> Step {
    let Some(dev) = &ctx.device else { return Step::NotThisBranch };
    let Some(credential @ Credential::ProxyUser { user, .. }) = ctx.facts.credential.verified() else {
        return pass("needs a trusted-proxy user");
    };
    let Some(auto) = ctx.config.trusted_proxy.as_ref().and_then(|tp| tp.device_auto_approve.as_ref()) else {
        return pass("gateway.auth.trustedProxy.deviceAutoApprove is not set");
    };
    let reason = dev.needs.unwrap_or(PairingReason::NotPaired);
    if !matches!(reason, PairingReason::NotPaired | PairingReason::ScopeUpgrade) {
        return pass(format!("{}: only a new device or a scope upgrade is approved inline", reason.as_str()));
    }
    if ctx.role != Role::Operator {
        return pass("proxy users' devices are approved inline for role operator only");
    }
    let mut excess = not_covered(&ctx.requested, auto);
    for scope in not_covered(&ctx.requested, ctx.config.identity_scopes_for(user)) {
        if !excess.contains(&scope) {
            excess.push(scope);
        }
    }
    if !excess.is_empty() {
        return pass(format!(
            "asks for {} beyond deviceAutoApprove.scopes and the user's identityScopes",
            excess.join(", ")
        ));
    }
    admit(
        Admission {
            rule: RuleId::ProxyDeviceAutoApprove,
            principal: Principal::Device { device_id: dev.verified.device_id.clone() },
            role: ctx.role,
            scopes: ctx.requested.clone(),
            credential: credential.clone(),
            negotiated: ctx.negotiated,
            device: Some(AdmittedDevice {
                device: dev.verified.clone(),
                action: DeviceAction::ProxyAutoApprove { reason, user: user.clone() },
            }),
        },
        format!("approved inline ({}) for user {user} within deviceAutoApprove.scopes", reason.as_str()),
    )
}

/// pairing-required: every other device needing approval waits for an
/// explicit one.
pub(super) fn pairing_required(ctx: &Ctx) -> Step {
    let Some(dev) = &ctx.device else { return Step::NotThisBranch };
    let reason = dev.needs.unwrap_or(PairingReason::NotPaired);
    let hint = match (reason, ctx.user) {
        (PairingReason::UserMismatch, Some(user)) => format!(
            "this device is paired to another user; approve it for {user} on the gateway host: \
             clawgate devices approve <requestId> (the earlier pairing ends)"
        ),
        (_, Some(user)) => format!(
            "approve it for user {user} on the gateway host: clawgate devices approve <requestId> (or --latest), \
             or set gateway.auth.trustedProxy.deviceAutoApprove"
        ),
        _ => "approve it on the gateway host: clawgate devices approve <requestId> (or --latest)".into(),
    };
    Step::Decide(Verdict {
        decision: Decision::PairingRequired(PairingNeeded {
            reason,
            device: dev.verified.clone(),
            role: ctx.role,
            scopes: ctx.requested.clone(),
            approved_roles: dev.paired.map(|d| d.roles.clone()).unwrap_or_default(),
            approved_scopes: dev.paired.map(|d| d.approved_scopes.clone()).unwrap_or_default(),
            proxy_user: ctx.user.map(str::to_owned),
            hint,
        }),
        note: format!("{}: a pending request is created or refreshed", reason.as_str()),
    })
}
