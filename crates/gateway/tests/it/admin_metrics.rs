//! The admin listener: /metrics in Prometheus's text format (checked by
//! Prometheus's own `promtool check metrics`; interop/prometheus/install.sh
//! installs it), counters that move when connections are admitted and
//! refused and when requests arrive, /healthz and /readyz.

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::{admitted, connect_params, RawConn, TestGateway, TOKEN};

/// Start the admin listener of `gw` on 127.0.0.1:0.
pub async fn admin_listener(gw: &TestGateway) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(clawgate::server::admin::serve(listener, gw.gateway.clone()));
    addr
}

/// One plain HTTP/1.1 request; the status and the body.
pub async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The sum of the samples of `name` whose labels include every one of `labels`.
pub fn sample(exposition: &str, name: &str, labels: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// `promtool check metrics` on `exposition`: its verdict and what it said.
pub fn promtool_check(exposition: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (install it with interop/prometheus/install.sh)");
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

#[tokio::test]
async fn metrics_pass_promtool_and_count_admissions_refusals_and_requests() {
    let gw = TestGateway::token().await;
    let admin = admin_listener(&gw).await;

    let (status, before) = http(admin, "GET", "/metrics").await;
    assert_eq!(status, 200, "{before}");
    let (ok, said) = promtool_check(&before);
    assert!(ok, "promtool check metrics:\n{said}\n---\n{before}");
    assert!(before.contains("clawgate_build_info{version="), "{before}");

    let mut c = admitted(&gw, &["operator.read"]).await;
    assert_eq!(c.call("r1", "status", None).await["ok"], true);
    assert_eq!(c.call("r2", "no.such.method", None).await["ok"], false);
    let mut wrong = RawConn::open(gw.addr).await;
    let res = wrong
        .handshake(connect_params("gateway-client", "backend", "operator", &[], Some("wrong-token-0123456789abcdef")))
        .await;
    assert_eq!(res["ok"], false, "{res}");

    let (_, after) = http(admin, "GET", "/metrics").await;
    let (ok, said) = promtool_check(&after);
    assert!(ok, "promtool check metrics:\n{said}\n---\n{after}");
    let moved = |name: &str, labels: &[&str]| sample(&after, name, labels) - sample(&before, name, labels);
    assert_eq!(moved("clawgate_admission_decisions_total", &["outcome=\"admit\""]), 1.0, "{after}");
    assert_eq!(moved("clawgate_admission_decisions_total", &["outcome=\"refuse\""]), 1.0, "{after}");
    assert_eq!(moved("clawgate_failed_credentials_total", &["kind=\"token\"", "reason=\"token_mismatch\""]), 1.0);
    assert_eq!(moved("clawgate_handshake_duration_seconds_count", &[]), 2.0, "{after}");
    assert_eq!(moved("clawgate_rpc_requests_total", &["method=\"status\""]), 1.0, "{after}");
    // A method nobody knows is counted, under a capped label.
    assert_eq!(moved("clawgate_rpc_requests_total", &["method=\"other\""]), 1.0, "{after}");
    assert!(!after.contains("no.such.method"), "{after}");
    assert_eq!(sample(&after, "clawgate_sessions", &["role=\"operator\""]), 1.0, "{after}");
    assert_eq!(sample(&after, "clawgate_pairing_requests_pending", &[]), 0.0, "{after}");
    // Never a secret.
    assert!(!after.contains(TOKEN) && !after.contains("wrong-token"), "{after}");

    assert_eq!(http(admin, "GET", "/healthz").await, (200, "ok\n".to_owned()));
    let (status, ready) = http(admin, "GET", "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert!(ready.contains("\"ready\":true"), "{ready}");
    assert_eq!(http(admin, "POST", "/metrics").await.0, 405);
    assert_eq!(http(admin, "GET", "/").await.0, 404);
    gw.stop().await;
}
