//! `clawgate auth explain`, the pure part: turn a described connection into
//! edge facts and connect facts, run the same [`classify_upgrade`] and
//! [`decide`] the server runs, and render the decision with the trace of
//! rules considered, as text or JSON.
//!
//! The credential is described by kind (`shared-token`, `wrong-token`, …) and
//! checked with the server's own credential check against the loaded config,
//! so mode quirks (mode none ignores what is sent; the shared secret is
//! accepted in either field) come out as they would on the wire. A device
//! token is looked up in the store view the caller read for the device; a
//! service token is the named principal's, as the caller read it from the store.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clawgate_protocol::{AuthParams, ClientInfo, ConnectParams, DeviceParams};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{AuthMode, Config};
use crate::store::{DeviceView, ServicePrincipal, ServiceTokenCheck, StoreError, TokenCheck};

use super::credential::CredentialCheck;
use super::decision::{Decided, Decision, DeviceAction, Principal, RefusalKind, Role};
use super::device_proof::{decode_public_key, derive_device_id, PayloadVersion, ProofError, VerifiedDevice};
use super::evaluate::{evaluate, Connect, Proof};
use super::facts::{DeviceFact, Locality};
use super::ingress::{classify_upgrade, EdgeFacts, UpgradeRefusal};
use super::lookups::Lookups;

/// The key a described device uses when neither `publicKey` nor a paired
/// record gives one. Any 32 bytes do: `decide` never checks a signature.
const PLACEHOLDER_KEY: [u8; 32] = [0x42; 32];

/// What the client presents, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialDesc {
    /// The gateway's shared secret (token or password, whichever the mode
    /// uses), sent in `auth.token`.
    #[default]
    SharedToken,
    /// The gateway's shared secret, sent in `auth.password`.
    SharedPassword,
    /// Nothing.
    None,
    /// A token that is not the gateway's.
    WrongToken,
    /// The device's own token for the requested role, in `auth.deviceToken`
    /// (valid when the store holds a live token for that device and role).
    DeviceToken,
    /// The current token of the service principal named by `service`.
    ServiceToken,
}

impl CredentialDesc {
    pub const NAMES: &'static [&'static str] =
        &["shared-token", "shared-password", "none", "wrong-token", "device-token", "service-token"];
}

impl FromStr for CredentialDesc {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "shared-token" => CredentialDesc::SharedToken,
            "shared-password" => CredentialDesc::SharedPassword,
            "none" => CredentialDesc::None,
            "wrong-token" => CredentialDesc::WrongToken,
            "device-token" => CredentialDesc::DeviceToken,
            "service-token" => CredentialDesc::ServiceToken,
            other => return Err(format!("unknown credential {other:?}: one of {}", CredentialDesc::NAMES.join(", "))),
        })
    }
}

/// What the device block proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceDesc {
    /// No device block.
    #[default]
    None,
    /// A device block whose proof verified.
    Proven,
    /// A device block whose signature did not verify.
    Failed,
}

impl DeviceDesc {
    pub const NAMES: &'static [&'static str] = &["none", "proven", "failed"];
}

impl FromStr for DeviceDesc {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "none" => DeviceDesc::None,
            "proven" => DeviceDesc::Proven,
            "failed" => DeviceDesc::Failed,
            other => return Err(format!("unknown device {other:?}: one of {}", DeviceDesc::NAMES.join(", "))),
        })
    }
}

/// A described connection: the `--file` JSON, or the command-line flags.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Description {
    /// Socket peer: an IP, or IP:port. Default 127.0.0.1.
    pub peer: Option<String>,
    /// Host header. Default `localhost:<configured port>`.
    pub host: Option<String>,
    /// Origin header (`""` and `"null"` are Origins too).
    pub origin: Option<String>,
    /// More request headers, each `Name: value`.
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(alias = "client-id")]
    pub client_id: Option<String>,
    #[serde(alias = "client-mode")]
    pub client_mode: Option<String>,
    /// Requested role; absent means operator.
    pub role: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub credential: CredentialDesc,
    #[serde(default)]
    pub device: DeviceDesc,
    /// For a proven device: its id (the store is consulted for it).
    #[serde(alias = "device-id")]
    pub device_id: Option<String>,
    /// For a proven device: its key, base64url. Default: the paired key.
    #[serde(alias = "public-key")]
    pub public_key: Option<String>,
    /// For `credential: service-token`: the service principal's name.
    pub service: Option<String>,
    /// `client.platform`. Default: the paired record's, else `linux`.
    pub platform: Option<String>,
    #[serde(alias = "device-family")]
    pub device_family: Option<String>,
    #[serde(alias = "min-protocol")]
    pub min_protocol: Option<u64>,
    #[serde(alias = "max-protocol")]
    pub max_protocol: Option<u64>,
}

