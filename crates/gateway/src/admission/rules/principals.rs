//! Identities that are not devices: `service-principal` (a service token),
//! `trusted-proxy` (a user vouched for by a trusted proxy) and
//! `trusted-proxy-loopback-user` (the configured `loopbackUser`).

use clawgate_protocol::scopes::not_covered;

use crate::config::AuthMode;

use super::super::credential::Credential;
use super::super::decision::{Admission, Principal, RefusalKind, Role};
use super::super::rule_id::RuleId;
use super::context::Ctx;
use super::step::{admit, list_or_none, pass, refuse, Step};

/// service-principal: a service token, from anywhere, with no device block.
pub(super) fn service_principal(ctx: &Ctx) -> Step {
    if ctx.device.is_some() {
        return Step::NotThisBranch;
    }
    let Some(cred @ Credential::ServiceToken { principal, principal_id, role: granted_role, scopes: granted, .. }) =
        ctx.facts.credential.verified()
    else {
        return pass("no service token presented");
    };
    if ctx.role != *granted_role {
        return refuse(
            RuleId::ServicePrincipal,
            RefusalKind::RoleNotGranted {
                requested: ctx.role,
                allowed: vec![*granted_role],
                why: "service-principal-role",
            },
            format!("service principal {principal} has role {}; connect with that role", granted_role.as_str()),
        );
    }
    let excess = not_covered(&ctx.requested, granted);
    if !excess.is_empty() {
        return refuse(
            RuleId::ServicePrincipal,
            RefusalKind::ScopesNotGranted { not_granted: excess, why: "beyond-service-principal-scopes" },
            format!(
                "service principal {principal} holds {}; ask for no more, or add a principal with those scopes \
                 (clawgate services add)",
                list_or_none(granted)
            ),
        );
    }
    admit(
        Admission {
            rule: RuleId::ServicePrincipal,
            principal: Principal::Service { name: principal.clone(), principal_id: principal_id.clone() },
            role: ctx.role,
            scopes: ctx.requested.clone(),
            credential: cred.clone(),
            negotiated: ctx.negotiated,
            device: None,
        },
        format!("service principal {principal}; admitted as {} within its scopes", ctx.role.as_str()),
    )
}

/// trusted-proxy: the user a trusted proxy vouched for. The loopback user
/// is left to the next rule.
pub(super) fn trusted_proxy(ctx: &Ctx) -> Step {
    if ctx.device.is_some() {
        return Step::NotThisBranch;
    }
    match ctx.facts.credential.verified() {
        Some(Credential::ProxyUser { via_loopback_user: true, .. }) => Step::NotThisBranch,
        Some(cred @ Credential::ProxyUser { user, .. }) => admit_proxy_user(ctx, RuleId::TrustedProxy, cred, user),
        _ if ctx.config.auth_mode == AuthMode::TrustedProxy => pass("no proxy user"),
        _ => pass("auth mode is not trusted-proxy"),
    }
}

/// trusted-proxy-loopback-user: a headerless direct-local program admitted
/// as `loopbackUser`. Only the loopback user reaches this rule.
pub(super) fn trusted_proxy_loopback_user(ctx: &Ctx) -> Step {
    if ctx.device.is_some() {
        return Step::NotThisBranch;
    }
    match ctx.facts.credential.verified() {
        Some(Credential::ProxyUser { via_loopback_user: true, .. }) if ctx.browser => {
            pass("browsers never get the loopback user")
        }
        Some(Credential::ProxyUser { via_loopback_user: true, .. }) if !ctx.direct_local() => pass("not direct-local"),
        Some(cred @ Credential::ProxyUser { user, via_loopback_user: true }) => {
            admit_proxy_user(ctx, RuleId::TrustedProxyLoopbackUser, cred, user)
        }
        _ => Step::NotThisBranch,
    }
}

fn admit_proxy_user(ctx: &Ctx, rule: RuleId, cred: &Credential, user: &str) -> Step {
    if ctx.role != Role::Operator {
        return refuse(
            rule,
            RefusalKind::RoleNotGranted {
                requested: ctx.role,
                allowed: vec![Role::Operator],
                why: "proxy-users-are-operators",
            },
            "a user authenticated by the proxy connects as operator; nodes use a device or a service token",
        );
    }
    let ceiling = ctx.config.identity_scopes_for(user);
    let excess = not_covered(&ctx.requested, ceiling);
    if !excess.is_empty() {
        return refuse(
            rule,
            RefusalKind::ScopesNotGranted { not_granted: excess, why: "beyond-identity-scopes" },
            format!(
                "gateway.auth.identityScopes grants this user {}; ask for no more, or add the scopes there",
                list_or_none(ceiling)
            ),
        );
    }
    let note = if rule == RuleId::TrustedProxyLoopbackUser {
        format!("headerless direct-local caller; admitted as the loopback user {user}")
    } else {
        format!("user {user} vouched for by a trusted proxy; within its identityScopes")
    };
    admit(
        Admission {
            rule,
            principal: Principal::ProxyUser { user: user.to_owned() },
            role: ctx.role,
            scopes: ctx.requested.clone(),
            credential: cred.clone(),
            negotiated: ctx.negotiated,
            device: None,
        },
        note,
    )
}
