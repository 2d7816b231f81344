//! The device branch of the decision (DESIGN.md §2): a connection whose
//! device block proved its key is admitted as a paired device, approved
//! silently when it is the owner's own local program, or sent to pairing.
//! Pure, like the rest of `decide`.

use clawgate_protocol::device_auth::normalize_metadata;
use clawgate_protocol::scopes::{covered_by, not_covered};
use clawgate_protocol::version::Negotiated;

use crate::config::{AuthMode, Config};
use crate::store::DeviceView;

use super::credential::{AuthReason, Credential, CredentialCheck};
use super::decision::{
    Admission, AdmittedDevice, Decision, DeviceAction, PairingNeeded, PairingReason, Principal, RefusalKind, Role,
    TraceStep,
};
use super::device_proof::VerifiedDevice;
use super::facts::ConnectFacts;
use super::origin::is_own_loopback_origin;
use super::rules::RuleId;
use super::steps::{owner_secret, pass, refuse};

/// Platforms the same host may report under two names (node-host runtimes).
fn platform_alias(p: &str) -> &str {
    match p {
        "darwin" => "macos",
        "win32" => "windows",
        other => other,
    }
}

/// Does the connecting client claim other pinned metadata than the pairing?
fn metadata_changed(paired: Option<&str>, now: Option<&str>, alias: bool) -> bool {
    let (a, b) = (normalize_metadata(paired), normalize_metadata(now));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if alias {
        platform_alias(&a) != platform_alias(&b)
    } else {
        a != b
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn device_branch(
    f: &ConnectFacts,
    config: &Config,
    view: Option<&DeviceView>,
    trace: &mut Vec<TraceStep>,
    device: &VerifiedDevice,
    role: Role,
    requested: Vec<String>,
    negotiated: Negotiated,
    browser: bool,
) -> Decision {
    let p = &f.params;
    // A device needs a credential behind it: the owner's secret or its own device token.
    let credential = match &f.credential {
        CredentialCheck::Verified(Credential::DeviceToken { device_id, role: token_role, .. })
            if device_id != &device.device_id || *token_role != role =>
        {
            return refuse(
                trace,
                RuleId::Credential,
                RefusalKind::Auth { reason: AuthReason::DeviceTokenMismatch, can_retry_with_device_token: false },
                "a device token only works for the device and role it was issued to",
            );
        }
        // The owner's secret as `owner_secret` defines it (mode none only on a loopback bind).
        CredentialCheck::Verified(c)
            if owner_secret(&f.credential, config).is_some() || matches!(c, Credential::DeviceToken { .. }) =>
        {
            c
        }
        CredentialCheck::Verified(Credential::ServiceToken { .. }) => {
            return refuse(
                trace,
                RuleId::ServicePrincipal,
                RefusalKind::ServiceTokenWithDevice,
                "a service token is an identity of its own: connect without a device block \
                 (skip the device identity in the client)",
            );
        }
        CredentialCheck::Verified(Credential::ProxyUser { .. }) => {
            return refuse(
                trace,
                RuleId::TrustedProxy,
                RefusalKind::ProxyUserDeviceUnsupported,
                "devices cannot be paired to proxy users yet: connect without a device block, use the gateway \
                 password from the gateway host, or a service token",
            );
        }
        _ => {
            let reason = if config.auth_mode == AuthMode::Password {
                AuthReason::PasswordMissing
            } else {
                AuthReason::TokenMissing
            };
            return refuse(
                trace,
                RuleId::Credential,
                RefusalKind::Auth { reason, can_retry_with_device_token: false },
                "a device connects with the gateway token (first time) or with its device token",
            );
        }
    };
    // A node carries no operator scopes, paired or not (as in local-owner):
    // refuse rather than admit them or record them in a pairing.
    if role == Role::Node && !requested.is_empty() {
        return refuse(
            trace,
            RuleId::DevicePaired,
            RefusalKind::ScopesNotGranted { not_granted: requested, why: "node-role-has-no-scopes" },
            "connect with role node and no scopes; operator scopes belong to role operator",
        );
    }
    let owner = owner_secret(&f.credential, config).is_some();
    let paired = view.and_then(|v| v.device.as_ref()).filter(|d| d.public_key == device.public_key_b64url);

    let reason = match paired {
        None => Some(PairingReason::NotPaired),
        Some(d)
            if metadata_changed(d.platform.as_deref(), Some(&p.client.platform), true)
                || metadata_changed(d.device_family.as_deref(), p.client.device_family.as_deref(), false) =>
        {
            Some(PairingReason::MetadataUpgrade)
        }
        Some(d) if !d.has_role(role) => Some(PairingReason::RoleUpgrade),
        Some(d) if !requested.is_empty() && !covered_by(&requested, &d.approved_scopes) => {
            Some(PairingReason::ScopeUpgrade)
        }
        Some(_) => None,
    };

    // device-paired: covered by the pairing (and by the token, when it is the credential).
    if reason.is_none() {
        if let Credential::DeviceToken { scopes, .. } = credential {
            if !covered_by(&requested, scopes) {
                return refuse(
                    trace,
                    RuleId::DevicePaired,
                    RefusalKind::Auth { reason: AuthReason::ScopeMismatch, can_retry_with_device_token: false },
                    format!(
                        "the device token grants {}; ask for no more, or reconnect with the gateway token",
                        if scopes.is_empty() { "no scopes".to_owned() } else { scopes.join(", ") }
                    ),
                );
            }
        }
        trace.push(TraceStep {
            rule: RuleId::DevicePaired,
            decided: true,
            note: format!("paired for {} and the scopes are covered", role.as_str()),
        });
        return Decision::Admit(Admission {
            rule: RuleId::DevicePaired,
            principal: Principal::Device { device_id: device.device_id.clone() },
            role,
            scopes: requested,
            credential: credential.clone(),
            negotiated,
            device: Some(AdmittedDevice {
                device: device.clone(),
                action: DeviceAction::Paired { issue_token: owner },
            }),
        });
    }
    let reason = reason.unwrap_or(PairingReason::NotPaired);
    pass(trace, RuleId::DevicePaired, format!("needs approval: {}", reason.as_str()));

    // A device token never upgrades itself: asking beyond it is a scope mismatch.
    if let Credential::DeviceToken { scopes, .. } = credential {
        if reason == PairingReason::ScopeUpgrade {
            let excess = not_covered(&requested, scopes);
            return refuse(
                trace,
                RuleId::DevicePaired,
                RefusalKind::Auth { reason: AuthReason::ScopeMismatch, can_retry_with_device_token: false },
                format!(
                    "the device token does not grant {}; reconnect with the gateway token to ask",
                    excess.join(", ")
                ),
            );
        }
    }

    // silent-local-pairing: the owner's own program (or own loopback page) on this host.
    let own_loopback_page = f.origin.as_deref().is_some_and(|o| is_own_loopback_origin(o, f.listener_port));
    let silent_reason = matches!(reason, PairingReason::NotPaired | PairingReason::ScopeUpgrade);
    let why_not = if !owner {
        Some("needs the owner's secret")
    } else if !f.locality.is_direct_local() {
        Some("not direct-local")
    } else if browser && !own_loopback_page {
        Some("a browser page that is not the gateway's own loopback origin")
    } else if !silent_reason {
        Some("role and metadata changes always need an explicit approval")
    } else if !config.auto_approve_local {
        Some("turned off by gateway.nodes.pairing.autoApproveLocal = false")
    } else if config.loopback_is_trusted_proxy() {
        Some("a trusted proxy runs on loopback, so a local-looking caller may be a proxied one")
    } else {
        None
    };
    if let Some(why) = why_not {
        pass(trace, RuleId::SilentLocalPairing, why);
    } else {
        trace.push(TraceStep {
            rule: RuleId::SilentLocalPairing,
            decided: true,
            note: format!("approved silently ({}) for a local program with the owner's secret", reason.as_str()),
        });
        return Decision::Admit(Admission {
            rule: RuleId::SilentLocalPairing,
            principal: Principal::Device { device_id: device.device_id.clone() },
            role,
            scopes: requested,
            credential: credential.clone(),
            negotiated,
            device: Some(AdmittedDevice { device: device.clone(), action: DeviceAction::PairSilently { reason } }),
        });
    }

    // pairing-required: everything else waits for an explicit approval.
    trace.push(TraceStep {
        rule: RuleId::PairingRequired,
        decided: true,
        note: format!("{}: a pending request is created or refreshed", reason.as_str()),
    });
    Decision::PairingRequired(PairingNeeded {
        reason,
        device: device.clone(),
        role,
        scopes: requested,
        approved_roles: paired.map(|d| d.roles.clone()).unwrap_or_default(),
        approved_scopes: paired.map(|d| d.approved_scopes.clone()).unwrap_or_default(),
        hint: "approve it on the gateway host: clawgate devices approve <requestId> (or --latest)".into(),
    })
}