impl Description {
    /// Parse a `--file` (JSON).
    pub fn from_json(text: &str) -> Result<Description, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        serde_path_to_error::deserialize(value).map_err(|e| {
            let at = e.path().to_string();
            if at == "." {
                e.inner().to_string()
            } else {
                format!("at {at}: {}", e.inner())
            }
        })
    }

    /// The device whose store record the explanation needs, if any: the
    /// proven device's id (given, or derived from the given key).
    pub fn device_to_look_up(&self) -> Option<String> {
        if self.device != DeviceDesc::Proven {
            return None;
        }
        if let Some(id) = &self.device_id {
            return Some(id.clone());
        }
        let key = self.public_key.as_deref().and_then(decode_public_key).unwrap_or(PLACEHOLDER_KEY);
        Some(derive_device_id(&key))
    }
}

/// The decision on a described connection, and what it was decided on.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub peer: SocketAddr,
    pub headers: Vec<(String, String)>,
    pub params: ConnectParams,
    /// `classify_upgrade`: the locality, or the HTTP refusal before any rule.
    pub edge: Result<Locality, UpgradeRefusal>,
    /// What the credential check showed (absent when the edge refused).
    pub credential: Option<CredentialCheck>,
    /// `decide` (absent when the edge refused).
    pub decided: Option<Decided>,
}

fn parse_peer(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(sa) = t.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let ip = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(t);
    ip.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 50_000))
        .map_err(|_| format!("peer {text:?} is not an IP address (or IP:port)"))
}

