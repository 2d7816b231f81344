//! `connect` params. Closed objects: an unknown key anywhere
//! is an error that names it. Every self-reported string must print as
//! itself and stay within a length cap (see [`crate::text`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client_info::{CLIENT_IDS, CLIENT_MODES};
use crate::text::first_non_printing;

/// Why connect params were refused: the schema, or a self-reported field
/// holding a character that does not print as itself or too many characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectParamsError {
    /// Shape or schema constraint, with the path of the offending field.
    Schema(String),
    /// A self-reported field the gateway will not store, show or forward.
    FieldInvalid { field: String, reason: String },
}

impl std::fmt::Display for ConnectParamsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectParamsError::Schema(m) => f.write_str(m),
            ConnectParamsError::FieldInvalid { field, reason } => write!(f, "{field}: {reason}"),
        }
    }
}

impl std::error::Error for ConnectParamsError {}

/// Longest `client.displayName`, in characters (it is shown in presence
/// and to approvers).
pub const MAX_DISPLAY_NAME_CHARS: usize = 128;
/// Longest short self-description (version, platform, device family,
/// model, instance id, role, a cap, a command, a scope, a permission name).
pub const MAX_SHORT_FIELD_CHARS: usize = 128;
/// Longest `userAgent` and `locale`-like free text.
pub const MAX_LONG_FIELD_CHARS: usize = 512;
/// Longest `pathEnv` (a node's PATH can be long).
pub const MAX_PATH_ENV_CHARS: usize = 8192;
/// Most entries in `caps`, `scopes` or `permissions`.
pub const MAX_SMALL_LIST: usize = 64;
/// Most entries in `commands` (a node declares what it can run).
pub const MAX_COMMANDS: usize = 512;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectParams {
    pub min_protocol: u64,
    pub max_protocol: u64,
    pub client: ClientInfo,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<BTreeMap<String, bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer_use: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_runs: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthParams>,
    /// Sent by OpenClaw 2026.9.6 clients; not in the 2026.9.1 schema. Accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_catalog: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientInfo {
    pub id: String,
    pub version: String,
    pub platform: String,
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceParams {
    pub id: String,
    pub public_key: String,
    pub signature: String,
    pub signed_at: u64,
    pub nonce: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_runtime_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_runtime_identity_token: Option<String>,
}

impl ClientInfo {
    /// The four required fields; every optional one unset.
    pub fn new(id: &str, version: &str, platform: &str, mode: &str) -> ClientInfo {
        ClientInfo {
            id: id.to_owned(),
            version: version.to_owned(),
            platform: platform.to_owned(),
            mode: mode.to_owned(),
            display_name: None,
            build_id: None,
            device_family: None,
            model_identifier: None,
            time_zone: None,
            instance_id: None,
        }
    }
}

impl ConnectParams {
    /// Params for `client` speaking exactly `protocol`, everything optional unset.
    pub fn new(protocol: u64, client: ClientInfo) -> ConnectParams {
        ConnectParams {
            min_protocol: protocol,
            max_protocol: protocol,
            client,
            caps: Vec::new(),
            commands: None,
            permissions: None,
            computer_use: None,
            worker_runs: None,
            path_env: None,
            locale: None,
            user_agent: None,
            role: None,
            scopes: None,
            device: None,
            auth: None,
            model_catalog: None,
        }
    }

    /// Parse and check the schema's constraints. The error is a short
    /// description with the path of the offending field.
    pub fn parse(params: Option<&Value>) -> Result<ConnectParams, ConnectParamsError> {
        let value = params.ok_or_else(|| ConnectParamsError::Schema("params: required".to_owned()))?;
        let parsed: ConnectParams = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ConnectParamsError::Schema(if path == "." {
                e.inner().to_string()
            } else {
                format!("{path}: {}", e.inner())
            })
        })?;
        parsed.check().map_err(ConnectParamsError::Schema)?;
        parsed.check_self_reported()?;
        Ok(parsed)
    }

    /// Every string the client says about itself, with its name and cap.
    fn self_reported(&self) -> Vec<(String, &str, usize)> {
        let c = &self.client;
        let mut fields: Vec<(String, &str, usize)> = vec![
            ("client.id".into(), &c.id, MAX_SHORT_FIELD_CHARS),
            ("client.mode".into(), &c.mode, MAX_SHORT_FIELD_CHARS),
            ("client.version".into(), &c.version, MAX_SHORT_FIELD_CHARS),
            ("client.platform".into(), &c.platform, MAX_SHORT_FIELD_CHARS),
        ];
        for (name, v, max) in [
            ("client.displayName", &c.display_name, MAX_DISPLAY_NAME_CHARS),
            ("client.buildId", &c.build_id, MAX_SHORT_FIELD_CHARS),
            ("client.deviceFamily", &c.device_family, MAX_SHORT_FIELD_CHARS),
            ("client.modelIdentifier", &c.model_identifier, MAX_SHORT_FIELD_CHARS),
            ("client.timeZone", &c.time_zone, MAX_SHORT_FIELD_CHARS),
            ("client.instanceId", &c.instance_id, MAX_SHORT_FIELD_CHARS),
            ("locale", &self.locale, MAX_SHORT_FIELD_CHARS),
            ("userAgent", &self.user_agent, MAX_LONG_FIELD_CHARS),
            ("pathEnv", &self.path_env, MAX_PATH_ENV_CHARS),
            ("role", &self.role, MAX_SHORT_FIELD_CHARS),
        ] {
            if let Some(v) = v {
                fields.push((name.into(), v, max));
            }
        }
        let lists: [(&str, Option<&Vec<String>>); 3] =
            [("caps", Some(&self.caps)), ("commands", self.commands.as_ref()), ("scopes", self.scopes.as_ref())];
        for (name, items) in lists {
            for (i, v) in items.into_iter().flatten().enumerate() {
                fields.push((format!("{name}[{i}]"), v, MAX_SHORT_FIELD_CHARS));
            }
        }
        for key in self.permissions.iter().flat_map(|p| p.keys()) {
            fields.push(("permissions".into(), key, MAX_SHORT_FIELD_CHARS));
        }
        // The device block is not here: its key may be PEM (with line
        // breaks), and the proof checks its id, key and nonce exactly.
        fields
    }

    /// Refuse a self-reported string that would not print as itself, or is
    /// longer than its cap; refuse lists longer than theirs.
    fn check_self_reported(&self) -> Result<(), ConnectParamsError> {
        let invalid = |field: &str, reason: String| ConnectParamsError::FieldInvalid { field: field.into(), reason };
        for (name, len, max) in [
            ("caps", self.caps.len(), MAX_SMALL_LIST),
            ("commands", self.commands.as_ref().map_or(0, Vec::len), MAX_COMMANDS),
            ("scopes", self.scopes.as_ref().map_or(0, Vec::len), MAX_SMALL_LIST),
            ("permissions", self.permissions.as_ref().map_or(0, BTreeMap::len), MAX_SMALL_LIST),
        ] {
            if len > max {
                return Err(invalid(name, format!("at most {max} entries, got {len}")));
            }
        }
        for (field, value, max) in self.self_reported() {
            if let Some((at, c)) = first_non_printing(value) {
                let reason = format!(
                    "must hold printable characters only (U+{:04X} at character {at}: control, bidi-override and \
                     other invisible characters are refused)",
                    c as u32
                );
                return Err(invalid(&field, reason));
            }
            let chars = value.chars().count();
            if chars > max {
                return Err(invalid(&field, format!("at most {max} characters, got {chars}")));
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        if self.min_protocol < 1 || self.max_protocol < 1 {
            return Err("minProtocol/maxProtocol: must be >= 1".into());
        }
        let c = &self.client;
        if !CLIENT_IDS.contains(&c.id.as_str()) {
            return Err(format!("client.id: must be one of the known client ids, got {:?}", c.id));
        }
        if !CLIENT_MODES.contains(&c.mode.as_str()) {
            return Err(format!("client.mode: must be one of {CLIENT_MODES:?}, got {:?}", c.mode));
        }
        non_empty("client.version", &c.version)?;
        non_empty("client.platform", &c.platform)?;
        for (name, v) in [
            ("client.displayName", &c.display_name),
            ("client.deviceFamily", &c.device_family),
            ("client.modelIdentifier", &c.model_identifier),
            ("client.instanceId", &c.instance_id),
        ] {
            if let Some(v) = v {
                non_empty(name, v)?;
            }
        }
        length_within("client.buildId", c.build_id.as_deref(), 96)?;
        length_within("client.timeZone", c.time_zone.as_deref(), 64)?;
        items_non_empty("caps", &self.caps)?;
        if let Some(commands) = &self.commands {
            items_non_empty("commands", commands)?;
        }
        if let Some(scopes) = &self.scopes {
            items_non_empty("scopes", scopes)?;
        }
        if let Some(role) = &self.role {
            non_empty("role", role)?;
        }
        if let Some(d) = &self.device {
            non_empty("device.id", &d.id)?;
            non_empty("device.publicKey", &d.public_key)?;
            non_empty("device.signature", &d.signature)?;
            non_empty("device.nonce", &d.nonce)?;
        }
        Ok(())
    }

    /// The requested role; absent means operator.
    pub fn role(&self) -> &str {
        self.role.as_deref().unwrap_or("operator")
    }

    /// The requested scopes; absent means none.
    pub fn scopes(&self) -> &[String] {
        self.scopes.as_deref().unwrap_or(&[])
    }
}

fn non_empty(name: &str, v: &str) -> Result<(), String> {
    if v.is_empty() {
        Err(format!("{name}: must be a non-empty string"))
    } else {
        Ok(())
    }
}

fn length_within(name: &str, v: Option<&str>, max: usize) -> Result<(), String> {
    match v {
        Some(v) if v.is_empty() || v.chars().count() > max => Err(format!("{name}: must be 1 to {max} characters")),
        _ => Ok(()),
    }
}

fn items_non_empty(name: &str, items: &[String]) -> Result<(), String> {
    match items.iter().position(String::is_empty) {
        Some(i) => Err(format!("{name}[{i}]: must be a non-empty string")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"minProtocol":4,"maxProtocol":4,
               "client":{"id":"cli","version":"1","platform":"linux","mode":"cli"}})
    }

    #[test]
    fn minimal_params_parse_with_defaults() {
        let p = ConnectParams::parse(Some(&base())).unwrap();
        assert_eq!(p.role(), "operator");
        assert!(p.scopes().is_empty());
    }

    #[test]
    fn unknown_nested_key_is_named() {
        let mut v = base();
        v["client"]["color"] = json!("red");
        let err = ConnectParams::parse(Some(&v)).unwrap_err().to_string();
        assert!(err.contains("client") && err.contains("color"), "{err}");
    }

    #[test]
    fn enum_and_constraint_violations() {
        let mut v = base();
        v["client"]["id"] = json!("ios-node");
        assert!(ConnectParams::parse(Some(&v)).unwrap_err().to_string().starts_with("client.id"));
        let mut v = base();
        v["scopes"] = json!(["operator.read", ""]);
        assert!(ConnectParams::parse(Some(&v)).unwrap_err().to_string().starts_with("scopes[1]"));
        let mut v = base();
        v["device"] = json!({"id":"a","publicKey":"b","signature":"c","nonce":"d"});
        assert!(ConnectParams::parse(Some(&v)).unwrap_err().to_string().contains("signedAt"));
        assert!(ConnectParams::parse(None).is_err());
    }

    #[test]
    fn self_reported_fields_must_print_as_themselves() {
        let mut v = base();
        v["client"]["platform"] = json!("linux\u{1b}[1A\r\u{1b}[83C\u{1b}[Koperator.read");
        let err = ConnectParams::parse(Some(&v)).unwrap_err();
        assert!(matches!(&err, ConnectParamsError::FieldInvalid { field, .. } if field == "client.platform"), "{err}");
        for (path, bad) in [("deviceFamily", "a\u{202e}b"), ("displayName", "x\ny"), ("instanceId", "\u{200b}")] {
            let mut v = base();
            v["client"][path] = json!(bad);
            let err = ConnectParams::parse(Some(&v)).unwrap_err();
            assert!(matches!(err, ConnectParamsError::FieldInvalid { .. }), "{path}: {err}");
        }
        let mut v = base();
        v["commands"] = json!(["system.run", "evil\u{9b}2J"]);
        let err = ConnectParams::parse(Some(&v)).unwrap_err();
        assert!(matches!(&err, ConnectParamsError::FieldInvalid { field, .. } if field == "commands[1]"), "{err}");
        let mut v = base();
        v["client"]["displayName"] = json!("Ünïcødé 🙂 laptop");
        assert!(ConnectParams::parse(Some(&v)).is_ok());
    }

    #[test]
    fn display_name_is_capped() {
        let mut v = base();
        v["client"]["displayName"] = json!("n".repeat(MAX_DISPLAY_NAME_CHARS));
        assert!(ConnectParams::parse(Some(&v)).is_ok());
        v["client"]["displayName"] = json!("n".repeat(MAX_DISPLAY_NAME_CHARS + 1));
        let err = ConnectParams::parse(Some(&v)).unwrap_err();
        assert!(matches!(&err, ConnectParamsError::FieldInvalid { field, .. } if field == "client.displayName"));
    }
}
