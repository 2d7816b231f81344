//! Validation against the wire contract: `protocol.schema.json` of the
//! published `@openclaw/gateway-protocol@2026.9.1`, installed by `npm ci` in
//! `interop/`. A missing schema fails the test: install it, never skip.

use std::sync::OnceLock;

use serde_json::Value;

pub fn schema_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../interop/node_modules/@openclaw/gateway-protocol/protocol.schema.json")
}

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = schema_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("protocol schema missing at {} ({e}): run `npm ci --prefix interop` first", path.display())
        });
        let mut schema: Value = serde_json::from_str(&text).expect("schema is JSON");
        add_server_auth_method(&mut schema);
        schema
    })
}

/// `hello-ok.auth.method` is in OpenClaw's 2026.9.6 server schema but not in
/// the 2026.9.1 protocol package (whose `auth` is closed): add it, with the
/// server's vocabulary, so a method outside it still fails.
fn add_server_auth_method(schema: &mut Value) {
    let auth = &mut schema["definitions"]["HelloOk"]["properties"]["auth"]["properties"];
    assert!(auth.is_object(), "HelloOk.auth has no properties in the protocol schema");
    auth["method"] = serde_json::json!({
        "type": "string",
        "enum": ["none", "token", "password", "tailscale", "device-token", "bootstrap-token", "trusted-proxy"],
    });
}

fn check(name: &str, schema: &Value, instance: &Value) {
    let validator = jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("schema {name} does not compile: {e}"));
    let errors: Vec<String> =
        validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "frame does not match {name}: {errors:?}\nframe: {instance}");
}

/// The frame union (request/response/event) at the schema's root.
pub fn validate_frame(frame: &Value) {
    let root = schema();
    let union = serde_json::json!({ "oneOf": [
        root["definitions"]["RequestFrame"],
        root["definitions"]["ResponseFrame"],
        root["definitions"]["EventFrame"],
    ]});
    check("GatewayFrame", &union, frame);
}

pub fn validate_definition(name: &str, instance: &Value) {
    let def = &schema()["definitions"][name];
    assert!(def.is_object(), "no definition {name} in the protocol schema");
    check(name, def, instance);
}

/// A frame the server sent: the frame shape, plus payload shapes the schema defines.
pub fn validate_server_frame(frame: &Value) {
    validate_frame(frame);
    if frame["type"] == "event" {
        match frame["event"].as_str() {
            Some("tick") => validate_definition("TickEvent", &frame["payload"]),
            Some("shutdown") => validate_definition("ShutdownEvent", &frame["payload"]),
            Some("device.pair.requested") => validate_definition("DevicePairRequestedEvent", &frame["payload"]),
            Some("device.pair.resolved") => validate_definition("DevicePairResolvedEvent", &frame["payload"]),
            Some("node.invoke.request") => validate_definition("NodeInvokeRequestEvent", &frame["payload"]),
            _ => {}
        }
    }
}

/// The `methods` table of the schema: name → scope.
pub fn method_scopes() -> Vec<(String, String)> {
    schema()["methods"]
        .as_object()
        .expect("methods map")
        .iter()
        .map(|(k, v)| (k.clone(), v["scope"].as_str().unwrap_or_default().to_owned()))
        .collect()
}
