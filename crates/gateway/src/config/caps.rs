//! Caps that must not be 0 (`gateway.limits.maxConnections`,
//! `clawgate.sessions.*`): a cap of 0 would refuse every connection.

use super::ConfigError;

/// `gateway.limits.maxConnections`: a cap of 0 would refuse everyone.
pub(super) fn max_connections(given: Option<usize>) -> Result<Option<usize>, ConfigError> {
    match given {
        Some(0) => Err(zero_refuses_everyone("gateway.limits.maxConnections")),
        other => Ok(other),
    }
}

/// `clawgate.sessions`, defaults filled in; a cap of 0 would refuse everyone.
pub(super) fn session_limits(section: &super::SessionsSection) -> Result<super::SessionLimits, ConfigError> {
    let defaults = super::SessionLimits::default();
    let mut limits = defaults;
    for (key, given, slot) in [
        ("clawgate.sessions.maxPerAddress", section.max_per_address, &mut limits.max_per_address),
        ("clawgate.sessions.maxPerPrincipal", section.max_per_principal, &mut limits.max_per_principal),
    ] {
        match given {
            Some(0) => {
                return Err(ConfigError::Unsafe {
                    key: key.to_owned(),
                    message: "must be at least 1 (0 would refuse every connection)".to_owned(),
                })
            }
            Some(n) => *slot = n,
            None => {}
        }
    }
    Ok(limits)
}

fn zero_refuses_everyone(key: &str) -> ConfigError {
    ConfigError::Unsafe {
        key: key.to_owned(),
        message: "must be at least 1 (0 would refuse every connection)".to_owned(),
    }
}
