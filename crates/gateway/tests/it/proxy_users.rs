//! Devices of trusted-proxy users, through a real reverse proxy: Debian's
//! nginx configured as an SSO proxy (it names the user in X-Forwarded-User
//! and X-Forwarded-Email and appends X-Forwarded-For), in front of clawgate in
//! trusted-proxy mode, with the reference client presenting a device the
//! way the Control UI does.
//!
//! The reference client connects from loopback, so an honest edge proxy
//! (`common::proxy`, from 127.0.0.2) stands in for the load balancer in front
//! of nginx and names the client 203.0.113.5; nginx connects to the gateway
//! from 127.0.0.3. Both are trusted proxies; the CLI on 127.0.0.1 stays a
//! direct-local program holding the gateway password.

use std::path::Path;

use clawgate::config::{AuthMode, Config, TrustedProxyConfig};
use clawgate::store::ApprovedVia;
use serde_json::{json, Value};

use crate::common::nginx::{Nginx, Site};
use crate::common::proxy::Proxy;
use crate::common::TestGateway;
use crate::interop_client::{clawgate_cli, run_scenario};

const PASSWORD: &str = "proxy-users-password-0123456789abcdef";
const READ: &str = "operator.read";
const WRITE: &str = "operator.write";

fn sso_config(auto_approve: Option<&[&str]>) -> Config {
    let mut c = Config::new(AuthMode::TrustedProxy, None, Some(PASSWORD));
    c.trusted_proxies = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
    let mut tp = TrustedProxyConfig::new("X-Forwarded-User", &["X-Forwarded-Email"]);
    tp.allow_loopback = true;
    tp.device_auto_approve = auto_approve.map(|s| s.iter().map(|x| (*x).to_owned()).collect());
    c.trusted_proxy = Some(tp);
    c.identity_scopes.insert("alice".into(), vec![READ.into(), WRITE.into()]);
    c.identity_scopes.insert("bob".into(), vec![READ.into()]);
    c
}

/// nginx with one site per user, each behind its own edge proxy.
struct Front {
    nginx: Nginx,
    edges: Vec<Proxy>,
}

impl Front {
    async fn start(gateway: std::net::SocketAddr, users: &[&str]) -> Front {
        let sites: Vec<Site> = users.iter().map(|u| Site { upstream: gateway, user: Some((*u).to_owned()) }).collect();
        let nginx = tokio::task::spawn_blocking(move || Nginx::start(&sites, "127.0.0.3")).await.unwrap();
        let mut edges = Vec::new();
        for addr in &nginx.addrs {
            edges.push(Proxy::start(*addr, "127.0.0.2", "203.0.113.5", None).await);
        }
        Front { nginx, edges }
    }

    fn url(&self, user_index: usize) -> String {
        self.edges[user_index].url()
    }
}

fn private_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

async fn scenario(url: String, identity: &Path, scopes: &[&str]) -> Value {
    let env = vec![
        ("CLAWGATE_URL", url),
        ("CLAWGATE_IDENTITY_FILE", identity.display().to_string()),
        ("CLAWGATE_SCOPES", scopes.join(",")),
    ];
    let (ok, seen, stderr) = tokio::task::spawn_blocking(move || run_scenario("proxy-device", &env)).await.unwrap();
    assert!(ok, "scenario failed: {seen}\n{stderr}");
    seen
}

