//! `clawgate auth explain`, through the real binary: the config is loaded
//! like `gateway run` loads it (state directory, environment), and the
//! decision comes from the same `classify_upgrade` + `decide`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const TOKEN: &str = "explain-cli-token-0123456789abcdef0123";

fn explain(state: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .env_clear()
        .env("CLAWGATE_STATE_DIR", state)
        .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
        .args(["auth", "explain"])
        .args(args)
        .output()
        .expect("run clawgate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn explain_json(state: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, stdout, stderr) = explain(state, &all);
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("clawgate auth explain {all:?}: not JSON ({e}):\n{stdout}\n{stderr}"));
    // Exit status 0 exactly when the connection would be admitted.
    assert_eq!(ok, v["outcome"] == "admit", "exit status of {all:?} disagrees with {v:#}");
    v
}

fn state_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn local_program_with_the_token_is_admitted_as_local_owner() {
    let dir = state_dir();
    let v = explain_json(dir.path(), &["--credential", "shared-token", "--scopes", "operator.read,operator.write"]);
    assert_eq!(v["outcome"], "admit", "{v:#}");
    assert_eq!(v["rule"], "local-owner");
    assert_eq!(v["scopes"], serde_json::json!(["operator.read", "operator.write"]));
    assert_eq!(v["locality"]["kind"], "direct-local");
    let trace = v["trace"].as_array().unwrap();
    assert_eq!(trace.last().unwrap()["rule"], "local-owner");
    assert_eq!(trace.last().unwrap()["decided"], true);

    // The text form says the same.
    let (ok, text, _) = explain(dir.path(), &["--credential", "shared-token"]);
    assert!(ok);
    assert!(text.contains("outcome:     admit") && text.contains("rule:        local-owner"), "{text}");
    assert!(text.contains("trace:"), "{text}");
}

#[test]
fn a_foreign_origin_is_refused_by_the_origin_rule() {
    let dir = state_dir();
    let v = explain_json(dir.path(), &["--credential", "shared-token", "--origin", "http://evil.example"]);
    assert_eq!(v["outcome"], "refuse", "{v:#}");
    assert_eq!(v["rule"], "origin");
    assert_eq!(v["code"], "CONTROL_UI_ORIGIN_NOT_ALLOWED");
    assert!(v["hint"].as_str().unwrap().contains("allowedOrigins"));
}

#[test]
fn a_remote_peer_asking_scopes_has_no_identity() {
    let dir = state_dir();
    let v =
        explain_json(dir.path(), &["--peer", "203.0.113.5", "--host", "gw.example:18789", "--scopes", "operator.read"]);
    assert_eq!(v["outcome"], "refuse", "{v:#}");
    assert_eq!(v["rule"], "no-identity");
    assert_eq!(v["code"], "DEVICE_IDENTITY_REQUIRED");
    assert_eq!(v["locality"], serde_json::json!({"kind": "remote", "clientIp": "203.0.113.5", "viaProxy": false}));
}

#[test]
fn a_forwarded_header_from_an_untrusted_peer_is_refused_at_the_edge() {
    let dir = state_dir();
    let v = explain_json(dir.path(), &["--header", "X-Forwarded-For: 198.51.100.7"]);
    assert_eq!(v["outcome"], "refuse", "{v:#}");
    assert_eq!(v["stage"], "edge");
    assert_eq!(v["httpStatus"], 403);
    assert_eq!(v["code"], "proxy_attribution_required");
}

#[test]
fn a_description_file_and_bad_input() {
    let dir = state_dir();
    let file = dir.path().join("conn.json");
    std::fs::write(
        &file,
        r#"{"peer": "127.0.0.1", "clientId": "openclaw-control-ui", "clientMode": "webchat",
            "origin": "http://localhost:18789", "scopes": ["operator.read"]}"#,
    )
    .unwrap();
    let v = explain_json(dir.path(), &["--file", file.to_str().unwrap()]);
    assert_eq!(v["rule"], "browser-needs-device", "{v:#}");
    // Flags override the file.
    let v = explain_json(dir.path(), &["--file", file.to_str().unwrap(), "--device", "proven"]);
    assert_eq!(v["rule"], "silent-local-pairing", "{v:#}");
    assert!(!dir.path().join("clawgate.sqlite").exists(), "explain never creates the store");

    let (ok, _, stderr) = explain(dir.path(), &["--credential", "owner"]);
    assert!(!ok);
    assert!(stderr.contains("shared-token"), "{stderr}");
    let (ok, _, stderr) = explain(dir.path(), &["--client-id", "no-such-client"]);
    assert!(!ok);
    assert!(stderr.contains("client.id"), "{stderr}");
}

