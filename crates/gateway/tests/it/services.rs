//! Service principals end to end: `clawgate services …` (the real binary, on
//! the store file) and a running gateway on the same file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{admitted, connect_params, RawConn, TestGateway, REMOTE, TOKEN};
use clawgate::config::{AuthMode, Config};
use clawgate::store::{PairingStore, Role, SqliteStore};
use clawgate::ServerOptions;
use clawgate_client::DeviceIdentity;
use serde_json::{json, Value};

const READ: &str = "operator.read";
const WRITE: &str = "operator.write";
const ADMIN: &str = "operator.admin";

/// `clawgate` with only the state directory from the environment.
fn clawgate(state: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CLAWGATE_STATE_DIR", state).args(args).stdin(Stdio::null());
    cmd.output().expect("run clawgate")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn state_dir() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("clawgate-services").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let store = dir.path().join("clawgate.sqlite");
    (dir, store)
}

/// `services add`; returns the token, checking it is printed exactly once.
fn add(state: &Path, args: &[&str]) -> String {
    let out = clawgate(state, &[&["services", "add"], args].concat());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let tokens: Vec<&str> = stdout.split_whitespace().filter(|w| w.starts_with("cgs_")).collect();
    assert_eq!(tokens.len(), 1, "the token is printed once: {stdout}");
    assert!(!stderr.contains("cgs_"), "{stderr}");
    assert!(stderr.contains("shown only once"), "{stderr}");
    tokens[0].to_owned()
}

/// A gateway on the store file, behind a trusted proxy at 127.0.0.1 so
/// `REMOTE` clients are remote; polls the store every 100 ms.
async fn gateway_on(store_path: &Path) -> TestGateway {
    let store = SqliteStore::open(store_path).unwrap();
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let options = ServerOptions { store_poll_interval: Duration::from_millis(100), ..Default::default() };
    TestGateway::start_with_store(config, options, Arc::new(store)).await
}

fn with_token(client: (&str, &str), role: &str, scopes: &[&str], token: &str) -> Value {
    connect_params(client.0, client.1, role, scopes, Some(token))
}

async fn connect(gw: &TestGateway, headers: &[(&str, &str)], params: Value) -> (RawConn, Value) {
    let mut c = RawConn::open_with(gw.addr, headers).await.expect("upgrade");
    let res = c.handshake(params).await;
    (c, res)
}

#[tokio::test]
async fn a_service_token_admits_its_fixed_role_and_scopes_from_remote() {
    let (dir, store_path) = state_dir();
    let token = add(dir.path(), &["ci-bot", "--role", "operator", "--scopes", "operator.read,operator.write"]);
    let gw = gateway_on(&store_path).await;
    let backend = ("gateway-client", "backend");

    // Remote, asking for what it holds (or less): admitted with exactly that.
    let (mut c, res) = connect(&gw, REMOTE, with_token(backend, "operator", &[READ], &token)).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["scopes"], json!([READ]));
    assert!(res["payload"]["auth"].get("deviceToken").is_none());
    let you = c.call("s", "status", None).await["payload"]["you"].clone();
    assert_eq!((you["rule"].as_str(), you["servicePrincipal"].as_str()), (Some("service-principal"), Some("ci-bot")));

    // More than it holds: refused, listing the excess.
    let (_c, res) = connect(&gw, REMOTE, with_token(backend, "operator", &[READ, WRITE, ADMIN], &token)).await;
    let d = &res["error"]["details"];
    assert_eq!(d["code"], "SCOPE_NOT_GRANTED", "{res}");
    assert_eq!(d["notGranted"], json!([ADMIN]));
    assert_eq!(d["rule"], "service-principal");

    // Another role: refused.
    let (_c, res) = connect(&gw, REMOTE, with_token(("node-host", "node"), "node", &[], &token)).await;
    assert_eq!(res["error"]["details"]["code"], "ROLE_NOT_GRANTED", "{res}");
    assert_eq!(res["error"]["details"]["allowedRoles"], json!(["operator"]));

    // With a device block: refused.
    let mut c = RawConn::open_with(gw.addr, REMOTE).await.unwrap();
    let res = c.handshake_device(with_token(backend, "operator", &[READ], &token), &DeviceIdentity::generate()).await;
    assert_eq!(res["error"]["details"]["code"], "SERVICE_TOKEN_WITH_DEVICE", "{res}");

    // Locally, too, it is the principal and never the owner (no local-owner admin).
    let mut c = RawConn::open_from("127.0.0.2", gw.addr, &[]).await.unwrap();
    let res = c.handshake(with_token(backend, "operator", &[ADMIN], &token)).await;
    assert_eq!(res["error"]["details"]["code"], "SCOPE_NOT_GRANTED", "{res}");

    // A wrong secret for a real id, and an unknown id: one answer.
    let id = token.split('_').nth(1).unwrap();
    for bad in [format!("cgs_{id}_{}", "A".repeat(43)), format!("cgs_{}_{}", "0".repeat(16), "A".repeat(43))] {
        let (_c, res) = connect(&gw, REMOTE, with_token(backend, "operator", &[READ], &bad)).await;
        let d = &res["error"]["details"];
        assert_eq!(
            (d["code"].as_str(), d["authReason"].as_str()),
            (Some("AUTH_SERVICE_TOKEN_INVALID"), Some("service_token_invalid"))
        );
    }

    // The store keeps only a digest, and the listing never shows the token.
    // The secret is everything after the second `_` (base64url may contain `_`).
    let secret = token.splitn(3, '_').nth(2).unwrap().to_owned();
    let (listing, _) = text(&clawgate(dir.path(), &["services", "list"]));
    assert!(listing.contains("ci-bot") && listing.contains("active") && !listing.contains(&secret), "{listing}");
    // The last use is recorded: the gateway writes it with its next batch
    // of bookkeeping (every few seconds), not on the connect.
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let (json_listing, _) = text(&clawgate(dir.path(), &["services", "list", "--json"]));
        let v: Value = serde_json::from_str(&json_listing).unwrap();
        if v[0]["lastUsedAtMs"].is_u64() || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(v[0]["scopes"], json!([READ, WRITE]));
    assert!(v[0]["lastUsedAtMs"].is_u64(), "{v}");
    assert!(!std::fs::read(&store_path).unwrap().windows(secret.len()).any(|w| w == secret.as_bytes()));
    gw.stop().await;
}

