//! Generators of configs, peers, headers, credentials, device facts, store views and connects.

use super::*;

pub(super) fn arb_config() -> impl Strategy<Value = Config> {
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
            let mut c = Config::new(mode, Some(TOKEN), Some(PASSWORD));
            c.bind = bind;
            c.local_owner = local_owner;
            c.auto_approve_local = auto_approve_local;
            c.trusted_proxies = proxies.iter().map(|p| p.parse::<IpNet>().unwrap()).collect();
            c.allowed_origins = origins.iter().map(|o| (*o).to_owned()).collect();
            // Set exactly in trusted-proxy mode, as config loading does.
            c.trusted_proxy = (mode == AuthMode::TrustedProxy).then_some(tp);
            c.identity_scopes = identity_scopes;
            c.trusted_local_services = services;
            c.local_owner_uids = vec![OWNER_UID];
            c
        },
    )
}

/// `gateway.auth.trustedProxy`: allowLoopback, loopbackUser, allowUsers, requiredHeaders.
pub(super) fn arb_trusted_proxy() -> impl Strategy<Value = TrustedProxyConfig> {
    (
        any::<bool>(),
        select(vec![None, Some("svc-user"), Some("alice")]),
        subsequence(USERS.to_vec(), 0..=2),
        any::<bool>(),
        prop::option::of(arb_scope_set()),
    )
        .prop_map(|(allow_loopback, loopback_user, allow_users, required, auto)| {
            let required: &[&str] = if required { &[REQUIRED_HEADER] } else { &[] };
            let mut tp = TrustedProxyConfig::new(USER_HEADER, required);
            tp.allow_loopback = allow_loopback;
            tp.loopback_user = loopback_user.map(str::to_owned);
            tp.allow_users = allow_users.into_iter().map(str::to_owned).collect();
            tp.device_auto_approve = auto;
            tp
        })
}

/// `gateway.auth.identityScopes`: some users, maybe the `*` entry.
pub(super) fn arb_identity_scopes() -> impl Strategy<Value = BTreeMap<String, Vec<String>>> {
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
pub(super) fn arb_local_services() -> impl Strategy<Value = Option<Vec<TrustedLocalService>>> {
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

/// The trust level of the listener a connection arrives on.
pub(super) fn arb_trust() -> impl Strategy<Value = Trust> {
    select(Trust::ALL.to_vec())
}

/// An IPv4 address: loopback, private, documentation, or any.
pub(super) fn arb_v4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        any::<[u8; 3]>().prop_map(|[a, b, c]| Ipv4Addr::new(127, a, b, c)),
        any::<u8>().prop_map(|d| Ipv4Addr::new(10, 0, 0, d)),
        any::<u8>().prop_map(|d| Ipv4Addr::new(203, 0, 113, d)),
        any::<u8>().prop_map(|d| Ipv4Addr::new(198, 51, 100, d)),
        any::<[u8; 4]>().prop_map(Ipv4Addr::from),
    ]
}

/// Socket peers in every form: v4, v4-mapped, ::1, IPv4-compatible, NAT64, other v6.
pub(super) fn arb_peer() -> impl Strategy<Value = IpAddr> {
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

pub(super) fn nat64(v4: Ipv4Addr) -> Ipv6Addr {
    let [a, b, c, d] = v4.octets();
    Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))
}

pub(super) fn arb_host() -> impl Strategy<Value = String> {
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
        "[::1]evil.example",
        "[::1]@evil.example:18789",
        "",
    ])
    .prop_map(str::to_owned)
}

/// None, own loopback origins, allowed-listed, foreign, `null`, empty.
pub(super) fn arb_origin() -> impl Strategy<Value = Option<String>> {
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
pub(super) fn arb_scopes() -> impl Strategy<Value = Vec<String>> {
    let mut pool: Vec<&'static str> = KNOWN_SCOPES.to_vec();
    pool.extend(["admin", "operator.anything", "node", "OPERATOR.ADMIN", "operator.read "]);
    prop_oneof![
        1 => Just(Vec::new()),
        2 => prop::collection::vec(select(pool), 1..5).prop_map(|v| v.into_iter().map(str::to_owned).collect()),
    ]
}

pub(super) fn arb_scope_set() -> impl Strategy<Value = Vec<String>> {
    subsequence(KNOWN_SCOPES.to_vec(), 0..=4).prop_map(|v| v.into_iter().map(str::to_owned).collect())
}

/// The requested role: absent, valid, or not a role at all.
pub(super) fn arb_role() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        3 => Just(Some("operator".to_owned())),
        3 => Just(Some("node".to_owned())),
        1 => select(vec!["admin", "Operator", "worker", "owner"]).prop_map(|r| Some(r.to_owned())),
    ]
}