#[test]
fn a_paired_device_is_read_from_the_store() {
    use clawgate::store::{NewRequest, PairingStore, Role, SqliteStore};

    let dir = state_dir();
    let id = clawgate_client::DeviceIdentity::from_seed([5; 32]);
    {
        let store = SqliteStore::open(&dir.path().join("clawgate.sqlite")).unwrap();
        let mut req = NewRequest::new(id.device_id(), id.public_key_b64url(), Role::Operator, &["operator.read"]);
        req.platform = Some("linux".into());
        store.pair_silently(&req, 1_000).unwrap();
    }
    let device_id = id.device_id();
    let remote = ["--peer", "203.0.113.5", "--device-id", device_id.as_str()];

    let mut args = remote.to_vec();
    args.extend(["--scopes", "operator.read"]);
    let v = explain_json(dir.path(), &args);
    assert_eq!(v["rule"], "device-paired", "{v:#}");
    assert_eq!(v["outcome"], "admit");

    let mut args = remote.to_vec();
    args.extend(["--scopes", "operator.admin"]);
    let v = explain_json(dir.path(), &args);
    assert_eq!(v["outcome"], "pairing-required", "{v:#}");
    assert_eq!(v["reason"], "scope-upgrade");
    assert_eq!(v["approvedScopes"], serde_json::json!(["operator.read"]));
}

#[test]
fn a_service_principal_is_read_from_the_store() {
    use clawgate::store::{PairingStore, Role, SqliteStore};

    let dir = state_dir();
    {
        let store = SqliteStore::open(&dir.path().join("clawgate.sqlite")).unwrap();
        store.add_service("cron", Role::Operator, &["operator.write".to_owned()], 1_000).unwrap();
    }
    let service = ["--peer", "203.0.113.5", "--credential", "service-token", "--service", "cron"];
    let mut args = service.to_vec();
    args.extend(["--scopes", "operator.write"]);
    let v = explain_json(dir.path(), &args);
    assert_eq!(v["outcome"], "admit", "{v:#}");
    assert_eq!(v["rule"], "service-principal");

    let mut args = service.to_vec();
    args.extend(["--scopes", "operator.admin"]);
    let v = explain_json(dir.path(), &args);
    assert_eq!(v["outcome"], "refuse", "{v:#}");
    assert_eq!(v["rule"], "service-principal");
    assert_eq!(v["code"], "SCOPE_NOT_GRANTED");
}

#[test]
fn a_peer_uid_outside_local_owner_uids_is_not_the_owner() {
    let dir = state_dir();
    std::fs::write(dir.path().join("config.json5"), "{ gateway: { auth: { localOwnerUids: [1000] } } }").unwrap();
    let owner =
        explain_json(dir.path(), &["--credential", "shared-token", "--scopes", "operator.read", "--peer-uid", "1000"]);
    assert_eq!(owner["rule"], "local-owner", "{owner:#}");
    assert_eq!(owner["peerUid"], serde_json::json!({ "uid": 1000, "owner": true }));

    let other =
        explain_json(dir.path(), &["--credential", "shared-token", "--scopes", "operator.read", "--peer-uid", "33"]);
    assert_eq!(other["outcome"], "refuse", "{other:#}");
    assert_eq!(other["code"], "DEVICE_IDENTITY_REQUIRED");
    assert_eq!(other["peerUid"], serde_json::json!({ "uid": 33, "owner": false }));
    assert!(other["hint"].as_str().unwrap().contains("gateway.auth.localOwnerUids"), "{other:#}");
    let (_, text, _) =
        explain(dir.path(), &["--credential", "shared-token", "--scopes", "operator.read", "--peer-uid", "33"]);
    assert!(text.contains("peer uid:    33, not in gateway.auth.localOwnerUids"), "{text}");
}