#[tokio::test]
async fn a_node_principal_gets_a_svc_node_id() {
    let (dir, store_path) = state_dir();
    let token = add(dir.path(), &["edge-host", "--role", "node"]);
    let gw = gateway_on(&store_path).await;
    let (_node, res) = connect(&gw, REMOTE, with_token(("node-host", "node"), "node", &[], &token)).await;
    assert_eq!(res["ok"], true, "{res}");
    let mut op = admitted(&gw, &[READ]).await;
    let nodes = op.call("n", "node.list", None).await;
    let found = nodes["payload"]["nodes"].as_array().unwrap().iter().any(|n| n["nodeId"] == "svc:edge-host");
    assert!(found, "{nodes}");

    // A second connection as the same principal is the same node: refused.
    let (_c, res) = connect(&gw, REMOTE, with_token(("node-host", "node"), "node", &[], &token)).await;
    assert_eq!(res["error"]["details"]["code"], "NODE_ID_IN_USE", "{res}");

    // Node principals hold no scopes.
    let out = clawgate(dir.path(), &["services", "add", "n2", "--role", "node", "--scopes", "operator.read"]);
    assert!(!out.status.success());
    gw.stop().await;
}

#[tokio::test]
async fn revoking_with_the_cli_closes_the_live_session_within_two_seconds() {
    let (dir, store_path) = state_dir();
    let token = add(dir.path(), &["cron", "--role", "operator", "--scopes", "operator.write"]);
    // The default poll interval (1 s): "within one tick".
    let store = SqliteStore::open(&store_path).unwrap();
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let gw = TestGateway::start_with_store(config, ServerOptions::default(), Arc::new(store)).await;

    let (mut c, res) =
        connect(&gw, REMOTE, with_token(("gateway-client", "backend"), "operator", &[WRITE], &token)).await;
    assert_eq!(res["ok"], true, "{res}");
    let out = clawgate(dir.path(), &["services", "revoke", "cron"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(3), c.expect_close()).await.expect("closed in time");
    assert_eq!(closed, (4001, "client invalidated: service principal revoked".into()));
    assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());

    // And the token no longer gets in.
    let (_c, res) = connect(&gw, REMOTE, with_token(("gateway-client", "backend"), "operator", &[WRITE], &token)).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_SERVICE_TOKEN_INVALID", "{res}");
    let (listing, _) = text(&clawgate(dir.path(), &["services", "list"]));
    assert!(listing.contains("revoked"), "{listing}");
    gw.stop().await;
}

