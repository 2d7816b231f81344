//! The admission rules as an ordered table: one function per rule, walked
//! in [`RuleId`] order, each answering "passed, with a note", "decided", or
//! "not this connection's branch". The first rule that decides wins; every
//! rule considered leaves a line in the trace. docs/admission.md describes
//! each rule; a test keeps its list equal to [`RuleId::ALL`].
//!
//! Two rules stand at the ends of the table rather than in it: `protocol`
//! comes first because it settles the role and protocol version every later
//! rule reads, and `no-identity` comes last because it always decides.

mod context;
mod device;
mod gate;
mod local_owner;
mod principals;
mod rest;
mod step;

use crate::config::Config;
use crate::store::DeviceView;

use super::decision::{Decided, TraceStep};
use super::facts::ConnectFacts;

use super::rule_id::RuleId;

use context::Ctx;
use step::Step;

type Rule = fn(&Ctx) -> Step;

/// Every rule between `protocol` and `no-identity`, in `RuleId` order.
const TABLE: &[(RuleId, Rule)] = &[
    (RuleId::Origin, gate::origin),
    (RuleId::Credential, gate::credential),
    (RuleId::DeviceProof, gate::device_proof),
    (RuleId::DevicePaired, device::device_paired),
    (RuleId::SilentLocalPairing, device::silent_local_pairing),
    (RuleId::ProxyDeviceAutoApprove, device::proxy_device_auto_approve),
    (RuleId::PairingRequired, device::pairing_required),
    (RuleId::LocalOwner, local_owner::local_owner),
    (RuleId::ServicePrincipal, principals::service_principal),
    (RuleId::TrustedProxy, principals::trusted_proxy),
    (RuleId::TrustedProxyLoopbackUser, principals::trusted_proxy_loopback_user),
    (RuleId::BrowserNeedsDevice, rest::browser_needs_device),
    (RuleId::Scopeless, rest::scopeless),
];

/// The rule ids in the order [`walk`] considers them.
pub fn order() -> Vec<RuleId> {
    let mut ids = vec![RuleId::Protocol];
    ids.extend(TABLE.iter().map(|(id, _)| *id));
    ids.push(RuleId::NoIdentity);
    ids
}

/// Walk the rules over one connection's facts. `view` is the store's record
/// of the proven device (read before the call), if a device proved its key.
pub(super) fn walk(facts: &ConnectFacts, config: &Config, view: Option<&DeviceView>) -> Decided {
    let mut trace = Vec::new();
    let accepted = match gate::protocol(facts) {
        Ok(accepted) => accepted,
        Err(verdict) => return verdict.into_decided(trace),
    };
    trace.push(TraceStep { rule: RuleId::Protocol, decided: false, note: accepted.note.clone() });
    let ctx = Ctx::new(facts, config, view, accepted);
    for (id, rule) in TABLE {
        match rule(&ctx) {
            Step::NotThisBranch => {}
            Step::Pass(note) => trace.push(TraceStep { rule: *id, decided: false, note }),
            Step::Decide(verdict) => return verdict.into_decided(trace),
        }
    }
    rest::no_identity(&ctx).into_decided(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_follows_rule_id_order() {
        assert_eq!(order(), RuleId::ALL);
    }

    /// The first backticked cell of each row of the `## Rules` table in
    /// docs/admission.md.
    fn documented_rule_ids(doc: &str) -> Vec<String> {
        doc.lines()
            .skip_while(|l| l.trim() != "## Rules")
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`').map(|(id, _)| id.to_owned()))
            .collect()
    }

    #[test]
    fn docs_list_the_rules_in_rule_id_order() {
        let doc = include_str!("../../../../../docs/admission.md");
        let ids: Vec<&str> = RuleId::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(documented_rule_ids(doc), ids, "docs/admission.md's rule table and RuleId::ALL differ");
    }
}
