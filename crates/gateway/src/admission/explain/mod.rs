//! `clawgate auth explain`, the pure part: turn a described connection into
//! edge facts and connect facts, run the same [`classify_upgrade`] and
//! [`decide`] the server runs, and render the decision with the trace of
//! rules considered, as text or JSON ([`render`]).
//!
//! The credential is described by kind (`shared-token`, `wrong-token`, …) and
//! checked with the server's own credential check against the loaded config,
//! so mode quirks (mode none ignores what is sent; the shared secret is
//! accepted in either field) come out as they would on the wire. A device
//! token is looked up in the store view the caller read for the device; a
//! service token is the named principal's, as the caller read it from the store.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

mod render;

pub use render::{outcome, render_json, render_text};

use clawgate_protocol::device_key::{decode_public_key, derive_device_id, encode_public_key};
use clawgate_protocol::{AuthParams, ClientInfo, ConnectParams, DeviceParams};
use serde::Deserialize;
use serde_json::Value;

use crate::config::{AuthMode, Config, Trust};
use crate::store::{DeviceView, ServicePrincipal, ServiceTokenCheck, StoreError, TokenCheck};

use super::credential::CredentialCheck;
use super::decision::{Decided, Role};
use super::device_proof::{PayloadVersion, ProofError, VerifiedDevice};
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
    /// The trust level of the listener: `local` (default, the main port),
    /// `proxy` or `remote` (`gateway.listeners`).
    pub listener: Option<String>,
    /// The uid owning the peer's socket, as the gateway would look it up
    /// for a loopback peer on Linux. Default: unknown.
    #[serde(alias = "peer-uid")]
    pub peer_uid: Option<u32>,
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
    /// The trust level of the listener it arrived on.
    pub listener: Trust,
    /// The described peer uid, and whether it is an owner's
    /// (`gateway.auth.localOwnerUids`); it matters only for a direct-local edge.
    pub peer_uid: Option<(u32, bool)>,
    /// What the credential check showed (absent when the edge refused).
    pub credential: Option<CredentialCheck>,
    /// The trusted-proxy user the request came with, if any.
    pub proxy_user: Option<String>,
    /// The proxy user the described device's pairing is bound to, if any.
    pub bound_user: Option<String>,
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
    let trust = match desc.listener.as_deref() {
        None => Trust::Local,
        Some(name) => {
            Trust::parse(name.trim()).ok_or_else(|| format!("listener {name:?} is not one of local, proxy, remote"))?
        }
    };
    let edge = EdgeFacts::new(peer, config.port, headers.clone()).on_listener(trust);

    let paired = view.and_then(|v| v.device.as_ref());
    let device = match desc.device {
        DeviceDesc::None => None,
        DeviceDesc::Failed | DeviceDesc::Proven => {
            let (key, key_text) = match &desc.public_key {
                Some(text) => {
                    let key = decode_public_key(text).ok_or_else(|| format!("public key {text:?} is not 32 bytes"))?;
                    (key, encode_public_key(&key))
                }
                None => {
                    match paired.and_then(|d| decode_public_key(&d.public_key).map(|k| (k, d.public_key.clone()))) {
                        Some(found) => found,
                        None => (PLACEHOLDER_KEY, encode_public_key(&PLACEHOLDER_KEY)),
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
        Err(r) => {
            return Ok(Explanation {
                peer,
                headers,
                params,
                edge: Err(r),
                listener: trust,
                credential: None,
                proxy_user: None,
                bound_user: None,
                peer_uid: None,
                decided: None,
            })
        }
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
        peer_uid: desc.peer_uid,
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
        listener: trust,
        peer_uid: desc.peer_uid.map(|uid| (uid, config.local_owner_uids.contains(&uid))),
        credential: Some(evaluated.facts.credential),
        proxy_user: evaluated.facts.proxy_user,
        bound_user: paired.and_then(|d| d.proxy_user.clone()),
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
/// presents a live token of (device, role) if the store holds one.
fn token_in_view(view: Option<&DeviceView>, device_id: &str, role: Role) -> TokenCheck {
    let Some(view) = view else { return TokenCheck::DeviceNotPaired };
    match &view.device {
        Some(d) if d.device_id == device_id => {}
        _ => return TokenCheck::DeviceNotPaired,
    }
    let of_role = || view.tokens.iter().filter(|t| t.device_id == device_id && t.role == role);
    match (of_role().find(|t| !t.is_revoked()), of_role().next()) {
        (Some(t), _) => TokenCheck::Valid { scopes: t.scopes.clone(), issued_at_ms: t.issued_at_ms() },
        (None, Some(_)) => TokenCheck::Revoked,
        (None, None) => TokenCheck::Missing,
    }
}

#[cfg(test)]
mod tests;
