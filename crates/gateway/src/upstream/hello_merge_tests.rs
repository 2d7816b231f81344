use clawgate_protocol::frame::StateVersion;
use clawgate_protocol::hello::{Features, HelloAuth, HelloKind, Policy, ServerInfo, Snapshot};
use serde_json::json;

use super::*;

/// A hello-ok as the real upstream sends it to a backend client with admin
/// scopes (shape observed on openclaw 2026.9.6).
fn upstream_hello() -> Value {
    json!({
        "type": "hello-ok",
        "protocol": 4,
        "server": {"version": "2026.9.6", "buildId": "2026.9.6-release-eb377ac59e6c", "bootId": "up-boot",
                   "controlUiBuildSource": "bundled", "connId": "up-conn"},
        "features": {"methods": ["health", "sessions.list", "agents.list"], "events": ["tick", "chat"]},
        "snapshot": {"presence": [{"host": "relay"}], "health": {"ok": true, "agents": 1},
                     "stateVersion": {"presence": 7, "health": 3}, "uptimeMs": 12,
                     "configPath": "/x/openclaw.json", "authMode": "token", "sessionDefaults": {"agentId": "main"}},
        "controlUiWidgetKinds": ["chart"],
        "pluginSurfaceUrls": {"canvas": "http://127.0.0.1:18790/__openclaw__/cap/abc",
                              "nested": ["ws://127.0.0.1:18790/x", "http://127.0.0.1:187900/not-ours"]},
        "auth": {"method": "token", "role": "operator", "scopes": ["operator.admin"], "recoveryScope": "same-for-all"},
        "policy": {"maxPayload": 26214400, "maxBufferedBytes": 1000, "tickIntervalMs": 30000,
                   "attachments": {"maxBytes": 5}}
    })
}

fn ours() -> HelloOk {
    HelloOk {
        kind: HelloKind::HelloOk,
        protocol: 4,
        server: ServerInfo { version: "0.3.0".into(), conn_id: "cg-conn".into(), boot_id: Some("cg-boot".into()) },
        features: Features { methods: vec!["health".into(), "device.pair.list".into()], events: vec!["tick".into()] },
        snapshot: Snapshot {
            presence: vec![json!({"host": "laptop", "instanceId": "i-1"})],
            health: json!({"ok": true}),
            state_version: StateVersion { presence: 42, health: 0 },
            uptime_ms: 99,
            auth_mode: Some("password".into()),
        },
        auth: HelloAuth {
            role: "operator".into(),
            scopes: vec!["operator.read".into()],
            method: Some("token".into()),
            device_token: Some("dt".into()),
            issued_at_ms: Some(5),
        },
        policy: Policy { max_payload: 1_000_000, max_buffered_bytes: 50_000_000, tick_interval_ms: 2_000 },
    }
}

fn relay_auth() -> RelayAuth {
    RelayAuth { method: "device-token", recovery_scope: recovery_scope("device:abc") }
}

#[test]
fn upstream_build_is_kept_exactly_and_clawgate_owns_auth_and_conn_id() {
    let rewrite = UrlRewrite::new("127.0.0.1:18790", "gw.example:8443", true);
    let merged = merge_hello(upstream_hello(), &ours(), &relay_auth(), Some(&rewrite));
    let server = &merged["server"];
    assert_eq!(server["version"], "2026.9.6");
    assert_eq!(server["buildId"], "2026.9.6-release-eb377ac59e6c");
    assert_eq!(server["bootId"], "up-boot");
    assert_eq!(server["controlUiBuildSource"], "bundled");
    assert_eq!(server["connId"], "cg-conn");
    assert_eq!(
        merged["auth"],
        json!({"role": "operator", "scopes": ["operator.read"], "method": "device-token", "deviceToken": "dt",
               "issuedAtMs": 5, "recoveryScope": recovery_scope("device:abc")})
    );
    assert_eq!(merged["controlUiWidgetKinds"], json!(["chart"]), "unknown fields pass");
    assert_eq!(merged["protocol"], 4);
}

