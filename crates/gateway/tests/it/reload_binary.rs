//! SIGHUP and the admin listener through the real binary: `clawgate
//! gateway run --config FILE --admin 127.0.0.1:0`; a broken file changes
//! nothing (the error is logged, sessions and the old token stay), a valid
//! one rotating the token closes the old-token session with 4001 and admits
//! the new token; /metrics stays valid for promtool and /healthz answers.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use clawgate::runtime_file::{self, Found};

use crate::admin_metrics::{http, promtool_check, sample};
use crate::common::{connect_params, RawConn, TOKEN};

const NEW_TOKEN: &str = "rotated-by-sighup-0123456789abcdef01234";

fn write_config(path: &Path, token: &str) {
    std::fs::write(path, format!("{{ gateway: {{ auth: {{ mode: \"token\", token: \"{token}\" }} }} }}\n")).unwrap();
}

/// Wait (off the async workers) for a stderr line containing `needle`.
async fn wait_for_line(lines: &std::sync::Arc<std::sync::Mutex<Receiver<String>>>, needle: &str) -> String {
    let (lines, needle) = (lines.clone(), needle.to_owned());
    tokio::task::spawn_blocking(move || {
        let rx = lines.lock().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "no line with {needle:?} in:\n{}", seen.join("\n"));
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                if line.contains(&needle) {
                    return line;
                }
                seen.push(line);
            }
        }
    })
    .await
    .unwrap()
}

fn hangup(child: &Child) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) }, 0);
}

async fn connect(addr: std::net::SocketAddr, token: &str) -> (RawConn, serde_json::Value) {
    let mut c = RawConn::open(addr).await;
    let res =
        c.handshake(connect_params("gateway-client", "backend", "operator", &["operator.read"], Some(token))).await;
    (c, res)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_valid_config_and_keeps_the_old_one_when_the_file_is_broken() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("clawgate-reload").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = dir.path().join("config.json5");
    write_config(&config, TOKEN);

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .env("CLAWGATE_STATE_DIR", dir.path())
        .args(["gateway", "run", "--port", "0", "--admin", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let lines = std::sync::Arc::new(std::sync::Mutex::new(rx));

    let admin_line = wait_for_line(&lines, "admin listener on http://").await;
    let admin: std::net::SocketAddr =
        admin_line.split("http://").nth(1).and_then(|r| r.split([' ', '"']).next()).unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        if let Ok(Some(Found::Live(info))) = runtime_file::read(dir.path()) {
            break info.url;
        }
        assert!(Instant::now() < deadline, "the gateway never wrote its runtime file");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let addr: std::net::SocketAddr = url.trim_start_matches("ws://").parse().unwrap();
    assert_eq!(http(admin, "GET", "/healthz").await.0, 200);

    let (mut old_session, res) = connect(addr, TOKEN).await;
    assert_eq!(res["ok"], true, "{res}");

    // A broken file: refused and logged; nothing changes.
    std::fs::write(&config, "{ gateway: { auth: ").unwrap();
    hangup(&child);
    let refused = wait_for_line(&lines, "config reload refused").await;
    assert!(refused.contains("CONFIG_SYNTAX"), "{refused}");
    assert_eq!(old_session.call("h1", "health", None).await["ok"], true);
    assert_eq!(connect(addr, TOKEN).await.1["ok"], true);

    // A valid file with a new token: in force at once, old-token sessions closed.
    write_config(&config, NEW_TOKEN);
    hangup(&child);
    wait_for_line(&lines, "config reloaded").await;
    let (code, reason) = old_session.expect_close().await;
    assert_eq!(code, 4001, "{reason}");
    assert_eq!(connect(addr, TOKEN).await.1["ok"], false);
    assert_eq!(connect(addr, NEW_TOKEN).await.1["ok"], true);

    let (status, metrics) = http(admin, "GET", "/metrics").await;
    assert_eq!(status, 200);
    let (ok, said) = promtool_check(&metrics);
    assert!(ok, "{said}\n{metrics}");
    assert!(sample(&metrics, "clawgate_admission_decisions_total", &["outcome=\"refuse\""]) >= 1.0, "{metrics}");

    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}
