//! The conformance scenarios of reference/openclaw-gateway.md §11, at the
//! admission level: the edge through `classify_upgrade`, the connect params
//! through the schema check, then the server's own pipeline
//! (`admission::evaluate`: device proofs signed for real, the credential
//! check, the rules) over a store built by hand.
//!
//! Each scenario either matches the reference as written, or asserts what
//! clawgate deliberately does instead (docs/admission.md), with a comment naming the difference.
//! Scenarios that are not about admission, or need features clawgate does
//! not have yet, are listed at the end of this file.

use std::net::SocketAddr;

use clawgate::admission::credential::{AuthReason, Credential, CredentialCheck};
use clawgate::admission::decision::{
    Admission, Decided, Decision, DeviceAction, PairingNeeded, PairingReason, Refusal, RefusalKind, Role,
};
use clawgate::admission::device_proof::{self, ProofError};
use clawgate::admission::facts::{ConnectFacts, DeviceFact, Locality};
use clawgate::admission::ingress::{classify_upgrade, EdgeFacts, UpgradeRefusal};
use clawgate::admission::{evaluate, Connect, Lookups, Proof, RuleId};
use clawgate::config::{AuthMode, Config, TrustedProxyConfig};
use clawgate::store::{DeviceView, PairedDevice, ServiceTokenCheck, StoreError, TokenCheck};
use clawgate_client::DeviceIdentity;
use clawgate_protocol::device_auth::{payload_v2, DeviceAuthFields};
use clawgate_protocol::version::Negotiated;
use clawgate_protocol::ConnectParams;
use serde_json::{json, Value};

use crate::common::records::{paired_device, token_info};

/// `T`: a 32+ character token.
const T: &str = "conformance-token-0123456789abcdef0123";
const PORT: u16 = 18789;
const NONCE: &str = "challenge-nonce-0001";
const NOW: u64 = 1_800_000_000_000;
const DEVICE_TOKEN: &str = "device-token-for-scenario-22";

const READ: &str = "operator.read";
const WRITE: &str = "operator.write";
const ADMIN: &str = "operator.admin";
const PAIRING: &str = "operator.pairing";

/// "L": socket 127.0.0.1, no forwarding headers, no Origin.
const L: &str = "127.0.0.1";
/// "R": socket 203.0.113.5.
const R: &str = "203.0.113.5";

/// How the device block is signed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sign {
    V3,
    V2,
    /// `signedAt = now − 121 s`.
    Stale,
    /// Signed over, and sent with, another nonce.
    OtherNonce,
    /// `device.id` is not the SHA-256 of the key.
    WrongId,
    /// Not a signature at all.
    Garbage,
}

/// One connection attempt.
struct Conn {
    config: Config,
    peer: &'static str,
    /// The Host header (default `localhost:18789`).
    host: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    params: Value,
    device: Option<(DeviceIdentity, Sign)>,
    /// The store's record of the device (read only when its proof verifies).
    paired: Option<PairedDevice>,
    /// Device tokens the store holds: (role, plaintext, scopes).
    tokens: Vec<(Role, &'static str, Vec<String>)>,
    /// The uid owning the peer's socket, as the edge found it.
    peer_uid: Option<u32>,
}

fn token_config() -> Config {
    Config::new(AuthMode::Token, Some(T), None)
}

fn params(client: (&str, &str), role: &str, scopes: &[&str], auth: Option<Value>) -> Value {
    let mut p = json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": { "id": client.0, "version": "2026.9.6", "platform": "linux", "mode": client.1 },
        "role": role,
        "scopes": scopes,
    });
    if let Some(a) = auth {
        p["auth"] = a;
    }
    p
}

fn token(t: &str) -> Option<Value> {
    Some(json!({ "token": t }))
}

fn conn(peer: &'static str, params: Value) -> Conn {
    Conn {
        config: token_config(),
        peer,
        host: "localhost:18789",
        headers: Vec::new(),
        params,
        device: None,
        paired: None,
        tokens: Vec::new(),
        peer_uid: None,
    }
}

impl Conn {
    fn with_device(mut self, identity: &DeviceIdentity, sign: Sign) -> Self {
        self.device = Some((identity.clone(), sign));
        self
    }

    fn config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    fn protocol(mut self, min: u64, max: u64) -> Self {
        self.params["minProtocol"] = json!(min);
        self.params["maxProtocol"] = json!(max);
        self
    }

    fn paired(mut self, p: PairedDevice) -> Self {
        self.paired = Some(p);
        self
    }

