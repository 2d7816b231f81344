//! `clawgate security audit`: checks of the configuration, the store and the
//! state files, as a pure function over a snapshot of each ([`audit`]).
//! Gathering the snapshot is [`host::gather`]; printing is the CLI's.
//!
//! Check ids are OpenClaw's (`gateway.*`) where a check means the same, and
//! clawgate's own otherwise; docs/operations.md lists them.

mod cluster_checks;
mod config_checks;
pub mod host;
mod store_checks;
mod store_url_checks;

use serde::Serialize;

use crate::config::Config;
use crate::store::{PairedDevice, ServicePrincipal};

/// How bad a finding is. Any critical finding makes the audit fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Critical => "critical",
        }
    }
}

/// One finding: what, how bad, which setting (or store record, or file), and
/// what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    pub key: String,
    pub message: String,
    pub fix: String,
}

impl Finding {
    fn new(
        id: &'static str,
        severity: Severity,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding { id, severity, key: key.into(), message: message.into(), fix: fix.into() }
    }
}

/// What the store holds, read once.
#[derive(Debug, Clone, Default)]
pub struct StoreSnapshot {
    pub devices: Vec<PairedDevice>,
    pub services: Vec<ServicePrincipal>,
}

/// A state or config file's ownership and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFact {
    /// What the file is (`state directory`, `store`, `token file`, `config file`).
    pub what: &'static str,
    pub path: String,
    pub mode: u32,
    pub owner_uid: u32,
}

/// Facts of the machine the audit reads.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub uid: u32,
    pub files: Vec<FileFact>,
    /// Running inside a container (Docker, Podman).
    pub in_container: bool,
    pub now_ms: u64,
}

/// Days without use (or rotation) after which a credential is worth a look.
pub const STALE_DAYS: u64 = 90;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Every finding, the most severe first (then by id and key).
pub fn audit(config: &Config, store: &StoreSnapshot, host: &HostFacts) -> Vec<Finding> {
    let mut findings = config_checks::check(config, host);
    findings.extend(store_checks::check(config, store, host.now_ms));
    findings.extend(store_url_checks::check(config, host));
    findings.extend(host::check_files(host));
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(b.id)).then(a.key.cmp(&b.key)));
    findings
}

/// Does any finding fail the audit?
pub fn has_critical(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Critical)
}

#[cfg(test)]
mod tests;
