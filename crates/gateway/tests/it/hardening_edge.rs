//! Headers and request targets that used to be read loosely at the edge.
//! Replays of docs/threat-model.md ("Duplicate identity headers",
//! "Locality loose ends") against a real server, with raw HTTP.

use std::net::SocketAddr;

use crate::common::{TestGateway, TOKEN};
use clawgate::config::{AuthMode, Config, TrustedProxyConfig};
use clawgate::ServerOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Send a WebSocket upgrade with exactly these head lines; the status line back.
async fn upgrade(addr: SocketAddr, target: &str, lines: &[&str]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "GET {target} HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for l in lines {
        head.push_str(l);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn duplicate_user_or_required_headers_from_a_trusted_proxy_are_refused() {
    let mut c = Config::new(AuthMode::TrustedProxy, None, Some("local-password-0123456789"));
    c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    c.trusted_proxy = Some(TrustedProxyConfig::new("X-Forwarded-User", &["X-Auth-Request-Email"]));
    c.identity_scopes.insert("alice".into(), vec!["operator.read".into()]);
    let gw = TestGateway::start(c, ServerOptions::default()).await;
    let base = ["Host: gateway.example", "X-Forwarded-For: 203.0.113.5"];
    let with = |extra: &[&'static str]| [&base[..], extra].concat();
    let ok = upgrade(gw.addr, "/", &with(&["X-Forwarded-User: alice", "X-Auth-Request-Email: a@example.com"])).await;
    assert!(ok.starts_with("HTTP/1.1 101"), "{ok}");
    // A proxy that appends: the client's line first, the proxy's second.
    let lines = with(&["X-Forwarded-User: mallory", "X-Forwarded-User: alice", "X-Auth-Request-Email: a@example.com"]);
    let res = upgrade(gw.addr, "/", &lines).await;
    assert!(res.starts_with("HTTP/1.1 400"), "{res}");
    let lines = with(&["X-Forwarded-User: alice", "X-Auth-Request-Email: m@example.com", "X-Auth-Request-Email: a@x"]);
    let res = upgrade(gw.addr, "/", &lines).await;
    assert!(res.starts_with("HTTP/1.1 400"), "{res}");
    gw.stop().await;
}

#[tokio::test]
async fn bracketed_hosts_and_absolute_targets_are_not_loopback() {
    let gw = TestGateway::start(Config::new(AuthMode::Token, Some(TOKEN), None), ServerOptions::default()).await;
    let port = gw.addr.port();
    let local = format!("Host: localhost:{port}");
    assert!(upgrade(gw.addr, "/", &[&local]).await.starts_with("HTTP/1.1 101"));
    for host in ["Host: [::1]evil.com", "Host: [::1]@evil.com"] {
        let res = upgrade(gw.addr, "/", &[host]).await;
        assert!(res.starts_with("HTTP/1.1 421"), "{host}: {res}");
    }
    // The host of an absolute-form target is checked too.
    let res = upgrade(gw.addr, "http://evil.example/", &[&local]).await;
    assert!(res.starts_with("HTTP/1.1 400"), "{res}");
    let own = format!("http://localhost:{port}/");
    assert!(upgrade(gw.addr, &own, &[&local]).await.starts_with("HTTP/1.1 101"));
    gw.stop().await;
}
