//! What clawgate asks the upstream for on behalf of one admitted session, and
//! the `connect` params built from it.
//!
//! The downstream's connect params are never copied wholesale: only the
//! fields in [`DownstreamFields`] pass, so credentials the upstream honours
//! only from its own local callers (`approvalRuntimeToken`,
//! `agentRuntimeIdentityToken`, …), device blocks and anything added to the
//! protocol later stay at clawgate. Role and scopes are exactly what
//! clawgate granted.

use std::collections::BTreeMap;

use clawgate_client::DeviceIdentity;
use clawgate_protocol::{AuthParams, ClientInfo, ConnectParams, MIN_NODE_PROTOCOL_VERSION, PROTOCOL_VERSION};

use super::config::{SecretKind, UpstreamSecret};

/// Which kind of upstream client clawgate presents itself as.
#[derive(Debug, Clone)]
pub enum ConnectClass {
    /// OpenClaw's local backend client (`gateway-client` / `backend`): the
    /// shared secret, no device; admitted with exactly the requested scopes.
    Backend,
    /// The Control UI (`openclaw-control-ui` / `webchat`) with a relay device
    /// identity: OpenClaw keys UI features on this client id and a live
    /// presence entry.
    ControlUi { identity: DeviceIdentity },
    /// A node (`node-host` / `node`, role node) with a relay device identity.
    Node { identity: DeviceIdentity },
}

impl ConnectClass {
    fn client_id_and_mode(&self) -> (&'static str, &'static str) {
        match self {
            ConnectClass::Backend => ("gateway-client", "backend"),
            ConnectClass::ControlUi { .. } => ("openclaw-control-ui", "webchat"),
            ConnectClass::Node { .. } => ("node-host", "node"),
        }
    }

    pub fn identity(&self) -> Option<&DeviceIdentity> {
        match self {
            ConnectClass::Backend => None,
            ConnectClass::ControlUi { identity } | ConnectClass::Node { identity } => Some(identity),
        }
    }
}

/// The downstream connect fields that may pass to the upstream. Nothing else
/// ever does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DownstreamFields {
    pub instance_id: Option<String>,
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub device_family: Option<String>,
    pub model_identifier: Option<String>,
    pub version: Option<String>,
    /// The client's build: OpenClaw refuses a Control UI whose build is not
    /// its own ("Control UI updated; reload this page").
    pub build_id: Option<String>,
    pub locale: Option<String>,
    /// Node capabilities, commands and permissions (passed for nodes only).
    pub caps: Vec<String>,
    pub commands: Option<Vec<String>>,
    pub permissions: Option<BTreeMap<String, bool>>,
}

impl DownstreamFields {
    /// The allow-listed fields of a downstream's connect params.
    pub fn from_connect(p: &ConnectParams) -> DownstreamFields {
        DownstreamFields {
            instance_id: p.client.instance_id.clone(),
            display_name: p.client.display_name.clone(),
            platform: Some(p.client.platform.clone()),
            device_family: p.client.device_family.clone(),
            model_identifier: p.client.model_identifier.clone(),
            version: Some(p.client.version.clone()),
            build_id: p.client.build_id.clone(),
            locale: p.locale.clone(),
            caps: p.caps.clone(),
            commands: p.commands.clone(),
            permissions: p.permissions.clone(),
        }
    }
}

/// One upstream connection to open.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub class: ConnectClass,
    /// `operator` or `node`, as clawgate granted.
    pub role: String,
    /// Exactly the scopes clawgate granted.
    pub scopes: Vec<String>,
    pub fields: DownstreamFields,
    /// The downstream's `Host` header: OpenClaw builds URLs in hello-ok from it.
    pub host: Option<String>,
    /// The downstream browser's `Origin`, sent for [`ConnectClass::ControlUi`]
    /// only: OpenClaw refuses a Control UI connect without an origin it
    /// allows (`CONTROL_UI_ORIGIN_NOT_ALLOWED`), and the gateway's own origin
    /// is allowed when it matches `Host`.
    pub origin: Option<String>,
}

/// Non-empty after trimming, else `None` (the upstream's schema refuses empty strings).
fn present(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|s| s.trim()).filter(|s| !s.is_empty()).map(str::to_owned)
}

impl OpenRequest {
    /// The `Origin` to send on the upgrade, if any.
    pub fn upgrade_origin(&self) -> Option<&str> {
        match self.class {
            ConnectClass::ControlUi { .. } => self.origin.as_deref(),
            _ => None,
        }
    }

    /// The protocol range to offer: nodes may fall back to v3.
    pub fn protocol_range(&self) -> (u64, u64) {
        let current = u64::from(PROTOCOL_VERSION);
        match self.class {
            ConnectClass::Node { .. } => (u64::from(MIN_NODE_PROTOCOL_VERSION), current),
            _ => (current, current),
        }
    }

