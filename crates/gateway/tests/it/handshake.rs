//! The connection state machine, driven with raw frames against a real server.

use std::time::Duration;

use crate::common::{admitted, connect_params, RawConn, TestGateway, TOKEN};
use clawgate::config::{AuthMode, Config};
use clawgate::ServerOptions;
use serde_json::{json, Value};

#[tokio::test]
async fn challenge_comes_first_with_nonce_and_server_time() {
    let gw = TestGateway::token().await;
    let mut c = RawConn::open(gw.addr).await;
    let challenge = c.recv().await;
    assert_eq!(challenge["type"], "event");
    assert_eq!(challenge["event"], "connect.challenge");
    assert!(challenge.get("seq").is_none(), "the challenge carries no seq");
    let nonce = challenge["payload"]["nonce"].as_str().unwrap();
    assert_eq!(nonce.len(), 36);
    let ts = challenge["payload"]["ts"].as_u64().unwrap();
    let now = clawgate::server::now_ms();
    assert!(now.abs_diff(ts) < 5_000);
    let mut other = RawConn::open(gw.addr).await;
    assert_ne!(other.recv().await["payload"]["nonce"], challenge["payload"]["nonce"], "one nonce per socket");
    gw.stop().await;
}

#[tokio::test]
async fn token_connect_gets_exactly_the_requested_scopes() {
    let gw = TestGateway::token().await;
    let c = admitted(&gw, &["operator.read", "operator.write"]).await;
    let hello = c.hello.as_ref().unwrap();
    assert_eq!(hello["type"], "hello-ok");
    assert_eq!(hello["protocol"], 4);
    assert_eq!(hello["auth"]["role"], "operator");
    assert_eq!(hello["auth"]["scopes"], json!(["operator.read", "operator.write"]));
    assert!(hello["auth"].get("deviceToken").is_none());
    assert_eq!(hello["policy"]["maxPayload"], 26214400);
    assert_eq!(hello["policy"]["tickIntervalMs"], 30000);
    assert!(hello["features"]["methods"].as_array().unwrap().contains(&json!("health")));
    gw.stop().await;
}

#[tokio::test]
async fn health_and_status_have_real_content() {
    let gw = TestGateway::token().await;
    let mut c = admitted(&gw, &["operator.read"]).await;
    let _other = admitted(&gw, &[]).await;
    let health = c.call("h1", "health", None).await;
    assert_eq!(health["ok"], true);
    assert_eq!(health["payload"]["ok"], true);
    assert!(health["payload"]["ts"].as_u64().is_some());
    let status = c.call("s1", "status", None).await;
    assert_eq!(status["ok"], true, "{status}");
    let p = &status["payload"];
    assert_eq!(p["version"], clawgate::server::VERSION);
    assert_eq!(p["authMode"], "token");
    assert_eq!(p["connections"]["sessions"], 2);
    assert_eq!(p["connections"]["operators"], 2);
    assert_eq!(p["you"]["rule"], "local-owner");
    assert!(p["uptimeMs"].as_u64().is_some());
    gw.stop().await;
}

async fn refused(gw: &TestGateway, params: Value) -> (Value, (u16, String)) {
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake(params).await;
    assert_eq!(res["ok"], false, "{res}");
    let close = c.expect_close().await;
    (res["error"].clone(), close)
}

#[tokio::test]
async fn wrong_token_is_auth_token_mismatch() {
    let gw = TestGateway::token().await;
    let (err, close) = refused(&gw, connect_params("cli", "cli", "operator", &["operator.read"], Some("wrong"))).await;
    assert_eq!(err["code"], "INVALID_REQUEST");
    assert_eq!(err["details"]["code"], "AUTH_TOKEN_MISMATCH");
    assert_eq!(err["details"]["authReason"], "token_mismatch");
    assert_eq!(err["details"]["canRetryWithDeviceToken"], false);
    assert_eq!(err["details"]["recommendedNextStep"], "update_auth_credentials");
    assert_eq!(err["details"]["rule"], "credential");
    assert!(err["details"]["remediationHint"].as_str().unwrap().contains("clawgate gateway token"));
    assert!(err["message"].as_str().unwrap().starts_with("unauthorized: gateway token mismatch"));
    assert_eq!(close.0, 1008);
    assert!(close.1.starts_with("unauthorized: gateway token mismatch"));
    gw.stop().await;
}

