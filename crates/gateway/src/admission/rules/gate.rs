//! The rules every connection passes first: `protocol`, `origin`,
//! `credential`, `device-proof`.

use clawgate_protocol::version::negotiate;

use super::super::credential::{AuthReason, CredentialCheck};
use super::super::decision::{RefusalKind, Role};
use super::super::facts::{ConnectFacts, DeviceFact};
use super::super::origin::is_allowed_origin;
use super::super::rule_id::RuleId;
use super::context::{Accepted, Ctx};
use super::step::{pass, refusal, refuse, short, Step, Verdict};

/// protocol: version range, role, and no worker clients on this endpoint.
// One call per connection: a large error variant costs nothing worth boxing for.
#[allow(clippy::result_large_err)]
pub(super) fn protocol(f: &ConnectFacts) -> Result<Accepted, Verdict> {
    let p = &f.params;
    let client = &p.client;
    if p.role.as_deref() == Some("worker") || client.id == "openclaw-worker" || client.mode == "worker" {
        return Err(refusal(
            RuleId::Protocol,
            RefusalKind::WorkerHandshake,
            "worker clients use the dedicated worker protocol, not the gateway endpoint",
        ));
    }
    let negotiated = negotiate(p.min_protocol, p.max_protocol, p.role(), &client.mode).map_err(|m| {
        refusal(
            RuleId::Protocol,
            RefusalKind::ProtocolMismatch { client_min: m.client_min, client_max: m.client_max },
            "upgrade the client: this gateway speaks protocol 4 (3 only for node hosts and probes)",
        )
    })?;
    let Some(role) = Role::parse(p.role()) else {
        return Err(refusal(
            RuleId::Protocol,
            RefusalKind::InvalidRole(p.role().to_owned()),
            "role must be \"operator\" or \"node\"",
        ));
    };
    let note = format!("protocol accepted ({negotiated:?}), role {}", role.as_str());
    Ok(Accepted { role, negotiated, note })
}

/// origin: a browser page must come from one of the gateway's own origins.
pub(super) fn origin(ctx: &Ctx) -> Step {
    match &ctx.facts.origin {
        Some(origin) if !is_allowed_origin(origin, ctx.facts.listener_port, ctx.config) => refuse(
            RuleId::Origin,
            RefusalKind::OriginNotAllowed { origin: origin.clone() },
            "open the UI from the gateway's own address, or add its exact origin to gateway.controlUi.allowedOrigins",
        ),
        Some(_) => pass("origin is one of the gateway's own"),
        None => pass("no Origin header"),
    }
}

/// credential: a presented credential that fails to verify is refused.
pub(super) fn credential(ctx: &Ctx) -> Step {
    let f = ctx.facts;
    let p = &f.params;
    match &f.credential {
        CredentialCheck::RateLimited { retry_after_ms } => refuse(
            RuleId::Credential,
            RefusalKind::RateLimited { retry_after_ms: *retry_after_ms },
            "too many failed attempts from this address; wait, then retry with the right secret",
        ),
        // A failed proof is reported before a failed credential: the
        // credential may be a device token, which cannot be checked without
        // the proof.
        CredentialCheck::Failed(_) if matches!(f.device, DeviceFact::Failed(_)) => device_proof(ctx),
        CredentialCheck::Failed(reason) => {
            let sent_token = p.auth.as_ref().is_some_and(|a| a.token.as_deref().is_some_and(|t| !t.trim().is_empty()));
            let sent_device_token = p.auth.as_ref().is_some_and(|a| a.device_token.is_some());
            let can_retry_with_device_token =
                *reason == AuthReason::TokenMismatch && p.device.is_some() && sent_token && !sent_device_token;
            refuse(
                RuleId::Credential,
                RefusalKind::Auth { reason: *reason, can_retry_with_device_token },
                credential_hint(reason),
            )
        }
        CredentialCheck::Verified(c) => pass(format!("{} verified", c.kind_name())),
        CredentialCheck::Absent => pass("no credential presented"),
    }
}

fn credential_hint(reason: &AuthReason) -> &'static str {
    match reason {
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
        AuthReason::ScopeMismatch => "ask for no more than the device token grants, or get a scope upgrade approved",
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
    }
}

/// device-proof: a device block must prove its key over this socket's challenge.
pub(super) fn device_proof(ctx: &Ctx) -> Step {
    match &ctx.facts.device {
        DeviceFact::None => Step::NotThisBranch,
        DeviceFact::Failed(e) => refuse(RuleId::DeviceProof, RefusalKind::DeviceAuth(*e), PROOF_HINT),
        DeviceFact::Proven(device) => pass(format!("device {} proved its key", short(&device.device_id))),
    }
}

const PROOF_HINT: &str = "sign the v3 device-auth payload over this connection's challenge nonce with the device key, \
     and keep the clock within 2 minutes of the gateway's";
