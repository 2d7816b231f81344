//! Admission: who may connect, with which role and scopes, and why.
//!
//! Facts are gathered at the edge ([`ingress`] for the HTTP upgrade,
//! [`credential`] for the presented secret), then [`decide`] — a pure
//! function — returns a [`Decision`] naming the rule that produced it. The
//! server applies the decision afterwards; no admission logic lives in I/O code.

pub mod credential;
pub mod decide;
#[cfg(test)]
mod decide_tests;
pub mod decision;
mod device_branch;
pub mod device_proof;
pub mod explain;
pub mod facts;
pub mod ingress;
pub mod origin;
pub mod rules;
pub mod trusted_proxy;

pub use credential::{AuthReason, Credential, CredentialCheck};
pub use decide::decide;
pub use decision::{Admission, Decided, Decision, Principal, Refusal, RefusalKind, TraceStep};
pub use facts::{ConnectFacts, Locality};
pub use ingress::{classify_upgrade, EdgeFacts, UpgradeRefusal};
pub use rules::RuleId;