    fn uid(mut self, uid: u32) -> Self {
        self.peer_uid = Some(uid);
        self
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The upgrade request as the edge sees it.
    fn edge(&self) -> EdgeFacts {
        let mut headers = vec![("Host".to_owned(), self.host.to_owned())];
        headers.extend(self.headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        EdgeFacts::new(SocketAddr::new(self.peer.parse().unwrap(), 50_000), PORT, headers)
    }

    /// The HTTP refusal of the upgrade (the connection never gets a WebSocket).
    fn edge_refusal(&self) -> UpgradeRefusal {
        classify_upgrade(&self.edge(), &self.config).expect_err("the edge refuses this upgrade")
    }

    /// The `device` block, signed as the reference client does (or broken as asked).
    fn device_block(&self, params: &ConnectParams) -> Option<Value> {
        let (identity, sign) = self.device.as_ref()?;
        let signed_at = if *sign == Sign::Stale { NOW - 121_000 } else { NOW - 1_000 };
        let nonce = if *sign == Sign::OtherNonce { "another-nonce" } else { NONCE };
        let mut block = identity.device_params(params, nonce, signed_at);
        match sign {
            Sign::V2 => {
                let auth = params.auth.as_ref();
                let token = device_proof::signature_token(auth);
                let payload = payload_v2(&DeviceAuthFields {
                    device_id: &block.id,
                    client_id: &params.client.id,
                    client_mode: &params.client.mode,
                    role: params.role(),
                    scopes: params.scopes(),
                    signed_at_ms: signed_at,
                    token,
                    nonce,
                    platform: Some(&params.client.platform),
                    device_family: params.client.device_family.as_deref(),
                });
                block.signature = identity.sign(&payload);
            }
            Sign::WrongId => block.id = DeviceIdentity::from_seed([9; 32]).device_id(),
            Sign::Garbage => block.signature = "AAAA".repeat(22),
            Sign::V3 | Sign::Stale | Sign::OtherNonce => {}
        }
        Some(serde_json::to_value(block).unwrap())
    }

    /// Run the server's admission pipeline on this connection.
    fn decide(&self) -> (ConnectFacts, Decided) {
        let edge = self.edge();
        let locality = classify_upgrade(&edge, &self.config).expect("the edge accepts this upgrade");
        let mut params = ConnectParams::parse(Some(&self.params)).expect("connect params pass the schema");
        if let Some(block) = self.device_block(&params) {
            let mut raw = self.params.clone();
            raw["device"] = block;
            params = ConnectParams::parse(Some(&raw)).expect("connect params with device pass the schema");
        }
        let connect = Connect {
            edge: &edge,
            locality,
            params,
            proof: Proof::Challenge { nonce: NONCE },
            peer_uid: self.peer_uid,
            now_ms: NOW,
            locked_out_ms: None,
        };
        let evaluated =
            evaluate(connect, &self.config, &mut ScenarioStore(self)).expect("the scenario store never fails");
        (evaluated.facts, evaluated.decided)
    }
}

/// The store of one scenario: its paired record and device tokens.
struct ScenarioStore<'a>(&'a Conn);

impl Lookups for ScenarioStore<'_> {
    fn device_token(&mut self, _: &str, role: Role, presented: &str) -> Result<TokenCheck, StoreError> {
        Ok(match self.0.tokens.iter().find(|(r, plain, _)| *r == role && *plain == presented) {
            Some((_, _, scopes)) => TokenCheck::Valid { scopes: scopes.clone(), issued_at_ms: 1 },
            None if self.0.paired.is_some() => TokenCheck::Mismatch,
            None => TokenCheck::DeviceNotPaired,
        })
    }

    fn service_token(&mut self, _: &str) -> Result<ServiceTokenCheck, StoreError> {
        Ok(ServiceTokenCheck::Unknown)
    }

    fn device_view(&mut self, device_id: &str) -> Result<DeviceView, StoreError> {
        Ok(DeviceView {
            generation: 7,
            device: self.0.paired.clone().filter(|p| p.device_id == device_id),
            tokens: self.0.tokens.iter().map(|(role, _, scopes)| token_info(device_id, *role, scopes)).collect(),
        })
    }
}

fn admitted(c: &Conn) -> Admission {
    match c.decide().1.decision {
        Decision::Admit(a) => a,
        other => panic!("expected an admission, got {other:?}"),
    }
}

