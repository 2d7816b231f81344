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

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clawgate::admission::credential::{AuthReason, Credential, CredentialCheck};
use clawgate::admission::decision::{Decision, Role};
use clawgate::admission::device_proof::{derive_device_id, PayloadVersion, ProofError, VerifiedDevice};
use clawgate::admission::facts::{ConnectFacts, DeviceFact, Locality};
use clawgate::admission::ingress::{classify_upgrade, host_name, EdgeFacts};
use clawgate::admission::origin::is_own_loopback_origin;
use clawgate::admission::{decide, evaluate, Connect as Pipeline, Lookups, Proof, RuleId};
use clawgate::config::{AuthMode, Config, TrustedLocalService, TrustedProxyConfig};
use clawgate::net::{is_loopback, IpNet};
use clawgate::store::{
    ApprovedVia, DeviceView, PairedDevice, ServicePrincipal as StoredPrincipal, ServiceTokenCheck, StoreError,
    TokenCheck, TokenInfo,
};
use clawgate_protocol::client_info::{BROWSER_CLIENT_IDS, CLIENT_IDS, CLIENT_MODES};
use clawgate_protocol::scopes::{covered_by, dedupe_in_order, KNOWN_SCOPES};
use clawgate_protocol::ConnectParams;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::json;

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
            &[RuleId::TrustedProxy, RuleId::DevicePaired, RuleId::Scopeless]
        }
        Credential::ProxyUser { via_loopback_user: true, .. } => &[RuleId::TrustedProxyLoopbackUser, RuleId::Scopeless],
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

// ---------------------------------------------------------------------------
// Generators.

fn arb_config() -> impl Strategy<Value = Config> {
    let modes = select(vec![AuthMode::None, AuthMode::Token, AuthMode::Password, AuthMode::TrustedProxy]);
    let binds = select(vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::from([0, 0, 0, 0]),
        IpAddr::from([192, 0, 2, 10]),
    ]);
    let proxies = subsequence(vec!["127.0.0.1/32", "::1/128", "10.0.0.0/8", "203.0.113.0/24", "2001:db8::/32"], 0..=3);
    let origins = subsequence(vec!["https://ui.example", "http://localhost:3000", "*"], 0..=2);
    // local-owner mostly on: it is the default, and most admissions need it.
    let base = (modes, binds, prop::bool::weighted(0.8), any::<bool>(), proxies, origins);
    let extra = (arb_trusted_proxy(), arb_identity_scopes(), arb_local_services());
    (base, extra).prop_map(
        |((mode, bind, local_owner, auto_approve_local, proxies, origins), (tp, identity_scopes, services))| {
            let mut c = Config::for_tests(mode, Some(TOKEN), Some(PASSWORD));
            c.bind = bind;
            c.local_owner = local_owner;
            c.auto_approve_local = auto_approve_local;
            c.trusted_proxies = proxies.iter().map(|p| p.parse::<IpNet>().unwrap()).collect();
            c.allowed_origins = origins.iter().map(|o| (*o).to_owned()).collect();
            // Set exactly in trusted-proxy mode, as config loading does.
            c.trusted_proxy = (mode == AuthMode::TrustedProxy).then_some(tp);
            c.identity_scopes = identity_scopes;
            c.trusted_local_services = services;
            c
        },
    )
}

/// `gateway.auth.trustedProxy`: allowLoopback, loopbackUser, allowUsers, requiredHeaders.
fn arb_trusted_proxy() -> impl Strategy<Value = TrustedProxyConfig> {
    (
        any::<bool>(),
        select(vec![None, Some("svc-user"), Some("alice")]),
        subsequence(USERS.to_vec(), 0..=2),
        any::<bool>(),
    )
        .prop_map(|(allow_loopback, loopback_user, allow_users, required)| {
            let required: &[&str] = if required { &[REQUIRED_HEADER] } else { &[] };
            let mut tp = TrustedProxyConfig::new(USER_HEADER, required);
            tp.allow_loopback = allow_loopback;
            tp.loopback_user = loopback_user.map(str::to_owned);
            tp.allow_users = allow_users.into_iter().map(str::to_owned).collect();
            tp
        })
}

/// `gateway.auth.identityScopes`: some users, maybe the `*` entry.
fn arb_identity_scopes() -> impl Strategy<Value = BTreeMap<String, Vec<String>>> {
    (arb_scope_set(), arb_scope_set(), any::<bool>(), any::<bool>()).prop_map(|(alice, other, has_alice, has_star)| {
        let mut m = BTreeMap::new();
        if has_alice {
            m.insert("alice".to_owned(), alice);
        }
        if has_star {
            m.insert("*".to_owned(), other);
        }
        m
    })
}

/// `gateway.trustedLocalServices`: unset, or a few entries.
fn arb_local_services() -> impl Strategy<Value = Option<Vec<TrustedLocalService>>> {
    let entry = (
        select(vec![("cli", "cli"), ("gateway-client", "backend"), ("node-host", "node"), ("openclaw-tui", "ui")]),
        subsequence(vec![Role::Operator, Role::Node], 1..=2),
        prop::option::of(arb_scope_set()),
    )
        .prop_map(|((id, mode), roles, max_scopes)| TrustedLocalService {
            client_id: id.to_owned(),
            mode: mode.to_owned(),
            roles,
            max_scopes,
        });
    prop_oneof![3 => Just(None), 1 => prop::collection::vec(entry, 0..3).prop_map(Some)]
}

/// An IPv4 address: loopback, private, documentation, or any.
fn arb_v4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        any::<[u8; 3]>().prop_map(|[a, b, c]| Ipv4Addr::new(127, a, b, c)),
        any::<u8>().prop_map(|d| Ipv4Addr::new(10, 0, 0, d)),
        any::<u8>().prop_map(|d| Ipv4Addr::new(203, 0, 113, d)),
        any::<u8>().prop_map(|d| Ipv4Addr::new(198, 51, 100, d)),
        any::<[u8; 4]>().prop_map(Ipv4Addr::from),
    ]
}

/// Socket peers in every form: v4, v4-mapped, ::1, IPv4-compatible, NAT64, other v6.
fn arb_peer() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => arb_v4().prop_map(IpAddr::V4),
        2 => arb_v4().prop_map(|v4| IpAddr::V6(v4.to_ipv6_mapped())),
        1 => Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        1 => arb_v4().prop_map(|v4| IpAddr::V6(v4.to_ipv6_compatible())),
        1 => arb_v4().prop_map(|v4| IpAddr::V6(nat64(v4))),
        1 => any::<u16>().prop_map(|x| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, x))),
        1 => Just(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    ]
}

fn nat64(v4: Ipv4Addr) -> Ipv6Addr {
    let [a, b, c, d] = v4.octets();
    Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))
}

fn arb_host() -> impl Strategy<Value = String> {
    select(vec![
        "localhost",
        "localhost:18789",
        "LOCALHOST.:18789",
        "127.0.0.1:18789",
        "[::1]:18789",
        "[::1]",
        "gw.example",
        "10.0.0.5:18789",
        "rebind.attacker.example:18789",
        "localhost.attacker.example",
        "127.0.0.1.nip.io",
        "",
    ])
    .prop_map(str::to_owned)
}

