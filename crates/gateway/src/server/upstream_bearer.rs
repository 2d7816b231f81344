//! Is the `Authorization: Bearer` credential of a relayed HTTP request one
//! clawgate would accept on a connect? The answer drives the bearer rule of
//! [`crate::upstream::http_rules`]: a clawgate credential is swapped for the upstream
//! secret on the Control UI's credential routes and removed elsewhere; any
//! other credential is the upstream's business.
//!
//! Accepted, each checked as a connect checks it:
//! - the gateway token or password (constant-time, the connect's own check);
//! - a live operator device token (found by its value: the bearer names no
//!   device, so there is no device proof; the token is 256 random bits);
//! - a live operator service token (`cgs_…`);
//! - in trusted-proxy mode, the user a trusted proxy names in its header
//!   (behind an SSO proxy the browser holds no secret at all);
//! - in auth mode `none`, nothing is needed on the credential routes.
//!
//! Node tokens are not accepted: these routes are reads of the Control UI.
//!
//! Failed attempts count in the same limiter bucket as a connect's shared
//! secret from that client, where the bearer can only be meant for clawgate:
//! on the credential routes, and any bearer in clawgate's service-token
//! shape. Elsewhere a bearer that is not clawgate's is most likely the
//! upstream's (a hook token) and is passed on uncounted. A client whose
//! bucket is locked gets 401 for every bearer until the lock ends.

use std::sync::Arc;

use clawgate_protocol::AuthParams;

use crate::admission::credential::CredentialCheck;
use crate::admission::credential_check::check_shared_secret;
use crate::admission::ingress::client_ip;
use crate::admission::trusted_proxy::proxy_user;
use crate::admission::{EdgeFacts, Locality};
use crate::config::AuthMode;
use crate::store::{is_service_token, Role, ServiceTokenCheck};
use crate::upstream::http_relay::{CredentialQuery, CredentialVerifier};
use crate::upstream::http_rules::CredentialVerdict;

use super::limits::LimitKey;
use super::{now_ms, Gateway};

/// The verifier for the requests of one client connection.
pub fn verifier(gw: Arc<Gateway>, edge: EdgeFacts, locality: Locality) -> CredentialVerifier {
    Arc::new(move |query: &CredentialQuery<'_>| verdict(&gw, &edge, &locality, query))
}

/// The verdict on one request's credential.
pub fn verdict(gw: &Gateway, edge: &EdgeFacts, locality: &Locality, query: &CredentialQuery<'_>) -> CredentialVerdict {
    let now = now_ms();
    let limit = LimitKey::for_request(gw, locality, client_ip(locality, edge), edge);
    let Some(bearer) = query.bearer else {
        // Asked only on the credential routes: who needs no bearer?
        return if needs_no_bearer(gw, edge, locality) {
            CredentialVerdict::Clawgate
        } else {
            CredentialVerdict::Foreign
        };
    };
    if limit.locked(gw, now).is_some() {
        return CredentialVerdict::Refuse;
    }
    if is_clawgate_bearer(gw, bearer, now) || (query.swap_path && needs_no_bearer(gw, edge, locality)) {
        return CredentialVerdict::Clawgate;
    }
    let service_shaped = is_service_token(bearer);
    if query.swap_path || service_shaped {
        limit.record_failure(gw, now);
        tracing::info!(peer = %query.peer, path = %path_of(query.target), "relayed HTTP: bearer credential refused");
    }
    if service_shaped {
        // clawgate's shape, so not the upstream's: refused here.
        return CredentialVerdict::Refuse;
    }
    CredentialVerdict::Foreign
}

/// The gateway secret, a live operator device token, or a live operator
/// service token. Store errors count as "no" (nothing is swapped).
fn is_clawgate_bearer(gw: &Gateway, bearer: &str, now: u64) -> bool {
    let auth = AuthParams { token: Some(bearer.to_owned()), ..Default::default() };
    if gw.config().auth_mode != AuthMode::None {
        if let CredentialCheck::Verified(_) = check_shared_secret(Some(&auth), &gw.config()) {
            return true;
        }
    }
    if is_service_token(bearer) {
        return match gw.store.verify_service_token(bearer, now) {
            Ok(ServiceTokenCheck::Valid(p)) => p.role == Role::Operator,
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "relayed HTTP: service token lookup failed");
                false
            }
        };
    }
    match gw.store.device_token_by_value(bearer, now) {
        Ok(found) => found.is_some_and(|t| t.role == Role::Operator),
        Err(e) => {
            tracing::warn!(error = %e, "relayed HTTP: device token lookup failed");
            false
        }
    }
}

/// Auth mode `none`, or a trusted proxy's user in trusted-proxy mode.
fn needs_no_bearer(gw: &Gateway, edge: &EdgeFacts, locality: &Locality) -> bool {
    match gw.config().auth_mode {
        AuthMode::None => true,
        AuthMode::TrustedProxy => proxy_user(edge, locality, &gw.config()).is_ok(),
        AuthMode::Token | AuthMode::Password => false,
    }
}

fn path_of(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or("")
}

#[cfg(test)]
#[path = "upstream_bearer_tests.rs"]
mod tests;
