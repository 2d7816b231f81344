//! Admission: who may connect, with which role and scopes, and why.
//!
//! The edge is classified first ([`ingress`], for the HTTP upgrade); then
//! [`evaluate`] runs the whole pipeline on one `connect` — device proof,
//! credential check, store [`Lookups`], the ordered table of [`rules`] — and returns
//! a [`Decision`] naming the rule that produced it, with the trace. The
//! server applies the decision afterwards; no admission logic lives in I/O code.

pub mod credential;
pub mod credential_check;
pub mod decide;
#[cfg(test)]
mod decide_tests;
pub mod decision;
pub mod device_proof;
pub mod evaluate;
pub mod explain;
pub mod facts;
pub mod ingress;
pub mod lookups;
pub mod origin;
#[cfg(test)]
mod proxy_device_tests;
pub mod rule_id;
pub mod rules;
#[cfg(test)]
pub(crate) mod test_records;
pub mod trusted_proxy;

pub use credential::{AuthReason, Credential, CredentialCheck};
pub use decide::decide;
pub use decision::{Admission, Decided, Decision, Principal, Refusal, RefusalKind, TraceStep};
pub use evaluate::{evaluate, may_read_store, AdmittedOn, Connect, Evaluated, Proof};
pub use facts::{ConnectFacts, Locality};
pub use ingress::{classify_upgrade, EdgeFacts, UpgradeRefusal};
pub use lookups::{Lookups, StoreLookups};
pub use rule_id::RuleId;