#[tokio::test]
async fn token_mode_accepts_the_secret_in_the_password_field() {
    let gw = TestGateway::token().await;
    let mut p = connect_params("gateway-client", "backend", "operator", &["operator.read"], None);
    p["auth"] = json!({ "password": TOKEN });
    let mut c = RawConn::open(gw.addr).await;
    assert_eq!(c.handshake(p).await["ok"], true);
    gw.stop().await;
}

#[tokio::test]
async fn password_mode_failures_and_success() {
    let gw =
        TestGateway::start(Config::new(AuthMode::Password, None, Some("hunter2-but-longer")), ServerOptions::default())
            .await;
    let mut p = connect_params("cli", "cli", "operator", &["operator.read"], None);
    p["auth"] = json!({ "password": "nope" });
    let (err, _) = refused(&gw, p.clone()).await;
    assert_eq!(err["details"]["code"], "AUTH_PASSWORD_MISMATCH");
    p["auth"] = json!({ "password": "hunter2-but-longer" });
    let mut c = RawConn::open(gw.addr).await;
    assert_eq!(c.handshake(p).await["ok"], true);
    gw.stop().await;
}

#[tokio::test]
async fn local_client_without_a_secret_is_told_what_to_send() {
    let gw = TestGateway::token().await;
    let (err, close) = refused(&gw, connect_params("cli", "cli", "operator", &["operator.read"], None)).await;
    assert_eq!(err["code"], "NOT_PAIRED");
    assert_eq!(err["details"]["code"], "DEVICE_IDENTITY_REQUIRED");
    assert_eq!(err["details"]["rule"], "no-identity");
    assert!(err["details"]["remediationHint"].as_str().unwrap().contains("auth.token"));
    assert_eq!(close, (1008, "device identity required".into()));
    gw.stop().await;
}

#[tokio::test]
async fn remote_deviceless_client_is_refused_never_downgraded() {
    // A remote client made honestly: the socket is a trusted proxy that
    // forwards for 203.0.113.5.
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let gw = TestGateway::start(config, ServerOptions::default()).await;
    let mut c =
        RawConn::open_with(gw.addr, &[("x-forwarded-for", "203.0.113.5"), ("host", "gw.example")]).await.unwrap();
    let res =
        c.handshake(connect_params("gateway-client", "backend", "operator", &["operator.admin"], Some(TOKEN))).await;
    assert_eq!(res["ok"], false);
    assert_eq!(res["error"]["details"]["code"], "DEVICE_IDENTITY_REQUIRED");
    assert_eq!(res["error"]["details"]["notGranted"], json!(["operator.admin"]));
    // Asking for no scopes (a health probe) is admitted with none.
    let mut probe =
        RawConn::open_with(gw.addr, &[("x-forwarded-for", "203.0.113.5"), ("host", "gw.example")]).await.unwrap();
    let res = probe.handshake(connect_params("openclaw-probe", "probe", "operator", &[], Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["scopes"], json!([]));
    assert_eq!(probe.call("h", "health", None).await["ok"], true);
    let status = probe.call("s", "status", None).await;
    assert_eq!(status["error"]["details"]["code"], "MISSING_SCOPE");
    gw.stop().await;
}

#[tokio::test]
async fn protocol_mismatch_closes_1002_with_details() {
    let gw = TestGateway::token().await;
    let mut p = connect_params("cli", "cli", "operator", &[], Some(TOKEN));
    p["minProtocol"] = json!(3);
    p["maxProtocol"] = json!(3);
    let (err, close) = refused(&gw, p).await;
    assert_eq!(err["code"], "INVALID_REQUEST");
    // The message starts as OpenClaw's and ends with the remediation.
    let hint = err["details"]["remediationHint"].as_str().unwrap();
    assert_eq!(err["message"], format!("protocol mismatch — to fix: {hint}"));
    assert_eq!(err["details"]["code"], "PROTOCOL_MISMATCH");
    assert_eq!(err["details"]["expectedProtocol"], 4);
    assert_eq!(err["details"]["minimumProbeProtocol"], 3);
    assert_eq!(err["details"]["clientMaxProtocol"], 3);
    assert_eq!(close, (1002, "protocol mismatch".into()));
    gw.stop().await;
}

#[tokio::test]
async fn v3_is_accepted_for_node_hosts_and_probes() {
    let gw = TestGateway::token().await;
    let mut p = connect_params("node-host", "node", "node", &[], Some(TOKEN));
    p["minProtocol"] = json!(3);
    p["maxProtocol"] = json!(3);
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake(p).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["protocol"], 4, "hello-ok always says 4");
    assert_eq!(res["payload"]["auth"]["role"], "node");
    gw.stop().await;
}