/// Client id and mode: mostly the pairs real programs send, sometimes any
/// pair of the known ids and modes (browsers and workers included).
pub(super) fn arb_client() -> impl Strategy<Value = (String, String)> {
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

pub(super) fn arb_protocol() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![6 => Just((4, 4)), 1 => select(vec![(3, 3), (3, 4), (1, 2), (5, 6), (3, 5), (1, 4)])]
}

/// Three device keys; the generated device facts, views and device tokens
/// pick among them so that ids match often and differ sometimes.
pub(super) fn device(key_index: u8) -> VerifiedDevice {
    let key = [key_index + 1; 32];
    VerifiedDevice {
        device_id: derive_device_id(&key),
        public_key: key,
        public_key_b64url: encode_public_key(&key),
        payload_version: PayloadVersion::V3,
    }
}

pub(super) fn arb_proof_error() -> impl Strategy<Value = ProofError> {
    select(vec![
        ProofError::DeviceIdMismatch,
        ProofError::SignatureExpired,
        ProofError::NonceRequired,
        ProofError::NonceMismatch,
        ProofError::SignatureInvalid,
        ProofError::PublicKeyInvalid,
    ])
}

pub(super) fn arb_device_fact() -> impl Strategy<Value = DeviceFact> {
    prop_oneof![
        3 => Just(DeviceFact::None),
        3 => (0u8..3).prop_map(|k| DeviceFact::Proven(device(k))),
        1 => arb_proof_error().prop_map(DeviceFact::Failed),
    ]
}

pub(super) fn arb_store_role() -> impl Strategy<Value = Role> {
    select(vec![Role::Operator, Role::Node])
}