async fn cli(state: &Path, args: &[&str]) -> String {
    let (dir, args): (std::path::PathBuf, Vec<String>) =
        (state.to_owned(), args.iter().map(|a| (*a).to_owned()).collect());
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        clawgate_cli(&dir, &args, &[("OPENCLAW_GATEWAY_PASSWORD", PASSWORD)])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_ui_device_behind_sso_nginx_waits_for_approval_then_reconnects_with_its_token() {
    let gw = TestGateway::start(sso_config(None), clawgate::ServerOptions::default()).await;
    let front = Front::start(gw.addr, &["alice", "bob"]).await;
    let state = private_dir();
    let identity = state.path().join("device.json");

    // 1. Alice's Control UI through nginx: a pending request naming alice.
    let seen = scenario(front.url(0), &identity, &[READ]).await;
    let details = &seen["first"]["error"]["details"];
    assert_eq!(details["code"], "PAIRING_REQUIRED", "{seen}\nnginx: {}", front.nginx.log());
    assert_eq!(seen["first"]["reconnectPaused"]["detailCode"], "PAIRING_REQUIRED", "{seen}");
    let request_id = details["requestId"].as_str().unwrap().to_owned();
    let device_id = seen["deviceId"].as_str().unwrap().to_owned();
    let pending = gw.gateway.store.open_requests(clawgate::server::now_ms()).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].proxy_user.as_deref(), Some("alice"));
    assert_eq!(pending[0].remote_ip.as_deref(), Some("203.0.113.5"), "X-Forwarded-For through both proxies");

    // 2. The approver sees the user (CLI list and approve), and approves.
    let url = format!("ws://{}", gw.addr);
    let listed = cli(state.path(), &["devices", "list", "--url", &url]).await;
    assert!(listed.contains("asked as proxy user alice"), "{listed}");
    let approved = cli(state.path(), &["devices", "approve", "--latest", "--url", &url]).await;
    assert!(approved.contains(&format!("Approving pairing request {request_id}")), "{approved}");
    assert!(approved.contains("proxy user   alice"), "{approved}");
    let paired = gw.gateway.store.device(&device_id).unwrap().expect("paired");
    assert_eq!((paired.proxy_user.as_deref(), paired.approved_via), (Some("alice"), ApprovedVia::Cli));
    let listed = cli(state.path(), &["devices", "list", "--url", &url]).await;
    assert!(listed.contains("bound to proxy user alice"), "{listed}");

    // 3. Alice again: admitted as the paired device, a device token in
    //    hello-ok; then with only that device token, still through nginx.
    let seen = scenario(front.url(0), &identity, &[READ]).await;
    assert_eq!(seen["first"]["rule"], "device-paired", "{seen}");
    assert_eq!(seen["first"]["scopes"], json!([READ]));
    assert_eq!(seen["first"]["auth"]["deviceToken"], "<43 chars>", "{seen}");
    assert_eq!(seen["second"]["admitted"], true, "{seen}");
    assert_eq!(seen["second"]["rule"], "device-paired", "{seen}");

    // 4. Bob, with the same device key: pairing again, reason user-mismatch.
    let seen = scenario(front.url(1), &identity, &[READ]).await;
    let details = &seen["first"]["error"]["details"];
    assert_eq!(details["code"], "PAIRING_REQUIRED", "{seen}");
    assert_eq!(details["reason"], "user-mismatch", "{seen}");
    let pending = gw.gateway.store.open_requests(clawgate::server::now_ms()).unwrap();
    assert_eq!(pending[0].proxy_user.as_deref(), Some("bob"));
    // Alice's pairing stands until someone approves bob's request.
    let seen = scenario(front.url(0), &identity, &[READ]).await;
    assert_eq!(seen["first"]["rule"], "device-paired", "{seen}");
    drop(front);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_auto_approve_admits_a_proxy_users_device_at_once_within_its_scopes() {
    let gw = TestGateway::start(sso_config(Some(&[READ])), clawgate::ServerOptions::default()).await;
    let front = Front::start(gw.addr, &["alice"]).await;
    let state = private_dir();

    // Within deviceAutoApprove.scopes ∩ alice's identityScopes: in at once.
    let identity = state.path().join("device.json");
    let seen = scenario(front.url(0), &identity, &[READ]).await;
    assert_eq!(seen["first"]["rule"], "proxy-device-auto-approve", "{seen}\nnginx: {}", front.nginx.log());
    assert_eq!(seen["first"]["auth"]["scopes"], json!([READ]), "{seen}");
    assert_eq!(seen["first"]["auth"]["deviceToken"], "<43 chars>", "{seen}");
    assert_eq!(seen["second"]["rule"], "device-paired", "{seen}");
    let device_id = seen["deviceId"].as_str().unwrap();
    let paired = gw.gateway.store.device(device_id).unwrap().expect("paired");
    assert_eq!((paired.proxy_user.as_deref(), paired.approved_via), (Some("alice"), ApprovedVia::ProxyAuto));

    // Beyond deviceAutoApprove.scopes (within alice's): an approval is needed.
    let other = state.path().join("other-device.json");
    let seen = scenario(front.url(0), &other, &[READ, WRITE]).await;
    assert_eq!(seen["first"]["error"]["details"]["code"], "PAIRING_REQUIRED", "{seen}");
    // Beyond alice's identityScopes: refused, naming what is missing.
    let seen = scenario(front.url(0), &other, &[READ, "operator.admin"]).await;
    let details = &seen["first"]["error"]["details"];
    assert_eq!(details["code"], "SCOPE_NOT_GRANTED", "{seen}");
    assert_eq!(details["notGranted"], json!(["operator.admin"]), "{seen}");
    drop(front);
    gw.stop().await;
}
