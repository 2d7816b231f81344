//! The credential a connection presented, and what verifying it showed.
//! A credential is a *kind*: rules accept listed kinds only, so holding some
//! credential never counts as holding the owner's. The checks that produce
//! these live in [`super::credential_check`].

use clawgate_protocol::Role;

/// A credential that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The gateway's shared token (sent in `auth.token` or `auth.password`).
    SharedToken,
    /// The gateway's shared password.
    SharedPassword,
    /// Auth mode `none`: nothing to present (only allowed on a loopback bind).
    NoneMode,
    /// A device token issued to this (proven) device for this role, at `issued_at_ms`.
    DeviceToken { device_id: String, role: Role, scopes: Vec<String>, issued_at_ms: u64 },
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

    /// How the connection authenticated, in OpenClaw's words: hello-ok's
    /// `auth.method`, both clawgate's own and the one merged into a relayed
    /// upstream hello-ok. OpenClaw's vocabulary has no service tokens; one
    /// is sent in `auth.token`, so it is a `token` there ([`Self::kind_name`]
    /// tells them apart).
    pub fn method(&self) -> &'static str {
        match self {
            Credential::SharedToken | Credential::ServiceToken { .. } => "token",
            Credential::SharedPassword => "password",
            Credential::NoneMode => "none",
            Credential::DeviceToken { .. } => "device-token",
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

/// Why a presented credential did not verify (OpenClaw's `authReason` values).
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
