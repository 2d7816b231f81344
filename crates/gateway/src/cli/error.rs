//! What a `clawgate` command can fail with. Every error has a stable code;
//! the text a user sees is `[CODE] message` (gateway client errors print as
//! the client library words them).

use std::fmt;
use std::path::PathBuf;

use clawgate::config::ConfigError;
use clawgate::devices_admin::AdminError;
use clawgate::store::{Role, StoreError};
use clawgate_client::ClientError;
use serde_json::Value;

/// The shortest id prefix a command accepts: an empty variable
/// (`devices approve "$ID"`) or a one-character typo must not match the
/// only request or device there is.
pub const MIN_ID_PREFIX: usize = 4;

/// Refuse an id or prefix shorter than [`MIN_ID_PREFIX`].
pub fn check_id_prefix(given: &str, what: &str) -> Result<(), CliError> {
    let n = given.trim().chars().count();
    if n < MIN_ID_PREFIX {
        let shown = if n == 0 { "an empty id".to_owned() } else { format!("{given:?}") };
        return Err(CliError::InvalidInput(format!(
            "{shown} is too short to name a {what}: give the full id or at least {MIN_ID_PREFIX} characters of it"
        )));
    }
    Ok(())
}

/// Said whenever the gateway could not be used.
pub const OFFLINE_HINT: &str = "to manage the pairing store without the gateway, pass --offline";

#[derive(Debug)]
pub enum CliError {
    Config(ConfigError),
    Store(StoreError),
    Admin(AdminError),
    /// The gateway answered a request with an error (device commands).
    Gateway {
        code: String,
        message: String,
        reason: Option<String>,
        hint: Option<String>,
    },
    /// The client library failed (`gateway call`/`status`).
    Client(ClientError),
    /// No answer at the URL; `detail` names it and what happened.
    GatewayUnreachable {
        detail: String,
        /// Say that `--offline` works without the gateway (device commands).
        offline_hint: bool,
    },
    /// The secret this command has is not the one the running gateway uses
    /// (known from its runtime file's fingerprint), so it was not sent.
    SecretMismatch {
        detail: String,
        hint: String,
    },
    /// The listener did not prove it holds this state directory's gateway
    /// key, so the secret was not sent (a port squatter, or another gateway).
    GatewayIdentityMismatch {
        detail: String,
        hint: String,
    },
    GatewayRefusedUpgrade {
        url: String,
        detail: String,
    },
    /// `--offline` (or `services`) with no store file to work on.
    StoreMissing {
        what: &'static str,
        path: PathBuf,
        why: &'static str,
        state_dir: PathBuf,
    },
    AmbiguousId {
        given: String,
        what: &'static str,
        matches: Vec<String>,
    },
    RoleRequired {
        device_id: String,
        roles: Vec<Role>,
    },
    NoApprovedRole {
        device_id: String,
    },
    InvalidScopes(String),
    InvalidInput(String),
    /// `gateway token` cannot print the token; `why` says why.
    NoToken {
        why: String,
    },
    Io {
        context: String,
        source: std::io::Error,
    },
    /// Another error, and what to try instead.
    Hinted {
        error: Box<CliError>,
        hint: String,
    },
}

impl CliError {
    pub fn code(&self) -> &str {
        match self {
            CliError::Config(e) => e.code(),
            CliError::Store(e) => e.code(),
            CliError::Admin(e) => e.code(),
            CliError::Gateway { code, .. } => code,
            CliError::Client(e) => client_code(e),
            CliError::GatewayUnreachable { .. } => "GATEWAY_UNREACHABLE",
            CliError::GatewayRefusedUpgrade { .. } => "GATEWAY_REFUSED_UPGRADE",
            CliError::SecretMismatch { .. } => "SECRET_MISMATCH",
            CliError::GatewayIdentityMismatch { .. } => "GATEWAY_IDENTITY_MISMATCH",
            CliError::StoreMissing { .. } => "STORE_MISSING",
            CliError::AmbiguousId { .. } => "AMBIGUOUS_ID",
            CliError::RoleRequired { .. } => "ROLE_REQUIRED",
            CliError::NoApprovedRole { .. } => "DEVICE_ROLE_NOT_APPROVED",
            CliError::InvalidScopes(_) => "INVALID_SCOPES",
            CliError::InvalidInput(_) => "INVALID_INPUT",
            CliError::NoToken { .. } => "NO_TOKEN",
            CliError::Io { .. } => "IO_ERROR",
            CliError::Hinted { error, .. } => error.code(),
        }
    }

    /// An error the gateway answered a device command with.
    pub fn from_gateway(e: ClientError) -> CliError {
        match &e {
            ClientError::Rpc(shape) | ClientError::Refused(shape) => {
                let detail = |key: &str| shape.details.as_ref().and_then(|d| d.get(key)).and_then(Value::as_str);
                CliError::Gateway {
                    code: shape.details_code().unwrap_or(&shape.code).to_owned(),
                    message: shape.message.clone(),
                    reason: detail("reason").map(str::to_owned),
                    hint: detail("remediationHint").map(str::to_owned),
                }
            }
            _ => CliError::Client(e),
        }
    }

    pub fn hinted(self, hint: impl Into<String>) -> CliError {
        CliError::Hinted { error: Box::new(self), hint: hint.into() }
    }