/// `Name: value` → (name, value).
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once(':').ok_or_else(|| format!("header {text:?} is not NAME:VALUE"))?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("header {text:?} has no valid name"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// A value that is certainly not the configured secret.
fn wrong_secret(config: &Config) -> String {
    let mut v = String::from("explain-wrong-secret");
    while [&config.token, &config.password].iter().any(|s| s.as_ref().is_some_and(|s| s.digest().matches(v.as_bytes())))
    {
        v.push('x');
    }
    v
}

/// The secret the mode checks (sent by `shared-token` / `shared-password`).
fn shared_secret(config: &Config) -> String {
    let secret = match config.auth_mode {
        AuthMode::Token => config.token.as_ref(),
        AuthMode::Password | AuthMode::TrustedProxy => config.password.as_ref(),
        AuthMode::None => config.token.as_ref().or(config.password.as_ref()),
    };
    // Not configured: send something; the check reports the missing config.
    secret.map_or_else(|| wrong_secret(config), |s| s.reveal().to_owned())
}

/// Run the edge classification and the decision on a described connection.
/// `view` is the store's record of the device [`Description::device_to_look_up`]
/// names (None when there is no store or no device); `service` the principal
/// [`Description::service`] names, as stored (None when there is none).
pub fn explain(
    desc: &Description,
    config: &Config,
    view: Option<&DeviceView>,
    service: Option<&ServicePrincipal>,
) -> Result<Explanation, String> {
    let peer = parse_peer(desc.peer.as_deref().unwrap_or("127.0.0.1"))?;
    let mut headers =
        vec![("Host".to_owned(), desc.host.clone().unwrap_or_else(|| format!("localhost:{}", config.port)))];
    if let Some(origin) = &desc.origin {
        headers.push(("Origin".to_owned(), origin.clone()));
    }
    for h in &desc.headers {
        headers.push(parse_header(h)?);
    }
    let edge = EdgeFacts::new(peer, config.port, headers.clone());

    let paired = view.and_then(|v| v.device.as_ref());
    let device = match desc.device {
        DeviceDesc::None => None,
        DeviceDesc::Failed | DeviceDesc::Proven => {
            let (key, key_text) = match &desc.public_key {
                Some(text) => {
                    let key = decode_public_key(text).ok_or_else(|| format!("public key {text:?} is not 32 bytes"))?;
                    (key, URL_SAFE_NO_PAD.encode(key))
                }
                None => {
                    match paired.and_then(|d| decode_public_key(&d.public_key).map(|k| (k, d.public_key.clone()))) {
                        Some(found) => found,
                        None => (PLACEHOLDER_KEY, URL_SAFE_NO_PAD.encode(PLACEHOLDER_KEY)),
                    }
                }
            };
            let device_id = desc.device_id.clone().unwrap_or_else(|| derive_device_id(&key));
            Some(VerifiedDevice {
                device_id,
                public_key: key,
                public_key_b64url: key_text,
                payload_version: PayloadVersion::V3,
            })
        }
    };

    let auth = match desc.credential {
        CredentialDesc::SharedToken => Some(AuthParams { token: Some(shared_secret(config)), ..Default::default() }),
        CredentialDesc::SharedPassword => {
            Some(AuthParams { password: Some(shared_secret(config)), ..Default::default() })
        }
        CredentialDesc::None => None,
        CredentialDesc::WrongToken => Some(AuthParams { token: Some(wrong_secret(config)), ..Default::default() }),
        CredentialDesc::DeviceToken => {
            Some(AuthParams { device_token: Some("<the device's token>".into()), ..Default::default() })
        }
        CredentialDesc::ServiceToken => Some(AuthParams { token: Some(service_token(service)), ..Default::default() }),
    };
    let platform =
        desc.platform.clone().or_else(|| paired.and_then(|d| d.platform.clone())).unwrap_or_else(|| "linux".into());
    let mut client = ClientInfo::new(
        desc.client_id.as_deref().unwrap_or("cli"),
        "explain",
        &platform,
        desc.client_mode.as_deref().unwrap_or("cli"),
    );
    client.device_family = desc.device_family.clone().or_else(|| paired.and_then(|d| d.device_family.clone()));
    let params = ConnectParams {
        min_protocol: desc.min_protocol.unwrap_or(4),
        role: desc.role.clone(),
        scopes: if desc.scopes.is_empty() { None } else { Some(desc.scopes.clone()) },
        device: device.as_ref().map(|d| DeviceParams {
            id: d.device_id.clone(),
            public_key: d.public_key_b64url.clone(),
            signature: "not-checked-by-explain".into(),
            signed_at: 0,
            nonce: "explain".into(),
        }),
        auth,
        ..ConnectParams::new(desc.max_protocol.unwrap_or(4), client)
    };
    // The server refuses params the schema rejects before any rule runs.
    let as_json = serde_json::to_value(&params).map_err(|e| e.to_string())?;
    let params = ConnectParams::parse(Some(&as_json))
        .map_err(|e| format!("the gateway would reject these connect params: {e}"))?;

    let locality = match classify_upgrade(&edge, config) {
        Ok(l) => l,
        Err(r) => return Ok(Explanation { peer, headers, params, edge: Err(r), credential: None, decided: None }),
    };

    let fact = match desc.device {
        DeviceDesc::None => DeviceFact::None,
        DeviceDesc::Failed => DeviceFact::Failed(ProofError::SignatureInvalid),
        DeviceDesc::Proven => DeviceFact::Proven(device.clone().ok_or("no device")?),
    };
    // The server's own pipeline (service tokens, trusted-proxy headers and
    // loopbackUser included); only the proof is described, not signed.
    let connect = Connect {
        edge: &edge,
        locality,
        params: params.clone(),
        proof: Proof::Known(fact),
        now_ms: 0,
        locked_out_ms: None,
    };
    let evaluated = evaluate(connect, config, &mut DescribedStore { view, service })
        .map_err(|e| format!("the described store failed: {e}"))?;
    Ok(Explanation {
        peer,
        headers,
        params,
        edge: Ok(locality),
        credential: Some(evaluated.facts.credential),
        decided: Some(evaluated.decided),
    })
}

/// The store as the caller read it for the explanation: the view of the
/// described device and the named service principal.
struct DescribedStore<'a> {
    view: Option<&'a DeviceView>,
    service: Option<&'a ServicePrincipal>,
}

impl Lookups for DescribedStore<'_> {
    fn device_token(&mut self, device_id: &str, role: Role, _presented: &str) -> Result<TokenCheck, StoreError> {
        Ok(token_in_view(self.view, device_id, role))
    }

    fn service_token(&mut self, presented: &str) -> Result<ServiceTokenCheck, StoreError> {
        let service = self.service;
        Ok(match service {
            Some(p) if presented == service_token(service) && p.is_revoked() => ServiceTokenCheck::Revoked,
            Some(p) if presented == service_token(service) => ServiceTokenCheck::Valid(p.clone()),
            _ => ServiceTokenCheck::Unknown,
        })
    }

    /// The described device's record; an empty one when the caller read none.
    fn device_view(&mut self, _device_id: &str) -> Result<DeviceView, StoreError> {
        Ok(self.view.cloned().unwrap_or(DeviceView { generation: 0, device: None, tokens: Vec::new() }))
    }
}

/// The token the described client presents for `service-token`: shaped like
/// the principal's (`cgs_<id>_…`); it verifies only through the lookup above.
fn service_token(service: Option<&ServicePrincipal>) -> String {
    format!("cgs_{}_explain", service.map_or("0000000000000000", |p| p.principal_id.as_str()))
}