/// None, own loopback origins, allowed-listed, foreign, `null`, empty.
fn arb_origin() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        1 => select(vec![
            "http://localhost:18789",
            "http://127.0.0.1:18789",
            "https://[::1]:18789",
            "https://ui.example",
            "http://localhost:3000",
            "http://evil.example",
            "https://localhost.evil.example:18789",
            "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
            "null",
            "",
        ])
        .prop_map(|o| Some(o.to_owned())),
    ]
}

/// Known scopes plus junk, duplicates allowed, in any order.
fn arb_scopes() -> impl Strategy<Value = Vec<String>> {
    let mut pool: Vec<&'static str> = KNOWN_SCOPES.to_vec();
    pool.extend(["admin", "operator.anything", "node", "OPERATOR.ADMIN", "operator.read "]);
    prop_oneof![
        1 => Just(Vec::new()),
        2 => prop::collection::vec(select(pool), 1..5).prop_map(|v| v.into_iter().map(str::to_owned).collect()),
    ]
}

fn arb_scope_set() -> impl Strategy<Value = Vec<String>> {
    subsequence(KNOWN_SCOPES.to_vec(), 0..=4).prop_map(|v| v.into_iter().map(str::to_owned).collect())
}

/// The requested role: absent, valid, or not a role at all.
fn arb_role() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        3 => Just(Some("operator".to_owned())),
        3 => Just(Some("node".to_owned())),
        1 => select(vec!["admin", "Operator", "worker", "owner"]).prop_map(|r| Some(r.to_owned())),
    ]
}

/// Client id and mode: mostly the pairs real programs send, sometimes any
/// pair of the known ids and modes (browsers and workers included).
fn arb_client() -> impl Strategy<Value = (String, String)> {
    let programs = vec![
        ("cli", "cli"),
        ("gateway-client", "backend"),
        ("node-host", "node"),
        ("openclaw-tui", "ui"),
        ("openclaw-probe", "probe"),
        ("openclaw-macos", "ui"),
        ("test", "test"),
    ];
    prop_oneof![
        3 => select(programs).prop_map(|(i, m)| (i.to_owned(), m.to_owned())),
        2 => (select(CLIENT_IDS.to_vec()), select(CLIENT_MODES.to_vec()))
            .prop_map(|(i, m)| (i.to_owned(), m.to_owned())),
    ]
}

fn arb_protocol() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![6 => Just((4, 4)), 1 => select(vec![(3, 3), (3, 4), (1, 2), (5, 6), (3, 5), (1, 4)])]
}

/// Three device keys; the generated device facts, views and device tokens
/// pick among them so that ids match often and differ sometimes.
fn device(key_index: u8) -> VerifiedDevice {
    let key = [key_index + 1; 32];
    VerifiedDevice {
        device_id: derive_device_id(&key),
        public_key: key,
        public_key_b64url: URL_SAFE_NO_PAD.encode(key),
        payload_version: PayloadVersion::V3,
    }
}

fn arb_proof_error() -> impl Strategy<Value = ProofError> {
    select(vec![
        ProofError::DeviceIdMismatch,
        ProofError::SignatureExpired,
        ProofError::NonceRequired,
        ProofError::NonceMismatch,
        ProofError::SignatureInvalid,
        ProofError::PublicKeyInvalid,
    ])
}

fn arb_device_fact() -> impl Strategy<Value = DeviceFact> {
    prop_oneof![
        3 => Just(DeviceFact::None),
        3 => (0u8..3).prop_map(|k| DeviceFact::Proven(device(k))),
        1 => arb_proof_error().prop_map(DeviceFact::Failed),
    ]
}

fn arb_store_role() -> impl Strategy<Value = Role> {
    select(vec![Role::Operator, Role::Node])
}

/// Every kind of credential check, with the failure reasons the real checks produce.
fn arb_credential() -> impl Strategy<Value = CredentialCheck> {
    prop_oneof![
        3 => Just(CredentialCheck::Verified(Credential::SharedToken)),
        1 => Just(CredentialCheck::Verified(Credential::SharedPassword)),
        2 => Just(CredentialCheck::Verified(Credential::NoneMode)),
        3 => (0u8..3, arb_store_role(), arb_scope_set()).prop_map(|(k, role, scopes)| {
            CredentialCheck::Verified(Credential::DeviceToken { device_id: device(k).device_id, role, scopes })
        }),
        2 => Just(CredentialCheck::Absent),
        2 => select(vec![
            AuthReason::TokenMismatch,
            AuthReason::TokenMissingConfig,
            AuthReason::PasswordMismatch,
            AuthReason::PasswordMissingConfig,
            AuthReason::DeviceTokenMismatch,
        ])
        .prop_map(CredentialCheck::Failed),
        1 => (1u64..300_000).prop_map(|ms| CredentialCheck::RateLimited { retry_after_ms: ms }),
        2 => (arb_store_role(), arb_scope_set()).prop_map(|(role, scopes)| {
            // The store gives node principals no scopes.
            let scopes = if role == Role::Node { Vec::new() } else { scopes };
            CredentialCheck::Verified(Credential::ServiceToken {
                principal: "cron".into(),
                principal_id: "0123456789abcdef".into(),
                role,
                scopes,
                issued_at_ms: 1,
            })
        }),
        2 => (select(USERS.to_vec()), any::<bool>()).prop_map(|(user, via_loopback_user)| {
            CredentialCheck::Verified(Credential::ProxyUser { user: user.to_owned(), via_loopback_user })
        }),
    ]
}

/// What was sent in `auth` (only the presence of fields matters to `decide`).
fn arb_auth() -> impl Strategy<Value = serde_json::Value> {
    select(vec![
        json!(null),
        json!({ "token": "t" }),
        json!({ "password": "p" }),
        json!({ "deviceToken": "d" }),
        json!({ "token": "t", "deviceToken": "d" }),
        json!({ "token": TOKEN }),
        json!({ "password": PASSWORD }),
        json!({ "token": GOOD_SERVICE_TOKEN }),
        json!({ "token": "cgs_0123456789abcdef_wrong" }),
    ])
}

/// The one service token the generated store knows.
const GOOD_SERVICE_TOKEN: &str = "cgs_0123456789abcdef_good";

/// The server's pipeline (`admission::evaluate`) over a generated store:
/// the view's live device tokens answer to `"d"`, and one service principal
/// (`cron`, operator, [read, write]) to [`GOOD_SERVICE_TOKEN`]. The device
/// proof is the generated one. Returns the facts the pipeline gathered.
fn real_facts(c: &Connect, config: &Config, edge: &EdgeFacts, locality: Locality) -> ConnectFacts {
    let connect = Pipeline {
        edge,
        locality,
        params: c.params.clone(),
        proof: Proof::Known(c.device.clone()),
        now_ms: 1,
        locked_out_ms: None,
    };
    evaluate(connect, config, &mut GeneratedStore(c.view.as_ref())).expect("the generated store never fails").facts
}

struct GeneratedStore<'a>(Option<&'a DeviceView>);

