//! The last rules of the device-less branch: `browser-needs-device`,
//! `scopeless`, and `no-identity`, which always decides.

use super::super::credential::CredentialCheck;
use super::super::decision::{Admission, Principal, RefusalKind, Role};
use super::super::rule_id::RuleId;
use super::context::Ctx;
use super::local_owner::unlisted_local_service;
use super::step::{admit, pass, refusal, refuse, Step, Verdict};

/// browser-needs-device: a browser that no earlier rule admitted.
pub(super) fn browser_needs_device(ctx: &Ctx) -> Step {
    if ctx.device.is_some() {
        return Step::NotThisBranch;
    }
    if ctx.browser {
        return refuse(
            RuleId::BrowserNeedsDevice,
            RefusalKind::ControlUiDeviceIdentityRequired,
            "browsers must present a device identity (use HTTPS or the gateway's localhost address)",
        );
    }
    pass("not a browser")
}

/// scopeless: the owner's secret, role operator, no scopes — from anywhere.
pub(super) fn scopeless(ctx: &Ctx) -> Step {
    if ctx.device.is_some() {
        return Step::NotThisBranch;
    }
    let Some(credential) = ctx.owner else { return pass("needs the owner's secret") };
    if ctx.role != Role::Operator || !ctx.requested.is_empty() {
        return pass("asks for scopes or role node");
    }
    admit(
        Admission {
            rule: RuleId::Scopeless,
            principal: Principal::ScopelessSecretHolder,
            role: ctx.role,
            scopes: Vec::new(),
            credential: credential.clone(),
            negotiated: ctx.negotiated,
            device: None,
        },
        "operator asking for no scopes; admitted for health and probes",
    )
}

/// no-identity: everything else is refused, with a hint naming the ways in.
pub(super) fn no_identity(ctx: &Ctx) -> Verdict {
    let f = ctx.facts;
    let client = &f.params.client;
    let local_owner_off = f.locality.is_direct_local() && !ctx.config.local_owner;
    let foreign_uid = ctx.foreign_local_uid();
    let hint = if f.credential == CredentialCheck::Absent {
        "send the gateway token in auth.token, pair a device, or use a service token (clawgate services add)"
    } else if foreign_uid.is_some() {
        "this program runs as another user than the gateway's owner: add its uid to gateway.auth.localOwnerUids, \
         pair a device (clawgate devices approve), or use a service token (clawgate services add)"
    } else if local_owner_off {
        "gateway.auth.localOwner is false: pair a device (clawgate devices approve) or use a service token"
    } else {
        "without a device, scopes are granted only to programs on the gateway's own host: pair a device \
         (clawgate devices approve), use a service token (clawgate services add), or connect locally"
    };
    if local_owner_off && ctx.owner.is_some() {
        return refusal(RuleId::NoIdentity, RefusalKind::LocalOwnerDisabled, hint);
    }
    if unlisted_local_service(ctx) {
        return refusal(
            RuleId::NoIdentity,
            RefusalKind::LocalServiceNotListed { client_id: client.id.clone(), mode: client.mode.clone() },
            format!(
                "gateway.trustedLocalServices does not list {}/{}: add it there, pair a device (clawgate devices \
                 approve), or use a service token (clawgate services add)",
                client.id, client.mode
            ),
        );
    }
    refusal(
        RuleId::NoIdentity,
        RefusalKind::DeviceIdentityRequired { role: ctx.role, requested_scopes: ctx.requested.clone() },
        hint,
    )
}
