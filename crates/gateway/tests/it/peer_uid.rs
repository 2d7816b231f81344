//! The peer uid on a real server: a loopback program of another user than
//! `gateway.auth.localOwnerUids` (default: the gateway's own uid) holds the
//! token but is not the owner — no local-owner, no silent pairing, and the
//! refusal's hint names the key. The other user is real: the clients run as
//! uid 65534 (the tests run as root in CI, which may switch users).

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use clawgate::config::{AuthMode, Config};
use clawgate::ServerOptions;
use serde_json::Value;

use crate::common::{connect_params, RawConn, TestGateway, TOKEN};

/// The user the foreign clients run as (`nobody` on Debian).
const OTHER_UID: u32 = 65534;

fn must_be_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "these tests run a client as another user, which needs root (as in CI)");
}

/// `cmd` as uid/gid 65534 (std drops root's supplementary groups with it).
fn as_other_user(cmd: &mut Command) -> &mut Command {
    cmd.uid(OTHER_UID).gid(OTHER_UID)
}

/// `clawgate gateway call health --scopes operator.read` against `url`, run
/// as another user, the token in the environment. (exit success, stdout+stderr)
fn cli_call_as_other_user(url: &str) -> (bool, String) {
    let home = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(home.path(), Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["gateway", "call", "health", "--scopes", "operator.read", "--url", url])
        .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
        .env("HOME", home.path())
        .env("CLAWGATE_STATE_DIR", home.path().join("state"))
        .stdin(Stdio::null());
    let out = as_other_user(&mut cmd).output().expect("run clawgate as another user");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_program_with_the_token_is_not_the_owner() {
    must_be_root();
    let gw = TestGateway::token().await;
    assert!(gw.gateway.peer_uids, "sock_diag answers on this host");

    // The owner's own program (this process) is local-owner, as before.
    let mut mine = RawConn::open(gw.addr).await;
    let res =
        mine.handshake(connect_params("gateway-client", "backend", "operator", &["operator.read"], Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(mine.call("s", "status", None).await["payload"]["you"]["rule"], "local-owner");

    let url = gw.url();
    let (ok, text) = tokio::task::spawn_blocking(move || cli_call_as_other_user(&url)).await.unwrap();
    assert!(!ok, "another user's program was admitted: {text}");
    assert!(text.contains("DEVICE_IDENTITY_REQUIRED"), "{text}");
    assert!(text.contains("gateway.auth.localOwnerUids"), "the hint names the key: {text}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_listed_in_local_owner_uids_is_the_owner() {
    must_be_root();
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.local_owner_uids.push(OTHER_UID);
    let gw = TestGateway::start(config, ServerOptions::default()).await;
    let url = gw.url();
    let (ok, text) = tokio::task::spawn_blocking(move || cli_call_as_other_user(&url)).await.unwrap();
    assert!(ok, "listed in localOwnerUids, yet refused: {text}");
    gw.stop().await;
}

/// The reference client with a fresh device identity, run as another user
/// from loopback with the token: a pending request, never a silent pairing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_device_is_not_paired_silently() {
    must_be_root();
    let gw = TestGateway::token().await;
    let url = gw.url();
    let seen: Value = tokio::task::spawn_blocking(move || {
        let node = crate::interop_client::node_binary();
        let script = crate::interop_client::scenario_path("device-local");
        let mut cmd = Command::new(node);
        cmd.arg(script).env("CLAWGATE_URL", url).env("CLAWGATE_TOKEN", TOKEN).env("HOME", "/");
        let out = as_other_user(&mut cmd).output().expect("run node as another user");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = stdout.lines().last().unwrap_or("null").to_owned();
        serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!("scenario printed {stdout:?} ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr))
        })
    })
    .await
    .unwrap();
    let first = &seen["first"];
    assert_eq!(first["admitted"], false, "{seen}");
    assert_eq!(first["error"]["details"]["code"], "PAIRING_REQUIRED", "{seen}");
    let device_id = seen["deviceId"].as_str().unwrap();
    assert!(gw.gateway.store.device(device_id).unwrap().is_none(), "nothing was paired");
    let open = gw.gateway.store.open_requests(clawgate::server::now_ms()).unwrap();
    assert!(open.iter().any(|r| r.device_id == device_id), "a pending request waits for the owner");
    gw.stop().await;
}