    /// The process exit status: 78 a configuration error (EX_CONFIG), 2 a
    /// usage error, 1 any other failure. (`gateway status` exits 3 when
    /// the gateway is not running.)
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) => 78,
            CliError::InvalidScopes(_)
            | CliError::InvalidInput(_)
            | CliError::AmbiguousId { .. }
            | CliError::RoleRequired { .. } => 2,
            CliError::Hinted { error, .. } => error.exit_code(),
            _ => 1,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> CliError {
        CliError::Io { context: context.into(), source }
    }
}

/// The gateway ends a refusal's message with its remediation (for clients
/// that print only the message); the CLI prints the hint on a line of its own.
fn without_hint<'a>(message: &'a str, hint: Option<&str>) -> &'a str {
    hint.and_then(|h| message.strip_suffix(h)).and_then(|m| m.strip_suffix(" — to fix: ")).unwrap_or(message)
}

fn client_code(e: &ClientError) -> &str {
    match e {
        ClientError::Rpc(shape) | ClientError::Refused(shape) => shape.details_code().unwrap_or(&shape.code),
        _ => "GATEWAY_CLIENT_ERROR",
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::Config(e)
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        CliError::Store(e)
    }
}

impl From<AdminError> for CliError {
    fn from(e: AdminError) -> Self {
        CliError::Admin(e)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        match self {
            CliError::Config(e) => write!(f, "[{code}] {e}"),
            CliError::Store(e) => write!(f, "[{code}] {e}"),
            CliError::Admin(e) => write!(f, "[{code}] {e}"),
            CliError::Gateway { message, reason, hint, .. } => {
                write!(f, "[{code}] {}", without_hint(message, hint.as_deref()))?;
                if let Some(reason) = reason {
                    write!(f, " ({reason})")?;
                }
                if let Some(hint) = hint {
                    write!(f, "\n  hint: {hint}")?;
                }
                Ok(())
            }
            CliError::Client(e) => match e {
                ClientError::Refused(shape) | ClientError::Rpc(shape) => {
                    let hint = shape.details.as_ref().and_then(|d| d.get("remediationHint")).and_then(Value::as_str);
                    let what = if matches!(e, ClientError::Refused(_)) {
                        "the gateway refused the connection"
                    } else {
                        "request failed"
                    };
                    write!(f, "[{code}] {what}: {}", without_hint(&shape.message, hint))?;
                    if let Some(hint) = hint {
                        write!(f, "\n  hint: {hint}")?;
                    }
                    Ok(())
                }
                other => write!(f, "{other}"),
            },
            CliError::GatewayUnreachable { detail, offline_hint } => {
                write!(
                    f,
                    "[{code}] {detail}\n  is it running (`clawgate gateway run`)? Pass --port or --url if it \
                     listens elsewhere"
                )?;
                if *offline_hint {
                    write!(f, "; {OFFLINE_HINT}")?;
                }
                Ok(())
            }
            CliError::SecretMismatch { detail, hint } | CliError::GatewayIdentityMismatch { detail, hint } => {
                write!(f, "[{code}] {detail}\n  {hint}")
            }
            CliError::GatewayRefusedUpgrade { url, detail } => write!(
                f,
                "[{code}] the gateway at {url} refused the WebSocket upgrade ({detail}); the gateway log says why\n  \
                 {OFFLINE_HINT}"
            ),
            CliError::StoreMissing { what, path, why, state_dir } => write!(
                f,
                "[{code}] there is no {what} at {}: {why}. Check CLAWGATE_STATE_DIR (the state directory is {})",
                path.display(),
                state_dir.display()
            ),
            CliError::AmbiguousId { given, what, matches } => {
                write!(f, "[{code}] {given:?} matches several {what}s ({}); give more of the id", matches.join(", "))
            }
            CliError::RoleRequired { device_id, roles } => write!(
                f,
                "[{code}] device {device_id} is approved for several roles ({}); pass --role",
                roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
            ),
            CliError::NoApprovedRole { device_id } => write!(f, "[{code}] device {device_id} has no approved role"),
            CliError::InvalidScopes(m) | CliError::InvalidInput(m) => write!(f, "[{code}] {m}"),
            CliError::NoToken { why } => write!(f, "[{code}] {why}"),
            CliError::Io { context, source } => write!(f, "[{code}] {context}: {source}"),
            CliError::Hinted { error, hint } => write!(f, "{error}\n  {hint}"),
        }
    }
}

impl std::error::Error for CliError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_leads_the_message_and_a_hint_keeps_the_code() {
        let e = CliError::GatewayUnreachable { detail: "no answer".into(), offline_hint: true };
        assert_eq!(e.code(), "GATEWAY_UNREACHABLE");
        assert!(e.to_string().starts_with("[GATEWAY_UNREACHABLE] no answer"));
        assert!(e.to_string().contains("--offline"));
        let e = CliError::Store(StoreError::UnknownDevice { device_id: "d".into() }).hinted(OFFLINE_HINT);
        assert_eq!(e.code(), "DEVICE_UNKNOWN");
        assert!(e.to_string().starts_with("[DEVICE_UNKNOWN] ") && e.to_string().ends_with(OFFLINE_HINT));
        let e = CliError::RoleRequired { device_id: "d".into(), roles: vec![Role::Operator, Role::Node] };
        assert_eq!(
            e.to_string(),
            "[ROLE_REQUIRED] device d is approved for several roles (operator, node); pass --role"
        );
    }
}