/// The device token check, answered from the view: the described client
/// presents the live token of (device, role) if the store holds one.
fn token_in_view(view: Option<&DeviceView>, device_id: &str, role: Role) -> TokenCheck {
    let Some(view) = view else { return TokenCheck::DeviceNotPaired };
    match &view.device {
        Some(d) if d.device_id == device_id => {}
        _ => return TokenCheck::DeviceNotPaired,
    }
    match view.tokens.iter().find(|t| t.device_id == device_id && t.role == role) {
        Some(t) if t.is_revoked() => TokenCheck::Revoked,
        Some(t) => TokenCheck::Valid { scopes: t.scopes.clone() },
        None => TokenCheck::Missing,
    }
}

/// `admit`, `pairing-required`, or `refuse`.
pub fn outcome(e: &Explanation) -> &'static str {
    match &e.decided {
        Some(Decided { decision: Decision::Admit(_), .. }) => "admit",
        Some(Decided { decision: Decision::PairingRequired(_), .. }) => "pairing-required",
        _ => "refuse",
    }
}

fn locality_text(l: &Locality) -> String {
    match l {
        Locality::DirectLocal => "direct-local (loopback socket, no proxy evidence, loopback Host)".into(),
        Locality::Remote { client_ip, via_proxy: true } => format!("remote, client {client_ip} via a trusted proxy"),
        Locality::Remote { client_ip, via_proxy: false } => format!("remote, client {client_ip}"),
    }
}

fn credential_text(c: &CredentialCheck) -> String {
    match c {
        CredentialCheck::Verified(c) => format!("{} (verified)", c.kind_name()),
        CredentialCheck::Absent => "none presented".into(),
        CredentialCheck::Failed(r) => format!("failed: {}", r.as_str()),
        CredentialCheck::RateLimited { retry_after_ms } => format!("not checked: rate limited for {retry_after_ms} ms"),
    }
}

fn credential_json(c: &CredentialCheck) -> Value {
    match c {
        CredentialCheck::Verified(c) => json!({ "status": "verified", "kind": c.kind_name() }),
        CredentialCheck::Absent => json!({ "status": "absent" }),
        CredentialCheck::Failed(r) => json!({ "status": "failed", "authReason": r.as_str() }),
        CredentialCheck::RateLimited { retry_after_ms } => {
            json!({ "status": "rate-limited", "retryAfterMs": retry_after_ms })
        }
    }
}

fn principal_text(p: &Principal) -> String {
    match p {
        Principal::LocalOwner => "local owner".into(),
        Principal::ScopelessSecretHolder => "shared-secret holder without scopes".into(),
        Principal::Device { device_id } => format!("device {device_id}"),
        Principal::Service { name, principal_id } => format!("service principal {name} ({principal_id})"),
        Principal::ProxyUser { user } => format!("user {user}, vouched for by the trusted proxy"),
    }
}

fn device_action_text(a: &DeviceAction) -> String {
    match a {
        DeviceAction::Paired { issue_token: true } => "paired; a device token is issued".into(),
        DeviceAction::Paired { issue_token: false } => "paired; keeps its device token".into(),
        DeviceAction::PairSilently { reason } => {
            format!("paired silently now ({}); a device token is issued", reason.as_str())
        }
    }
}

/// The recommended next step of an auth refusal, as the wire reports it.
fn next_step(kind: &RefusalKind) -> Option<&'static str> {
    match kind {
        RefusalKind::Auth { can_retry_with_device_token: true, .. } => Some("retry_with_device_token"),
        RefusalKind::Auth { reason, .. } => Some(reason.next_step()),
        RefusalKind::RateLimited { .. } => Some("wait_then_retry"),
        _ => None,
    }
}

/// The edge step, first in every trace.
fn edge_note(e: &Explanation) -> (bool, String) {
    match &e.edge {
        Ok(l) => (false, locality_text(l)),
        Err(r) => (true, format!("HTTP {} {}: {}", r.status(), r.code(), r.message())),
    }
}

