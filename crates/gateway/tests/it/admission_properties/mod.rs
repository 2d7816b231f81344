//! Property tests of the admission invariants (docs/threat-model.md, "Invariants the property tests check"; docs/admission.md).
//!
//! Two layers are generated:
//! - the HTTP edge: socket peers in every address form, Host / Origin /
//!   forwarding headers in random case, configs with and without trusted
//!   proxies, fed to `classify_upgrade`;
//! - the connect: every credential check, role (valid or not), scopes (known,
//!   junk, duplicated), device fact and store view, fed to `decide`, either
//!   with a generated locality or with the one the edge produced.
//!
//! The invariants are written against outcomes and rule ids, not against the
//! current rule list, so rules added later are checked too. Two tripwires
//! make additions visible: `admitting_rules` (a compile error when a
//! credential kind is added: list its rules and generate it) and
//! `every_rule_is_reachable` (one hand-built connection per rule id; a new
//! rule id fails it until a connection reaching it is added).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use clawgate::admission::credential::{AuthReason, Credential, CredentialCheck};
use clawgate::admission::decision::{Decision, Role};
use clawgate::admission::device_proof::{derive_device_id, PayloadVersion, ProofError, VerifiedDevice};
use clawgate::admission::facts::{ConnectFacts, DeviceFact, Locality};
use clawgate::admission::ingress::{classify_upgrade, host_name, EdgeFacts};
use clawgate::admission::origin::is_own_loopback_origin;
use clawgate::admission::{decide, evaluate, Connect as Pipeline, Lookups, Proof, RuleId};
use clawgate::config::{AuthMode, Config, Listener, Trust, TrustedLocalService, TrustedProxyConfig};
use clawgate::net::{is_loopback, IpNet};
use clawgate::store::{
    DeviceView, ServicePrincipal as StoredPrincipal, ServiceTokenCheck, StoreError, TokenCheck, TokenInfo,
};
use clawgate_protocol::client_info::{BROWSER_CLIENT_IDS, CLIENT_IDS, CLIENT_MODES};
use clawgate_protocol::device_key::encode_public_key;
use clawgate_protocol::scopes::{covered_by, dedupe_in_order, KNOWN_SCOPES};
use clawgate_protocol::ConnectParams;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::json;

use crate::common::records::{paired_device, token_info, typed_connect_params};

mod coverage;
mod decisions;
mod edge;
mod generators;
mod invariants;

use generators::*;
use invariants::*;

const PORT: u16 = 18789;
const TOKEN: &str = "prop-token-0123456789abcdef0123456789";
const PASSWORD: &str = "prop-password";

/// Rules `decide` cannot produce yet. When one is implemented, add a fact
/// set for it to `one_fact_set_per_rule` and remove it from here.
const NOT_YET_IMPLEMENTED: &[RuleId] = &[];

/// Rules only a direct-local connection may reach (docs/threat-model.md).
const LOOPBACK_ONLY: &[RuleId] = &[RuleId::LocalOwner, RuleId::SilentLocalPairing, RuleId::TrustedProxyLoopbackUser];

/// Rules a browser never reaches (docs/threat-model.md).
const NEVER_FOR_BROWSERS: &[RuleId] = &[RuleId::LocalOwner, RuleId::TrustedProxyLoopbackUser];

/// The trusted-proxy user header the generated configs use, and the users.
const USER_HEADER: &str = "X-Auth-User";
const REQUIRED_HEADER: &str = "X-Auth-Email";
const USERS: &[&str] = &["alice", "bob", "svc-user"];

fn proptest_config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------
// Tripwires: a new credential kind must be listed and generated.

/// The rules that may admit a connection holding each credential kind (the
/// docs/threat-model.md H1, the "Accepts" column of docs/admission.md). Exhaustive
/// on purpose: a new kind fails to compile here until its rules are listed
/// and `arb_credential` generates it.
fn admitting_rules(c: &Credential) -> &'static [RuleId] {
    match c {
        Credential::SharedToken | Credential::SharedPassword | Credential::NoneMode => {
            &[RuleId::LocalOwner, RuleId::SilentLocalPairing, RuleId::DevicePaired, RuleId::Scopeless]
        }
        Credential::DeviceToken { .. } => &[RuleId::DevicePaired],
        Credential::ServiceToken { .. } => &[RuleId::ServicePrincipal],
        Credential::ProxyUser { via_loopback_user: false, .. } => {
            &[RuleId::TrustedProxy, RuleId::DevicePaired, RuleId::ProxyDeviceAutoApprove, RuleId::Scopeless]
        }
        // The loopback user may pair a device too: it is a proxy user, and the
        // device gets no more than the user has without one.
        Credential::ProxyUser { via_loopback_user: true, .. } => {
            &[RuleId::TrustedProxyLoopbackUser, RuleId::DevicePaired, RuleId::ProxyDeviceAutoApprove, RuleId::Scopeless]
        }
    }
}

/// The same for the outcome of a check: a new kind of check must be generated.
#[allow(dead_code)]
fn credential_checks_known(check: &CredentialCheck) -> &'static str {
    match check {
        CredentialCheck::Verified(_) => "verified",
        CredentialCheck::Absent => "absent",
        CredentialCheck::Failed(_) => "failed",
        CredentialCheck::RateLimited { .. } => "rate-limited",
    }
}
