//! The credential a connection presented, and what verifying it showed.
//! A credential is a *kind*: rules accept listed kinds only, so holding some
//! credential never counts as holding the owner's.

use clawgate_protocol::AuthParams;

use crate::config::{AuthMode, Config};
use crate::store::{is_service_token, ServiceTokenCheck, StoreError, TokenCheck};

use super::decision::Role;
use super::device_proof::VerifiedDevice;
use super::facts::Locality;
use super::ingress::EdgeFacts;
use super::lookups::Lookups;
use super::trusted_proxy::proxy_user;

/// A credential that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The gateway's shared token (sent in `auth.token` or `auth.password`).
    SharedToken,
    /// The gateway's shared password.
    SharedPassword,
    /// Auth mode `none`: nothing to present (only allowed on a loopback bind).
    NoneMode,
    /// A device token issued to this (proven) device for this role.
    DeviceToken { device_id: String, role: Role, scopes: Vec<String> },
    /// A service principal's token (`cgs_<id>_<secret>` in `auth.token`):
    /// its fixed role and scopes are the ceiling of what it gets.
    ServiceToken {
        /// The principal's name.
        principal: String,
        principal_id: String,
        role: Role,
        scopes: Vec<String>,
        /// When the secret it presented was issued (a rotation changes it).
        issued_at_ms: u64,
    },
    /// A user named by the trusted proxy's user header, or `loopbackUser`
    /// for a headerless direct-local caller (`via_loopback_user`).
    ProxyUser { user: String, via_loopback_user: bool },
}

impl Credential {
    /// The owner's secret: the shared token, password, or mode none.
    pub fn is_owner_secret(&self) -> bool {
        matches!(self, Credential::SharedToken | Credential::SharedPassword | Credential::NoneMode)
    }

    /// How the connection authenticated, in OpenClaw's words.
    pub fn method(&self) -> &'static str {
        match self {
            Credential::SharedToken => "token",
            Credential::SharedPassword => "password",
            Credential::NoneMode => "none",
            Credential::DeviceToken { .. } => "device-token",
            Credential::ServiceToken { .. } => "service-token",
            Credential::ProxyUser { .. } => "trusted-proxy",
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Credential::SharedToken => "shared-token",
            Credential::SharedPassword => "shared-password",
            Credential::NoneMode => "none-mode",
            Credential::DeviceToken { .. } => "device-token",
            Credential::ServiceToken { .. } => "service-token",
            Credential::ProxyUser { .. } => "proxy-user",
        }
    }
}

/// Why a presented credential did not verify (reference §4.5 reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthReason {
    TokenMissing,
    TokenMismatch,
    TokenMissingConfig,
    PasswordMissing,
    PasswordMismatch,
    PasswordMissingConfig,
    /// An explicit `auth.deviceToken` that is not this device's token for this role.
    DeviceTokenMismatch,
    /// A device token asked for more than it grants.
    ScopeMismatch,
    /// A `cgs_` service token that is unknown, wrong, rotated or revoked
    /// (one answer for all, so the reason is no oracle). Counted with
    /// shared-secret failures.
    ServiceTokenInvalid,
    /// trusted-proxy mode without a usable `gateway.auth.trustedProxy`.
    TrustedProxyConfigMissing,
    /// The socket is not in `gateway.trustedProxies` (and no loopbackUser applies).
    TrustedProxyUntrustedSource,
    /// A trusted proxy on a loopback address without `allowLoopback`.
    TrustedProxyLoopbackSource,
    /// A required header is missing: `trusted_proxy_missing_header_<name as configured>`.
    TrustedProxyMissingHeader(&'static str),
    /// The trusted proxy sent no (or a blank) user header.
    TrustedProxyUserMissing,
    /// The user is not in `allowUsers`.
    TrustedProxyUserNotAllowed,
}