/// The explanation as text for a terminal.
pub fn render_text(e: &Explanation) -> String {
    let mut out = String::new();
    let p = &e.params;
    let scopes = |s: &[String]| if s.is_empty() { "(none)".to_owned() } else { s.join(", ") };
    let _ = writeln!(
        out,
        "connection:  peer {}, client {}/{}, role {}, scopes {}",
        e.peer.ip(),
        p.client.id,
        p.client.mode,
        p.role(),
        scopes(p.scopes())
    );
    for (name, value) in &e.headers {
        let _ = writeln!(out, "  header     {name}: {value:?}");
    }
    match &e.edge {
        Ok(l) => {
            let _ = writeln!(out, "edge:        {}", locality_text(l));
        }
        Err(r) => {
            let _ = writeln!(out, "edge:        refused at the upgrade, HTTP {} {}", r.status(), r.code());
            let _ = writeln!(out, "outcome:     refuse (before any admission rule)");
            let _ = writeln!(out, "rule:        edge");
            let _ = writeln!(out, "code:        {}", r.code());
            let _ = writeln!(out, "hint:        {}", r.message());
            return out;
        }
    }
    if let Some(c) = &e.credential {
        let _ = writeln!(out, "credential:  {}", credential_text(c));
    }
    let Some(decided) = &e.decided else { return out };
    let _ = writeln!(out, "outcome:     {}", outcome(e));
    let _ = writeln!(out, "rule:        {}", decided.decision.rule());
    match &decided.decision {
        Decision::Admit(a) => {
            let _ = writeln!(out, "principal:   {}", principal_text(&a.principal));
            let _ = writeln!(out, "role:        {}", a.role.as_str());
            let _ = writeln!(out, "scopes:      {}", scopes(&a.scopes));
            let _ = writeln!(out, "method:      {}", a.credential.method());
            if let Some(d) = &a.device {
                let _ = writeln!(out, "device:      {}", device_action_text(&d.action));
            }
        }
        Decision::PairingRequired(n) => {
            let _ = writeln!(out, "code:        PAIRING_REQUIRED");
            let _ = writeln!(out, "reason:      {} ({})", n.reason.as_str(), n.reason.requirement());
            let _ = writeln!(out, "device:      {}", n.device.device_id);
            let _ = writeln!(out, "hint:        {}", n.hint);
        }
        Decision::Refuse(r) => {
            let _ = writeln!(out, "code:        {}", r.kind.details_code());
            let _ = writeln!(out, "reason:      {}", r.kind.reason());
            if let Some(step) = next_step(&r.kind) {
                let _ = writeln!(out, "next step:   {step}");
            }
            let _ = writeln!(out, "hint:        {}", r.hint);
        }
    }
    let _ = writeln!(out, "trace:");
    let (_, edge) = edge_note(e);
    let _ = writeln!(out, "    {:<22} {:<14} {edge}", "edge", "not applicable");
    for step in &decided.trace {
        let mark = if step.decided { ">" } else { " " };
        let verdict = if step.decided { "DECIDED" } else { "not applicable" };
        let _ = writeln!(out, "  {mark} {:<22} {verdict:<14} {}", step.rule.as_str(), step.note);
    }
    out
}