    /// The `connect` params, without the device proof (it needs the nonce).
    pub fn connect_params(&self, secret: &UpstreamSecret) -> ConnectParams {
        let (id, mode) = self.class.client_id_and_mode();
        let f = &self.fields;
        let mut client = ClientInfo::new(
            id,
            &present(&f.version).unwrap_or_else(|| crate::version::VERSION.to_owned()),
            &present(&f.platform).unwrap_or_else(|| std::env::consts::OS.to_owned()),
            mode,
        );
        client.instance_id = present(&f.instance_id);
        client.display_name = present(&f.display_name);
        client.device_family = present(&f.device_family);
        client.model_identifier = present(&f.model_identifier);
        client.build_id = present(&f.build_id).filter(|b| b.chars().count() <= 96);
        let (min, max) = self.protocol_range();
        let mut params = ConnectParams::new(max, client);
        params.min_protocol = min;
        params.locale = present(&f.locale);
        params.role = Some(self.role.clone());
        params.scopes = Some(self.scopes.clone());
        if let ConnectClass::Node { .. } = self.class {
            params.caps = f.caps.iter().filter(|c| !c.is_empty()).cloned().collect();
            params.commands = f.commands.as_ref().map(|c| c.iter().filter(|c| !c.is_empty()).cloned().collect());
            params.permissions = f.permissions.clone();
        }
        let mut auth = AuthParams::default();
        match secret.kind {
            SecretKind::Token => auth.token = Some(secret.value.reveal().to_owned()),
            SecretKind::Password => auth.password = Some(secret.value.reveal().to_owned()),
        }
        params.auth = Some(auth);
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ResolvedSecret, SecretSource};

    fn secret() -> UpstreamSecret {
        UpstreamSecret { kind: SecretKind::Token, value: ResolvedSecret::new("up-secret".into(), SecretSource::Flag) }
    }

    fn downstream() -> ConnectParams {
        let v = serde_json::json!({
            "minProtocol": 3, "maxProtocol": 4,
            "client": {"id": "cli", "version": "2026.9.6", "platform": "linux", "mode": "cli",
                       "instanceId": "i-1", "displayName": "laptop", "buildId": "b", "timeZone": "UTC"},
            "caps": ["camera"], "commands": ["system.which"], "permissions": {"camera.capture": true},
            "pathEnv": "/usr/bin", "userAgent": "ua", "locale": "de-DE",
            "role": "operator", "scopes": ["operator.admin"],
            "auth": {"token": "clawgate-secret", "approvalRuntimeToken": "art", "agentRuntimeIdentityToken": "arit"},
            "computerUse": {"x": 1}, "modelCatalog": {"agentId": "a"}
        });
        ConnectParams::parse(Some(&v)).unwrap()
    }

    #[test]
    fn only_allow_listed_fields_pass() {
        let req = OpenRequest {
            class: ConnectClass::Backend,
            role: "operator".into(),
            scopes: vec!["operator.read".into()],
            fields: DownstreamFields::from_connect(&downstream()),
            host: Some("127.0.0.1:18789".into()),
            origin: Some("http://127.0.0.1:18789".into()),
        };
        assert_eq!(req.upgrade_origin(), None, "only browsers send an origin");
        let p = req.connect_params(&secret());
        let text = serde_json::to_string(&p).unwrap();
        for leaked in
            ["clawgate-secret", "art", "arit", "/usr/bin", "ua", "computerUse", "modelCatalog", "UTC", "camera"]
        {
            assert!(!text.contains(&format!("\"{leaked}\"")), "{leaked} leaked: {text}");
        }
        assert_eq!((p.client.id.as_str(), p.client.mode.as_str()), ("gateway-client", "backend"));
        assert_eq!(p.client.instance_id.as_deref(), Some("i-1"));
        assert_eq!(p.client.display_name.as_deref(), Some("laptop"));
        assert_eq!(p.client.build_id.as_deref(), Some("b"));
        assert_eq!(p.locale.as_deref(), Some("de-DE"));
        assert_eq!(p.scopes(), ["operator.read"]);
        assert_eq!((p.min_protocol, p.max_protocol), (4, 4));
        assert_eq!(p.auth.unwrap(), AuthParams { token: Some("up-secret".into()), ..Default::default() });
        assert!(p.device.is_none());
        // What is built is valid for the upstream's schema.
        ConnectParams::parse(Some(&serde_json::from_str(&text).unwrap())).unwrap();
    }

    #[test]
    fn nodes_pass_caps_and_commands_and_may_use_v3() {
        let req = OpenRequest {
            class: ConnectClass::Node { identity: DeviceIdentity::from_seed([7; 32]) },
            role: "node".into(),
            scopes: vec![],
            fields: DownstreamFields::from_connect(&downstream()),
            host: None,
            origin: None,
        };
        let p = req.connect_params(&secret());
        assert_eq!((p.client.id.as_str(), p.client.mode.as_str(), p.role()), ("node-host", "node", "node"));
        assert_eq!(p.caps, ["camera"]);
        assert_eq!(p.commands.as_deref(), Some(&["system.which".to_owned()][..]));
        assert!(p.permissions.unwrap()["camera.capture"]);
        assert_eq!((p.min_protocol, p.max_protocol), (3, 4));
    }

    #[test]
    fn blank_fields_are_dropped_and_defaults_filled() {
        let fields = DownstreamFields { display_name: Some("  ".into()), ..Default::default() };
        let req = OpenRequest {
            class: ConnectClass::ControlUi { identity: DeviceIdentity::from_seed([1; 32]) },
            role: "operator".into(),
            scopes: vec![],
            fields,
            host: None,
            origin: Some("http://127.0.0.1:18789".into()),
        };
        assert_eq!(req.upgrade_origin(), Some("http://127.0.0.1:18789"));
        let mut secret = secret();
        secret.kind = SecretKind::Password;
        let p = req.connect_params(&secret);
        assert_eq!(p.client.display_name, None);
        assert!(!p.client.version.is_empty() && !p.client.platform.is_empty());
        assert_eq!(p.client.id, "openclaw-control-ui");
        assert_eq!(p.auth.unwrap().password.as_deref(), Some("up-secret"));
    }
}
