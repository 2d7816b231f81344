//! Checking what a connection presented: the shared secret, a device's own
//! token, a service token, or the trusted proxy's user. The types it
//! produces are in [`super::credential`].

use clawgate_protocol::{AuthParams, Role};

use crate::config::{AuthMode, Config};
use crate::store::{is_service_token, ServiceTokenCheck, StoreError, TokenCheck};

use super::credential::{AuthReason, Credential, CredentialCheck};
use super::device_proof::VerifiedDevice;
use super::facts::Locality;
use super::ingress::EdgeFacts;
use super::lookups::Lookups;
use super::trusted_proxy::proxy_user;

fn presented(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// The device token a connect presents: `auth.deviceToken`, else the value
/// in `auth.token` (as the reference client sends a stored token).
pub fn presented_device_token(auth: Option<&AuthParams>) -> Option<&str> {
    let auth = auth?;
    presented(auth.device_token.as_ref()).or_else(|| presented(auth.token.as_ref()))
}

/// Check the shared secret. In token mode the secret may arrive in either
/// `auth.token` or `auth.password` (a wire quirk real clients rely on), and
/// symmetrically in password mode. Comparison is constant-time on digests.
pub fn check_shared_secret(auth: Option<&AuthParams>, config: &Config) -> CredentialCheck {
    let token = auth.and_then(|a| presented(a.token.as_ref()));
    let password = auth.and_then(|a| presented(a.password.as_ref()));
    match config.auth_mode {
        AuthMode::None => CredentialCheck::Verified(Credential::NoneMode),
        AuthMode::Token => {
            let Some(given) = token.or(password) else {
                return CredentialCheck::Absent;
            };
            match &config.token {
                None => CredentialCheck::Failed(AuthReason::TokenMissingConfig),
                Some(secret) if secret.digest().matches(given.as_bytes()) => {
                    CredentialCheck::Verified(Credential::SharedToken)
                }
                Some(_) => CredentialCheck::Failed(AuthReason::TokenMismatch),
            }
        }
        AuthMode::Password | AuthMode::TrustedProxy => {
            let Some(given) = password.or(token) else {
                return CredentialCheck::Absent;
            };
            match &config.password {
                None => CredentialCheck::Failed(AuthReason::PasswordMissingConfig),
                Some(secret) if secret.digest().matches(given.as_bytes()) => {
                    CredentialCheck::Verified(Credential::SharedPassword)
                }
                Some(_) => CredentialCheck::Failed(AuthReason::PasswordMismatch),
            }
        }
    }
}

/// The full credential check: the shared secret first; failing that, for a
/// device whose proof verified, its device token (`auth.deviceToken`, else the
/// value in `auth.token`, as the reference client sends it). An explicit
/// `auth.deviceToken` must verify even when the shared secret did. `lookup`
/// asks the store; a device token is never consulted without a same-key proof.
pub fn check_credential(
    auth: Option<&AuthParams>,
    config: &Config,
    proven: Option<&VerifiedDevice>,
    role: Option<Role>,
    lookups: &mut dyn Lookups,
) -> Result<CredentialCheck, StoreError> {
    let shared = check_shared_secret(auth, config);
    let explicit = auth.and_then(|a| presented(a.device_token.as_ref()));
    if matches!(shared, CredentialCheck::Verified(_)) {
        // A device token that is presented is verified in every mode, even
        // when the shared secret (or mode none, which asks for nothing)
        // already let the connection in: a wrong one is never waved through.
        if let (Some(device), Some(role), Some(candidate)) = (proven, role, explicit) {
            if !matches!(lookups.device_token(&device.device_id, role, candidate)?, TokenCheck::Valid { .. }) {
                return Ok(CredentialCheck::Failed(AuthReason::DeviceTokenMismatch));
            }
        }
        return Ok(shared);
    }
    let (Some(device), Some(role)) = (proven, role) else { return Ok(shared) };
    let Some(candidate) = explicit.or_else(|| auth.and_then(|a| presented(a.token.as_ref()))) else {
        return Ok(shared);
    };
    Ok(match lookups.device_token(&device.device_id, role, candidate)? {
        TokenCheck::Valid { scopes, issued_at_ms } => CredentialCheck::Verified(Credential::DeviceToken {
            device_id: device.device_id.clone(),
            role,
            scopes,
            issued_at_ms,
        }),
        _ if explicit.is_some() => CredentialCheck::Failed(AuthReason::DeviceTokenMismatch),
        // The value was sent as the shared token: report the shared failure,
        // which tells the client it may retry with its device token.
        _ => shared,
    })
}

/// The credential check the server runs at connect (and `auth explain` with
/// it), in this order:
///
/// 1. A service token in `auth.token` (the `cgs_` prefix says so) — in any
///    mode. Unknown, wrong, rotated and revoked all answer
///    `service_token_invalid`, counted like a wrong shared secret.
/// 2. Modes none, token, password: [`check_credential`].
/// 3. trusted-proxy mode: a direct-local caller that sends `auth.password`
///    while `gateway.auth.password` is set has it checked (an explicit
///    secret is never passed over for `loopbackUser`);
///    otherwise a proven device's own token, if it sent one; otherwise the
///    proxy's user ([`proxy_user`]) or its refusal reason.
pub fn check_connect_credential(
    auth: Option<&AuthParams>,
    config: &Config,
    edge: &EdgeFacts,
    locality: &Locality,
    proven: Option<&VerifiedDevice>,
    role: Option<Role>,
    lookups: &mut dyn Lookups,
) -> Result<CredentialCheck, StoreError> {
    if let Some(token) = auth.and_then(|a| presented(a.token.as_ref())).filter(|t| is_service_token(t)) {
        // The shared token itself could start with the prefix, by chance.
        let is_shared = config.auth_mode == AuthMode::Token
            && config.token.as_ref().is_some_and(|s| s.digest().matches(token.as_bytes()));
        if !is_shared {
            return Ok(match lookups.service_token(token)? {
                ServiceTokenCheck::Valid(p) => CredentialCheck::Verified(Credential::ServiceToken {
                    issued_at_ms: p.issued_at_ms(),
                    principal: p.name,
                    principal_id: p.principal_id,
                    role: p.role,
                    scopes: p.scopes,
                }),
                _ => CredentialCheck::Failed(AuthReason::ServiceTokenInvalid),
            });
        }
    }
    if config.auth_mode != AuthMode::TrustedProxy {
        return check_credential(auth, config, proven, role, lookups);
    }

    let password = auth.and_then(|a| presented(a.password.as_ref()));
    if let (true, Some(given), Some(secret)) = (locality.is_direct_local(), password, config.password.as_ref()) {
        return Ok(if secret.digest().matches(given.as_bytes()) {
            CredentialCheck::Verified(Credential::SharedPassword)
        } else {
            CredentialCheck::Failed(AuthReason::PasswordMismatch)
        });
    }
    if let (Some(device), Some(role)) = (proven, role) {
        let explicit = auth.and_then(|a| presented(a.device_token.as_ref()));
        if let Some(candidate) = explicit {
            return Ok(match lookups.device_token(&device.device_id, role, candidate)? {
                TokenCheck::Valid { scopes, issued_at_ms } => CredentialCheck::Verified(Credential::DeviceToken {
                    device_id: device.device_id.clone(),
                    role,
                    scopes,
                    issued_at_ms,
                }),
                _ => CredentialCheck::Failed(AuthReason::DeviceTokenMismatch),
            });
        }
    }
    Ok(match proxy_user(edge, locality, config) {
        Ok(user) => CredentialCheck::Verified(user),
        Err(reason) => CredentialCheck::Failed(reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(token: Option<&str>, password: Option<&str>) -> AuthParams {
        AuthParams { token: token.map(Into::into), password: password.map(Into::into), ..Default::default() }
    }

    #[test]
    fn token_mode_accepts_either_field() {
        let c = Config::new(AuthMode::Token, Some("s3cret"), None);
        assert_eq!(
            check_shared_secret(Some(&auth(Some("s3cret"), None)), &c),
            CredentialCheck::Verified(Credential::SharedToken)
        );
        assert_eq!(
            check_shared_secret(Some(&auth(None, Some("s3cret"))), &c),
            CredentialCheck::Verified(Credential::SharedToken)
        );
        assert_eq!(
            check_shared_secret(Some(&auth(Some("nope"), None)), &c),
            CredentialCheck::Failed(AuthReason::TokenMismatch)
        );
        assert_eq!(check_shared_secret(Some(&auth(Some("  "), None)), &c), CredentialCheck::Absent);
        assert_eq!(check_shared_secret(None, &c), CredentialCheck::Absent);
    }

    #[test]
    fn password_mode() {
        let c = Config::new(AuthMode::Password, None, Some("pw"));
        assert_eq!(
            check_shared_secret(Some(&auth(None, Some("pw"))), &c),
            CredentialCheck::Verified(Credential::SharedPassword)
        );
        assert_eq!(
            check_shared_secret(Some(&auth(None, Some("px"))), &c),
            CredentialCheck::Failed(AuthReason::PasswordMismatch)
        );
    }

    #[test]
    fn none_mode_needs_nothing() {
        let c = Config::new(AuthMode::None, None, None);
        assert_eq!(check_shared_secret(None, &c), CredentialCheck::Verified(Credential::NoneMode));
    }
}
