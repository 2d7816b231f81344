//! What one rule answers, and the small helpers every rule uses to answer.

use super::super::decision::{Admission, Decided, Decision, Refusal, RefusalKind, TraceStep};
use super::super::rule_id::RuleId;

/// A decision and the trace line recording it.
pub(super) struct Verdict {
    pub decision: Decision,
    pub note: String,
}

impl Verdict {
    /// The trace line names the rule the decision names: a rule may refuse
    /// on behalf of another (a device with a service token is refused as
    /// `service-principal`), and the trace says which.
    pub fn into_decided(self, mut trace: Vec<TraceStep>) -> Decided {
        trace.push(TraceStep { rule: self.decision.rule(), decided: true, note: self.note });
        Decided { decision: self.decision, trace }
    }
}

// Short-lived, one per rule considered: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Step {
    /// The rule belongs to the other branch (connections with a proven
    /// device, or without a device block): no trace line.
    NotThisBranch,
    /// The rule does not decide; the note says why.
    Pass(String),
    Decide(Verdict),
}

pub(super) fn pass(note: impl Into<String>) -> Step {
    Step::Pass(note.into())
}

pub(super) fn refusal(rule: RuleId, kind: RefusalKind, hint: impl Into<String>) -> Verdict {
    let note = format!("refused: {}", kind.details_code());
    Verdict { decision: Decision::Refuse(Refusal { kind, rule, hint: hint.into() }), note }
}

pub(super) fn refuse(rule: RuleId, kind: RefusalKind, hint: impl Into<String>) -> Step {
    Step::Decide(refusal(rule, kind, hint))
}

pub(super) fn admit(admission: Admission, note: impl Into<String>) -> Step {
    Step::Decide(Verdict { decision: Decision::Admit(admission), note: note.into() })
}

pub(super) fn list_or_none(scopes: &[String]) -> String {
    if scopes.is_empty() {
        "no scopes".to_owned()
    } else {
        scopes.join(", ")
    }
}

pub(super) fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
