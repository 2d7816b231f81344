//! local-owner: a program on the gateway's own host holding the owner's
//! secret, within `gateway.trustedLocalServices` when that is set.

use clawgate_protocol::scopes::not_covered;

use crate::config::Config;

use super::super::decision::{Admission, Principal, RefusalKind, Role};
use super::super::rule_id::RuleId;
use super::context::Ctx;
use super::step::{admit, pass, refuse, Step};

/// What `gateway.trustedLocalServices` says about a local program.
enum LocalServiceGate {
    /// Not set, or this client is listed and within its entry.
    Open,
    /// Set, and this client is not listed: `local-owner` does not apply.
    NotListed,
    Refuse(RefusalKind, String),
}

pub(super) fn local_owner(ctx: &Ctx) -> Step {
    if ctx.device.is_some() {
        return Step::NotThisBranch;
    }
    let client = &ctx.facts.params.client;
    let Some(credential) = ctx.owner else { return pass("needs the owner's secret") };
    if ctx.browser {
        return pass("browsers never count as local programs");
    }
    if let Some(uid) = ctx.foreign_local_uid() {
        return pass(format!("a program of uid {uid}, not in gateway.auth.localOwnerUids"));
    }
    if !ctx.direct_local() {
        return pass("not direct-local");
    }
    if !ctx.config.local_owner {
        return pass("turned off by gateway.auth.localOwner = false");
    }
    if ctx.role == Role::Node && !ctx.requested.is_empty() {
        return refuse(
            RuleId::LocalOwner,
            RefusalKind::ScopesNotGranted { not_granted: ctx.requested.clone(), why: "node-role-has-no-scopes" },
            "connect with role node and no scopes; operator scopes belong to role operator",
        );
    }
    match local_service_gate(ctx.config, &client.id, &client.mode, ctx.role, &ctx.requested) {
        LocalServiceGate::NotListed => {
            pass(format!("gateway.trustedLocalServices does not list {}/{}", client.id, client.mode))
        }
        // Asking for nothing as an operator is what `scopeless` admits from
        // anywhere; refusing it here would leave a local caller worse off
        // than a remote one.
        LocalServiceGate::Refuse(_, hint) if ctx.role == Role::Operator && ctx.requested.is_empty() => {
            pass(format!("{hint}; asking for no scopes, so left to scopeless"))
        }
        LocalServiceGate::Refuse(kind, hint) => refuse(RuleId::LocalOwner, kind, hint),
        LocalServiceGate::Open => admit(
            Admission {
                rule: RuleId::LocalOwner,
                principal: Principal::LocalOwner,
                role: ctx.role,
                scopes: ctx.requested.clone(),
                credential: credential.clone(),
                negotiated: ctx.negotiated,
                device: None,
            },
            format!("direct-local program with the owner's secret; admitted as {}", ctx.role.as_str()),
        ),
    }
}

/// Did `local-owner` pass only because `gateway.trustedLocalServices` does
/// not list this client? `no-identity` then says so.
pub(super) fn unlisted_local_service(ctx: &Ctx) -> bool {
    let client = &ctx.facts.params.client;
    ctx.owner.is_some()
        && ctx.direct_local()
        && !ctx.browser
        && ctx.config.local_owner
        && (ctx.role != Role::Node || ctx.requested.is_empty())
        && matches!(
            local_service_gate(ctx.config, &client.id, &client.mode, ctx.role, &ctx.requested),
            LocalServiceGate::NotListed
        )
}

fn local_service_gate(
    config: &Config,
    client_id: &str,
    mode: &str,
    role: Role,
    requested: &[String],
) -> LocalServiceGate {
    let Some(services) = &config.trusted_local_services else { return LocalServiceGate::Open };
    let Some(entry) = services.iter().find(|s| s.client_id == client_id && s.mode == mode) else {
        return LocalServiceGate::NotListed;
    };
    if !entry.roles.contains(&role) {
        let allowed: Vec<&str> = entry.roles.iter().map(|r| r.as_str()).collect();
        return LocalServiceGate::Refuse(
            RefusalKind::RoleNotGranted { requested: role, allowed: entry.roles.clone(), why: "local-service-role" },
            format!(
                "gateway.trustedLocalServices lets {client_id}/{mode} connect as {} only; add {} to its roles",
                allowed.join(" or "),
                role.as_str()
            ),
        );
    }
    if let Some(max) = &entry.max_scopes {
        let excess = not_covered(requested, max);
        if !excess.is_empty() {
            return LocalServiceGate::Refuse(
                RefusalKind::LocalServiceCeiling {
                    client_id: client_id.to_owned(),
                    mode: mode.to_owned(),
                    not_granted: excess.clone(),
                    max_scopes: max.clone(),
                },
                format!(
                    "{} is above the maxScopes ceiling of {client_id}/{mode} in gateway.trustedLocalServices; \
                     ask for less, or raise the ceiling",
                    excess.join(", ")
                ),
            );
        }
    }
    LocalServiceGate::Open
}