/// The explanation as JSON (`--json`).
pub fn render_json(e: &Explanation) -> Value {
    let p = &e.params;
    let mut v = json!({
        "connection": {
            "peer": e.peer.ip().to_string(),
            "headers": e.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "clientId": p.client.id,
            "clientMode": p.client.mode,
            "role": p.role(),
            "scopes": p.scopes(),
            "device": p.device.as_ref().map(|d| d.id.clone()),
        },
        "outcome": outcome(e),
    });
    let (edge_decided, edge_text) = edge_note(e);
    let mut trace = vec![json!({ "rule": "edge", "decided": edge_decided, "note": edge_text })];
    match &e.edge {
        Err(r) => {
            v["stage"] = json!("edge");
            v["rule"] = json!("edge");
            v["httpStatus"] = json!(r.status());
            v["code"] = json!(r.code());
            v["hint"] = json!(r.message());
        }
        Ok(l) => {
            v["stage"] = json!("decide");
            v["locality"] = match l {
                Locality::DirectLocal => json!({ "kind": "direct-local" }),
                Locality::Remote { client_ip, via_proxy } => {
                    json!({ "kind": "remote", "clientIp": client_ip.to_string(), "viaProxy": via_proxy })
                }
            };
        }
    }
    if let Some(c) = &e.credential {
        v["credential"] = credential_json(c);
    }
    if let Some(decided) = &e.decided {
        v["rule"] = json!(decided.decision.rule().as_str());
        match &decided.decision {
            Decision::Admit(a) => {
                v["role"] = json!(a.role.as_str());
                v["scopes"] = json!(a.scopes);
                v["method"] = json!(a.credential.method());
                v["principal"] = json!(principal_text(&a.principal));
                if let Some(d) = &a.device {
                    v["deviceAction"] = json!(device_action_text(&d.action));
                }
            }
            Decision::PairingRequired(n) => {
                v["code"] = json!("PAIRING_REQUIRED");
                v["reason"] = json!(n.reason.as_str());
                v["hint"] = json!(n.hint);
                v["approvedScopes"] = json!(n.approved_scopes);
            }
            Decision::Refuse(r) => {
                v["code"] = json!(r.kind.details_code());
                v["reason"] = json!(r.kind.reason());
                v["hint"] = json!(r.hint);
                if let Some(step) = next_step(&r.kind) {
                    v["recommendedNextStep"] = json!(step);
                }
            }
        }
        trace.extend(
            decided.trace.iter().map(|s| json!({ "rule": s.rule.as_str(), "decided": s.decided, "note": s.note })),
        );
    }
    v["trace"] = Value::Array(trace);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::rules::RuleId;
    use crate::store::{ApprovedVia, PairedDevice, TokenInfo};

    const T: &str = "explain-test-token-0123456789abcdef";

    fn cfg() -> Config {
        Config::for_tests(AuthMode::Token, Some(T), None)
    }

    fn desc(f: impl FnOnce(&mut Description)) -> Description {
        let mut d = Description::default();
        f(&mut d);
        d
    }

    fn run(d: &Description) -> Explanation {
        explain(d, &cfg(), None, None).unwrap()
    }

    fn rule(e: &Explanation) -> Option<RuleId> {
        e.decided.as_ref().map(|d| d.decision.rule())
    }

    fn code(e: &Explanation) -> Option<&'static str> {
        match &e.decided.as_ref()?.decision {
            Decision::Refuse(r) => Some(r.kind.details_code()),
            _ => None,
        }
    }

    fn paired_view(role: Role, scopes: &[&str], token_scopes: &[&str]) -> (DeviceView, String) {
        let key = [7u8; 32];
        let id = derive_device_id(&key);
        let device = PairedDevice {
            device_id: id.clone(),
            public_key: URL_SAFE_NO_PAD.encode(key),
            display_name: None,
            label: None,
            platform: Some("macos".into()),
            device_family: None,
            client_id: Some("cli".into()),
            client_mode: Some("cli".into()),
            roles: vec![role],
            approved_scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            approved_via: ApprovedVia::Owner,
            created_at_ms: 1,
            approved_at_ms: 1,
            last_seen_at_ms: None,
            remote_ip: None,
        };
        let token = TokenInfo {
            device_id: id.clone(),
            role,
            scopes: token_scopes.iter().map(|s| (*s).to_owned()).collect(),
            created_at_ms: 1,
            rotated_at_ms: None,
            revoked_at_ms: None,
            last_used_at_ms: None,
        };
        (DeviceView { generation: 3, device: Some(device), tokens: vec![token] }, id)
    }

    #[test]
    fn local_program_with_the_token_is_the_local_owner() {
        let e = run(&desc(|d| d.scopes = vec!["operator.write".into()]));
        assert_eq!(e.edge, Ok(Locality::DirectLocal));
        assert_eq!(rule(&e), Some(RuleId::LocalOwner));
        assert_eq!(outcome(&e), "admit");
        let text = render_text(&e);
        assert!(text.contains("outcome:     admit"), "{text}");
        assert!(text.contains("rule:        local-owner"), "{text}");
        assert!(text.contains("> local-owner"), "{text}");
        let j = render_json(&e);
        assert_eq!(j["outcome"], "admit");
        assert_eq!(j["rule"], "local-owner");
        assert_eq!(j["scopes"], json!(["operator.write"]));
        assert_eq!(j["credential"]["kind"], "shared-token");
        assert_eq!(j["trace"][0]["rule"], "edge");
        let last = j["trace"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last, json!({"rule": "local-owner", "decided": true, "note": last["note"]}));
    }

    #[test]
    fn a_foreign_origin_is_refused_by_the_origin_rule() {
        let e = run(&desc(|d| d.origin = Some("http://evil.example".into())));
        assert_eq!(rule(&e), Some(RuleId::Origin));
        assert_eq!(code(&e), Some("CONTROL_UI_ORIGIN_NOT_ALLOWED"));
        let j = render_json(&e);
        assert_eq!(j["outcome"], "refuse");
        assert_eq!(j["code"], "CONTROL_UI_ORIGIN_NOT_ALLOWED");
        assert!(j["hint"].as_str().unwrap().contains("allowedOrigins"));
    }

    #[test]
    fn a_remote_peer_asking_scopes_has_no_identity() {
        let e = run(&desc(|d| {
            d.peer = Some("203.0.113.5".into());
            d.host = Some("gw.example:18789".into());
            d.scopes = vec!["operator.read".into()];
        }));
        assert_eq!(e.edge, Ok(Locality::Remote { client_ip: "203.0.113.5".parse().unwrap(), via_proxy: false }));
        assert_eq!(rule(&e), Some(RuleId::NoIdentity));
        assert_eq!(code(&e), Some("DEVICE_IDENTITY_REQUIRED"));
        assert!(render_text(&e).contains("remote, client 203.0.113.5"));
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_stop_at_the_edge() {
        let e = run(&desc(|d| d.headers = vec!["X-Forwarded-For: 198.51.100.7".into()]));
        assert_eq!(e.edge.as_ref().unwrap_err().status(), 403);
        assert!(e.decided.is_none() && e.credential.is_none());
        let j = render_json(&e);
        assert_eq!(j["outcome"], "refuse");
        assert_eq!(j["stage"], "edge");
        assert_eq!(j["httpStatus"], 403);
        assert_eq!(j["code"], "proxy_attribution_required");
        assert_eq!(j["trace"].as_array().unwrap().len(), 1);
        let text = render_text(&e);
        assert!(text.contains("HTTP 403 proxy_attribution_required"), "{text}");
    }

    #[test]
    fn credential_kinds_are_checked_by_the_server_check() {
        let wrong = run(&desc(|d| d.credential = CredentialDesc::WrongToken));
        assert_eq!(code(&wrong), Some("AUTH_TOKEN_MISMATCH"));
        assert!(render_text(&wrong).contains("next step:   update_auth_credentials"));
        let in_password_field = run(&desc(|d| d.credential = CredentialDesc::SharedPassword));
        assert_eq!(rule(&in_password_field), Some(RuleId::LocalOwner), "token mode accepts either field");
        let none = run(&desc(|d| {
            d.credential = CredentialDesc::None;
            d.scopes = vec!["operator.read".into()];
        }));
        assert_eq!(rule(&none), Some(RuleId::NoIdentity));
        let mode_none = explain(
            &desc(|d| d.credential = CredentialDesc::WrongToken),
            &Config::for_tests(AuthMode::None, None, None),
            None,
            None,
        )
        .unwrap();
        assert_eq!(rule(&mode_none), Some(RuleId::LocalOwner), "mode none ignores what is sent");
        assert_eq!(render_json(&mode_none)["method"], "none");
    }

    #[test]
    fn a_paired_device_is_read_from_the_view() {
        let (view, id) = paired_view(Role::Operator, &["operator.read"], &["operator.read"]);
        let d = desc(|d| {
            d.device = DeviceDesc::Proven;
            d.device_id = Some(id.clone());
            d.peer = Some("203.0.113.5".into());
            d.credential = CredentialDesc::DeviceToken;
            d.scopes = vec!["operator.read".into()];
        });
        assert_eq!(d.device_to_look_up(), Some(id.clone()));
        let e = explain(&d, &cfg(), Some(&view), None).unwrap();
        assert_eq!(rule(&e), Some(RuleId::DevicePaired));
        assert_eq!(render_json(&e)["method"], "device-token");
        assert!(render_text(&e).contains("keeps its device token"));

        // Asking beyond the token: scope mismatch, never a silent upgrade.
        let mut more = d.clone();
        more.scopes.push("operator.write".into());
        let e = explain(&more, &cfg(), Some(&view), None).unwrap();
        assert_eq!(code(&e), Some("AUTH_SCOPE_MISMATCH"));

        // The shared token from remote asking more: a scope-upgrade request.
        more.credential = CredentialDesc::SharedToken;
        let e = explain(&more, &cfg(), Some(&view), None).unwrap();
        assert_eq!(outcome(&e), "pairing-required");
        let j = render_json(&e);
        assert_eq!(j["reason"], "scope-upgrade");
        assert_eq!(j["approvedScopes"], json!(["operator.read"]));

        // A device token without a live token in the store does not verify.
        let mut other_role = d.clone();
        other_role.role = Some("node".into());
        other_role.scopes.clear();
        let e = explain(&other_role, &cfg(), Some(&view), None).unwrap();
        assert_eq!(code(&e), Some("AUTH_DEVICE_TOKEN_MISMATCH"));

        // Unpaired device, no store: local with the token pairs silently.
        let fresh = desc(|d| d.device = DeviceDesc::Proven);
        assert!(fresh.device_to_look_up().is_some());
        let e = run(&fresh);
        assert_eq!(rule(&e), Some(RuleId::SilentLocalPairing));
        assert!(render_text(&e).contains("paired silently now (not-paired)"));
    }

    #[test]
    fn service_tokens_are_the_named_principal() {
        let principal = ServicePrincipal {
            principal_id: "0123456789abcdef".into(),
            name: "cron".into(),
            role: Role::Operator,
            scopes: vec!["operator.read".into()],
            created_at_ms: 1,
            rotated_at_ms: None,
            revoked_at_ms: None,
            last_used_at_ms: None,
        };
        let d = desc(|d| {
            d.credential = CredentialDesc::ServiceToken;
            d.service = Some("cron".into());
            d.peer = Some("203.0.113.5".into());
            d.scopes = vec!["operator.read".into()];
        });
        let e = explain(&d, &cfg(), None, Some(&principal)).unwrap();
        assert_eq!(rule(&e), Some(RuleId::ServicePrincipal));
        assert_eq!(render_json(&e)["credential"]["kind"], "service-token");
        assert!(render_text(&e).contains("service principal cron (0123456789abcdef)"), "{}", render_text(&e));

        let mut more = d.clone();
        more.scopes.push("operator.admin".into());
        let e = explain(&more, &cfg(), None, Some(&principal)).unwrap();
        assert_eq!(code(&e), Some("SCOPE_NOT_GRANTED"));

        let unknown = explain(&d, &cfg(), None, None).unwrap();
        assert_eq!(code(&unknown), Some("AUTH_SERVICE_TOKEN_INVALID"));
        let revoked = ServicePrincipal { revoked_at_ms: Some(2), ..principal };
        let e = explain(&d, &cfg(), None, Some(&revoked)).unwrap();
        assert_eq!(code(&e), Some("AUTH_SERVICE_TOKEN_INVALID"));
    }

    #[test]
    fn trusted_proxy_headers_are_read_like_the_server_reads_them() {
        let mut c = Config::for_tests(AuthMode::TrustedProxy, None, Some("pw"));
        c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
        c.trusted_proxy = Some(crate::config::TrustedProxyConfig::new("X-Auth-User", &[]));
        c.identity_scopes.insert("alice".into(), vec!["operator.read".into()]);
        let through_proxy = desc(|d| {
            d.peer = Some("10.0.0.2".into());
            d.host = Some("gw.example".into());
            d.credential = CredentialDesc::None;
            d.headers = vec!["X-Forwarded-For: 198.51.100.7".into(), "X-Auth-User: alice".into()];
            d.scopes = vec!["operator.read".into()];
        });
        let e = explain(&through_proxy, &c, None, None).unwrap();
        assert_eq!(rule(&e), Some(RuleId::TrustedProxy));
        assert_eq!(render_json(&e)["locality"]["viaProxy"], true);

        // The same header from anyone else is a forgery, refused at the edge.
        let mut forged = through_proxy.clone();
        forged.peer = Some("127.0.0.1".into());
        forged.host = None;
        forged.headers = vec!["X-Auth-User: alice".into()];
        let e = explain(&forged, &c, None, None).unwrap();
        assert_eq!(e.edge.as_ref().unwrap_err().code(), "trusted_proxy_untrusted_source");
    }

    #[test]
    fn failed_proofs_and_bad_params() {
        let e = run(&desc(|d| d.device = DeviceDesc::Failed));
        assert_eq!(rule(&e), Some(RuleId::DeviceProof));
        assert_eq!(code(&e), Some("DEVICE_AUTH_SIGNATURE_INVALID"));
        assert!(explain(&desc(|d| d.client_id = Some("nope".into())), &cfg(), None, None)
            .unwrap_err()
            .contains("client.id"));
        assert!(explain(&desc(|d| d.peer = Some("localhost".into())), &cfg(), None, None).is_err());
        assert!(explain(&desc(|d| d.headers = vec!["no-colon".into()]), &cfg(), None, None).is_err());
        let bad_role = run(&desc(|d| d.role = Some("admin".into())));
        assert_eq!(code(&bad_role), Some("INVALID_ROLE"));
    }

    #[test]
    fn descriptions_parse_from_json() {
        let d = Description::from_json(
            r#"{"peer":"[::1]:4000","host":"localhost","origin":"null","headers":["Sec-Fetch-Mode: websocket"],
                "clientId":"openclaw-tui","client-mode":"ui","role":"operator","scopes":["operator.read"],
                "credential":"shared-password","device":"none"}"#,
        )
        .unwrap();
        assert_eq!(d.client_id.as_deref(), Some("openclaw-tui"));
        assert_eq!(d.client_mode.as_deref(), Some("ui"));
        assert_eq!(d.credential, CredentialDesc::SharedPassword);
        let e = run(&d);
        assert_eq!(e.peer, "[::1]:4000".parse().unwrap());
        assert_eq!(rule(&e), Some(RuleId::Origin), "Origin null is foreign");
        let err = Description::from_json(r#"{"peer":"127.0.0.1","tokn":"x"}"#).unwrap_err();
        assert!(err.contains("tokn"), "{err}");
        assert_eq!("device-token".parse::<CredentialDesc>(), Ok(CredentialDesc::DeviceToken));
        assert_eq!("service-token".parse::<CredentialDesc>(), Ok(CredentialDesc::ServiceToken));
        assert!("owner".parse::<CredentialDesc>().is_err());
        assert_eq!("proven".parse::<DeviceDesc>(), Ok(DeviceDesc::Proven));
    }

    #[test]
    fn headers_parse() {
        assert_eq!(parse_header("X-Forwarded-For: 1.2.3.4").unwrap(), ("X-Forwarded-For".into(), "1.2.3.4".into()));
        assert_eq!(parse_header("Origin:").unwrap(), ("Origin".into(), String::new()));
        assert!(parse_header(": x").is_err());
    }
}