#[tokio::test]
async fn first_frame_must_be_connect() {
    let gw = TestGateway::token().await;
    let mut c = RawConn::open(gw.addr).await;
    c.recv().await;
    c.send(&json!({ "type": "req", "id": "x1", "method": "status" })).await;
    let res = c.recv().await;
    assert_eq!(res["id"], "x1");
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert!(res["error"]["message"].as_str().unwrap().starts_with("invalid handshake: first request must be connect"));
    assert_eq!(c.expect_close().await.0, 1008);
    gw.stop().await;
}

#[tokio::test]
async fn unknown_connect_fields_are_named() {
    let gw = TestGateway::token().await;
    let mut p = connect_params("cli", "cli", "operator", &[], Some(TOKEN));
    p["client"]["favouriteColour"] = json!("teal");
    let (err, close) = refused(&gw, p).await;
    let msg = err["message"].as_str().unwrap();
    assert!(msg.starts_with("invalid connect params:") && msg.contains("favouriteColour"), "{msg}");
    assert_eq!(close.0, 1008);
    gw.stop().await;
}

#[tokio::test]
async fn malformed_json_before_auth_closes() {
    let gw = TestGateway::token().await;
    let mut c = RawConn::open(gw.addr).await;
    c.recv().await;
    c.send_text("{not json".into()).await;
    let (code, _) = c.expect_close().await;
    assert_eq!(code, 1000);
    gw.stop().await;
}

#[tokio::test]
async fn invalid_frame_before_auth_is_an_invalid_request() {
    let gw = TestGateway::token().await;
    let mut c = RawConn::open(gw.addr).await;
    c.recv().await;
    c.send(&json!({ "type": "req", "id": "", "method": "connect" })).await;
    let res = c.recv().await;
    assert_eq!(res["id"], "invalid");
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert_eq!(c.expect_close().await.0, 1008);
    gw.stop().await;
}

#[tokio::test]
async fn oversized_preauth_frame_closes_1009() {
    let gw = TestGateway::token().await;
    let mut c = RawConn::open(gw.addr).await;
    c.recv().await;
    let mut p = connect_params("cli", "cli", "operator", &[], Some(TOKEN));
    p["client"]["displayName"] = json!("x".repeat(70 * 1024));
    c.send(&json!({ "type": "req", "id": "c1", "method": "connect", "params": p })).await;
    let (code, reason) = c.expect_close().await;
    assert_eq!(code, 1009, "{reason}");
    assert_eq!(reason, "preauth payload too large");
    gw.stop().await;
}