impl AuthReason {
    /// `details.authReason`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthReason::TokenMissing => "token_missing",
            AuthReason::TokenMismatch => "token_mismatch",
            AuthReason::TokenMissingConfig => "token_missing_config",
            AuthReason::PasswordMissing => "password_missing",
            AuthReason::PasswordMismatch => "password_mismatch",
            AuthReason::PasswordMissingConfig => "password_missing_config",
            AuthReason::DeviceTokenMismatch => "device_token_mismatch",
            AuthReason::ScopeMismatch => "scope_mismatch",
            AuthReason::ServiceTokenInvalid => "service_token_invalid",
            AuthReason::TrustedProxyConfigMissing => "trusted_proxy_config_missing",
            AuthReason::TrustedProxyUntrustedSource => "trusted_proxy_untrusted_source",
            AuthReason::TrustedProxyLoopbackSource => "trusted_proxy_loopback_source",
            AuthReason::TrustedProxyMissingHeader(reason) => reason,
            AuthReason::TrustedProxyUserMissing => "trusted_proxy_user_missing",
            AuthReason::TrustedProxyUserNotAllowed => "trusted_proxy_user_not_allowed",
        }
    }

    /// `details.code`.
    pub fn details_code(self) -> &'static str {
        match self {
            AuthReason::TokenMissing => "AUTH_TOKEN_MISSING",
            AuthReason::TokenMismatch => "AUTH_TOKEN_MISMATCH",
            AuthReason::TokenMissingConfig => "AUTH_TOKEN_NOT_CONFIGURED",
            AuthReason::PasswordMissing => "AUTH_PASSWORD_MISSING",
            AuthReason::PasswordMismatch => "AUTH_PASSWORD_MISMATCH",
            AuthReason::PasswordMissingConfig => "AUTH_PASSWORD_NOT_CONFIGURED",
            AuthReason::DeviceTokenMismatch => "AUTH_DEVICE_TOKEN_MISMATCH",
            AuthReason::ScopeMismatch => "AUTH_SCOPE_MISMATCH",
            AuthReason::ServiceTokenInvalid => "AUTH_SERVICE_TOKEN_INVALID",
            AuthReason::TrustedProxyMissingHeader(_) => "AUTH_IDENTITY_HEADER_REQUIRED",
            AuthReason::TrustedProxyConfigMissing
            | AuthReason::TrustedProxyUntrustedSource
            | AuthReason::TrustedProxyLoopbackSource
            | AuthReason::TrustedProxyUserMissing
            | AuthReason::TrustedProxyUserNotAllowed => "AUTH_UNAUTHORIZED",
        }
    }

    /// The human message; its prefix is stable (clients pattern-match it).
    pub fn message(self) -> &'static str {
        match self {
            AuthReason::TokenMissing => "unauthorized: gateway token missing (set the gateway token in auth.token)",
            AuthReason::TokenMismatch => "unauthorized: gateway token mismatch (check the token you were given)",
            AuthReason::TokenMissingConfig => "unauthorized: gateway token not configured on the gateway",
            AuthReason::PasswordMissing => "unauthorized: gateway password missing (set it in auth.password)",
            AuthReason::PasswordMismatch => "unauthorized: gateway password mismatch",
            AuthReason::PasswordMissingConfig => "unauthorized: gateway password not configured on the gateway",
            AuthReason::DeviceTokenMismatch => "unauthorized: device token mismatch (rotate/reissue device token)",
            AuthReason::ScopeMismatch => "unauthorized: device token scope mismatch (re-pair or approve scope upgrade)",
            AuthReason::ServiceTokenInvalid => {
                "unauthorized: service token invalid (unknown, rotated or revoked; ask for a new one)"
            }
            AuthReason::TrustedProxyMissingHeader(_) => "unauthorized: a required identity header is missing",
            AuthReason::TrustedProxyConfigMissing
            | AuthReason::TrustedProxyUntrustedSource
            | AuthReason::TrustedProxyLoopbackSource
            | AuthReason::TrustedProxyUserMissing
            | AuthReason::TrustedProxyUserNotAllowed => "unauthorized",
        }
    }

    /// `details.recommendedNextStep` when no device-token retry applies.
    pub fn next_step(self) -> &'static str {
        match self {
            AuthReason::TokenMissing
            | AuthReason::TokenMissingConfig
            | AuthReason::PasswordMissing
            | AuthReason::PasswordMissingConfig => "update_auth_configuration",
            AuthReason::TokenMismatch
            | AuthReason::PasswordMismatch
            | AuthReason::DeviceTokenMismatch
            | AuthReason::ServiceTokenInvalid => "update_auth_credentials",
            AuthReason::ScopeMismatch
            | AuthReason::TrustedProxyConfigMissing
            | AuthReason::TrustedProxyUntrustedSource
            | AuthReason::TrustedProxyLoopbackSource
            | AuthReason::TrustedProxyMissingHeader(_)
            | AuthReason::TrustedProxyUserMissing
            | AuthReason::TrustedProxyUserNotAllowed => "review_auth_configuration",
        }
    }

    /// Does this failure count against the address in the failed-auth
    /// limiter? Only a wrong secret does (a missing one does not, and the
    /// proxy's verdicts are not guesses at a secret).
    pub fn counts_as_failure(self) -> bool {
        matches!(
            self,
            AuthReason::TokenMismatch
                | AuthReason::PasswordMismatch
                | AuthReason::DeviceTokenMismatch
                | AuthReason::ServiceTokenInvalid
        )
    }
}

/// The outcome of checking what the client presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialCheck {
    Verified(Credential),
    /// Nothing was presented.
    Absent,
    Failed(AuthReason),
    /// Too many recent failures from this address: not even checked.
    RateLimited {
        retry_after_ms: u64,
    },
}

impl CredentialCheck {
    pub fn verified(&self) -> Option<&Credential> {
        match self {
            CredentialCheck::Verified(c) => Some(c),
            _ => None,
        }
    }
}

fn presented(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
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
/// value in `auth.token`, as the reference client sends it). `lookup` asks the
/// store; a device token is never consulted without a same-key proof.
pub fn check_credential(
    auth: Option<&AuthParams>,
    config: &Config,
    proven: Option<&VerifiedDevice>,
    role: Option<Role>,
    lookups: &mut dyn Lookups,
) -> Result<CredentialCheck, StoreError> {
    let shared = check_shared_secret(auth, config);
    if matches!(shared, CredentialCheck::Verified(_)) {
        return Ok(shared);
    }
    let (Some(device), Some(role)) = (proven, role) else { return Ok(shared) };
    let explicit = auth.and_then(|a| presented(a.device_token.as_ref()));
    let Some(candidate) = explicit.or_else(|| auth.and_then(|a| presented(a.token.as_ref()))) else {
        return Ok(shared);
    };
    Ok(match lookups.device_token(&device.device_id, role, candidate)? {
        TokenCheck::Valid { scopes } => {
            CredentialCheck::Verified(Credential::DeviceToken { device_id: device.device_id.clone(), role, scopes })
        }
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
///    while `gateway.auth.password` is set has it checked (reference §4.2
///    step 4; an explicit secret is never passed over for `loopbackUser`);
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
                TokenCheck::Valid { scopes } => CredentialCheck::Verified(Credential::DeviceToken {
                    device_id: device.device_id.clone(),
                    role,
                    scopes,
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
        let c = Config::for_tests(AuthMode::Token, Some("s3cret"), None);
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
        let c = Config::for_tests(AuthMode::Password, None, Some("pw"));
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
        let c = Config::for_tests(AuthMode::None, None, None);
        assert_eq!(check_shared_secret(None, &c), CredentialCheck::Verified(Credential::NoneMode));
    }
}
