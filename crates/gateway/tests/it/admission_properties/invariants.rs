//! The invariants of one decision, checked on every generated connection.

use super::*;

/// Refuse < PairingRequired < Admit.
pub(super) fn rank(d: &Decision) -> u8 {
    match d {
        Decision::Refuse(_) => 0,
        Decision::PairingRequired(_) => 1,
        Decision::Admit(_) => 2,
    }
}

/// The rules a refusal code may come from (docs/threat-model.md: each
/// refusal code maps to exactly one rule). The one exception is by design:
/// every admitting rule refuses, never trims, what exceeds its ceiling
/// (docs/admission.md), with `SCOPE_NOT_GRANTED` and a reason naming the ceiling.
pub(super) fn rules_of_code(code: &str) -> &'static [RuleId] {
    const ADMITTING: &[RuleId] = &[
        RuleId::LocalOwner,
        RuleId::DevicePaired,
        RuleId::ServicePrincipal,
        RuleId::TrustedProxy,
        RuleId::TrustedProxyLoopbackUser,
    ];
    match code {
        "PROTOCOL_MISMATCH" | "INVALID_ROLE" | "INVALID_HANDSHAKE" => &[RuleId::Protocol],
        "CONTROL_UI_ORIGIN_NOT_ALLOWED" => &[RuleId::Origin],
        "AUTH_SCOPE_MISMATCH" => &[RuleId::DevicePaired],
        c if c.starts_with("AUTH_") => &[RuleId::Credential],
        c if c.starts_with("DEVICE_AUTH_") => &[RuleId::DeviceProof],
        "SCOPE_NOT_GRANTED" | "ROLE_NOT_GRANTED" => ADMITTING,
        "LOCAL_SERVICE_SCOPE_CEILING" => &[RuleId::LocalOwner],
        "SERVICE_TOKEN_WITH_DEVICE" => &[RuleId::ServicePrincipal],
        "CONTROL_UI_DEVICE_IDENTITY_REQUIRED" => &[RuleId::BrowserNeedsDevice],
        "DEVICE_IDENTITY_REQUIRED" => &[RuleId::NoIdentity],
        _ => &[],
    }
}

