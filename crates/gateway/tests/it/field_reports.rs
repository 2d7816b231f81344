//! The five field reports clawgate was built to answer (docs/admission.md), each driven against a real server.
//!
//! A "remote" client is made honestly: the socket peer (127.0.0.1) is a
//! trusted proxy and `X-Forwarded-For` names the client. A local client that
//! is not the proxy connects from 127.0.0.2.

use crate::common::{admitted, connect_params, RawConn, TestGateway, REMOTE, TOKEN};
use clawgate::config::{AuthMode, Config, TrustedLocalService, TrustedProxyConfig};
use clawgate::ServerOptions;
use clawgate_client::{Client, ConnectOptions, DeviceIdentity};
use serde_json::{json, Value};

const READ: &str = "operator.read";
const WRITE: &str = "operator.write";
const ADMIN: &str = "operator.admin";

fn token_cfg() -> Config {
    Config::new(AuthMode::Token, Some(TOKEN), None)
}

/// Connect from `source` with `headers`, send `params`; the connect response.
async fn connect_from(gw: &TestGateway, source: &str, headers: &[(&str, &str)], params: Value) -> (RawConn, Value) {
    let mut c = RawConn::open_from(source, gw.addr, headers).await.expect("upgrade accepted");
    let res = c.handshake(params).await;
    (c, res)
}

fn details(res: &Value) -> &Value {
    assert_eq!(res["ok"], false, "expected a refusal: {res}");
    &res["error"]["details"]
}

async fn rule_of(c: &mut RawConn) -> Value {
    let status = c.call("s", "status", None).await;
    assert_eq!(status["ok"], true, "{status}");
    status["payload"]["you"].clone()
}

// ---------------------------------------------------------------------------
// 1. Loopback node-role services

