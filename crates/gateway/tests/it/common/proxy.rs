//! An honest reverse proxy for tests, for clients that cannot set forwarding
//! headers themselves (the reference Node client).
//!
//! It listens on 127.0.0.1:0, reads each client's HTTP request head, appends
//! one `X-Forwarded-For` line naming the (pretended) client address,
//! optionally replaces `Host`, then connects to the gateway from a chosen
//! loopback source address (the one listed in `gateway.trustedProxies`) and
//! pipes bytes both ways: the WebSocket upgrade and every frame after it.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// The largest request head the proxy accepts.
const MAX_HEAD: usize = 64 * 1024;

pub struct Proxy {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

#[derive(Clone)]
struct Route {
    upstream: SocketAddr,
    source: IpAddr,
    forwarded_for: String,
    host: Option<String>,
}

impl Proxy {
    /// Forward to `upstream`, connecting from `source` (e.g. 127.0.0.2) and
    /// telling the gateway the client is `forwarded_for`. `host` replaces the
    /// client's Host header when given.
    pub async fn start(upstream: SocketAddr, source: &str, forwarded_for: &str, host: Option<&str>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().unwrap();
        let route = Route {
            upstream,
            source: source.parse().expect("proxy source address"),
            forwarded_for: forwarded_for.to_owned(),
            host: host.map(str::to_owned),
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let route = route.clone();
                tokio::spawn(async move {
                    let _ = relay(client, route).await;
                });
            }
        });
        Proxy { addr, task }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Rewrite the head: every header kept in order (Host replaced if asked),
/// then our X-Forwarded-For line.
fn rewrite(head: &str, route: &Route) -> String {
    let mut lines = head.split("\r\n");
    let mut out = String::new();
    out.push_str(lines.next().unwrap_or_default());
    out.push_str("\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("host") {
            if let Some(h) = &route.host {
                out.push_str(&format!("Host: {h}\r\n"));
                continue;
            }
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!("X-Forwarded-For: {}\r\n\r\n", route.forwarded_for));
    out
}

async fn relay(mut client: TcpStream, route: Route) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let end = loop {
        if let Some(end) = head_end(&buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Ok(());
        }
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end - 4]).into_owned();
    let socket = if route.source.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(route.source, 0))?;
    let mut upstream = socket.connect(route.upstream).await?;
    upstream.write_all(rewrite(&head, &route).as_bytes()).await?;
    upstream.write_all(&buf[end..]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
