//! The admission decision: one pure function, rules in DESIGN.md §2 order,
//! first match decides. No I/O, no clock, no randomness.

use clawgate_protocol::scopes::dedupe_in_order;
use clawgate_protocol::version::negotiate;

use crate::config::Config;

use super::credential::{AuthReason, Credential, CredentialCheck};
use super::decision::{Admission, Decided, Decision, Principal, Refusal, RefusalKind, Role, TraceStep};
use super::facts::ConnectFacts;
use super::origin::is_allowed_origin;
use super::rules::RuleId;

/// Decide one connection.
pub fn decide(facts: &ConnectFacts, config: &Config) -> Decided {
    let mut trace = Vec::new();
    let decision = rules(facts, config, &mut trace);
    Decided { decision, trace }
}

fn pass(trace: &mut Vec<TraceStep>, rule: RuleId, note: impl Into<String>) {
    trace.push(TraceStep { rule, decided: false, note: note.into() });
}

fn refuse(trace: &mut Vec<TraceStep>, rule: RuleId, kind: RefusalKind, hint: impl Into<String>) -> Decision {
    let hint = hint.into();
    trace.push(TraceStep { rule, decided: true, note: format!("refused: {}", kind.details_code()) });
    Decision::Refuse(Refusal { kind, rule, hint })
}

/// The owner's secret: the shared token or password, or mode none on a loopback bind.
fn owner_secret<'a>(check: &'a CredentialCheck, config: &Config) -> Option<&'a Credential> {
    check.verified().filter(|c| match c {
        Credential::SharedToken | Credential::SharedPassword => true,
        Credential::NoneMode => config.is_loopback_bind(),
    })
}

fn rules(f: &ConnectFacts, config: &Config, trace: &mut Vec<TraceStep>) -> Decision {
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

    // credential: a presented credential that fails to verify is refused.
    match &f.credential {
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

    if p.device.is_some() {
        // The device branch arrives with device identity support.
        return refuse(
            trace,
            RuleId::DeviceProof,
            RefusalKind::DeviceIdentityRequired { role, requested_scopes: requested },
            "this gateway does not accept device identities yet; connect without one",
        );
    }

    // local-owner: a local program holding the owner's secret.
    match owner {
        Some(cred) if f.locality.is_direct_local() && !browser => {
            if !config.local_owner {
                pass(trace, RuleId::LocalOwner, "turned off by gateway.auth.localOwner = false");
            } else if role == Role::Node && !requested.is_empty() {
                return refuse(
                    trace,
                    RuleId::LocalOwner,
                    RefusalKind::ScopesNotGranted { not_granted: requested, why: "node-role-has-no-scopes" },
                    "connect with role node and no scopes; operator scopes belong to role operator",
                );
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
                });
            }
        }
        Some(_) if browser => pass(trace, RuleId::LocalOwner, "browsers never count as local programs"),
        Some(_) => pass(trace, RuleId::LocalOwner, "not direct-local"),
        None => pass(trace, RuleId::LocalOwner, "needs the owner's secret"),
    }

    pass(trace, RuleId::ServicePrincipal, "no service token presented");
    pass(trace, RuleId::TrustedProxy, "auth mode is not trusted-proxy");

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
    refuse(trace, RuleId::NoIdentity, RefusalKind::DeviceIdentityRequired { role, requested_scopes: requested }, hint)
}
