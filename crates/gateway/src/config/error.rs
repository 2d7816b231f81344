//! Why a configuration cannot be used, with a stable code.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid JSON5: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Unsafe { key: String, message: String },
    /// Neither a clawgate nor an OpenClaw key; the message names the closest.
    #[error("{key}: {message}")]
    UnknownKey { key: String, message: String },
    #[error("{0}")]
    Other(String),
}

impl ConfigError {
    /// A stable code for scripts and logs.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "CONFIG_UNREADABLE",
            ConfigError::Syntax { .. } => "CONFIG_SYNTAX",
            ConfigError::Invalid { .. } => "CONFIG_INVALID",
            ConfigError::Unsafe { .. } => "CONFIG_UNSAFE",
            ConfigError::UnknownKey { .. } => "CONFIG_UNKNOWN_KEY",
            ConfigError::Other(_) => "CONFIG_ERROR",
        }
    }
}
