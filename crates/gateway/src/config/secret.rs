//! A configured shared secret and where it came from.

use std::fmt;
use std::path::PathBuf;

use crate::secrets::SecretDigest;

/// Where a secret came from, so errors and `gateway token` can say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    ConfigKey(&'static str),
    Env(&'static str),
    Flag,
    /// A file named by an environment variable.
    File(PathBuf),
    Generated(PathBuf),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::ConfigKey(k) => write!(f, "config key {k}"),
            SecretSource::Env(v) => write!(f, "environment variable {v}"),
            SecretSource::Flag => f.write_str("command-line flag"),
            SecretSource::File(p) => write!(f, "secret file {}", p.display()),
            SecretSource::Generated(p) => write!(f, "generated token file {}", p.display()),
        }
    }
}

/// A shared secret as configured. Only its digest is used to compare; the
/// value is kept so `clawgate gateway token` can print it. Never logged.
#[derive(Clone)]
pub struct ResolvedSecret {
    value: String,
    digest: SecretDigest,
    pub source: SecretSource,
}

impl ResolvedSecret {
    pub fn new(value: String, source: SecretSource) -> Self {
        let digest = SecretDigest::of(value.as_bytes());
        ResolvedSecret { value, digest, source }
    }

    pub fn digest(&self) -> &SecretDigest {
        &self.digest
    }

    pub fn reveal(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for ResolvedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResolvedSecret(<redacted>, from {})", self.source)
    }
}
