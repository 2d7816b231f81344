//! `clawgate auth log`, the real binary against a running gateway: the
//! recent decisions with their rule, outcome and code, no secret anywhere,
//! `--limit`, `--json` and `--follow`; and the method behind it refuses
//! non-admins. (Client ids and modes are from a closed list, so the
//! escaping of client strings is tested on the printer itself, in
//! `cli/auth_log_cmd.rs`.)

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{admitted, connect_params, RawConn, TestGateway, TOKEN};

const WRONG: &str = "wrong-token-0123456789abcdef0123";

fn clawgate(state: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CLAWGATE_STATE_DIR", state).env("OPENCLAW_GATEWAY_TOKEN", TOKEN).args(args).stdin(Stdio::null());
    cmd
}

async fn run(state: &Path, args: &[&str]) -> Output {
    let mut cmd = clawgate(state, args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run clawgate")).await.unwrap()
}

async fn refused(gw: &TestGateway) {
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake(connect_params("gateway-client", "backend", "operator", &[], Some(WRONG))).await;
    assert_eq!(res["ok"], false, "{res}");
}

fn state_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("clawgate-auth-log").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

// Multi-threaded: the test waits on the follower's output while the gateway serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_log_shows_decisions_without_secrets_and_follows() {
    let gw = TestGateway::token().await;
    let dir = state_dir();
    let url = gw.url();
    refused(&gw).await;
    admitted(&gw, &["operator.read"]).await;

    let out = run(dir.path(), &["auth", "log", "--url", &url, "--json"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let entries: Vec<Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    // The refusal, the admission, and this command's own connection.
    assert_eq!(entries.len(), 3, "{stdout}");
    assert_eq!(entries[2]["clientId"], "cli");
    let refusal = &entries[0];
    assert_eq!(refusal["outcome"], "refuse");
    assert_eq!(refusal["code"], "AUTH_TOKEN_MISMATCH");
    assert_eq!(refusal["clientId"], "gateway-client");
    assert_eq!(refusal["clientMode"], "backend");
    assert_eq!(refusal["clientIp"], "127.0.0.1");
    assert!(refusal["rule"].is_string() && refusal["tsMs"].is_u64(), "{refusal}");
    assert_eq!(entries[1]["outcome"], "admit");
    assert_eq!(entries[1]["credential"], "shared-token");
    assert!(!stdout.contains(TOKEN) && !stdout.contains(WRONG), "{stdout}");

    // Text: one line per decision.
    let out = run(dir.path(), &["auth", "log", "--url", &url]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.contains(r#"client "gateway-client"/"backend""#), "{text}");
    assert!(text.lines().next().is_some_and(|l| l.contains("refuse")), "{text}");
    assert!(text.contains("code AUTH_TOKEN_MISMATCH"), "{text}");

    // --limit: the newest only (the last CLI connection, an admission).
    let out = run(dir.path(), &["auth", "log", "--url", &url, "--json", "--limit", "1"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert_eq!(serde_json::from_str::<Value>(stdout.trim()).unwrap()["clientId"], "cli");

    // --follow prints decisions made after it started.
    let mut child = clawgate(dir.path(), &["auth", "log", "--url", &url, "--json", "--follow", "--limit", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    refused(&gw).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains(r#""outcome":"refuse""#)) {
        assert!(Instant::now() < deadline, "--follow never printed the new decision: {seen:?}");
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Only admins may read it.
    let mut reader = admitted(&gw, &["operator.read"]).await;
    let res = reader.call("l", "clawgate.auth.log", None).await;
    assert_eq!(res["ok"], false, "{res}");
    gw.stop().await;
}
