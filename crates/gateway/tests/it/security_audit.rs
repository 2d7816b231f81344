//! `clawgate security audit` through the real binary: exit status, JSON
//! shape, and a few checks end to end (the pure function's tests cover one
//! unsafe setup per check).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

const TOKEN: &str = "security-audit-token-0123456789abcdef";

/// Runs `clawgate security audit --json --config <config>` in a fresh state
/// directory; returns (exit code, the JSON printed).
fn audit(config_text: &str, config_mode: u32) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = dir.path().join("openclaw.json");
    std::fs::write(&config, config_text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(config_mode)).unwrap();
    run(&state, &config)
}

fn run(state: &Path, config: &Path) -> (i32, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .env("CLAWGATE_STATE_DIR", state)
        .env("HOME", state.parent().unwrap())
        .args(["security", "audit", "--json", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("run clawgate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), json)
}

/// The findings as (id, severity, key), each checked to have every field.
/// `locality.container_forwarders` depends on whether the tests run in a
/// container, so it is left out.
fn ids(json: &Value) -> Vec<(String, String, String)> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] != "locality.container_forwarders")
        .map(|f| {
            for field in ["id", "severity", "key", "message", "fix"] {
                assert!(f[field].as_str().is_some_and(|s| !s.is_empty()), "{field} in {f}");
            }
            (
                f["id"].as_str().unwrap().into(),
                f["severity"].as_str().unwrap().into(),
                f["key"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn a_typical_openclaw_json_passes_naming_what_it_ignores() {
    let config = format!(
        r#"{{
          agents: {{ defaults: {{ workspace: "~/work" }} }},
          channels: {{ telegram: {{ enabled: true }} }},
          logging: {{ level: "info" }},
          gateway: {{
            mode: "local", port: 18789, bind: "loopback",
            auth: {{ mode: "token", token: "{TOKEN}" }},
            controlUi: {{ enabled: true }},
            remote: {{ url: "ws://gw.example.invalid:18789" }},
            tailscale: {{ mode: "off" }},
          }},
        }}"#
    );
    let (code, json) = audit(&config, 0o600);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["ok"], true);
    let found = ids(&json);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|(id, sev, _)| id == "config.ignored_keys" && sev == "info"), "{found:?}");
    let messages = json["findings"].to_string();
    for key in ["agents", "channels", "logging", "gateway.mode", "gateway.controlUi.enabled", "gateway.remote"] {
        assert!(messages.contains(key), "{key}: {messages}");
    }
}

#[test]
fn a_wildcard_origin_is_critical_and_fails_the_audit() {
    let config = format!(r#"{{gateway: {{auth: {{token: "{TOKEN}"}}, controlUi: {{allowedOrigins: ["*"]}}}}}}"#);
    let (code, json) = audit(&config, 0o600);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["ok"], false);
    assert_eq!(json["summary"]["critical"], 1);
    assert_eq!(
        ids(&json),
        vec![(
            "gateway.control_ui.allowed_origins_wildcard".into(),
            "critical".into(),
            "gateway.controlUi.allowedOrigins[0]".into()
        )]
    );
}

#[test]
fn a_config_readable_by_others_is_critical() {
    let config = format!(r#"{{gateway: {{auth: {{token: "{TOKEN}"}}}}}}"#);
    let (code, json) = audit(&config, 0o644);
    assert_eq!(code, 1, "{json}");
    let found = ids(&json);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].0.as_str(), found[0].1.as_str()), ("state.permissions", "critical"));
    assert!(found[0].2.ends_with("openclaw.json"), "{found:?}");
}

#[test]
fn short_token_and_loopback_proxy_are_warnings_only() {
    let config = r#"{gateway: {auth: {token: "only-twenty-chars-xx"}, trustedProxies: ["127.0.0.1"]}}"#;
    let (code, json) = audit(config, 0o600);
    assert_eq!(code, 0, "{json}");
    let found: Vec<String> = ids(&json).into_iter().map(|(id, sev, _)| format!("{id}:{sev}")).collect();
    assert_eq!(found, vec!["gateway.token_too_short:warn", "proxy.loopback_trusted:warn"]);
}

#[test]
fn a_postgres_store_is_read_from_the_database_its_password_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A SQLite file left behind is not the store: its mode is not checked.
    std::fs::write(state.join("clawgate.sqlite"), b"").unwrap();
    std::fs::set_permissions(state.join("clawgate.sqlite"), std::fs::Permissions::from_mode(0o644)).unwrap();
    // The test server trusts loopback: the password is never asked for.
    let url = crate::common::postgres::fresh_database_url().replacen("postgres@", "postgres:s3cret-in-the-file@", 1);
    let config = dir.path().join("clawgate.json5");
    std::fs::write(&config, format!(r#"{{gateway: {{auth: {{token: "{TOKEN}"}}, store: {{url: "{url}"}}}}}}"#))
        .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();

    let (code, json) = run(&state, &config);
    assert_eq!(code, 1, "{json}");
    let found: Vec<String> = ids(&json).into_iter().map(|(id, sev, key)| format!("{id}:{sev}:{key}")).collect();
    let config_key = format!("state.permissions:critical:{}", config.display());
    assert_eq!(
        found,
        [
            config_key.as_str(),
            "store.url_password_readable:critical:gateway.store.url",
            "store.postgres:info:gateway.store.url"
        ]
    );
    assert!(!json.to_string().contains("s3cret-in-the-file"), "{json}");
}