/// Every kind of credential check, with the failure reasons the real checks produce.
pub(super) fn arb_credential() -> impl Strategy<Value = CredentialCheck> {
    prop_oneof![
        3 => Just(CredentialCheck::Verified(Credential::SharedToken)),
        1 => Just(CredentialCheck::Verified(Credential::SharedPassword)),
        2 => Just(CredentialCheck::Verified(Credential::NoneMode)),
        3 => (0u8..3, arb_store_role(), arb_scope_set()).prop_map(|(k, role, scopes)| {
            CredentialCheck::Verified(Credential::DeviceToken { device_id: device(k).device_id, role, scopes, issued_at_ms: 1 })
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
pub(super) fn arb_auth() -> impl Strategy<Value = serde_json::Value> {
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
pub(super) const GOOD_SERVICE_TOKEN: &str = "cgs_0123456789abcdef_good";

/// The server's pipeline (`admission::evaluate`) over a generated store:
/// the view's live device tokens answer to `"d"`, and one service principal
/// (`cron`, operator, [read, write]) to [`GOOD_SERVICE_TOKEN`]. The device
/// proof is the generated one. Returns the facts the pipeline gathered.
pub(super) fn real_facts(c: &Connect, config: &Config, edge: &EdgeFacts, locality: Locality) -> ConnectFacts {
    let connect = Pipeline {
        edge,
        locality,
        params: c.params.clone(),
        proof: Proof::Known(c.device.clone()),
        peer_uid: c.peer_uid,
        now_ms: 1,
        locked_out_ms: None,
    };
    evaluate(connect, config, &mut GeneratedStore(c.view.as_ref())).expect("the generated store never fails").facts
}

pub(super) struct GeneratedStore<'a>(Option<&'a DeviceView>);

impl Lookups for GeneratedStore<'_> {
    fn device_token(&mut self, id: &str, role: Role, presented: &str) -> Result<TokenCheck, StoreError> {
        let live =
            self.0.and_then(|v| v.tokens.iter().find(|t| t.device_id == id && t.role == role && !t.is_revoked()));
        Ok(match live {
            Some(t) if presented == "d" => {
                TokenCheck::Valid { scopes: t.scopes.clone(), issued_at_ms: t.issued_at_ms() }
            }
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
pub(super) fn arb_view(proven: Option<VerifiedDevice>) -> impl Strategy<Value = Option<DeviceView>> {
    let paired = (
        any::<bool>(),
        subsequence(vec![Role::Operator, Role::Node], 1..=2),
        arb_scope_set(),
        select(vec![None, Some("linux"), Some("macos")]),
        select(vec![None, Some("Mac")]),
        prop::collection::vec((arb_store_role(), arb_scope_set(), any::<bool>()), 0..=2),
        select(vec![None, Some("alice"), Some("bob")]),
    );
    let id = proven.as_ref().map_or_else(|| device(0).device_id, |d| d.device_id.clone());
    let key = proven.map_or_else(|| device(0).public_key_b64url, |d| d.public_key_b64url);
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(DeviceView { generation: 1, device: None, tokens: Vec::new() })),
        4 => paired.prop_map(move |(same_key, roles, scopes, platform, family, tokens, bound)| {
            let public_key = if same_key { key.clone() } else { device(2).public_key_b64url };
            let device = paired_device(id.clone(), public_key)
                .roles(&roles)
                .scopes(&scopes)
                .platform(platform)
                .device_family(family)
                .proxy_user(bound)
                .build();
            let tokens = tokens
                .into_iter()
                .map(|(role, scopes, revoked)| TokenInfo {
                    revoked_at_ms: revoked.then_some(2),
                    ..token_info(id.clone(), role, &scopes)
                })
                .collect();
            Some(DeviceView { generation: 2, device: Some(device), tokens })
        }),
    ]
}

/// Everything of a connect but its locality.
#[derive(Debug, Clone)]
pub(super) struct Connect {
    pub(super) origin: Option<String>,
    pub(super) sec_fetch: bool,
    pub(super) params: ConnectParams,
    pub(super) credential: CredentialCheck,
    /// The user the trusted proxy named beside the credential (the
    /// credential's own user when it is a proxy user).
    pub(super) proxy_user: Option<String>,
    pub(super) device: DeviceFact,
    pub(super) view: Option<DeviceView>,
    /// The loopback peer's uid as the edge found it: unknown, the owner's,
    /// or another user's.
    pub(super) peer_uid: Option<u32>,
}

impl Connect {
    pub(super) fn facts(&self, locality: Locality) -> ConnectFacts {
        ConnectFacts {
            locality,
            peer_uid: self.peer_uid,
            origin: self.origin.clone(),
            sec_fetch: self.sec_fetch,
            listener_port: PORT,
            params: self.params.clone(),
            credential: self.credential.clone(),
            proxy_user: self.proxy_user.clone(),
            device: self.device.clone(),
        }
    }
}

pub(super) fn params(
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

pub(super) fn device_id_text(k: u8) -> String {
    device(k).device_id
}

pub(super) fn arb_connect_with(origin: BoxedStrategy<Option<String>>) -> impl Strategy<Value = Connect> {
    let head = (origin, any::<bool>(), arb_client(), arb_role(), arb_scopes(), arb_protocol());
    let tail = (
        arb_credential(),
        arb_device_fact(),
        arb_auth(),
        select(vec![None, Some("alice"), Some("bob")]),
        arb_peer_uid(),
    );
    (head, tail, any::<bool>()).prop_flat_map(
        |(
            (origin, sec_fetch, client, role, scopes, protocol),
            (credential, device, auth, beside, peer_uid),
            sec_fetch_bias,
        )| {
            // The proxy names the credential's own user; beside another
            // credential (a device token) it may name anyone, or nobody.
            let proxy_user = match credential.verified() {
                Some(Credential::ProxyUser { user, .. }) => Some(user.clone()),
                _ => beside.map(str::to_owned),
            };
            let p = params(&client, &role, &scopes, protocol, &device, &auth);
            // Sec-Fetch-* is rare for programs: keep it in a quarter of the cases.
            let sec_fetch = sec_fetch && sec_fetch_bias;
            arb_view(device.proven().cloned()).prop_map(move |view| Connect {
                origin: origin.clone(),
                sec_fetch,
                params: p.clone(),
                credential: credential.clone(),
                proxy_user: proxy_user.clone(),
                device: device.clone(),
                view,
                peer_uid,
            })
        },
    )
}

/// The uid in every generated config's `localOwnerUids`, and others.
pub(super) const OWNER_UID: u32 = 1000;
pub(super) const FOREIGN_UIDS: &[u32] = &[0, 33, 65534];

/// Unknown half the time; else the owner's or another user's.
pub(super) fn arb_peer_uid() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(OWNER_UID)),
        1 => select(FOREIGN_UIDS.to_vec()).prop_map(Some),
    ]
}

pub(super) fn arb_connect() -> impl Strategy<Value = Connect> {
    arb_connect_with(arb_origin().boxed())
}

pub(super) fn arb_locality() -> impl Strategy<Value = Locality> {
    prop_oneof![
        1 => Just(Locality::DirectLocal),
        1 => (arb_peer(), any::<bool>())
            .prop_map(|(ip, via_proxy)| Locality::Remote { client_ip: ip.to_canonical(), via_proxy }),
    ]
}