impl Lookups for GeneratedStore<'_> {
    fn device_token(&mut self, id: &str, role: Role, presented: &str) -> Result<TokenCheck, StoreError> {
        let live =
            self.0.and_then(|v| v.tokens.iter().find(|t| t.device_id == id && t.role == role && !t.is_revoked()));
        Ok(match live {
            Some(t) if presented == "d" => TokenCheck::Valid { scopes: t.scopes.clone() },
            _ => TokenCheck::Mismatch,
        })
    }

    fn service_token(&mut self, presented: &str) -> Result<ServiceTokenCheck, StoreError> {
        if presented != GOOD_SERVICE_TOKEN {
            return Ok(ServiceTokenCheck::Unknown);
        }
        Ok(ServiceTokenCheck::Valid(StoredPrincipal {
            principal_id: "0123456789abcdef".into(),
            name: "cron".into(),
            role: Role::Operator,
            scopes: vec!["operator.read".into(), "operator.write".into()],
            created_at_ms: 1,
            rotated_at_ms: None,
            revoked_at_ms: None,
            last_used_at_ms: None,
        }))
    }

    fn device_view(&mut self, _: &str) -> Result<DeviceView, StoreError> {
        Ok(self.0.cloned().unwrap_or(DeviceView { generation: 1, device: None, tokens: Vec::new() }))
    }
}

/// The store's record of the proven device: none, unpaired, or paired
/// (with its key or another one) for some roles and scopes, with tokens.
fn arb_view(proven: Option<VerifiedDevice>) -> impl Strategy<Value = Option<DeviceView>> {
    let paired = (
        any::<bool>(),
        subsequence(vec![Role::Operator, Role::Node], 1..=2),
        arb_scope_set(),
        select(vec![None, Some("linux"), Some("macos")]),
        select(vec![None, Some("Mac")]),
        prop::collection::vec((arb_store_role(), arb_scope_set(), any::<bool>()), 0..=2),
    );
    let id = proven.as_ref().map_or_else(|| device(0).device_id, |d| d.device_id.clone());
    let key = proven.map_or_else(|| device(0).public_key_b64url, |d| d.public_key_b64url);
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(DeviceView { generation: 1, device: None, tokens: Vec::new() })),
        4 => paired.prop_map(move |(same_key, roles, scopes, platform, family, tokens)| {
            let device = PairedDevice {
                device_id: id.clone(),
                public_key: if same_key { key.clone() } else { device(2).public_key_b64url },
                display_name: None,
                label: None,
                platform: platform.map(str::to_owned),
                device_family: family.map(str::to_owned),
                client_id: None,
                client_mode: None,
                roles,
                approved_scopes: scopes,
                approved_via: ApprovedVia::Owner,
                created_at_ms: 1,
                approved_at_ms: 1,
                last_seen_at_ms: None,
                remote_ip: None,
            };
            let tokens = tokens
                .into_iter()
                .map(|(role, scopes, revoked)| TokenInfo {
                    device_id: id.clone(),
                    role,
                    scopes,
                    created_at_ms: 1,
                    rotated_at_ms: None,
                    revoked_at_ms: revoked.then_some(2),
                    last_used_at_ms: None,
                })
                .collect();
            Some(DeviceView { generation: 2, device: Some(device), tokens })
        }),
    ]
}

/// Everything of a connect but its locality.
#[derive(Debug, Clone)]
struct Connect {
    origin: Option<String>,
    sec_fetch: bool,
    params: ConnectParams,
    credential: CredentialCheck,
    device: DeviceFact,
    view: Option<DeviceView>,
}

impl Connect {
    fn facts(&self, locality: Locality) -> ConnectFacts {
        ConnectFacts {
            locality,
            origin: self.origin.clone(),
            sec_fetch: self.sec_fetch,
            listener_port: PORT,
            params: self.params.clone(),
            credential: self.credential.clone(),
            device: self.device.clone(),
        }
    }
}

fn params(
    client: &(String, String),
    role: &Option<String>,
    scopes: &[String],
    (min, max): (u64, u64),
    device: &DeviceFact,
    auth: &serde_json::Value,
) -> ConnectParams {
    let mut p = json!({
        "minProtocol": min, "maxProtocol": max,
        "client": { "id": client.0, "version": "1.0.0", "platform": "linux", "mode": client.1 },
        "scopes": scopes,
    });
    if let Some(r) = role {
        p["role"] = json!(r);
    }
    let id = match device {
        DeviceFact::None => None,
        DeviceFact::Proven(d) => Some(d.device_id.clone()),
        DeviceFact::Failed(_) => Some(device_id_text(0)),
    };
    if let Some(id) = id {
        p["device"] = json!({ "id": id, "publicKey": "k", "signature": "s", "signedAt": 1, "nonce": "n" });
    }
    if !auth.is_null() {
        p["auth"] = auth.clone();
    }
    serde_json::from_value(p).expect("connect params")
}

fn device_id_text(k: u8) -> String {
    device(k).device_id
}

fn arb_connect_with(origin: BoxedStrategy<Option<String>>) -> impl Strategy<Value = Connect> {
    let head = (origin, any::<bool>(), arb_client(), arb_role(), arb_scopes(), arb_protocol());
    let tail = (arb_credential(), arb_device_fact(), arb_auth());
    (head, tail, any::<bool>()).prop_flat_map(
        |((origin, sec_fetch, client, role, scopes, protocol), (credential, device, auth), sec_fetch_bias)| {
            let p = params(&client, &role, &scopes, protocol, &device, &auth);
            // Sec-Fetch-* is rare for programs: keep it in a quarter of the cases.
            let sec_fetch = sec_fetch && sec_fetch_bias;
            arb_view(device.proven().cloned()).prop_map(move |view| Connect {
                origin: origin.clone(),
                sec_fetch,
                params: p.clone(),
                credential: credential.clone(),
                device: device.clone(),
                view,
            })
        },
    )
}

fn arb_connect() -> impl Strategy<Value = Connect> {
    arb_connect_with(arb_origin().boxed())
}

fn arb_locality() -> impl Strategy<Value = Locality> {
    prop_oneof![
        1 => Just(Locality::DirectLocal),
        1 => (arb_peer(), any::<bool>())
            .prop_map(|(ip, via_proxy)| Locality::Remote { client_ip: ip.to_canonical(), via_proxy }),
    ]
}

// ---------------------------------------------------------------------------
// The invariants of one decision.

/// Refuse < PairingRequired < Admit.
fn rank(d: &Decision) -> u8 {
    match d {
        Decision::Refuse(_) => 0,
        Decision::PairingRequired(_) => 1,
        Decision::Admit(_) => 2,
    }
}

/// The rules a refusal code may come from (docs/threat-model.md: each
/// refusal code maps to exactly one rule). The one exception is by design:
/// every admitting rule refuses, never trims, what exceeds its ceiling
/// (docs/admission.md), with `SCOPE_NOT_GRANTED` and a reason naming the ceiling.
fn rules_of_code(code: &str) -> &'static [RuleId] {
    const ADMITTING: &[RuleId] = &[
        RuleId::LocalOwner,
        RuleId::DevicePaired,
        RuleId::ServicePrincipal,
        RuleId::TrustedProxy,
        RuleId::TrustedProxyLoopbackUser,
    ];
    match code {
        "PROTOCOL_MISMATCH" | "INVALID_ROLE" | "INVALID_HANDSHAKE" => &[RuleId::Protocol],
        "CONTROL_UI_ORIGIN_NOT_ALLOWED" => &[RuleId::Origin],
        "AUTH_SCOPE_MISMATCH" => &[RuleId::DevicePaired],
        c if c.starts_with("AUTH_") => &[RuleId::Credential],
        c if c.starts_with("DEVICE_AUTH_") => &[RuleId::DeviceProof],
        "SCOPE_NOT_GRANTED" | "ROLE_NOT_GRANTED" => ADMITTING,
        "LOCAL_SERVICE_SCOPE_CEILING" => &[RuleId::LocalOwner],
        "SERVICE_TOKEN_WITH_DEVICE" => &[RuleId::ServicePrincipal],
        "TRUSTED_PROXY_DEVICE_UNSUPPORTED" => &[RuleId::TrustedProxy],
        "CONTROL_UI_DEVICE_IDENTITY_REQUIRED" => &[RuleId::BrowserNeedsDevice],
        "DEVICE_IDENTITY_REQUIRED" => &[RuleId::NoIdentity],
        _ => &[],
    }
}