#[tokio::test]
async fn handshake_deadline_closes_silent_sockets() {
    let options = ServerOptions { handshake_timeout: Duration::from_millis(300), ..Default::default() };
    let gw = TestGateway::start(Config::new(AuthMode::Token, Some(TOKEN), None), options).await;
    let mut c = RawConn::open(gw.addr).await;
    c.recv().await;
    let started = std::time::Instant::now();
    let (code, reason) = c.expect_close().await;
    assert_eq!((code, reason.as_str()), (1000, ""));
    assert!(started.elapsed() < Duration::from_secs(5));
    gw.stop().await;
}

#[tokio::test]
async fn ticks_arrive_with_increasing_seq() {
    let options = ServerOptions { tick_interval: Duration::from_millis(100), ..Default::default() };
    let gw = TestGateway::start(Config::new(AuthMode::Token, Some(TOKEN), None), options).await;
    let mut c = admitted(&gw, &[]).await;
    assert_eq!(c.hello.as_ref().unwrap()["policy"]["tickIntervalMs"], 100);
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let f = c.recv().await;
        if f["event"] == "tick" {
            assert!(f["payload"]["ts"].as_u64().is_some());
            seqs.push(f["seq"].as_u64().unwrap());
        }
    }
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    gw.stop().await;
}

#[tokio::test]
async fn requests_after_hello() {
    let gw = TestGateway::token().await;
    let mut c = admitted(&gw, &["operator.read"]).await;
    // Unknown methods need admin: probing names reveals nothing.
    let r = c.call("u1", "no.such.method", None).await;
    assert_eq!(r["error"]["code"], "FORBIDDEN");
    assert_eq!(r["error"]["details"]["code"], "MISSING_SCOPE");
    assert_eq!(r["error"]["details"]["missingScope"], "operator.admin");
    // An invalid frame is answered, an unparsable one ignored.
    c.send(&json!({ "type": "req", "id": "bad", "method": "health", "extra": 1 })).await;
    let r = c.recv().await;
    assert_eq!(r["id"], "bad");
    assert!(r["error"]["message"].as_str().unwrap().starts_with("invalid request frame"));
    c.send_text("garbage".into()).await;
    assert_eq!(c.call("h2", "health", None).await["ok"], true);
    gw.stop().await;
}

#[tokio::test]
async fn admin_gets_unknown_method_after_the_scope_check() {
    let gw = TestGateway::token().await;
    let mut c = admitted(&gw, &["operator.admin"]).await;
    let r = c.call("u1", "no.such.method", None).await;
    assert_eq!(r["error"]["code"], "INVALID_REQUEST");
    assert_eq!(r["error"]["details"]["code"], "UNKNOWN_METHOD");
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_closes_sessions_with_1012() {
    let gw = TestGateway::token().await;
    let mut c = admitted(&gw, &["operator.read"]).await;
    let stopping = tokio::spawn(gw.stop());
    let mut saw_shutdown = false;
    let close = loop {
        match c.recv_or_close().await {
            Ok(f) => saw_shutdown |= f["event"] == "shutdown",
            Err(close) => break close,
        }
    };
    assert!(saw_shutdown);
    assert_eq!(close, (1012, "service restart".into()));
    stopping.await.unwrap();
}

#[tokio::test]
async fn none_mode_admits_local_programs() {
    let gw = TestGateway::start(Config::new(AuthMode::None, None, None), ServerOptions::default()).await;
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake(connect_params("gateway-client", "backend", "operator", &["operator.write"], None)).await;
    assert_eq!(res["ok"], true);
    assert_eq!(res["payload"]["auth"]["scopes"], json!(["operator.write"]));
    // The auth mode is shown to admins only.
    assert!(res["payload"]["snapshot"].get("authMode").is_none());
    let mut admin = RawConn::open(gw.addr).await;
    let res = admin.handshake(connect_params("gateway-client", "backend", "operator", &["operator.admin"], None)).await;
    assert_eq!(res["payload"]["snapshot"]["authMode"], "none");
    gw.stop().await;
}