#[tokio::test]
async fn report_1_loopback_node_role_service_is_admitted_without_a_device() {
    let gw = TestGateway::token().await;
    let (_c, res) =
        connect_from(&gw, "127.0.0.1", &[], connect_params("node-host", "node", "node", &[], Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["role"], "node");
    assert_eq!(res["payload"]["auth"]["scopes"], json!([]));
    assert!(res["payload"]["auth"].get("deviceToken").is_none());

    // The gateway-assigned id is in its own namespace, never a device id.
    let mut op = admitted(&gw, &[READ]).await;
    let nodes = op.call("n", "node.list", None).await;
    let ids: Vec<&str> =
        nodes["payload"]["nodes"].as_array().unwrap().iter().filter_map(|n| n["nodeId"].as_str()).collect();
    assert!(ids.iter().any(|id| id.starts_with("local:node-host:")), "{nodes}");
    gw.stop().await;
}

#[tokio::test]
async fn report_1_the_exemption_is_not_for_browsers_or_the_control_ui() {
    let gw = TestGateway::token().await;
    let own_origin = format!("http://localhost:{}", gw.addr.port());
    // A browser page on the gateway's own origin, claiming to be a node host.
    let (_c, res) = connect_from(
        &gw,
        "127.0.0.1",
        &[("origin", own_origin.as_str())],
        connect_params("node-host", "node", "node", &[], Some(TOKEN)),
    )
    .await;
    let d = details(&res);
    assert_eq!(d["code"], "CONTROL_UI_DEVICE_IDENTITY_REQUIRED", "{res}");
    assert_eq!(d["rule"], "browser-needs-device");

    // The Control UI's client id, with no Origin at all: a browser still.
    let (_c, res) =
        connect_from(&gw, "127.0.0.1", &[], connect_params("openclaw-control-ui", "webchat", "node", &[], Some(TOKEN)))
            .await;
    assert_eq!(details(&res)["code"], "CONTROL_UI_DEVICE_IDENTITY_REQUIRED", "{res}");

    // A page from anywhere else never gets that far.
    let (_c, res) = connect_from(
        &gw,
        "127.0.0.1",
        &[("origin", "https://evil.example")],
        connect_params("node-host", "node", "node", &[], Some(TOKEN)),
    )
    .await;
    assert_eq!(details(&res)["code"], "CONTROL_UI_ORIGIN_NOT_ALLOWED");
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// 2. Local backend service keeps write scope

/// `send` needs operator.write; clawgate authorizes it, then answers that it
/// does not implement it. Getting past the scope check is the point.
async fn assert_can_write(c: &mut RawConn) {
    let res = c.call("w", "send", Some(json!({ "to": "someone", "message": "hi" }))).await;
    assert_ne!(res["error"]["details"]["code"], "MISSING_SCOPE", "{res}");
    assert_eq!(res["error"]["details"]["code"], "METHOD_NOT_IMPLEMENTED", "{res}");
}

#[tokio::test]
async fn report_2_local_backend_with_only_the_token_can_call_write_methods() {
    let gw = TestGateway::token().await;
    let mut backend = admitted(&gw, &[WRITE]).await;
    assert_eq!(backend.hello.as_ref().unwrap()["auth"]["scopes"], json!([WRITE]));
    assert_eq!(rule_of(&mut backend).await["rule"], "local-owner");
    assert_can_write(&mut backend).await;

    // A terminal UI is a program too.
    let (mut tui, res) = connect_from(
        &gw,
        "127.0.0.1",
        &[],
        connect_params("openclaw-tui", "ui", "operator", &[READ, WRITE], Some(TOKEN)),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_can_write(&mut tui).await;

    // Without the token, the refusal says what to do.
    let (_c, res) =
        connect_from(&gw, "127.0.0.1", &[], connect_params("gateway-client", "backend", "operator", &[WRITE], None))
            .await;
    let d = details(&res);
    assert_eq!(d["code"], "DEVICE_IDENTITY_REQUIRED");
    let hint = d["remediationHint"].as_str().unwrap();
    assert!(hint.contains("auth.token") && hint.contains("service token"), "{hint}");
    gw.stop().await;
}

#[tokio::test]
async fn report_2_trusted_local_services_narrow_local_owner_and_refuse_above_the_ceiling() {
    let mut config = token_cfg();
    config.trusted_local_services = Some(vec![TrustedLocalService {
        client_id: "gateway-client".into(),
        mode: "backend".into(),
        roles: vec![clawgate::store::Role::Operator],
        max_scopes: Some(vec![WRITE.into()]),
    }]);
    let gw = TestGateway::start(config, ServerOptions::default()).await;

    // Listed, within its ceiling (write covers read): admitted, writes.
    let mut backend = admitted(&gw, &[READ, WRITE]).await;
    assert_can_write(&mut backend).await;

    // Above its ceiling: refused, naming the ceiling, never trimmed.
    let (_c, res) = connect_from(
        &gw,
        "127.0.0.1",
        &[],
        connect_params("gateway-client", "backend", "operator", &[WRITE, ADMIN], Some(TOKEN)),
    )
    .await;
    let d = details(&res);
    assert_eq!(d["code"], "LOCAL_SERVICE_SCOPE_CEILING", "{res}");
    assert_eq!(d["notGranted"], json!([ADMIN]));
    assert_eq!(d["maxScopes"], json!([WRITE]));
    assert_eq!(d["rule"], "local-owner");

    // Not listed: local-owner does not apply to it.
    let (_c, res) =
        connect_from(&gw, "127.0.0.1", &[], connect_params("openclaw-tui", "ui", "operator", &[READ], Some(TOKEN)))
            .await;
    let d = details(&res);
    assert_eq!(
        (d["code"].as_str(), d["reason"].as_str()),
        (Some("DEVICE_IDENTITY_REQUIRED"), Some("local-service-not-listed"))
    );
    assert!(d["remediationHint"].as_str().unwrap().contains("gateway.trustedLocalServices"));

    // A role the entry does not list.
    let (_c, res) =
        connect_from(&gw, "127.0.0.1", &[], connect_params("gateway-client", "backend", "node", &[], Some(TOKEN)))
            .await;
    assert_eq!(details(&res)["code"], "ROLE_NOT_GRANTED", "{res}");
    gw.stop().await;
}

#[tokio::test]
async fn report_2_local_owner_false_turns_it_off() {
    let mut config = token_cfg();
    config.local_owner = false;
    let gw = TestGateway::start(config, ServerOptions::default()).await;
    let (_c, res) = connect_from(
        &gw,
        "127.0.0.1",
        &[],
        connect_params("gateway-client", "backend", "operator", &[WRITE], Some(TOKEN)),
    )
    .await;
    let d = details(&res);
    assert_eq!(
        (d["code"].as_str(), d["reason"].as_str()),
        (Some("DEVICE_IDENTITY_REQUIRED"), Some("local-owner-disabled"))
    );
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// 3. Silent scope upgrade for loopback devices (the full story is in
//    tests/it/devices.rs: `scope_upgrades_are_silent_locally_and_pending_remotely`
//    and `role_upgrades_are_never_silent`; this repeats the core).

#[tokio::test]
async fn report_3_silent_local_scope_upgrade_but_never_a_silent_role_upgrade() {
    // Two gateways on one store: one reached only directly (local callers),
    // one behind a trusted proxy (remote callers), so neither setting blurs
    // the other.
    let store: std::sync::Arc<dyn clawgate::store::PairingStore> =
        std::sync::Arc::new(clawgate::store::SqliteStore::open_in_memory().unwrap());
    let gw = TestGateway::start_with_store(token_cfg(), ServerOptions::default(), store.clone()).await;
    let mut proxied_cfg = token_cfg();
    proxied_cfg.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let behind_proxy = TestGateway::start_with_store(proxied_cfg, ServerOptions::default(), store).await;

    let id = DeviceIdentity::generate();
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake_device(connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), &id).await;
    assert_eq!(res["ok"], true, "{res}");

    // From remote, asking for more is a pending request.
    let mut c = RawConn::open_with(behind_proxy.addr, REMOTE).await.unwrap();
    let res = c.handshake_device(connect_params("cli", "cli", "operator", &[READ, ADMIN], Some(TOKEN)), &id).await;
    assert_eq!(details(&res)["code"], "PAIRING_REQUIRED");
    assert_eq!(details(&res)["reason"], "scope-upgrade");

    // A sub-agent needs admin: local scope upgrade, approved silently.
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake_device(connect_params("cli", "cli", "operator", &[READ, ADMIN], Some(TOKEN)), &id).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(rule_of(&mut c).await["rule"], "silent-local-pairing");

    // A role upgrade (operator → node) is never silent, even locally.
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake_device(connect_params("node-host", "node", "node", &[], Some(TOKEN)), &id).await;
    assert_eq!(details(&res)["code"], "PAIRING_REQUIRED");
    assert_eq!(details(&res)["reason"], "role-upgrade");
    behind_proxy.stop().await;
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// 4. Scopes preserved for localhost token auth

#[tokio::test]
async fn report_4_local_token_auth_keeps_its_scopes() {
    let gw = TestGateway::token().await;
    let mut raw = admitted(&gw, &[READ, WRITE, "operator.approvals"]).await;
    assert_eq!(raw.hello.as_ref().unwrap()["auth"]["scopes"], json!([READ, WRITE, "operator.approvals"]));
    assert_eq!(rule_of(&mut raw).await["scopes"], json!([READ, WRITE, "operator.approvals"]));

    // The client library connects without loading a device identity.
    let opts = ConnectOptions::new(gw.url()).token(TOKEN).client("gateway-client", "backend").scopes(&[READ, WRITE]);
    assert!(opts.skip_device_identity, "skip_device_identity is the default");
    assert!(opts.connect_params().device.is_none());
    let client = Client::connect(opts).await.expect("admitted");
    let status = client.request("status", None).await.expect("status");
    assert_eq!(status["you"]["scopes"], json!([READ, WRITE]));
    assert_eq!(status["you"]["rule"], "local-owner");
    assert_eq!(status["you"]["deviceId"], Value::Null);
    let res = client.request("send", Some(json!({ "to": "x", "message": "y" }))).await.unwrap_err();
    assert!(!res.to_string().contains("missing scope"), "{res}");
    client.close().await;
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// 5. Trusted proxy and loopback

const USER: &str = "x-forwarded-user";
const EMAIL: &str = "X-Auth-Request-Email";

/// trusted-proxy mode behind a sidecar proxy on `proxies`, with the gateway
/// password for direct-local callers.
fn proxy_cfg(proxies: &[&str], allow_loopback: bool, loopback_user: Option<&str>, allow_users: &[&str]) -> Config {
    let mut c = Config::new(AuthMode::TrustedProxy, None, Some("local-password"));
    c.trusted_proxies = proxies.iter().map(|p| p.parse().unwrap()).collect();
    let mut tp = TrustedProxyConfig::new(USER, &[EMAIL]);
    tp.allow_loopback = allow_loopback;
    tp.loopback_user = loopback_user.map(Into::into);
    tp.allow_users = allow_users.iter().map(|u| (*u).to_owned()).collect();
    c.trusted_proxy = Some(tp);
    c.identity_scopes.insert("alice".into(), vec![READ.into(), WRITE.into()]);
    c.identity_scopes.insert("svc".into(), vec![READ.into()]);
    c
}

/// Headers a proxy adds for `user`, forwarding for `xff`.
fn proxied<'a>(xff: &'a str, user: Option<&'a str>, email: bool) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![("x-forwarded-for", xff), ("host", "gateway.example")];
    if let Some(u) = user {
        h.push((USER, u));
    }
    if email {
        h.push((EMAIL, "someone@example.com"));
    }
    h
}

fn operator(scopes: &[&str]) -> Value {
    connect_params("openclaw-tui", "ui", "operator", scopes, None)
}

#[tokio::test]
async fn report_5_users_from_the_trusted_proxy() {
    let gw =
        TestGateway::start(proxy_cfg(&["127.0.0.1"], true, Some("svc"), &["alice", "svc"]), ServerOptions::default())
            .await;

    // The proxy vouches for alice: exactly the scopes asked, within identityScopes.
    let (mut c, res) =
        connect_from(&gw, "127.0.0.1", &proxied("203.0.113.5", Some("alice"), true), operator(&[READ, WRITE])).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["scopes"], json!([READ, WRITE]));
    assert_eq!(rule_of(&mut c).await["rule"], "trusted-proxy");
    assert_can_write(&mut c).await;

    // More than identityScopes grants: refused, listing the excess (H16).
    let (_c, res) =
        connect_from(&gw, "127.0.0.1", &proxied("203.0.113.5", Some("alice"), true), operator(&[WRITE, ADMIN])).await;
    let d = details(&res);
    assert_eq!((d["code"].as_str(), d["notGranted"].clone()), (Some("SCOPE_NOT_GRANTED"), json!([ADMIN])));

    // Required header missing: AUTH_IDENTITY_HEADER_REQUIRED, named as configured.
    let (_c, res) =
        connect_from(&gw, "127.0.0.1", &proxied("203.0.113.5", Some("alice"), false), operator(&[READ])).await;
    let d = details(&res);
    assert_eq!(d["code"], "AUTH_IDENTITY_HEADER_REQUIRED");
    assert_eq!(d["authReason"], "trusted_proxy_missing_header_X-Auth-Request-Email");

    // No user header from the proxy.
    let (_c, res) = connect_from(&gw, "127.0.0.1", &proxied("203.0.113.5", None, true), operator(&[READ])).await;
    assert_eq!(
        (details(&res)["code"].as_str(), details(&res)["authReason"].as_str()),
        (Some("AUTH_UNAUTHORIZED"), Some("trusted_proxy_user_missing"))
    );

    // allowUsers.
    let (_c, res) = connect_from(&gw, "127.0.0.1", &proxied("203.0.113.5", Some("mallory"), true), operator(&[])).await;
    assert_eq!(details(&res)["authReason"], "trusted_proxy_user_not_allowed");

    // Proxy users are operators.
    let (_c, res) = connect_from(
        &gw,
        "127.0.0.1",
        &proxied("203.0.113.5", Some("alice"), true),
        connect_params("node-host", "node", "node", &[], None),
    )
    .await;
    assert_eq!(details(&res)["code"], "ROLE_NOT_GRANTED");

    // The password is a fallback for direct-local callers only.
    let mut p = operator(&[READ]);
    p["auth"] = json!({ "password": "local-password" });
    let (_c, res) = connect_from(&gw, "127.0.0.1", &proxied("203.0.113.5", None, true), p).await;
    assert_eq!(details(&res)["authReason"], "trusted_proxy_user_missing");
    gw.stop().await;
}

#[tokio::test]
async fn report_5_the_loopback_user_for_headerless_local_callers() {
    let gw =
        TestGateway::start(proxy_cfg(&["127.0.0.1"], true, Some("svc"), &["alice", "svc"]), ServerOptions::default())
            .await;

    // A headerless direct-local caller (not the proxy) is the loopback user;
    // required headers are skipped for it.
    let (mut c, res) = connect_from(&gw, "127.0.0.2", &[], operator(&[READ])).await;
    assert_eq!(res["ok"], true, "{res}");
    let you = rule_of(&mut c).await;
    assert_eq!(you["rule"], "trusted-proxy-loopback-user");
    assert_eq!(you["scopes"], json!([READ]));

    // Its identityScopes bound it: no local-owner "anything" for it.
    let (_c, res) = connect_from(&gw, "127.0.0.2", &[], operator(&[READ, ADMIN])).await;
    let d = details(&res);
    assert_eq!(
        (d["code"].as_str(), d["rule"].as_str()),
        (Some("SCOPE_NOT_GRANTED"), Some("trusted-proxy-loopback-user"))
    );
    assert_eq!(d["notGranted"], json!([ADMIN]));

    // A local process forging the user header is refused, never ignored.
    let forged = RawConn::open_from("127.0.0.2", gw.addr, &[(USER, "alice")]).await.err().expect("refused upgrade");
    assert_eq!(forged.status, 403);
    let body: Value = serde_json::from_str(&forged.body).unwrap();
    assert_eq!(body["error"]["type"], "trusted_proxy_untrusted_source");
    let forged = RawConn::open_from("127.0.0.2", gw.addr, &[(EMAIL, "x@example.com")]).await.err().expect("refused");
    assert_eq!(forged.status, 403);

    // A headerless neighbour on the proxy's own loopback address (every
    // container of a Kubernetes pod shares 127.0.0.1) is the loopback user too.
    let (mut c, res) = connect_from(&gw, "127.0.0.1", &[], operator(&[READ])).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(rule_of(&mut c).await["rule"], "trusted-proxy-loopback-user");

    // Real headers from the trusted proxy win over the loopback user.
    let (mut c, res) =
        connect_from(&gw, "127.0.0.1", &proxied("203.0.113.5", Some("alice"), true), operator(&[WRITE])).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(rule_of(&mut c).await["rule"], "trusted-proxy");

    // A browser on loopback never gets the loopback user.
    let origin = format!("http://localhost:{}", gw.addr.port());
    let (_c, res) = connect_from(&gw, "127.0.0.2", &[("origin", origin.as_str())], operator(&[READ])).await;
    assert_eq!(details(&res)["code"], "CONTROL_UI_DEVICE_IDENTITY_REQUIRED");

    // The password fallback (as in OpenClaw): the owner, locally.
    let mut p = connect_params("gateway-client", "backend", "operator", &[ADMIN], None);
    p["auth"] = json!({ "password": "local-password" });
    let (mut c, res) = connect_from(&gw, "127.0.0.2", &[], p.clone()).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(rule_of(&mut c).await["rule"], "local-owner");
    p["auth"] = json!({ "password": "wrong" });
    let (_c, res) = connect_from(&gw, "127.0.0.2", &[], p).await;
    assert_eq!(details(&res)["code"], "AUTH_PASSWORD_MISMATCH");
    gw.stop().await;
}

#[tokio::test]
async fn report_5_allow_users_applies_to_the_loopback_user() {
    // Config load refuses this combination; built by hand it is still refused at connect.
    let gw =
        TestGateway::start(proxy_cfg(&["127.0.0.1"], true, Some("svc"), &["alice"]), ServerOptions::default()).await;
    let (_c, res) = connect_from(&gw, "127.0.0.2", &[], operator(&[READ])).await;
    assert_eq!(details(&res)["authReason"], "trusted_proxy_user_not_allowed");
    gw.stop().await;
}

#[tokio::test]
async fn report_5_without_allow_loopback() {
    let gw = TestGateway::start(proxy_cfg(&["127.0.0.1"], false, None, &[]), ServerOptions::default()).await;
    // The sidecar proxy itself sits on loopback.
    let (_c, res) =
        connect_from(&gw, "127.0.0.1", &proxied("203.0.113.5", Some("alice"), true), operator(&[READ])).await;
    assert_eq!(details(&res)["authReason"], "trusted_proxy_loopback_source");
    assert_eq!(details(&res)["code"], "AUTH_UNAUTHORIZED");
    // Headerless local callers are not the proxy (as in OpenClaw).
    let (_c, res) = connect_from(&gw, "127.0.0.2", &[], operator(&[READ])).await;
    assert_eq!(details(&res)["authReason"], "trusted_proxy_untrusted_source");
    gw.stop().await;
}

#[tokio::test]
async fn report_5_trusted_proxies_as_cidr_and_forwarded_for_right_to_left() {
    // 127.0.0.0/31 covers .0 and .1 (the proxy), not .2 (a local caller).
    let gw = TestGateway::start(proxy_cfg(&["127.0.0.0/31"], true, Some("svc"), &[]), ServerOptions::default()).await;

    // The client is the rightmost hop that is not a trusted proxy: a hop an
    // attacker put further left changes nothing.
    let (mut c, res) = connect_from(
        &gw,
        "127.0.0.1",
        &proxied("6.6.6.6, 203.0.113.9, 127.0.0.1", Some("alice"), true),
        operator(&[READ]),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
    let presence = c.call("p", "system-presence", None).await;
    let ips: Vec<&str> = presence["payload"].as_array().unwrap().iter().filter_map(|e| e["ip"].as_str()).collect();
    assert_eq!(ips, ["203.0.113.9"], "{presence}");

    // An unparsable hop makes the request unattributable.
    let r = RawConn::open_from("127.0.0.1", gw.addr, &proxied("203.0.113.9, unknown", Some("alice"), true)).await;
    assert_eq!(r.err().expect("refused").status, 403);

    // The local caller at 127.0.0.2 is outside the CIDR: the loopback user.
    let (mut c, res) = connect_from(&gw, "127.0.0.2", &[], operator(&[READ])).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(rule_of(&mut c).await["rule"], "trusted-proxy-loopback-user");
    gw.stop().await;
}

#[tokio::test]
async fn report_5_trusted_proxy_mode_loads_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json5");
    std::fs::write(
        &path,
        r#"{ gateway: {
            trustedProxies: ["127.0.0.1"],
            auth: {
              mode: "trusted-proxy",
              trustedProxy: { userHeader: "x-forwarded-user", requiredHeaders: ["X-Auth-Request-Email"],
                              allowUsers: ["alice", "svc"], allowLoopback: true, loopbackUser: "svc" },
              identityScopes: { alice: ["operator.read", "operator.write"], svc: ["operator.read"] },
            },
        } }"#,
    )
    .unwrap();
    let sources = clawgate::config::ConfigSources { file: Some(path), ..Default::default() };
    let config =
        clawgate::config::load(&sources, &mut || panic!("no token is generated in trusted-proxy mode")).unwrap();
    let gw = TestGateway::start(config, ServerOptions::default()).await;
    let (_c, res) = connect_from(&gw, "127.0.0.2", &[], operator(&[READ])).await;
    assert_eq!(res["ok"], true, "{res}");
    let (_c, res) =
        connect_from(&gw, "127.0.0.1", &proxied("203.0.113.5", Some("alice"), true), operator(&[WRITE])).await;
    assert_eq!(res["ok"], true, "{res}");
    gw.stop().await;
}