/// Check every single-decision invariant; `Err` names the one that failed.
fn check_decision(f: &ConnectFacts, config: &Config, view: Option<&DeviceView>) -> Result<Decision, TestCaseError> {
    let decided = decide(f, config, view);
    let d = &decided.decision;
    let rule = d.rule();
    let requested = dedupe_in_order(f.params.scopes());

    // The trace ends with exactly one deciding step, naming the rule.
    let deciding: Vec<_> = decided.trace.iter().filter(|s| s.decided).collect();
    prop_assert_eq!(deciding.len(), 1, "exactly one rule decides: {:?}", decided.trace);
    prop_assert_eq!(decided.trace.last().map(|s| s.rule), Some(rule), "the deciding rule is last");

    // Rules not implemented never decide.
    prop_assert!(!NOT_YET_IMPLEMENTED.contains(&rule), "{} decided: update NOT_YET_IMPLEMENTED", rule);

    // Remote never reaches a loopback-only rule (§2.2); while a trusted
    // proxy covers loopback, a loopback connection may be proxied, so there
    // is no silent pairing (docs/threat-model.md, H2).
    if !f.locality.is_direct_local() {
        prop_assert!(!LOOPBACK_ONLY.contains(&rule), "remote connection decided by {}", rule);
    }
    if config.loopback_is_trusted_proxy() {
        prop_assert_ne!(rule, RuleId::SilentLocalPairing, "silent pairing behind a loopback proxy");
    }

    // A browser never reaches local-owner or the loopback user; a silently
    // paired browser came from the gateway's own loopback origin (§2.3).
    if f.is_browser() {
        prop_assert!(!NEVER_FOR_BROWSERS.contains(&rule), "a browser reached {}", rule);
        if rule == RuleId::SilentLocalPairing {
            let own = f.origin.as_deref().is_some_and(|o| is_own_loopback_origin(o, PORT));
            prop_assert!(own, "browser paired silently from origin {:?}", f.origin);
        }
    }

    // A failed, rate-limited or unproven check never gets further (§2 rules 3, 4).
    if matches!(f.credential, CredentialCheck::Failed(_) | CredentialCheck::RateLimited { .. }) {
        prop_assert_eq!(rank(d), 0, "a failed credential check was not refused");
    }
    if matches!(f.device, DeviceFact::Failed(_)) {
        prop_assert_eq!(rank(d), 0, "a failed device proof was not refused");
    }

    // A device token is only ever accepted with a proof of the same device,
    // for the role it was issued for (§2.5).
    if let CredentialCheck::Verified(Credential::DeviceToken { device_id, role, .. }) = &f.credential {
        if rank(d) > 0 {
            let proven = f.device.proven().map(|p| p.device_id.as_str());
            prop_assert_eq!(proven, Some(device_id.as_str()), "device token accepted for another device");
            prop_assert_eq!(Some(*role), Role::parse(f.params.role()), "device token accepted for another role");
        }
    }

    match d {
        Decision::Admit(a) => {
            // Exact grant (§2.4): what was asked, deduplicated, nothing else.
            prop_assert_eq!(&a.scopes, &requested, "admitted scopes differ from the request");
            prop_assert_eq!(a.role.as_str(), f.params.role(), "admitted role differs from the request");
            if a.role == Role::Node {
                prop_assert!(a.scopes.is_empty(), "node admitted with scopes by {}", a.rule);
            }

            // A verified credential, the one that verified (§2.6); mode none
            // counts only on a loopback bind.
            let verified = f.credential.verified();
            prop_assert_eq!(verified, Some(&a.credential), "admitted without that verified credential");
            if a.credential == Credential::NoneMode {
                prop_assert!(config.is_loopback_bind(), "mode none admitted on a non-loopback bind");
            }

            // Credential kinds per rule (§2.5), and each kind's ceiling.
            let allowed = admitting_rules(&a.credential);
            prop_assert!(allowed.contains(&a.rule), "{} admitted a {}", a.rule, a.credential.kind_name());
            match &a.credential {
                Credential::DeviceToken { scopes, .. } => {
                    prop_assert!(covered_by(&a.scopes, scopes), "admitted beyond the device token's scopes");
                }
                Credential::ServiceToken { role, scopes, .. } => {
                    prop_assert_eq!(a.role, *role, "a service principal admitted in another role");
                    prop_assert!(covered_by(&a.scopes, scopes), "admitted beyond the service principal's scopes");
                    prop_assert!(matches!(f.device, DeviceFact::None), "a service token with a device block");
                }
                Credential::ProxyUser { user, .. } if a.rule != RuleId::Scopeless => {
                    prop_assert_eq!(a.role, Role::Operator, "a proxy user admitted as node");
                    let ceiling = config.identity_scopes_for(user);
                    prop_assert!(covered_by(&a.scopes, ceiling), "admitted beyond {}'s identityScopes", user);
                }
                _ => {}
            }
            if a.rule == RuleId::Scopeless {
                prop_assert!(a.scopes.is_empty() && a.role == Role::Operator, "scopeless granted something");
            }

            // trustedLocalServices limits local-owner to the listed clients,
            // their roles and ceilings; it refuses, never trims (§2 local-owner).
            if let (RuleId::LocalOwner, Some(services)) = (a.rule, &config.trusted_local_services) {
                let c = &f.params.client;
                let entry = services.iter().find(|s| s.client_id == c.id && s.mode == c.mode);
                prop_assert!(entry.is_some(), "local-owner admitted {}/{}, not listed", c.id, c.mode);
                let entry = entry.unwrap();
                prop_assert!(entry.roles.contains(&a.role), "local-owner admitted a role not listed");
                if let Some(max) = &entry.max_scopes {
                    prop_assert!(covered_by(&a.scopes, max), "local-owner admitted above maxScopes");
                }
            }

            // A device admission is for the proven device, and only a
            // device-branch rule admits a device.
            match (&a.device, f.device.proven()) {
                (Some(ad), Some(p)) => prop_assert_eq!(&ad.device, p),
                (None, None) => {}
                (ad, p) => prop_assert!(false, "admitted device {:?} but proven {:?}", ad, p),
            }
        }
        Decision::PairingRequired(n) => {
            // A request is opened only for a proven device, for exactly what was asked.
            prop_assert_eq!(Some(&n.device), f.device.proven(), "pairing request for an unproven device");
            prop_assert_eq!(&n.scopes, &requested);
            prop_assert_eq!(n.role.as_str(), f.params.role());
            let cred = f.credential.verified();
            prop_assert!(
                cred.is_some_and(|c| admitting_rules(c).contains(&RuleId::DevicePaired)),
                "a pairing request on {:?}",
                f.credential
            );
        }
        Decision::Refuse(r) => {
            let code = r.kind.details_code();
            prop_assert!(rules_of_code(code).contains(&r.rule), "refusal code {} from rule {}", code, r.rule);
            prop_assert!(!r.hint.is_empty(), "a refusal without a hint");
        }
    }
    Ok(decided.decision)
}

