//! The credential a connection presented, and what verifying it showed.
//! A credential is a *kind*: rules accept listed kinds only, so holding some
//! credential never counts as holding the owner's.

use clawgate_protocol::AuthParams;

use crate::config::{AuthMode, Config};
use crate::store::TokenCheck;

use super::decision::Role;
use super::device_proof::VerifiedDevice;

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
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Credential::SharedToken => "shared-token",
            Credential::SharedPassword => "shared-password",
            Credential::NoneMode => "none-mode",
            Credential::DeviceToken { .. } => "device-token",
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
        }
    }

    /// `details.recommendedNextStep` when no device-token retry applies.
    pub fn next_step(self) -> &'static str {
        match self {
            AuthReason::TokenMissing
            | AuthReason::TokenMissingConfig
            | AuthReason::PasswordMissing
            | AuthReason::PasswordMissingConfig => "update_auth_configuration",
            AuthReason::TokenMismatch | AuthReason::PasswordMismatch | AuthReason::DeviceTokenMismatch => {
                "update_auth_credentials"
            }
            AuthReason::ScopeMismatch => "review_auth_configuration",
        }
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
    lookup: &mut dyn FnMut(&str, Role, &str) -> TokenCheck,
) -> CredentialCheck {
    let shared = check_shared_secret(auth, config);
    if matches!(shared, CredentialCheck::Verified(_)) {
        return shared;
    }
    let (Some(device), Some(role)) = (proven, role) else { return shared };
    let explicit = auth.and_then(|a| presented(a.device_token.as_ref()));
    let Some(candidate) = explicit.or_else(|| auth.and_then(|a| presented(a.token.as_ref()))) else {
        return shared;
    };
    match lookup(&device.device_id, role, candidate) {
        TokenCheck::Valid { scopes } => {
            CredentialCheck::Verified(Credential::DeviceToken { device_id: device.device_id.clone(), role, scopes })
        }
        _ if explicit.is_some() => CredentialCheck::Failed(AuthReason::DeviceTokenMismatch),
        // The value was sent as the shared token: report the shared failure,
        // which tells the client it may retry with its device token.
        _ => shared,
    }
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