/// Check every single-decision invariant; `Err` names the one that failed.
pub(super) fn check_decision(
    f: &ConnectFacts,
    config: &Config,
    view: Option<&DeviceView>,
) -> Result<Decision, TestCaseError> {
    let decided = decide(f, config, view);
    let d = &decided.decision;
    let rule = d.rule();
    let requested = dedupe_in_order(f.params.scopes());

    // The trace ends with exactly one deciding step, naming the rule.
    let deciding: Vec<_> = decided.trace.iter().filter(|s| s.decided).collect();
    prop_assert_eq!(deciding.len(), 1, "exactly one rule decides: {:?}", decided.trace);
    prop_assert_eq!(decided.trace.last().map(|s| s.rule), Some(rule), "the deciding rule is last");

    // Rules not implemented never decide.
    prop_assert!(!NOT_YET_IMPLEMENTED.contains(&rule), "{} decided: update NOT_YET_IMPLEMENTED", rule);

    // Remote never reaches a loopback-only rule (§2.2); while a trusted
    // proxy covers loopback, a loopback connection may be proxied, so there
    // is no silent pairing (docs/threat-model.md, H2).
    if !f.locality.is_direct_local() {
        prop_assert!(!LOOPBACK_ONLY.contains(&rule), "remote connection decided by {}", rule);
    }
    // Another user's program on this host is not the owner's: a loopback
    // peer of a known uid outside localOwnerUids never reaches one either.
    if let Some(uid) = f.foreign_local_uid(config) {
        prop_assert!(!LOOPBACK_ONLY.contains(&rule), "a program of uid {} decided by {}", uid, rule);
    }
    if config.loopback_is_ambiguous() {
        prop_assert_ne!(rule, RuleId::SilentLocalPairing, "silent pairing behind a loopback proxy");
    }

    // A browser never reaches local-owner or the loopback user; a silently
    // paired browser came from the gateway's own loopback origin (§2.3).
    if f.is_browser() {
        prop_assert!(!NEVER_FOR_BROWSERS.contains(&rule), "a browser reached {}", rule);
        if rule == RuleId::SilentLocalPairing {
            let own = f.origin.as_deref().is_some_and(|o| is_own_loopback_origin(o, PORT));
            prop_assert!(own, "browser paired silently from origin {:?}", f.origin);
        }
    }

    // A failed, rate-limited or unproven check never gets further (§2 rules 3, 4).
    if matches!(f.credential, CredentialCheck::Failed(_) | CredentialCheck::RateLimited { .. }) {
        prop_assert_eq!(rank(d), 0, "a failed credential check was not refused");
    }
    if matches!(f.device, DeviceFact::Failed(_)) {
        prop_assert_eq!(rank(d), 0, "a failed device proof was not refused");
    }

    // A device token is only ever accepted with a proof of the same device,
    // for the role it was issued for (§2.5).
    if let CredentialCheck::Verified(Credential::DeviceToken { device_id, role, .. }) = &f.credential {
        if rank(d) > 0 {
            let proven = f.device.proven().map(|p| p.device_id.as_str());
            prop_assert_eq!(proven, Some(device_id.as_str()), "device token accepted for another device");
            prop_assert_eq!(Some(*role), Role::parse(f.params.role()), "device token accepted for another role");
        }
    }

    match d {
        Decision::Admit(a) => {
            // Exact grant (§2.4): what was asked, deduplicated, nothing else.
            prop_assert_eq!(&a.scopes, &requested, "admitted scopes differ from the request");
            prop_assert_eq!(a.role.as_str(), f.params.role(), "admitted role differs from the request");
            if a.role == Role::Node {
                prop_assert!(a.scopes.is_empty(), "node admitted with scopes by {}", a.rule);
            }

            // A verified credential, the one that verified (§2.6); mode none
            // counts only on a loopback bind.
            let verified = f.credential.verified();
            prop_assert_eq!(verified, Some(&a.credential), "admitted without that verified credential");
            if a.credential == Credential::NoneMode {
                prop_assert!(config.is_loopback_bind(), "mode none admitted on a non-loopback bind");
            }

            // Credential kinds per rule (§2.5), and each kind's ceiling.
            let allowed = admitting_rules(&a.credential);
            prop_assert!(allowed.contains(&a.rule), "{} admitted a {}", a.rule, a.credential.kind_name());
            match &a.credential {
                Credential::DeviceToken { scopes, .. } => {
                    prop_assert!(covered_by(&a.scopes, scopes), "admitted beyond the device token's scopes");
                }
                Credential::ServiceToken { role, scopes, .. } => {
                    prop_assert_eq!(a.role, *role, "a service principal admitted in another role");
                    prop_assert!(covered_by(&a.scopes, scopes), "admitted beyond the service principal's scopes");
                    prop_assert!(matches!(f.device, DeviceFact::None), "a service token with a device block");
                }
                Credential::ProxyUser { user, .. } if a.rule != RuleId::Scopeless => {
                    prop_assert_eq!(a.role, Role::Operator, "a proxy user admitted as node");
                    let ceiling = config.identity_scopes_for(user);
                    prop_assert!(covered_by(&a.scopes, ceiling), "admitted beyond {}'s identityScopes", user);
                }
                _ => {}
            }
            if a.rule == RuleId::Scopeless {
                prop_assert!(a.scopes.is_empty() && a.role == Role::Operator, "scopeless granted something");
            }

            // trustedLocalServices limits local-owner to the listed clients,
            // their roles and ceilings; it refuses, never trims (§2 local-owner).
            if let (RuleId::LocalOwner, Some(services)) = (a.rule, &config.trusted_local_services) {
                let c = &f.params.client;
                let entry = services.iter().find(|s| s.client_id == c.id && s.mode == c.mode);
                prop_assert!(entry.is_some(), "local-owner admitted {}/{}, not listed", c.id, c.mode);
                let entry = entry.unwrap();
                prop_assert!(entry.roles.contains(&a.role), "local-owner admitted a role not listed");
                if let Some(max) = &entry.max_scopes {
                    prop_assert!(covered_by(&a.scopes, max), "local-owner admitted above maxScopes");
                }
            }

            // Devices of proxy users (docs/admission.md): admitted only with
            // the user the pairing is bound to, within approved ∩ that user's
            // identityScopes; approved inline only within deviceAutoApprove.
            let owner = a.credential.is_owner_secret();
            let user = match &a.credential {
                Credential::ProxyUser { user, .. } => Some(user.as_str()),
                Credential::DeviceToken { .. } => f.proxy_user.as_deref(),
                _ => None,
            };
            let paired = view.and_then(|v| v.device.as_ref());
            if a.rule == RuleId::DevicePaired && !owner {
                let bound = paired.and_then(|d| d.proxy_user.as_deref());
                prop_assert_eq!(bound, user, "a device admitted under another proxy user than its own");
                if let (Some(u), Some(d)) = (user, paired) {
                    prop_assert!(covered_by(&a.scopes, &d.approved_scopes), "admitted beyond the approval");
                    let ceiling = config.identity_scopes_for(u);
                    prop_assert!(covered_by(&a.scopes, ceiling), "a device admitted beyond {}'s identityScopes", u);
                }
            }
            if a.rule == RuleId::ProxyDeviceAutoApprove {
                let Some(u) = user else { return Err(TestCaseError::fail("proxy-auto without a proxy user")) };
                let auto = config.trusted_proxy.as_ref().and_then(|tp| tp.device_auto_approve.as_ref());
                prop_assert!(auto.is_some_and(|s| covered_by(&a.scopes, s)), "beyond deviceAutoApprove.scopes");
                prop_assert!(covered_by(&a.scopes, config.identity_scopes_for(u)), "beyond {}'s identityScopes", u);
                let same_key =
                    paired.filter(|d| f.device.proven().is_some_and(|p| p.public_key_b64url == d.public_key));
                if let Some(d) = same_key {
                    prop_assert_eq!(d.proxy_user.as_deref(), Some(u), "another user's device taken over inline");
                }
            }

            // A device admission is for the proven device, and only a
            // device-branch rule admits a device.
            match (&a.device, f.device.proven()) {
                (Some(ad), Some(p)) => prop_assert_eq!(&ad.device, p),
                (None, None) => {}
                (ad, p) => prop_assert!(false, "admitted device {:?} but proven {:?}", ad, p),
            }
        }
        Decision::PairingRequired(n) => {
            // A request is opened only for a proven device, for exactly what was asked.
            prop_assert_eq!(Some(&n.device), f.device.proven(), "pairing request for an unproven device");
            prop_assert_eq!(&n.scopes, &requested);
            prop_assert_eq!(n.role.as_str(), f.params.role());
            let cred = f.credential.verified();
            prop_assert!(
                cred.is_some_and(|c| admitting_rules(c).contains(&RuleId::DevicePaired)),
                "a pairing request on {:?}",
                f.credential
            );
        }
        Decision::Refuse(r) => {
            let code = r.kind.details_code();
            prop_assert!(rules_of_code(code).contains(&r.rule), "refusal code {} from rule {}", code, r.rule);
            prop_assert!(!r.hint.is_empty(), "a refusal without a hint");
        }
    }
    Ok(decided.decision)
}
