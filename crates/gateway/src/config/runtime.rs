//! `gateway.runtime`: how `clawgate gateway run` spreads connections over
//! the cores (docs/configuration.md; the measurements behind the default:
//! docs/benchmarks.md, "Thread-per-core").

use super::ConfigError;

/// The environment variable that overrides `gateway.runtime` (benchmarks
/// run both modes from one config).
pub const RUNTIME_ENV: &str = "CLAWGATE_RUNTIME";

/// How the gateway's connections are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeMode {
    /// One single-threaded runtime per core, each accepting on its own
    /// `SO_REUSEPORT` socket of the same port: a connection lives on the
    /// thread that accepted it.
    #[default]
    ThreadPerCore,
    /// One work-stealing runtime for everything: a connection's tasks may
    /// run on any worker thread.
    WorkStealing,
}

impl RuntimeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeMode::ThreadPerCore => "threadPerCore",
            RuntimeMode::WorkStealing => "workStealing",
        }
    }

    fn parse(text: &str) -> Option<RuntimeMode> {
        match text.trim() {
            "threadPerCore" => Some(RuntimeMode::ThreadPerCore),
            "workStealing" => Some(RuntimeMode::WorkStealing),
            _ => None,
        }
    }
}

/// The mode in force: the `--runtime` flag, else `CLAWGATE_RUNTIME`, else
/// `gateway.runtime`, else the default. A value that is neither mode is an
/// error naming where it came from.
pub fn resolve(file: Option<&str>, env: Option<&str>, flag: Option<&str>) -> Result<RuntimeMode, ConfigError> {
    let (key, text) = match (flag, env, file) {
        (Some(f), _, _) => ("--runtime", f),
        (None, Some(e), _) => (RUNTIME_ENV, e),
        (None, None, Some(f)) => ("gateway.runtime", f),
        (None, None, None) => return Ok(RuntimeMode::default()),
    };
    RuntimeMode::parse(text).ok_or_else(|| ConfigError::Unsafe {
        key: key.to_owned(),
        message: format!("{text:?} is not a runtime: use \"threadPerCore\" or \"workStealing\""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_over_the_environment_over_the_file() {
        assert_eq!(resolve(None, None, None).unwrap(), RuntimeMode::default());
        assert_eq!(resolve(Some("workStealing"), None, None).unwrap(), RuntimeMode::WorkStealing);
        assert_eq!(resolve(Some("workStealing"), Some("threadPerCore"), None).unwrap(), RuntimeMode::ThreadPerCore);
        assert_eq!(
            resolve(Some("threadPerCore"), Some("threadPerCore"), Some("workStealing")).unwrap(),
            RuntimeMode::WorkStealing
        );
    }

    #[test]
    fn an_unknown_mode_names_its_source() {
        let err = resolve(Some("tpc"), None, None).unwrap_err();
        assert!(err.to_string().starts_with("gateway.runtime:"), "{err}");
        let err = resolve(None, Some("fast"), None).unwrap_err();
        assert!(err.to_string().starts_with("CLAWGATE_RUNTIME:"), "{err}");
    }
}
