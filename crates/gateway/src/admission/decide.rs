//! The admission decision: one pure function, rules in DESIGN.md §2 order,
//! first match decides. No I/O, no clock, no randomness.

use clawgate_protocol::scopes::{dedupe_in_order, not_covered};
use clawgate_protocol::version::negotiate;

use crate::config::{AuthMode, Config};
use crate::store::DeviceView;

use super::credential::{AuthReason, Credential, CredentialCheck};
use super::decision::{Admission, Decided, Decision, Principal, RefusalKind, Role, TraceStep};
use super::device_branch::device_branch;
use super::facts::{ConnectFacts, DeviceFact};
use super::origin::is_allowed_origin;
use super::rules::RuleId;
use super::steps::{owner_secret, pass, refuse, short};

/// Decide one connection. `view` is the store's record of the proven device
/// (read before the call), if a device proved its key.
pub fn decide(facts: &ConnectFacts, config: &Config, view: Option<&DeviceView>) -> Decided {
    let mut trace = Vec::new();
    let decision = rules(facts, config, view, &mut trace);
    Decided { decision, trace }
}

/// What `gateway.trustedLocalServices` says about a local program.
enum LocalServiceGate {
    /// Not set, or this client is listed and within its entry.
    Open,
    /// Set, and this client is not listed: `local-owner` does not apply.
    NotListed,
    Refuse(RefusalKind, String),
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

fn list_or_none(scopes: &[String]) -> String {
    if scopes.is_empty() {
        "no scopes".to_owned()
    } else {
        scopes.join(", ")
    }
}

fn rules(f: &ConnectFacts, config: &Config, view: Option<&DeviceView>, trace: &mut Vec<TraceStep>) -> Decision {
    let p = &f.params;
    let client = &p.client;

    // protocol: version range, role, and no worker clients on this endpoint.
    if p.role.as_deref() == Some("worker") || client.id == "openclaw-worker" || client.mode == "worker" {
        return refuse(
            trace,
            RuleId::Protocol,
            RefusalKind::WorkerHandshake,
            "worker clients use the dedicated worker protocol, not the gateway endpoint",
        );
    }
    let negotiated = match negotiate(p.min_protocol, p.max_protocol, p.role(), &client.mode) {
        Ok(n) => n,
        Err(m) => {
            return refuse(
                trace,
                RuleId::Protocol,
                RefusalKind::ProtocolMismatch { client_min: m.client_min, client_max: m.client_max },
                "upgrade the client: this gateway speaks protocol 4 (3 only for node hosts and probes)",
            )
        }
    };
    let Some(role) = Role::parse(p.role()) else {
        return refuse(
            trace,
            RuleId::Protocol,
            RefusalKind::InvalidRole(p.role().to_owned()),
            "role must be \"operator\" or \"node\"",
        );
    };
    pass(trace, RuleId::Protocol, format!("protocol accepted ({negotiated:?}), role {}", role.as_str()));

    // origin: a browser page must come from one of the gateway's own origins.
    match &f.origin {
        Some(origin) if !is_allowed_origin(origin, f.listener_port, config) => {
            return refuse(
                trace,
                RuleId::Origin,
                RefusalKind::OriginNotAllowed { origin: origin.clone() },
                "open the UI from the gateway's own address, or add its exact origin to gateway.controlUi.allowedOrigins",
            );
        }
        Some(_) => pass(trace, RuleId::Origin, "origin is one of the gateway's own"),
        None => pass(trace, RuleId::Origin, "no Origin header"),
    }

    // A failed proof is reported before a failed credential: the credential
    // may be a device token, which cannot be checked without the proof.
    if let DeviceFact::Failed(e) = &f.device {
        if matches!(f.credential, CredentialCheck::Failed(_)) {
            return refuse(trace, RuleId::DeviceProof, RefusalKind::DeviceAuth(*e), proof_hint());
        }
    }

    // credential: a presented credential that fails to verify is refused.
    match &f.credential {
        CredentialCheck::RateLimited { retry_after_ms } => {
            return refuse(
                trace,
                RuleId::Credential,
                RefusalKind::RateLimited { retry_after_ms: *retry_after_ms },
                "too many failed attempts from this address; wait, then retry with the right secret",
            );
        }
        CredentialCheck::Failed(reason) => {
            let sent_token = p.auth.as_ref().is_some_and(|a| a.token.as_deref().is_some_and(|t| !t.trim().is_empty()));
            let sent_device_token = p.auth.as_ref().is_some_and(|a| a.device_token.is_some());
            let can_retry_with_device_token =
                *reason == AuthReason::TokenMismatch && p.device.is_some() && sent_token && !sent_device_token;
            let hint = match reason {
                AuthReason::TokenMismatch | AuthReason::TokenMissing => {
                    "use the gateway's token: `clawgate gateway token` prints it on the gateway host"
                }
                AuthReason::PasswordMismatch | AuthReason::PasswordMissing => {
                    "use the gateway password set in gateway.auth.password or OPENCLAW_GATEWAY_PASSWORD"
                }
                AuthReason::TokenMissingConfig | AuthReason::PasswordMissingConfig => {
                    "configure the gateway secret (gateway.auth.token or gateway.auth.password)"
                }
                AuthReason::DeviceTokenMismatch => {
                    "the device token is not this device's: reconnect with the gateway token to get a new one, \
                     or rotate it (clawgate devices rotate)"
                }
                AuthReason::ScopeMismatch => {
                    "ask for no more than the device token grants, or get a scope upgrade approved"
                }
                AuthReason::ServiceTokenInvalid => {
                    "the service token is unknown, rotated or revoked: get a current one from the gateway's owner \
                     (clawgate services add or rotate)"
                }
                AuthReason::TrustedProxyConfigMissing => {
                    "trusted-proxy mode needs gateway.auth.trustedProxy and gateway.trustedProxies"
                }
                AuthReason::TrustedProxyUntrustedSource => {
                    "connect through the authenticating proxy: identity headers count only from an address in \
                     gateway.trustedProxies (local programs: gateway.auth.trustedProxy.allowLoopback and loopbackUser, \
                     or the gateway password)"
                }
                AuthReason::TrustedProxyLoopbackSource => {
                    "the proxy connects from a loopback address: set gateway.auth.trustedProxy.allowLoopback to true"
                }
                AuthReason::TrustedProxyMissingHeader(_) => {
                    "the proxy must send every header in gateway.auth.trustedProxy.requiredHeaders"
                }
                AuthReason::TrustedProxyUserMissing => {
                    "the proxy must send the authenticated user in gateway.auth.trustedProxy.userHeader"
                }
                AuthReason::TrustedProxyUserNotAllowed => "this user is not in gateway.auth.trustedProxy.allowUsers",
            };
            return refuse(
                trace,
                RuleId::Credential,
                RefusalKind::Auth { reason: *reason, can_retry_with_device_token },
                hint,
            );
        }
        CredentialCheck::Verified(c) => pass(trace, RuleId::Credential, format!("{} verified", c.kind_name())),
        CredentialCheck::Absent => pass(trace, RuleId::Credential, "no credential presented"),
    }

    let requested = dedupe_in_order(p.scopes());
    let owner = owner_secret(&f.credential, config);
    let browser = f.is_browser();

    match &f.device {
        DeviceFact::None => {}
        DeviceFact::Failed(e) => return refuse(trace, RuleId::DeviceProof, RefusalKind::DeviceAuth(*e), proof_hint()),
        DeviceFact::Proven(device) => {
            pass(trace, RuleId::DeviceProof, format!("device {} proved its key", short(&device.device_id)));
            return device_branch(f, config, view, trace, device, role, requested, negotiated, browser);
        }
    }

    // local-owner: a local program holding the owner's secret.
    let mut unlisted_local_service = false;
    match owner {
        Some(cred) if f.locality.is_direct_local() && !browser => {
            let gate = local_service_gate(config, &client.id, &client.mode, role, &requested);
            if !config.local_owner {
                pass(trace, RuleId::LocalOwner, "turned off by gateway.auth.localOwner = false");
            } else if role == Role::Node && !requested.is_empty() {
                return refuse(
                    trace,
                    RuleId::LocalOwner,
                    RefusalKind::ScopesNotGranted { not_granted: requested, why: "node-role-has-no-scopes" },
                    "connect with role node and no scopes; operator scopes belong to role operator",
                );
            } else if let LocalServiceGate::NotListed = gate {
                unlisted_local_service = true;
                pass(
                    trace,
                    RuleId::LocalOwner,
                    format!("gateway.trustedLocalServices does not list {}/{}", client.id, client.mode),
                );
            } else if let LocalServiceGate::Refuse(kind, hint) = gate {
                // Asking for nothing as an operator is what `scopeless` admits
                // from anywhere; refusing it here would leave a local caller
                // worse off than a remote one.
                if role == Role::Operator && requested.is_empty() {
                    pass(trace, RuleId::LocalOwner, format!("{hint}; asking for no scopes, so left to scopeless"));
                } else {
                    return refuse(trace, RuleId::LocalOwner, kind, hint);
                }
            } else {
                trace.push(TraceStep {
                    rule: RuleId::LocalOwner,
                    decided: true,
                    note: format!("direct-local program with the owner's secret; admitted as {}", role.as_str()),
                });
                return Decision::Admit(Admission {
                    rule: RuleId::LocalOwner,
                    principal: Principal::LocalOwner,
                    role,
                    scopes: requested,
                    credential: cred.clone(),
                    negotiated,
                    device: None,
                });
            }
        }
        Some(_) if browser => pass(trace, RuleId::LocalOwner, "browsers never count as local programs"),
        Some(_) => pass(trace, RuleId::LocalOwner, "not direct-local"),
        None => pass(trace, RuleId::LocalOwner, "needs the owner's secret"),
    }

    // service-principal: a service token, from anywhere, with no device block.
    if let Some(cred @ Credential::ServiceToken { principal, principal_id, role: granted_role, scopes: granted, .. }) =
        f.credential.verified()
    {
        if role != *granted_role {
            return refuse(
                trace,
                RuleId::ServicePrincipal,
                RefusalKind::RoleNotGranted {
                    requested: role,
                    allowed: vec![*granted_role],
                    why: "service-principal-role",
                },
                format!("service principal {principal} has role {}; connect with that role", granted_role.as_str()),
            );
        }
        let excess = not_covered(&requested, granted);
        if !excess.is_empty() {
            return refuse(
                trace,
                RuleId::ServicePrincipal,
                RefusalKind::ScopesNotGranted { not_granted: excess, why: "beyond-service-principal-scopes" },
                format!(
                    "service principal {principal} holds {}; ask for no more, or add a principal with those scopes \
                     (clawgate services add)",
                    list_or_none(granted)
                ),
            );
        }
        trace.push(TraceStep {
            rule: RuleId::ServicePrincipal,
            decided: true,
            note: format!("service principal {principal}; admitted as {} within its scopes", role.as_str()),
        });
        return Decision::Admit(Admission {
            rule: RuleId::ServicePrincipal,
            principal: Principal::Service { name: principal.clone(), principal_id: principal_id.clone() },
            role,
            scopes: requested,
            credential: cred.clone(),
            negotiated,
            device: None,
        });
    }
    pass(trace, RuleId::ServicePrincipal, "no service token presented");

    // trusted-proxy: the user the proxy vouched for, or loopbackUser.
    match f.credential.verified() {
        Some(Credential::ProxyUser { via_loopback_user: true, .. }) if browser => {
            pass(trace, RuleId::TrustedProxyLoopbackUser, "browsers never get the loopback user")
        }
        Some(Credential::ProxyUser { via_loopback_user: true, .. }) if !f.locality.is_direct_local() => {
            pass(trace, RuleId::TrustedProxyLoopbackUser, "not direct-local")
        }
        Some(cred @ Credential::ProxyUser { user, via_loopback_user }) => {
            let rule = if *via_loopback_user { RuleId::TrustedProxyLoopbackUser } else { RuleId::TrustedProxy };
            if role != Role::Operator {
                return refuse(
                    trace,
                    rule,
                    RefusalKind::RoleNotGranted {
                        requested: role,
                        allowed: vec![Role::Operator],
                        why: "proxy-users-are-operators",
                    },
                    "a user authenticated by the proxy connects as operator; nodes use a device or a service token",
                );
            }
            let ceiling = config.identity_scopes_for(user);
            let excess = not_covered(&requested, ceiling);
            if !excess.is_empty() {
                return refuse(
                    trace,
                    rule,
                    RefusalKind::ScopesNotGranted { not_granted: excess, why: "beyond-identity-scopes" },
                    format!(
                        "gateway.auth.identityScopes grants this user {}; ask for no more, or add the scopes there",
                        list_or_none(ceiling)
                    ),
                );
            }
            trace.push(TraceStep {
                rule,
                decided: true,
                note: if *via_loopback_user {
                    format!("headerless direct-local caller; admitted as the loopback user {user}")
                } else {
                    format!("user {user} vouched for by a trusted proxy; within its identityScopes")
                },
            });
            return Decision::Admit(Admission {
                rule,
                principal: Principal::ProxyUser { user: user.clone() },
                role,
                scopes: requested,
                credential: cred.clone(),
                negotiated,
                device: None,
            });
        }
        _ if config.auth_mode == AuthMode::TrustedProxy => pass(trace, RuleId::TrustedProxy, "no proxy user"),
        _ => pass(trace, RuleId::TrustedProxy, "auth mode is not trusted-proxy"),
    }

    if browser {
        return refuse(
            trace,
            RuleId::BrowserNeedsDevice,
            RefusalKind::ControlUiDeviceIdentityRequired,
            "browsers must present a device identity (use HTTPS or the gateway's localhost address)",
        );
    }
    pass(trace, RuleId::BrowserNeedsDevice, "not a browser");

    if let Some(cred) = owner {
        if role == Role::Operator && requested.is_empty() {
            trace.push(TraceStep {
                rule: RuleId::Scopeless,
                decided: true,
                note: "operator asking for no scopes; admitted for health and probes".into(),
            });
            return Decision::Admit(Admission {
                rule: RuleId::Scopeless,
                principal: Principal::ScopelessSecretHolder,
                role,
                scopes: Vec::new(),
                credential: cred.clone(),
                negotiated,
                device: None,
            });
        }
        pass(trace, RuleId::Scopeless, "asks for scopes or role node");
    } else {
        pass(trace, RuleId::Scopeless, "needs the owner's secret");
    }

    let hint = if f.credential == CredentialCheck::Absent {
        "send the gateway token in auth.token, pair a device, or use a service token (clawgate services add)"
    } else if f.locality.is_direct_local() && !config.local_owner {
        "gateway.auth.localOwner is false: pair a device (clawgate devices approve) or use a service token"
    } else {
        "without a device, scopes are granted only to programs on the gateway's own host: pair a device \
         (clawgate devices approve), use a service token (clawgate services add), or connect locally"
    };
    if f.locality.is_direct_local() && !config.local_owner && owner.is_some() {
        return refuse(trace, RuleId::NoIdentity, RefusalKind::LocalOwnerDisabled, hint);
    }
    if unlisted_local_service {
        return refuse(
            trace,
            RuleId::NoIdentity,
            RefusalKind::LocalServiceNotListed { client_id: client.id.clone(), mode: client.mode.clone() },
            format!(
                "gateway.trustedLocalServices does not list {}/{}: add it there, pair a device (clawgate devices \
                 approve), or use a service token (clawgate services add)",
                client.id, client.mode
            ),
        );
    }
    refuse(trace, RuleId::NoIdentity, RefusalKind::DeviceIdentityRequired { role, requested_scopes: requested }, hint)
}

fn proof_hint() -> &'static str {
    "sign the v3 device-auth payload over this connection's challenge nonce with the device key, \
     and keep the clock within 2 minutes of the gateway's"
}