#[tokio::test]
async fn rotating_closes_sessions_of_the_old_secret_and_the_new_one_works() {
    let (dir, store_path) = state_dir();
    let old = add(dir.path(), &["cron", "--role", "operator", "--scopes", "operator.read"]);
    let gw = gateway_on(&store_path).await;
    let (mut c, res) = connect(&gw, REMOTE, with_token(("gateway-client", "backend"), "operator", &[READ], &old)).await;
    assert_eq!(res["ok"], true, "{res}");

    let out = clawgate(dir.path(), &["services", "rotate", "cron"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("shown only once"));
    let new = stdout.trim().to_owned();
    assert!(new.starts_with("cgs_") && new != old);
    let closed = tokio::time::timeout(Duration::from_secs(3), c.expect_close()).await.expect("closed in time");
    assert_eq!(closed, (4001, "client invalidated: service token rotated".into()));

    let (_c, res) = connect(&gw, REMOTE, with_token(("gateway-client", "backend"), "operator", &[READ], &old)).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_SERVICE_TOKEN_INVALID");
    let (_c, res) = connect(&gw, REMOTE, with_token(("gateway-client", "backend"), "operator", &[READ], &new)).await;
    assert_eq!(res["ok"], true, "{res}");
    gw.stop().await;
}

#[tokio::test]
async fn a_revocation_by_the_gateways_own_store_connection_closes_sessions_too() {
    let (dir, store_path) = state_dir();
    let token = add(dir.path(), &["cron", "--role", "operator", "--scopes", "operator.read"]);
    let gw = gateway_on(&store_path).await;
    let (mut c, res) =
        connect(&gw, REMOTE, with_token(("gateway-client", "backend"), "operator", &[READ], &token)).await;
    assert_eq!(res["ok"], true, "{res}");
    // Same connection as the gateway's: data_version does not move, the generation does.
    gw.gateway.store.revoke_service("cron", clawgate::server::now_ms()).unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(3), c.expect_close()).await.expect("closed in time");
    assert_eq!(closed.0, 4001);
    gw.stop().await;
}

#[tokio::test]
async fn wrong_service_tokens_count_like_wrong_shared_secrets() {
    let (dir, store_path) = state_dir();
    let token = add(dir.path(), &["cron", "--role", "operator", "--scopes", "operator.read"]);
    let gw = gateway_on(&store_path).await;
    let id = token.split('_').nth(1).unwrap().to_owned();
    for _ in 0..10 {
        let bad = format!("cgs_{id}_{}", "B".repeat(43));
        let (_c, res) =
            connect(&gw, REMOTE, with_token(("gateway-client", "backend"), "operator", &[READ], &bad)).await;
        assert_eq!(res["error"]["details"]["code"], "AUTH_SERVICE_TOKEN_INVALID");
    }
    // Locked out, the right token included; the gateway token shares the bucket.
    let (_c, res) = connect(&gw, REMOTE, with_token(("gateway-client", "backend"), "operator", &[READ], &token)).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_RATE_LIMITED", "{res}");
    let (_c, res) = connect(&gw, REMOTE, with_token(("openclaw-probe", "probe"), "operator", &[], TOKEN)).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_RATE_LIMITED", "{res}");
    gw.stop().await;
}

#[test]
fn cli_refusals_name_what_to_do() {
    let (dir, _) = state_dir();
    let out = clawgate(dir.path(), &["services", "list"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("STORE_MISSING"));
    add(dir.path(), &["cron", "--role", "operator", "--scopes", "operator.read"]);
    let out = clawgate(dir.path(), &["services", "add", "cron", "--role", "operator"]);
    assert!(text(&out).1.contains("SERVICE_EXISTS"), "{:?}", text(&out));
    let out = clawgate(dir.path(), &["services", "add", "x", "--role", "operator", "--scopes", "operator.everything"]);
    assert!(text(&out).1.contains("INVALID_SCOPES"), "{:?}", text(&out));
    let out = clawgate(dir.path(), &["services", "revoke", "ghost"]);
    assert!(text(&out).1.contains("SERVICE_UNKNOWN"), "{:?}", text(&out));
    let (listing, _) = text(&clawgate(dir.path(), &["services", "list"]));
    assert!(listing.contains("cron"));
    let store = SqliteStore::open(&dir.path().join("clawgate.sqlite")).unwrap();
    assert_eq!(store.list_services().unwrap()[0].role, Role::Operator);
}
