//! The small steps every rule of the decision takes: record a rule that
//! passed, refuse with a rule, and what counts as the owner's secret. Kept
//! apart so the decision and its device branch both use them without
//! importing each other.

use crate::config::Config;

use super::credential::{Credential, CredentialCheck};
use super::decision::{Decision, Refusal, RefusalKind, TraceStep};
use super::rules::RuleId;

pub(super) fn pass(trace: &mut Vec<TraceStep>, rule: RuleId, note: impl Into<String>) {
    trace.push(TraceStep { rule, decided: false, note: note.into() });
}

pub(super) fn refuse(trace: &mut Vec<TraceStep>, rule: RuleId, kind: RefusalKind, hint: impl Into<String>) -> Decision {
    let hint = hint.into();
    trace.push(TraceStep { rule, decided: true, note: format!("refused: {}", kind.details_code()) });
    Decision::Refuse(Refusal { kind, rule, hint })
}

/// The owner's secret: the shared token or password, or mode none on a loopback bind.
pub(super) fn owner_secret<'a>(check: &'a CredentialCheck, config: &Config) -> Option<&'a Credential> {
    check.verified().filter(|c| match c {
        Credential::SharedToken | Credential::SharedPassword => true,
        Credential::NoneMode => config.is_loopback_bind(),
        // Holding some credential never counts as holding the owner's (H1).
        Credential::DeviceToken { .. } | Credential::ServiceToken { .. } | Credential::ProxyUser { .. } => false,
    })
}

pub(super) fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