// ---------------------------------------------------------------------------
// Properties of `decide`.

proptest! {
    #![proptest_config(proptest_config(1500))]

    /// Every invariant of a single decision, on generated localities.
    #[test]
    fn decisions_keep_every_invariant(c in arb_connect(), locality in arb_locality(), config in arb_config()) {
        check_decision(&c.facts(locality), &config, c.view.as_ref())?;
    }

    /// Turning a direct-local connection into a remote one never raises the
    /// outcome (Refuse < PairingRequired < Admit), for any remote address.
    #[test]
    fn remote_never_gains(
        c in arb_connect(),
        ip in arb_peer(),
        via_proxy in any::<bool>(),
        config in arb_config(),
    ) {
        let local = check_decision(&c.facts(Locality::DirectLocal), &config, c.view.as_ref())?;
        let remote = Locality::Remote { client_ip: ip.to_canonical(), via_proxy };
        let remote = check_decision(&c.facts(remote), &config, c.view.as_ref())?;
        prop_assert!(rank(&remote) <= rank(&local), "remote {:?} beats local {:?}", remote, local);
    }
}

fn arb_browser_signal() -> impl Strategy<Value = (Option<String>, bool, Option<(String, String)>)> {
    let origins = select(vec![
        "null",
        "",
        "http://localhost:18789",
        "http://127.0.0.1:18789",
        "https://ui.example",
        "http://localhost:3000",
        "http://evil.example",
    ]);
    prop_oneof![
        origins.prop_map(|o| (Some(o.to_owned()), false, None)),
        Just((None, true, None)),
        (select(BROWSER_CLIENT_IDS.to_vec()), select(CLIENT_MODES.to_vec())).prop_map(|(id, mode)| (
            None,
            false,
            Some((id.to_owned(), mode.to_owned()))
        )),
        select(CLIENT_IDS.to_vec()).prop_map(|id| (None, false, Some((id.to_owned(), "webchat".to_owned())))),
    ]
}

proptest! {
    #![proptest_config(proptest_config(800))]

    /// A browser — any Origin (also `null` and empty), any Sec-Fetch-*
    /// header, a browser client id or mode webchat — never reaches
    /// local-owner or the loopback user, even direct-local with the owner's
    /// secret (or as the loopback user) and no device.
    #[test]
    fn browsers_never_reach_local_owner(
        c in arb_connect(),
        (origin, sec_fetch, client) in arb_browser_signal(),
        owner in select(vec![
            Credential::SharedToken,
            Credential::SharedPassword,
            Credential::NoneMode,
            Credential::ProxyUser { user: "svc-user".into(), via_loopback_user: true },
        ]),
        config in arb_config(),
    ) {
        let mut c = c;
        if origin.is_some() {
            c.origin = origin;
        }
        c.sec_fetch |= sec_fetch;
        if let Some((id, mode)) = client {
            c.params.client.id = id;
            c.params.client.mode = mode;
        }
        c.credential = CredentialCheck::Verified(owner);
        c.device = DeviceFact::None;
        c.params.device = None;
        let f = c.facts(Locality::DirectLocal);
        prop_assert!(f.is_browser());
        let d = check_decision(&f, &config, None)?;
        prop_assert!(!NEVER_FOR_BROWSERS.contains(&d.rule()));
    }

    /// Nothing is admitted, and no pairing request opened, without a
    /// verified credential: none presented, a wrong one, or a locked-out address.
    #[test]
    fn no_admission_without_a_credential(
        c in arb_connect(),
        locality in arb_locality(),
        config in arb_config(),
        absent in prop_oneof![
            Just(CredentialCheck::Absent),
            Just(CredentialCheck::Failed(AuthReason::TokenMismatch)),
            Just(CredentialCheck::RateLimited { retry_after_ms: 1000 }),
        ],
    ) {
        let mut c = c;
        c.credential = absent;
        let d = check_decision(&c.facts(locality), &config, c.view.as_ref())?;
        prop_assert!(matches!(d, Decision::Refuse(_)), "not refused without a credential: {:?}", d);
    }
}

// ---------------------------------------------------------------------------
// Properties of the HTTP edge (`classify_upgrade`).

/// Header names that are proxy evidence, in the form proxies send them.
const EVIDENCE: &[&str] = &[
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Anything",
    "Forwarded",
    "X-Real-IP",
    "Via",
    "CF-Connecting-IP",
    "True-Client-IP",
    "X-Client-IP",
    "X-Cluster-Client-IP",
    "Fastly-Client-IP",
    "X-Envoy-External-Address",
    "X-Original-Forwarded-For",
    "CDN-Loop",
];

fn arb_case(name: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), name.len()).prop_map(move |upper| {
        name.chars().zip(upper).map(|(c, u)| if u { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect()
    })
}

fn arb_evidence_header() -> impl Strategy<Value = (String, String)> {
    (select(EVIDENCE.to_vec()).prop_flat_map(arb_case), select(vec!["1.2.3.4", "", "unknown", "127.0.0.1", "a, b"]))
        .prop_map(|(n, v)| (n, v.to_owned()))
}

/// Headers that never change a classification.
fn arb_other_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let names = vec!["User-Agent", "Sec-WebSocket-Key", "Sec-Fetch-Mode", "Cookie", "Accept", "X-Request-Id"];
    prop::collection::vec((select(names), "[a-z0-9]{0,8}"), 0..3)
        .prop_map(|v| v.into_iter().map(|(n, val)| (n.to_owned(), val)).collect())
}

/// The trusted-proxy identity headers (user and required), in random case.
fn arb_identity_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let user =
        (arb_case(USER_HEADER), select(vec!["alice", "bob", "svc-user", " ", ""])).prop_map(|(n, v)| (n, v.to_owned()));
    let required = arb_case(REQUIRED_HEADER).prop_map(|n| (n, "a@example.com".to_owned()));
    (prop::option::of(user), prop::option::of(required)).prop_map(|(u, r)| u.into_iter().chain(r).collect())
}

fn edge(peer: IpAddr, headers: Vec<(String, String)>) -> EdgeFacts {
    EdgeFacts::new(SocketAddr::new(peer, 50_000), PORT, headers)
}

/// One X-Forwarded-For hop: an address in some form, or junk.
fn arb_hop() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => arb_peer().prop_map(|ip| ip.to_string()),
        1 => arb_v4().prop_map(|ip| format!("{ip}:443")),
        1 => arb_peer().prop_map(|ip| format!("[{}]", ip.to_canonical())),
        1 => select(vec!["unknown", "_obf", "127.1", "2130706433", "host.example", "0x7f.0.0.1", ""])
            .prop_map(str::to_owned),
    ]
}