#[test]
fn snapshot_presence_is_clawgates_and_auth_mode_only_where_the_upstream_had_one() {
    let merged = merge_hello(upstream_hello(), &ours(), &relay_auth(), None);
    let snapshot = &merged["snapshot"];
    assert_eq!(snapshot["presence"], json!([{"host": "laptop", "instanceId": "i-1"}]));
    assert_eq!(snapshot["stateVersion"], json!({"presence": 42, "health": 3}));
    assert_eq!(snapshot["authMode"], "password");
    assert_eq!(snapshot["health"], json!({"ok": true, "agents": 1}), "health is the upstream's");
    assert_eq!(snapshot["sessionDefaults"]["agentId"], "main");

    let mut without = upstream_hello();
    without["snapshot"].as_object_mut().unwrap().remove("authMode");
    let merged = merge_hello(without, &ours(), &relay_auth(), None);
    assert!(merged["snapshot"].get("authMode").is_none(), "not added for non-admin sessions");
}

#[test]
fn policy_takes_the_stricter_limits_and_clawgates_tick() {
    let merged = merge_hello(upstream_hello(), &ours(), &relay_auth(), None);
    assert_eq!(
        merged["policy"],
        json!({"maxPayload": 1_000_000, "maxBufferedBytes": 1000, "tickIntervalMs": 2000,
               "attachments": {"maxBytes": 5}})
    );
}

#[test]
fn features_are_the_upstreams_plus_any_of_clawgates_missing() {
    let merged = merge_hello(upstream_hello(), &ours(), &relay_auth(), None);
    assert_eq!(merged["features"]["methods"], json!(["health", "sessions.list", "agents.list", "device.pair.list"]));
    assert_eq!(merged["features"]["events"], json!(["tick", "chat"]));
}

#[test]
fn plugin_surface_urls_are_rewritten_to_the_downstream_address() {
    let rewrite = UrlRewrite::new("127.0.0.1:18790", "gw.example:8443", true);
    let merged = merge_hello(upstream_hello(), &ours(), &relay_auth(), Some(&rewrite));
    assert_eq!(
        merged["pluginSurfaceUrls"],
        json!({"canvas": "https://gw.example:8443/__openclaw__/cap/abc",
               "nested": ["wss://gw.example:8443/x", "http://127.0.0.1:187900/not-ours"]})
    );
    let plain = UrlRewrite::new("127.0.0.1:18790", "localhost:18789", false);
    assert_eq!(plain.url("http://127.0.0.1:18790"), Some("http://localhost:18789".into()));
    assert_eq!(plain.url("http://127.0.0.1:18790?a=1"), Some("http://localhost:18789?a=1".into()));
    assert_eq!(plain.url("http://evil.example/http://127.0.0.1:18790"), None);
}

#[test]
fn a_malformed_upstream_hello_still_yields_clawgates_parts() {
    let merged = merge_hello(json!("nonsense"), &ours(), &relay_auth(), None);
    assert_eq!(merged["type"], "hello-ok");
    assert_eq!(merged["server"]["connId"], "cg-conn");
    assert_eq!(merged["policy"]["tickIntervalMs"], 2000);
    let mut odd = upstream_hello();
    odd["snapshot"] = json!(3);
    odd["features"]["methods"] = json!("x");
    let merged = merge_hello(odd, &ours(), &relay_auth(), None);
    assert_eq!(merged["features"]["methods"], json!(["health", "device.pair.list"]));
    assert_eq!(merged["snapshot"]["presence"][0]["host"], "laptop");
}

#[test]
fn recovery_scopes_are_per_principal_and_opaque() {
    let a = recovery_scope("device:abc");
    assert_eq!(a, recovery_scope("device:abc"));
    assert_ne!(a, recovery_scope("device:abd"));
    assert_eq!(a.len(), 64);
    assert!(!a.contains("abc"));
}