fn refused(c: &Conn) -> Refusal {
    match c.decide().1.decision {
        Decision::Refuse(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn pairing(c: &Conn) -> PairingNeeded {
    match c.decide().1.decision {
        Decision::PairingRequired(n) => n,
        other => panic!("expected pairing required, got {other:?}"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn identity() -> DeviceIdentity {
    DeviceIdentity::from_seed([1; 32])
}

fn paired_record(id: &DeviceIdentity, roles: &[Role], scopes: &[&str]) -> PairedDevice {
    paired_device(id.device_id(), id.public_key_b64url())
        .roles(roles)
        .scopes(scopes)
        .platform("linux")
        .client("cli", "cli")
        .build()
}

fn auth_refusal(r: &Refusal) -> (AuthReason, bool) {
    match r.kind {
        RefusalKind::Auth { reason, can_retry_with_device_token } => (reason, can_retry_with_device_token),
        ref other => panic!("expected an auth refusal, got {other:?}"),
    }
}

/// `recommendedNextStep` as the wire reports it (as OpenClaw reports it).
fn next_step(r: &Refusal) -> &'static str {
    let (reason, retry) = auth_refusal(r);
    if retry {
        "retry_with_device_token"
    } else {
        reason.next_step()
    }
}

// ---------------------------------------------------------------------------

/// Scenario 1: L, cli/cli, [read,write], token, unpaired device ⇒ silent pairing,
/// exactly the requested scopes, method token, a device token is issued.
#[test]
fn s01_local_cli_with_device_pairs_silently() {
    let c = conn(L, params(("cli", "cli"), "operator", &[READ, WRITE], token(T))).with_device(&identity(), Sign::V3);
    let a = admitted(&c);
    assert_eq!(a.rule, RuleId::SilentLocalPairing);
    assert_eq!(a.scopes, strings(&[READ, WRITE]));
    assert_eq!(a.credential.method(), "token");
    let action = &a.device.expect("a device admission").action;
    assert_eq!(action, &DeviceAction::PairSilently { reason: PairingReason::NotPaired }, "token issued on apply");
}

/// Scenario 2: Same as 1 with {min:3,max:3} ⇒ PROTOCOL_MISMATCH.
#[test]
fn s02_v3_only_operator_is_a_protocol_mismatch() {
    let c = conn(L, params(("cli", "cli"), "operator", &[READ, WRITE], token(T)))
        .protocol(3, 3)
        .with_device(&identity(), Sign::V3);
    let r = refused(&c);
    assert_eq!(r.rule, RuleId::Protocol);
    assert_eq!(r.kind.details_code(), "PROTOCOL_MISMATCH");
    assert_eq!(r.kind, RefusalKind::ProtocolMismatch { client_min: 3, client_max: 3 });
}

/// Scenario 3: L, node-host/node, role node, {3,3}, token, device ⇒ accepted as a legacy node.
#[test]
fn s03_legacy_node_is_accepted() {
    let c =
        conn(L, params(("node-host", "node"), "node", &[], token(T))).protocol(3, 3).with_device(&identity(), Sign::V3);
    let a = admitted(&c);
    assert_eq!(a.negotiated, Negotiated::LegacyNode);
    assert_eq!(a.role, Role::Node);
    assert_eq!(a.rule, RuleId::SilentLocalPairing, "a fresh local node pairs silently (as in OpenClaw)");
}

/// Scenario 4: L, openclaw-probe/probe, {3,3}, token, no device ⇒ protocol accepted,
/// admitted with scopes [] (clawgate names the rule: local-owner).
#[test]
fn s04_probe_is_accepted_without_scopes() {
    let c = conn(L, params(("openclaw-probe", "probe"), "operator", &[], token(T))).protocol(3, 3);
    let a = admitted(&c);
    assert_eq!(a.negotiated, Negotiated::Probe);
    assert_eq!(a.scopes, Vec::<String>::new());
    assert_eq!(a.rule, RuleId::LocalOwner);
}

/// Scenario 5: L, gateway-client/backend, [admin], token, no device ⇒ admitted with [admin].
#[test]
fn s05_local_backend_keeps_admin() {
    let a = admitted(&conn(L, params(("gateway-client", "backend"), "operator", &[ADMIN], token(T))));
    assert_eq!(a.scopes, strings(&[ADMIN]));
    assert_eq!(a.rule, RuleId::LocalOwner);
    assert_eq!(a.credential, Credential::SharedToken);
}

/// Scenario 6: L, cli/cli, [read,write,pairing], token, no device ⇒ admitted with those scopes.
#[test]
fn s06_local_cli_keeps_its_scopes() {
    let a = admitted(&conn(L, params(("cli", "cli"), "operator", &[READ, WRITE, PAIRING], token(T))));
    assert_eq!(a.scopes, strings(&[READ, WRITE, PAIRING]));
    assert_eq!(a.rule, RuleId::LocalOwner);
}

/// Scenario 7: R, token ok, gateway-client/backend, no device, [admin].
/// DIFFERS (docs/admission.md: no silent downgrade): OpenClaw admits with
/// scopes [] (later calls fail MISSING_SCOPE); clawgate refuses with
/// DEVICE_IDENTITY_REQUIRED (rule no-identity) and a hint naming the ways in.
/// Asking for no scopes is still admitted (rule scopeless).
#[test]
fn s07_remote_deviceless_token_client_is_refused_not_downgraded() {
    let r = refused(&conn(R, params(("gateway-client", "backend"), "operator", &[ADMIN], token(T))));
    assert_eq!(r.rule, RuleId::NoIdentity);
    assert_eq!(r.kind.details_code(), "DEVICE_IDENTITY_REQUIRED");
    assert_eq!(
        r.kind,
        RefusalKind::DeviceIdentityRequired { role: Role::Operator, requested_scopes: strings(&[ADMIN]) }
    );
    assert!(r.hint.contains("pair a device") && r.hint.contains("service token"), "{}", r.hint);

    let a = admitted(&conn(R, params(("gateway-client", "backend"), "operator", &[], token(T))));
    assert_eq!(a.rule, RuleId::Scopeless);
    assert!(a.scopes.is_empty());
}

/// Scenario 8: L, openclaw-tui/ui, token, no device.
/// DIFFERS (docs/admission.md, local-owner: "terminal UIs such as openclaw-tui
/// count as programs"): OpenClaw refuses CONTROL_UI_DEVICE_IDENTITY_REQUIRED;
/// clawgate admits it via local-owner. It is not a browser: no Origin, no
/// Sec-Fetch-*, not a browser client id, not mode webchat.
#[test]
fn s08_local_tui_is_the_local_owner() {
    let a = admitted(&conn(L, params(("openclaw-tui", "ui"), "operator", &[READ, WRITE], token(T))));
    assert_eq!(a.rule, RuleId::LocalOwner);
    assert_eq!(a.scopes, strings(&[READ, WRITE]));
}

/// Scenario 9: L, node-host/node, role node, token, no device.
/// DIFFERS (field report 1; docs/admission.md, local-owner "role operator or
/// node"): OpenClaw refuses DEVICE_IDENTITY_REQUIRED; clawgate admits a
/// device-less local node service via local-owner, with no scopes.
#[test]
fn s09_local_deviceless_node_service_is_admitted() {
    let a = admitted(&conn(L, params(("node-host", "node"), "node", &[], token(T))));
    assert_eq!(a.rule, RuleId::LocalOwner);
    assert_eq!(a.role, Role::Node);
    assert!(a.scopes.is_empty());
    assert!(a.device.is_none());
}

/// Scenario 10: Mode none, L, gateway-client/backend, no auth, no device, [write] ⇒
/// admitted with [write], method none.
#[test]
fn s10_mode_none_local_backend() {
    let c = conn(L, params(("gateway-client", "backend"), "operator", &[WRITE], None))
        .config(|c| *c = Config::new(AuthMode::None, None, None));
    let a = admitted(&c);
    assert_eq!(a.scopes, strings(&[WRITE]));
    assert_eq!(a.credential.method(), "none");
    assert_eq!(a.rule, RuleId::LocalOwner);
}

/// Scenario 11: Mode none, L, cli/cli, no device.
/// DIFFERS (docs/admission.md, local-owner: any non-browser program on loopback
/// with the owner secret, and NoneMode on a loopback bind is the owner
/// secret): OpenClaw refuses DEVICE_IDENTITY_REQUIRED; clawgate admits via
/// local-owner, with the scopes asked for.
#[test]
fn s11_mode_none_local_cli_is_admitted() {
    let none = |c: &mut Config| *c = Config::new(AuthMode::None, None, None);
    let a = admitted(&conn(L, params(("cli", "cli"), "operator", &[], None)).config(none));
    assert_eq!(a.rule, RuleId::LocalOwner);
    assert_eq!(a.credential.method(), "none");
    let a = admitted(&conn(L, params(("cli", "cli"), "operator", &[ADMIN], None)).config(none));
    assert_eq!(a.scopes, strings(&[ADMIN]));
}

/// Scenario 12: L, cli/cli, wrong token, no device ⇒ AUTH_TOKEN_MISMATCH,
/// update_auth_credentials, canRetryWithDeviceToken false.
#[test]
fn s12_wrong_token_without_device() {
    let r = refused(&conn(L, params(("cli", "cli"), "operator", &[], token("not-the-token"))));
    assert_eq!(r.rule, RuleId::Credential);
    assert_eq!(r.kind.details_code(), "AUTH_TOKEN_MISMATCH");
    assert_eq!(auth_refusal(&r), (AuthReason::TokenMismatch, false));
    assert_eq!(next_step(&r), "update_auth_credentials");
}

/// Scenario 13: R, cli/cli, wrong token, device ⇒ AUTH_TOKEN_MISMATCH with
/// canRetryWithDeviceToken true, retry_with_device_token.
#[test]
fn s13_wrong_token_with_device_may_retry_with_device_token() {
    let c = conn(R, params(("cli", "cli"), "operator", &[], token("not-the-token"))).with_device(&identity(), Sign::V3);
    let r = refused(&c);
    assert_eq!(r.kind.details_code(), "AUTH_TOKEN_MISMATCH");
    assert_eq!(auth_refusal(&r), (AuthReason::TokenMismatch, true));
    assert_eq!(next_step(&r), "retry_with_device_token");
}

/// Scenario 14: R, no auth, no device, operator ⇒ DEVICE_IDENTITY_REQUIRED (not
/// unauthorized); with a device ⇒ AUTH_TOKEN_MISSING, update_auth_configuration.
#[test]
fn s14_remote_without_credentials() {
    let r = refused(&conn(R, params(("cli", "cli"), "operator", &[], None)));
    assert_eq!(r.kind.details_code(), "DEVICE_IDENTITY_REQUIRED");
    assert_eq!(r.rule, RuleId::NoIdentity);

    let r = refused(&conn(R, params(("cli", "cli"), "operator", &[], None)).with_device(&identity(), Sign::V3));
    assert_eq!(r.kind.details_code(), "AUTH_TOKEN_MISSING");
    assert_eq!(next_step(&r), "update_auth_configuration");
}

/// Scenario 15: Token mode, the correct secret sent in auth.password ⇒ accepted, method token.
#[test]
fn s15_token_in_the_password_field() {
    let a = admitted(&conn(L, params(("cli", "cli"), "operator", &[READ], Some(json!({ "password": T })))));
    assert_eq!(a.credential, Credential::SharedToken);
    assert_eq!(a.credential.method(), "token");
}

/// Scenario 17: A device signature older than 2 minutes ⇒ DEVICE_AUTH_SIGNATURE_EXPIRED, device-signature-stale.
#[test]
fn s17_stale_signature() {
    let c = conn(R, params(("cli", "cli"), "operator", &[], token(T))).with_device(&identity(), Sign::Stale);
    let (facts, decided) = c.decide();
    assert_eq!(facts.device, DeviceFact::Failed(ProofError::SignatureExpired));
    let Decision::Refuse(r) = decided.decision else { panic!("expected a refusal") };
    assert_eq!(r.rule, RuleId::DeviceProof);
    assert_eq!(r.kind.details_code(), "DEVICE_AUTH_SIGNATURE_EXPIRED");
    assert_eq!(r.kind.reason(), "device-signature-stale");
}

/// Scenario 18: Another nonce ⇒ NONCE_MISMATCH; an id that is not the key's hash ⇒
/// DEVICE_ID_MISMATCH; a garbage signature ⇒ SIGNATURE_INVALID.
#[test]
fn s18_broken_proofs() {
    for (sign, code) in [
        (Sign::OtherNonce, "DEVICE_AUTH_NONCE_MISMATCH"),
        (Sign::WrongId, "DEVICE_AUTH_DEVICE_ID_MISMATCH"),
        (Sign::Garbage, "DEVICE_AUTH_SIGNATURE_INVALID"),
    ] {
        for peer in [L, R] {
            let c = conn(peer, params(("cli", "cli"), "operator", &[READ], token(T))).with_device(&identity(), sign);
            let r = refused(&c);
            assert_eq!(r.rule, RuleId::DeviceProof, "{code} from {peer}");
            assert_eq!(r.kind.details_code(), code, "from {peer}");
        }
    }
}

/// Scenario 19: A device signed with the v2 payload is accepted like v3.
#[test]
fn s19_v2_payload_is_accepted_like_v3() {
    for peer in [L, R] {
        let base = || conn(peer, params(("cli", "cli"), "operator", &[READ], token(T)));
        let (f2, d2) = base().with_device(&identity(), Sign::V2).decide();
        let (f3, d3) = base().with_device(&identity(), Sign::V3).decide();
        let (Some(v2), Some(v3)) = (f2.device.proven(), f3.device.proven()) else { panic!("both proofs verify") };
        assert_eq!(v2.payload_version, device_proof::PayloadVersion::V2);
        assert_eq!(v3.payload_version, device_proof::PayloadVersion::V3);
        assert_eq!(d2.decision.rule(), d3.decision.rule(), "from {peer}");
        assert_eq!(
            std::mem::discriminant(&d2.decision),
            std::mem::discriminant(&d3.decision),
            "same outcome from {peer}"
        );
    }
}

/// Scenario 20: R, cli/cli, token, unpaired device ⇒ PAIRING_REQUIRED reason not-paired.
#[test]
fn s20_remote_unpaired_device_needs_pairing() {
    let c = conn(R, params(("cli", "cli"), "operator", &[READ], token(T))).with_device(&identity(), Sign::V3);
    let n = pairing(&c);
    assert_eq!(n.reason, PairingReason::NotPaired);
    assert_eq!(n.reason.requirement(), "device is not approved yet");
    assert_eq!(n.device.device_id, identity().device_id());
    assert_eq!(n.scopes, strings(&[READ]));
}

/// Scenario 21: Paired with [read]; reconnect with the token asking [read,write]:
/// from L a silent scope upgrade, admitted with [read,write]; from R
/// PAIRING_REQUIRED scope-upgrade with approvedScopes [read].
#[test]
fn s21_scope_upgrade_is_silent_only_locally() {
    let id = identity();
    let ask = || params(("cli", "cli"), "operator", &[READ, WRITE], token(T));
    let record = paired_record(&id, &[Role::Operator], &[READ]);

    let a = admitted(&conn(L, ask()).with_device(&id, Sign::V3).paired(record.clone()));
    assert_eq!(a.rule, RuleId::SilentLocalPairing);
    assert_eq!(a.scopes, strings(&[READ, WRITE]));
    assert_eq!(a.device.unwrap().action, DeviceAction::PairSilently { reason: PairingReason::ScopeUpgrade });

    let n = pairing(&conn(R, ask()).with_device(&id, Sign::V3).paired(record));
    assert_eq!(n.reason, PairingReason::ScopeUpgrade);
    assert_eq!(n.approved_scopes, strings(&[READ]));
}

/// Scenario 22: The same device reconnecting with only its device token (sent in
/// auth.token, as the reference client does) asking [read,write] ⇒
/// AUTH_SCOPE_MISMATCH, review_auth_configuration; from L and from R.
#[test]
fn s22_device_token_never_upgrades_itself() {
    let id = identity();
    for peer in [L, R] {
        let mut c = conn(peer, params(("cli", "cli"), "operator", &[READ, WRITE], token(DEVICE_TOKEN)))
            .with_device(&id, Sign::V3)
            .paired(paired_record(&id, &[Role::Operator], &[READ]));
        c.tokens.push((Role::Operator, DEVICE_TOKEN, strings(&[READ])));
        let (facts, decided) = c.decide();
        assert!(matches!(facts.credential, CredentialCheck::Verified(Credential::DeviceToken { .. })));
        let Decision::Refuse(r) = decided.decision else { panic!("expected a refusal from {peer}") };
        assert_eq!(r.kind.details_code(), "AUTH_SCOPE_MISMATCH", "from {peer}");
        assert_eq!(next_step(&r), "review_auth_configuration");

        // Within its grant, the device token reconnects.
        c.params = params(("cli", "cli"), "operator", &[READ], token(DEVICE_TOKEN));
        let a = admitted(&c);
        assert_eq!(a.rule, RuleId::DevicePaired);
        assert_eq!(a.device.unwrap().action, DeviceAction::Paired { issue_token: false });
    }
}

/// Scenario 23: autoApproveLocal false, L, token, unpaired device ⇒ PAIRING_REQUIRED.
#[test]
fn s23_local_auto_approval_turned_off() {
    let c = conn(L, params(("cli", "cli"), "operator", &[READ], token(T)))
        .with_device(&identity(), Sign::V3)
        .config(|c| c.auto_approve_local = false);
    assert_eq!(pairing(&c).reason, PairingReason::NotPaired);
}

/// Scenario 24: An operator-paired device reconnecting from L with role node ⇒
/// PAIRING_REQUIRED role-upgrade (never silent).
#[test]
fn s24_role_upgrade_is_never_silent() {
    let id = identity();
    let c = conn(L, params(("node-host", "node"), "node", &[], token(T)))
        .with_device(&id, Sign::V3)
        .paired(paired_record(&id, &[Role::Operator], &[READ]));
    let n = pairing(&c);
    assert_eq!(n.reason, PairingReason::RoleUpgrade);
    assert_eq!(n.approved_roles, vec![Role::Operator]);
}

/// Scenario 25: Paired with platform macos / family Mac, reconnecting from L as cli
/// with platform linux ⇒ PAIRING_REQUIRED metadata-upgrade.
#[test]
fn s25_metadata_change_needs_approval() {
    let id = identity();
    let mut record = paired_record(&id, &[Role::Operator], &[READ]);
    record.platform = Some("macos".into());
    record.device_family = Some("Mac".into());
    let c = conn(L, params(("cli", "cli"), "operator", &[READ], token(T))).with_device(&id, Sign::V3).paired(record);
    assert_eq!(pairing(&c).reason, PairingReason::MetadataUpgrade);
}

/// Scenario 29: Socket 127.0.0.1 with X-Forwarded-For and no trusted proxies ⇒ HTTP
/// 403 proxy_attribution_required at the upgrade.
#[test]
fn s29_forwarded_for_from_an_untrusted_socket() {
    let edge = EdgeFacts::new(
        "127.0.0.1:50000".parse().unwrap(),
        PORT,
        vec![("Host".into(), "localhost:18789".into()), ("X-Forwarded-For".into(), "198.51.100.7".into())],
    );
    let r = classify_upgrade(&edge, &token_config()).unwrap_err();
    assert_eq!(r.status(), 403);
    assert_eq!(r.code(), "proxy_attribution_required");
}

/// §11 "also worth automating": Origin https://evil.example on a Control UI
/// connect ⇒ CONTROL_UI_ORIGIN_NOT_ALLOWED.
#[test]
fn foreign_origin_on_a_control_ui_connect() {
    let mut c = conn(L, params(("openclaw-control-ui", "webchat"), "operator", &[READ], token(T)))
        .with_device(&identity(), Sign::V3);
    c.headers.push(("Origin", "https://evil.example"));
    let r = refused(&c);
    assert_eq!(r.rule, RuleId::Origin);
    assert_eq!(r.kind.details_code(), "CONTROL_UI_ORIGIN_NOT_ALLOWED");
}

/// For scenarios 26–28: trusted-proxy mode, `trustedProxies: [10.0.0.2]`,
/// userHeader `x-pomerium-claim-email`.
fn trusted_proxy_config(password: Option<&str>) -> Config {
    let mut c = Config::new(AuthMode::TrustedProxy, None, password);
    c.trusted_proxies = vec!["10.0.0.2".parse().unwrap()];
    c.trusted_proxy = Some(TrustedProxyConfig::new("x-pomerium-claim-email", &[]));
    c.allowed_origins = vec!["https://gw.example".into()];
    c.identity_scopes.insert("alice@example.com".into(), strings(&[READ, WRITE]));
    c
}

/// Scenario 26: Socket 10.0.0.2 (the proxy) with X-Forwarded-For 198.51.100.7, the
/// user header and an allow-listed Origin; Control UI, no device ⇒ admitted,
/// method trusted-proxy, no device token.
/// DIFFERS (docs/admission.md, trusted-proxy; docs/threat-model.md H16 "never a silent
/// downgrade"): OpenClaw grants `[] ∪ identityScopes(user)` whatever was
/// asked; clawgate grants exactly what was asked when it is within the
/// user's identityScopes, and refuses SCOPE_NOT_GRANTED beyond them.
#[test]
fn s26_control_ui_through_the_trusted_proxy() {
    let ui = |scopes: &[&str]| {
        let mut c = conn("10.0.0.2", params(("openclaw-control-ui", "webchat"), "operator", scopes, None))
            .header("X-Forwarded-For", "198.51.100.7")
            .header("x-pomerium-claim-email", "alice@example.com")
            .header("Origin", "https://gw.example");
        c.host = "gw.example";
        c.config = trusted_proxy_config(None);
        c
    };
    let c = ui(&[READ]);
    let (facts, _) = c.decide();
    assert_eq!(facts.locality, Locality::Remote { client_ip: "198.51.100.7".parse().unwrap(), via_proxy: true });
    let a = admitted(&c);
    assert_eq!(a.rule, RuleId::TrustedProxy);
    assert_eq!(a.credential.method(), "trusted-proxy");
    assert_eq!(a.scopes, strings(&[READ]), "exactly what was asked (OpenClaw: [read, write])");
    assert!(a.device.is_none(), "no device token");

    let r = refused(&ui(&[ADMIN]));
    assert_eq!(r.rule, RuleId::TrustedProxy);
    assert_eq!(r.kind.details_code(), "SCOPE_NOT_GRANTED");
}

/// Scenario 27: The same config; cli/cli with a device from socket 127.0.0.1.
/// - Only the user header: OpenClaw refuses the connect AUTH_UNAUTHORIZED
///   `trusted_proxy_untrusted_source`. DIFFERS in stage only (security
///   docs/threat-model.md H5, docs/admission.md): clawgate refuses the upgrade itself, HTTP 403
///   with code `trusted_proxy_untrusted_source`, before any WebSocket.
/// - 127.0.0.1 added to trustedProxies ⇒ `trusted_proxy_loopback_source`;
///   then allowLoopback with requiredHeaders [x-forwarded-proto] absent ⇒
///   AUTH_IDENTITY_HEADER_REQUIRED. Matches, once the request names a client
///   in X-Forwarded-For: clawgate answers a trusted proxy without one with
///   HTTP 403 proxy_attribution_required at the upgrade (as the reference's
///   §5 attribution does; its §11 wording leaves XFF out).
/// - Without a device these end the same way. DIFFERS from the reference's
///   DEVICE_IDENTITY_REQUIRED: a credential that fails is refused by the
///   credential rule before any identity rule (docs/admission.md, rule order).
/// - Any x-forwarded-* header from the untrusted socket ⇒ 403 at the upgrade. Matches.
#[test]
fn s27_user_header_from_loopback() {
    let id = identity();
    let base = |device: bool| {
        let mut c = conn(L, params(("cli", "cli"), "operator", &[READ], None))
            .header("x-pomerium-claim-email", "alice@example.com");
        c.config = trusted_proxy_config(None);
        if device {
            c = c.with_device(&id, Sign::V3);
        }
        c
    };

    let r = base(true).edge_refusal();
    assert_eq!((r.status(), r.code()), (403, "trusted_proxy_untrusted_source"));

    for device in [true, false] {
        let mut trusted = base(true).header("X-Forwarded-For", "198.51.100.7");
        if !device {
            trusted.device = None;
        }
        trusted.config.trusted_proxies.push("127.0.0.1".parse().unwrap());
        let r = refused(&trusted);
        assert_eq!(r.rule, RuleId::Credential);
        assert_eq!(r.kind.details_code(), "AUTH_UNAUTHORIZED");
        assert_eq!(auth_refusal(&r).0, AuthReason::TrustedProxyLoopbackSource);
        assert_eq!(auth_refusal(&r).0.as_str(), "trusted_proxy_loopback_source");

        let mut tp = TrustedProxyConfig::new("x-pomerium-claim-email", &["x-forwarded-proto"]);
        tp.allow_loopback = true;
        trusted.config.trusted_proxy = Some(tp);
        let r = refused(&trusted);
        assert_eq!(r.kind.details_code(), "AUTH_IDENTITY_HEADER_REQUIRED");
        assert_eq!(auth_refusal(&r).0.as_str(), "trusted_proxy_missing_header_x-forwarded-proto");

        let mut no_xff = trusted;
        no_xff.headers.retain(|(k, _)| *k != "X-Forwarded-For");
        let r = no_xff.edge_refusal();
        assert_eq!((r.status(), r.code()), (403, "proxy_attribution_required"));
    }

    let r = base(true).header("X-Forwarded-Proto", "https").edge_refusal();
    assert_eq!(r.status(), 403);
}

/// Scenario 28: trusted-proxy mode with auth.password P: a headerless local
/// gateway-client/backend sending auth.password = P ⇒ admitted through the
/// password fallback, scopes kept (clawgate: rule local-owner).
#[test]
fn s28_password_fallback_for_local_callers() {
    const P: &str = "proxy-mode-password";
    let mut c = conn(L, params(("gateway-client", "backend"), "operator", &[WRITE], Some(json!({ "password": P }))));
    c.config = trusted_proxy_config(Some(P));
    let a = admitted(&c);
    assert_eq!(a.credential, Credential::SharedPassword);
    assert_eq!(a.credential.method(), "password");
    assert_eq!(a.scopes, strings(&[WRITE]));
    assert_eq!(a.rule, RuleId::LocalOwner);
}

/// clawgate: a loopback program of another user than `localOwnerUids`
/// (default: the gateway's own uid), holding the token, is not the owner:
/// no local-owner (the hint names the key), no silent pairing; the owner's
/// own uid changes nothing.
#[test]
fn another_users_program_on_loopback_is_not_the_owner() {
    let owner = token_config().local_owner_uids[0];
    let other = owner.wrapping_add(1);
    let backend = || conn(L, params(("gateway-client", "backend"), "operator", &[READ], token(T)));
    assert_eq!(admitted(&backend().uid(owner)).rule, RuleId::LocalOwner);
    let r = refused(&backend().uid(other));
    assert_eq!(r.kind.details_code(), "DEVICE_IDENTITY_REQUIRED");
    assert!(r.hint.contains("gateway.auth.localOwnerUids"), "{}", r.hint);

    let device = || conn(L, params(("cli", "cli"), "operator", &[READ], token(T))).with_device(&identity(), Sign::V3);
    assert_eq!(admitted(&device().uid(owner)).rule, RuleId::SilentLocalPairing);
    assert_eq!(pairing(&device().uid(other)).reason, PairingReason::NotPaired);
    let allowed = device().uid(other).config(|c| c.local_owner_uids.push(other));
    assert_eq!(admitted(&allowed).rule, RuleId::SilentLocalPairing);
}

// Not here:
// - 16 (rate limiting): a limiter over a sequence of connects, not one decision.
// - 30 (method authorization, flood guard, event filtering): after admission.