proptest! {
    #![proptest_config(proptest_config(1000))]

    /// A forwarding header from a socket that is not a trusted proxy is
    /// refused with 403, whatever else the request carries.
    #[test]
    fn forwarding_headers_need_a_trusted_proxy(
        peer in arb_peer(),
        host in arb_host(),
        origin in arb_origin(),
        evidence in prop::collection::vec(arb_evidence_header(), 1..3),
        others in arb_other_headers(),
        config in arb_config(),
    ) {
        prop_assume!(!config.is_trusted_proxy(peer));
        let mut headers = vec![("Host".to_owned(), host)];
        headers.extend(origin.map(|o| ("Origin".to_owned(), o)));
        headers.extend(others);
        headers.extend(evidence);
        let r = classify_upgrade(&edge(peer, headers), &config);
        prop_assert_eq!(r.as_ref().map_err(|e| e.status()), Err(403), "{:?}", r);
    }

    /// In trusted-proxy mode, the user header or a required header from a
    /// socket that is not a trusted proxy is a forgery: 403 at the edge.
    #[test]
    fn identity_headers_need_a_trusted_proxy(
        peer in arb_peer(),
        host in arb_host(),
        identity in arb_identity_headers(),
        others in arb_other_headers(),
        config in arb_config(),
        tp in arb_trusted_proxy(),
    ) {
        let configured: Vec<&str> = tp.identity_headers().collect();
        let sends_one = identity.iter().any(|(n, _)| configured.contains(&n.to_ascii_lowercase().as_str()));
        prop_assume!(sends_one && !config.is_trusted_proxy(peer));
        let mut config = config;
        config.auth_mode = AuthMode::TrustedProxy;
        config.trusted_proxy = Some(tp);
        let mut headers = vec![("Host".to_owned(), host)];
        headers.extend(others);
        headers.extend(identity);
        let r = classify_upgrade(&edge(peer, headers), &config);
        prop_assert_eq!(r.as_ref().map_err(|e| e.status()), Err(403), "{:?}", r);
    }

    /// Direct-local means: loopback socket, not a trusted proxy, no proxy
    /// evidence, a loopback Host name (§2.1). Through a trusted proxy, never.
    #[test]
    fn direct_local_is_exactly_defined(
        peer in arb_peer(),
        host in arb_host(),
        origin in arb_origin(),
        evidence in prop::collection::vec(arb_evidence_header(), 0..2),
        others in arb_other_headers(),
        config in arb_config(),
    ) {
        let mut headers = vec![("Host".to_owned(), host.clone())];
        headers.extend(origin.map(|o| ("Origin".to_owned(), o)));
        headers.extend(others);
        headers.extend(evidence);
        let e = edge(peer, headers);
        match classify_upgrade(&e, &config) {
            Ok(Locality::DirectLocal) => {
                // A loopback trusted proxy's *headerless* requests stay
                // loopback connections (docs/threat-model.md, H2; `decide` then
                // keeps silent pairing off), so only the headers are checked.
                prop_assert!(is_loopback(peer));
                prop_assert!(e.proxy_evidence().is_empty());
                prop_assert!(matches!(host_name(&host).as_str(), "localhost" | "127.0.0.1" | "::1"), "{}", host);
            }
            Ok(Locality::Remote { client_ip, via_proxy }) => {
                prop_assert_eq!(via_proxy, config.is_trusted_proxy(peer));
                prop_assert_eq!(client_ip, client_ip.to_canonical());
                if !via_proxy {
                    prop_assert_eq!(client_ip, peer.to_canonical());
                    prop_assert!(!is_loopback(peer), "a loopback peer classified remote without a proxy");
                } else {
                    prop_assert!(!is_loopback(client_ip), "a proxied client classified loopback");
                }
            }
            Err(_) => {}
        }
    }

    /// Through trusted proxies: hops added left of the rightmost untrusted
    /// hop never change the result; several X-Forwarded-For lines mean the
    /// same as one comma-joined line; header-name case and the order of
    /// unrelated headers never matter.
    #[test]
    fn forwarded_for_is_read_right_to_left(
        proxy_net in select(vec!["127.0.0.1/32", "10.0.0.0/8", "::1/128", "2001:db8::/32"]),
        proxy_index in any::<u8>(),
        client in arb_hop(),
        trusted_hops in prop::collection::vec(any::<u8>(), 0..3),
        left in prop::collection::vec(arb_hop(), 0..4),
        more_left in prop::collection::vec(arb_hop(), 0..3),
        split_at in prop::collection::vec(any::<bool>(), 8),
        host in arb_host(),
        others in arb_other_headers(),
        name_case in arb_case("X-Forwarded-For"),
        host_case in arb_case("Host"),
    ) {
        let mut config = Config::for_tests(AuthMode::Token, Some(TOKEN), None);
        config.trusted_proxies = vec![proxy_net.parse().unwrap()];
        let in_net = |i: u8| -> IpAddr {
            match proxy_net {
                "127.0.0.1/32" => IpAddr::from([127, 0, 0, 1]),
                "10.0.0.0/8" => IpAddr::from([10, 0, 1, i]),
                "::1/128" => IpAddr::V6(Ipv6Addr::LOCALHOST),
                _ => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(i))),
            }
        };
        let peer = in_net(proxy_index);
        // The hops a chain of trusted proxies appended after the client.
        let trusted: Vec<String> = trusted_hops.iter().map(|i| in_net(*i).to_string()).collect();

        let hops = |prefix: &[String]| -> Vec<String> {
            prefix.iter().cloned().chain(std::iter::once(client.clone())).chain(trusted.iter().cloned()).collect()
        };
        let one_line = |hops: &[String]| vec![("X-Forwarded-For".to_owned(), hops.join(", "))];
        let classify = |xff: Vec<(String, String)>, host_name: &str, others: &[(String, String)]| {
            let mut headers = vec![(host_name.to_owned(), host.clone())];
            headers.extend(others.iter().cloned());
            headers.extend(xff);
            classify_upgrade(&edge(peer, headers), &config)
        };

        let base = classify(one_line(&hops(&left)), "Host", &others);

        // Is the client hop the rightmost untrusted one? (It may be junk, or
        // itself trusted, in which case the walk goes on to the left.)
        let client_ip = client.parse::<IpAddr>().ok().or_else(|| client.parse::<SocketAddr>().ok().map(|s| s.ip()))
            .or_else(|| client.strip_prefix('[').and_then(|c| c.strip_suffix(']')).and_then(|c| c.parse().ok()));
        let client_decides = !client.trim().is_empty() && match client_ip {
            Some(ip) => !config.is_trusted_proxy(ip),
            None => true,
        };
        if client_decides {
            let mut longer = more_left.clone();
            longer.extend(left.iter().cloned());
            prop_assert_eq!(&classify(one_line(&hops(&longer)), "Host", &others), &base, "hops left of the client");
        }

        // Several lines ≡ one comma-joined line.
        let all = hops(&left);
        let mut lines: Vec<Vec<String>> = vec![Vec::new()];
        for (i, hop) in all.iter().enumerate() {
            if i > 0 && split_at[i % split_at.len()] {
                lines.push(Vec::new());
            }
            lines.last_mut().unwrap().push(hop.clone());
        }
        let split: Vec<(String, String)> =
            lines.into_iter().map(|l| ("X-Forwarded-For".to_owned(), l.join(","))).collect();
        prop_assert_eq!(&classify(split.clone(), "Host", &others), &base, "split lines");

        // Header-name case, and unrelated headers in another order.
        let recased: Vec<(String, String)> = split.into_iter().map(|(_, v)| (name_case.clone(), v)).collect();
        let reordered: Vec<(String, String)> = others.iter().rev().cloned().collect();
        prop_assert_eq!(&classify(recased, &host_case, &reordered), &base, "case and order");
    }

    /// An IPv4 peer and its ::ffff: mapped form are the same peer, through
    /// the edge and through `decide`; IPv4-compatible (::a.b.c.d) and NAT64
    /// (64:ff9b::/96) forms of 127.0.0.1 are never loopback.
    #[test]
    fn address_forms(
        v4 in arb_v4(),
        host in arb_host(),
        origin in arb_origin(),
        evidence in prop::collection::vec(arb_evidence_header(), 0..2),
        xff_mapped in any::<bool>(),
        c in arb_connect(),
        config in arb_config(),
    ) {
        let mut headers = vec![("Host".to_owned(), host.clone())];
        headers.extend(origin.map(|o| ("Origin".to_owned(), o)));
        headers.extend(evidence);
        let mapped_headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| match v.parse::<Ipv4Addr>() {
                Ok(ip) if xff_mapped && k.eq_ignore_ascii_case("x-forwarded-for") => {
                    (k.clone(), ip.to_ipv6_mapped().to_string())
                }
                _ => (k.clone(), v.clone()),
            })
            .collect();
        let plain = classify_upgrade(&edge(IpAddr::V4(v4), headers), &config);
        let mapped = classify_upgrade(&edge(IpAddr::V6(v4.to_ipv6_mapped()), mapped_headers), &config);
        prop_assert_eq!(&plain, &mapped);
        if let Ok(locality) = plain {
            let a = decide(&c.facts(locality), &config, c.view.as_ref());
            let b = decide(&c.facts(mapped.unwrap()), &config, c.view.as_ref());
            prop_assert_eq!(a, b);
        }

        // Look-alikes of loopback are remote, and stay what they are.
        let mut no_proxies = config.clone();
        no_proxies.trusted_proxies.clear();
        for ip in [IpAddr::V6(v4.to_ipv6_compatible()), IpAddr::V6(nat64(v4))] {
            prop_assert!(!is_loopback(ip), "{} counted as loopback", ip);
            let r = classify_upgrade(&edge(ip, vec![("Host".into(), "localhost".into())]), &no_proxies);
            prop_assert_eq!(r, Ok(Locality::Remote { client_ip: ip, via_proxy: false }));
        }
    }

    /// The trusted-proxy path end to end: a request through a trusted proxy
    /// (or a loopback caller) with generated identity headers, the real
    /// credential check, then `decide`. A user from headers only ever comes
    /// through a trusted proxy, within allowUsers and identityScopes.
    #[test]
    fn trusted_proxy_path(
        via_proxy in any::<bool>(),
        proxy_host in any::<u8>(),
        client in arb_hop(),
        identity in arb_identity_headers(),
        tp in arb_trusted_proxy(),
        identity_scopes in arb_identity_scopes(),
        c in arb_connect_with(Just(None).boxed()),
    ) {
        let mut config = Config::for_tests(AuthMode::TrustedProxy, None, Some(PASSWORD));
        config.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
        config.trusted_proxy = Some(tp.clone());
        config.identity_scopes = identity_scopes;
        let (peer, host) = if via_proxy {
            (IpAddr::from([10, 0, 0, proxy_host]), "gw.example".to_owned())
        } else {
            (IpAddr::from([127, 0, 0, 1]), format!("localhost:{PORT}"))
        };
        let mut headers = vec![("Host".to_owned(), host)];
        if via_proxy {
            headers.push(("X-Forwarded-For".to_owned(), client));
        }
        headers.extend(identity);
        let e = edge(peer, headers);
        let Ok(locality) = classify_upgrade(&e, &config) else { return Ok(()) };
        let f = real_facts(&c, &config, &e, locality);
        let d = check_decision(&f, &config, c.view.as_ref())?;
        if let Some(Credential::ProxyUser { user, via_loopback_user }) = f.credential.verified() {
            prop_assert_eq!(*via_loopback_user, !via_proxy);
            prop_assert!(tp.allows(user), "{} is not in allowUsers", user);
            if !via_proxy {
                prop_assert_eq!(Some(user), tp.loopback_user.as_ref());
            }
        }
        if let Decision::Admit(a) = &d {
            if let Credential::ProxyUser { .. } = a.credential {
                prop_assert!(matches!(a.rule, RuleId::TrustedProxy | RuleId::TrustedProxyLoopbackUser));
            }
        }
    }

    /// The whole path: a generated upgrade request through the edge, then
    /// the connect through `decide`, with the Origin the edge saw.
    #[test]
    fn edge_then_decide(
        peer in arb_peer(),
        host in arb_host(),
        origin in arb_origin(),
        evidence in prop::collection::vec(arb_evidence_header(), 0..2),
        identity in arb_identity_headers(),
        others in arb_other_headers(),
        c in arb_connect_with(Just(None).boxed()),
        config in arb_config(),
        real_check in any::<bool>(),
    ) {
        let mut headers = vec![("Host".to_owned(), host)];
        headers.extend(origin.map(|o| ("Origin".to_owned(), o)));
        headers.extend(others);
        headers.extend(evidence);
        headers.extend(identity);
        let e = edge(peer, headers);
        if let Ok(locality) = classify_upgrade(&e, &config) {
            let mut c = c;
            c.origin = e.origin().map(str::to_owned);
            c.sec_fetch = e.has_sec_fetch();
            let f = if real_check { real_facts(&c, &config, &e, locality) } else { c.facts(locality) };
            let d = check_decision(&f, &config, c.view.as_ref())?;
            if LOOPBACK_ONLY.contains(&d.rule()) {
                prop_assert!(is_loopback(peer));
                prop_assert!(e.proxy_evidence().is_empty());
                let tp = config.trusted_proxy.as_ref();
                prop_assert!(!tp.is_some_and(|tp| tp.identity_headers().any(|h| e.header(h).is_some())));
            }
            if e.origin().is_some() || e.has_sec_fetch() {
                prop_assert!(!NEVER_FOR_BROWSERS.contains(&d.rule()));
            }
            // A proxy user from headers only ever comes through a trusted proxy;
            // the loopback user only to a headerless direct-local caller (§2.9).
            if real_check {
                match f.credential.verified() {
                    Some(Credential::ProxyUser { via_loopback_user: false, .. }) => {
                        prop_assert!(config.is_trusted_proxy(peer), "proxy user from an untrusted socket");
                    }
                    Some(Credential::ProxyUser { via_loopback_user: true, .. }) => {
                        prop_assert!(locality.is_direct_local(), "loopback user for a non-local caller");
                        let tp = config.trusted_proxy.as_ref().unwrap();
                        prop_assert!(tp.allow_loopback, "loopback user without allowLoopback");
                        prop_assert!(tp.allows(tp.loopback_user.as_deref().unwrap()), "loopback user not in allowUsers");
                        prop_assert!(!tp.identity_headers().any(|h| e.header(h).is_some()));
                    }
                    _ => {}
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Coverage: every rule id is reachable.

fn base_params(client: (&str, &str), role: &str, scopes: &[&str]) -> ConnectParams {
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    params(
        &(client.0.to_owned(), client.1.to_owned()),
        &Some(role.to_owned()),
        &scopes,
        (4, 4),
        &DeviceFact::None,
        &json!(null),
    )
}

fn facts(
    locality: Locality,
    origin: Option<&str>,
    params: ConnectParams,
    credential: CredentialCheck,
    device: DeviceFact,
) -> ConnectFacts {
    let mut params = params;
    if let DeviceFact::Proven(d) = &device {
        params.device = Some(clawgate_protocol::DeviceParams {
            id: d.device_id.clone(),
            public_key: d.public_key_b64url.clone(),
            signature: "s".into(),
            signed_at: 1,
            nonce: "n".into(),
        });
    }
    ConnectFacts {
        locality,
        origin: origin.map(str::to_owned),
        sec_fetch: false,
        listener_port: PORT,
        params,
        credential,
        device,
    }
}

fn paired(d: &VerifiedDevice, role: Role, scopes: &[&str]) -> DeviceView {
    DeviceView {
        generation: 1,
        device: Some(PairedDevice {
            device_id: d.device_id.clone(),
            public_key: d.public_key_b64url.clone(),
            display_name: None,
            label: None,
            platform: Some("linux".into()),
            device_family: None,
            client_id: None,
            client_mode: None,
            roles: vec![role],
            approved_scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            approved_via: ApprovedVia::Owner,
            created_at_ms: 1,
            approved_at_ms: 1,
            last_seen_at_ms: None,
            remote_ip: None,
        }),
        tokens: Vec::new(),
    }
}

/// One hand-built connection per implemented rule.
fn one_fact_set_per_rule() -> Vec<(RuleId, ConnectFacts, Option<DeviceView>)> {
    let remote = Locality::Remote { client_ip: IpAddr::from([203, 0, 113, 5]), via_proxy: false };
    let local = Locality::DirectLocal;
    let token = || CredentialCheck::Verified(Credential::SharedToken);
    let cli = ("cli", "cli");
    let dev = device(0);
    let mut old_protocol = base_params(cli, "operator", &[]);
    old_protocol.min_protocol = 3;
    old_protocol.max_protocol = 3;
    vec![
        (RuleId::Protocol, facts(local, None, old_protocol, token(), DeviceFact::None), None),
        (
            RuleId::Origin,
            facts(local, Some("http://evil.example"), base_params(cli, "operator", &[]), token(), DeviceFact::None),
            None,
        ),
        (
            RuleId::Credential,
            facts(
                remote,
                None,
                base_params(cli, "operator", &[]),
                CredentialCheck::Failed(AuthReason::TokenMismatch),
                DeviceFact::None,
            ),
            None,
        ),
        (
            RuleId::DeviceProof,
            facts(
                remote,
                None,
                base_params(cli, "operator", &[]),
                token(),
                DeviceFact::Failed(ProofError::SignatureInvalid),
            ),
            None,
        ),
        (
            RuleId::DevicePaired,
            facts(
                remote,
                None,
                base_params(cli, "operator", &["operator.read"]),
                token(),
                DeviceFact::Proven(dev.clone()),
            ),
            Some(paired(&dev, Role::Operator, &["operator.read"])),
        ),
        (
            RuleId::SilentLocalPairing,
            facts(
                local,
                None,
                base_params(cli, "operator", &["operator.read"]),
                token(),
                DeviceFact::Proven(dev.clone()),
            ),
            None,
        ),
        (
            RuleId::PairingRequired,
            facts(remote, None, base_params(cli, "operator", &["operator.read"]), token(), DeviceFact::Proven(dev)),
            None,
        ),
        (
            RuleId::LocalOwner,
            facts(local, None, base_params(cli, "operator", &["operator.admin"]), token(), DeviceFact::None),
            None,
        ),
        (
            RuleId::BrowserNeedsDevice,
            facts(
                local,
                Some("http://localhost:18789"),
                base_params(("openclaw-control-ui", "webchat"), "operator", &["operator.read"]),
                token(),
                DeviceFact::None,
            ),
            None,
        ),
        (RuleId::Scopeless, facts(remote, None, base_params(cli, "operator", &[]), token(), DeviceFact::None), None),
        (
            RuleId::NoIdentity,
            facts(remote, None, base_params(cli, "operator", &["operator.read"]), token(), DeviceFact::None),
            None,
        ),
        (
            RuleId::ServicePrincipal,
            facts(
                remote,
                None,
                base_params(("gateway-client", "backend"), "operator", &["operator.read"]),
                CredentialCheck::Verified(Credential::ServiceToken {
                    principal: "cron".into(),
                    principal_id: "0123456789abcdef".into(),
                    role: Role::Operator,
                    scopes: vec!["operator.read".into()],
                    issued_at_ms: 1,
                }),
                DeviceFact::None,
            ),
            None,
        ),
        (
            RuleId::TrustedProxy,
            facts(
                Locality::Remote { client_ip: IpAddr::from([198, 51, 100, 7]), via_proxy: true },
                None,
                base_params(cli, "operator", &["operator.read"]),
                CredentialCheck::Verified(Credential::ProxyUser { user: "alice".into(), via_loopback_user: false }),
                DeviceFact::None,
            ),
            None,
        ),
        (
            RuleId::TrustedProxyLoopbackUser,
            facts(
                local,
                None,
                base_params(("gateway-client", "backend"), "operator", &["operator.read"]),
                CredentialCheck::Verified(Credential::ProxyUser { user: "alice".into(), via_loopback_user: true }),
                DeviceFact::None,
            ),
            None,
        ),
    ]
}

/// The config each hand-built connection is decided under: token mode,
/// except for the trusted-proxy rules.
fn config_for(rule: RuleId) -> Config {
    match rule {
        RuleId::TrustedProxy | RuleId::TrustedProxyLoopbackUser => {
            let mut c = Config::for_tests(AuthMode::TrustedProxy, None, Some(PASSWORD));
            c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
            let mut tp = TrustedProxyConfig::new(USER_HEADER, &[]);
            tp.allow_loopback = true;
            tp.loopback_user = Some("alice".into());
            c.trusted_proxy = Some(tp);
            c.identity_scopes.insert("alice".into(), vec!["operator.read".into()]);
            c
        }
        _ => Config::for_tests(AuthMode::Token, Some(TOKEN), None),
    }
}

#[test]
fn every_rule_is_reachable() {
    let mut reached = BTreeSet::new();
    for (expected, f, view) in one_fact_set_per_rule() {
        let config = config_for(expected);
        let d = check_decision(&f, &config, view.as_ref()).unwrap_or_else(|e| panic!("{expected}: {e}"));
        assert_eq!(d.rule(), expected, "the fact set for {expected} reached {}: {d:?}", d.rule());
        reached.insert(expected);
    }
    let expected: BTreeSet<RuleId> = RuleId::ALL.iter().copied().filter(|r| !NOT_YET_IMPLEMENTED.contains(r)).collect();
    assert_eq!(reached, expected, "rules reached vs RuleId::ALL minus {NOT_YET_IMPLEMENTED:?}");
    for r in NOT_YET_IMPLEMENTED {
        assert!(RuleId::ALL.contains(r), "{r} is no longer a rule: drop it from NOT_YET_IMPLEMENTED");
    }
}

/// The generators are good enough to reach every implemented rule on
/// their own (a deterministic sample, so the test is stable).
#[test]
fn generators_reach_every_rule() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = (arb_connect(), arb_locality(), arb_config());
    let mut reached = BTreeSet::new();
    let mut outcomes = [0u32; 3];
    for _ in 0..4000 {
        let (c, locality, config) = strategy.new_tree(&mut runner).unwrap().current();
        let d = decide(&c.facts(locality), &config, c.view.as_ref()).decision;
        reached.insert(d.rule());
        outcomes[usize::from(rank(&d))] += 1;
    }
    let expected: BTreeSet<RuleId> = RuleId::ALL.iter().copied().filter(|r| !NOT_YET_IMPLEMENTED.contains(r)).collect();
    assert_eq!(reached, expected);
    assert!(outcomes.iter().all(|n| *n >= 100), "refuse / pairing / admit counts too uneven: {outcomes:?}");
}
