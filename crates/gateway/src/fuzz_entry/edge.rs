//! The HTTP request head and the forwarding headers: what a socket sends
//! before any WebSocket exists, judged by the edge as a connection is.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use crate::admission::ingress::{host_name, is_loopback_host_name};
use crate::admission::trusted_proxy::proxy_user;
use crate::admission::{Credential, EdgeFacts, Locality, UpgradeRefusal};
use crate::config::{parse_file, resolve, ConfigSources};
use crate::config::{Config, Trust};
use crate::http_head::RequestHead;
use crate::net::client_ip_through_proxies;
use crate::server::connection::{judge_edge, refuse};
use crate::server::http::{accept_upgrade, read_head, HeadError};
use crate::server::upstream_http::goes_upstream;
use crate::server::wire::EdgeFailure;

/// Configurations the edge is judged under: token mode alone, token mode
/// behind proxies with a `proxy` listener, and trusted-proxy mode with a
/// loopback user.
const CONFIGS: &[&str] = &[
    r#"{gateway: {auth: {token: "fuzz-token-fuzz-token"}}}"#,
    r#"{gateway: {auth: {token: "fuzz-token-fuzz-token"}, trustedProxies: ["10.0.0.0/8", "2001:db8::/32"],
        listeners: [{port: 18790, trust: "proxy"}, {port: 18791, trust: "remote"}]}}"#,
    r#"{gateway: {trustedProxies: ["10.0.0.0/8", "127.0.0.1", "::1"], auth: {mode: "trusted-proxy",
        trustedProxy: {userHeader: "X-Forwarded-User", requiredHeaders: ["X-Auth-Request-Email"],
                       allowUsers: ["alice", "svc"], allowLoopback: true, loopbackUser: "svc"},
        identityScopes: {alice: ["operator.write", "operator.read"], "*": ["operator.read"]}}}}"#,
];

fn configs() -> &'static [Config] {
    static CONFIGS_LOADED: OnceLock<Vec<Config>> = OnceLock::new();
    CONFIGS_LOADED.get_or_init(|| {
        CONFIGS
            .iter()
            .map(|text| {
                let (file, notes) = parse_file(Path::new("fuzz.json5"), text).expect("a fuzz config parses");
                let mut no_generation = || Err(crate::config::ConfigError::Other("no generated token".into()));
                resolve(file, notes, &ConfigSources::default(), &mut no_generation).expect("a fuzz config resolves")
            })
            .collect()
    })
}

/// Peers a head is judged from: loopback, a trusted proxy, a stranger.
const PEERS: &[&str] = &["127.0.0.1:40000", "[::1]:40000", "10.0.0.3:40000", "203.0.113.9:40000"];

/// A runtime for the async readers and writers (they never wait here).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
    }
    RUNTIME.with(|rt| rt.block_on(f))
}

/// The first bytes of a connection: the request head as the gateway reads
/// it, judged by the edge from several peers, listeners and configs, and
/// answered (refusal or 101) into a buffer.
pub fn http_head(data: &[u8]) {
    let mut input = data;
    let read = block_on(read_head(&mut input, Duration::from_secs(5)));
    let (head, leftover) = match read {
        Ok(v) => v,
        Err(e) => {
            let failure = match e {
                HeadError::TooLarge => EdgeFailure::HeadTooLarge,
                HeadError::Malformed(m) => EdgeFailure::MalformedHead(m),
                HeadError::Closed | HeadError::TimedOut | HeadError::Io => return,
            };
            return answered(failure);
        }
    };
    assert!(leftover.len() < data.len(), "the head took no bytes");
    assert!(
        head.headers.iter().all(|(k, _)| !k.chars().any(|c| c.is_ascii_uppercase())),
        "a header name not lower-cased"
    );

    for config in configs() {
        for peer in PEERS {
            for (port, trust) in [(18789, Trust::Local), (18790, Trust::Proxy), (18791, Trust::Remote)] {
                let peer: SocketAddr = peer.parse().expect("a fuzz peer parses");
                let (edge, judged) = judge(&head, peer, port, trust, config);
                match judged {
                    Ok(locality) => check_locality(&locality, &edge, config),
                    Err(refusal) => answered(EdgeFailure::Upgrade(refusal)),
                }
            }
        }
    }
    let _ = goes_upstream(&head);
    if head.is_websocket_upgrade() {
        let mut written = Vec::new();
        match block_on(accept_upgrade(&mut written, &head)) {
            Ok(()) => check_response(&written, 101),
            Err(bad) => answered(EdgeFailure::BadUpgrade(bad)),
        }
    }
}

/// A judgement, checked to be deterministic.
fn judge(
    head: &RequestHead,
    peer: SocketAddr,
    port: u16,
    trust: Trust,
    config: &Config,
) -> (EdgeFacts, Result<Locality, UpgradeRefusal>) {
    let (edge, first) = judge_edge(head, peer, port, trust, config);
    let (_, second) = judge_edge(head, peer, port, trust, config);
    assert_eq!(format!("{first:?}"), format!("{second:?}"), "the edge's verdict is not deterministic");
    (edge, first)
}

/// What an admitted locality must be, whatever the headers said.
fn check_locality(locality: &Locality, edge: &EdgeFacts, config: &Config) {
    let peer = edge.peer;
    match locality {
        Locality::DirectLocal => {
            assert!(crate::net::is_loopback(peer.ip()), "direct-local from {peer}");
            assert!(edge.trust == Trust::Local, "direct-local on a {:?} listener", edge.trust);
            assert!(edge.proxy_evidence().is_empty(), "direct-local with proxy evidence");
            let host = edge.host().map(host_name).unwrap_or_default();
            assert!(is_loopback_host_name(&host), "direct-local with Host {host:?}");
        }
        Locality::Remote { client_ip, via_proxy } => {
            assert_eq!(*client_ip, crate::net::canonical(*client_ip), "a client address not canonical");
            if *via_proxy {
                assert!(config.is_trusted_proxy(peer.ip()), "proxied from {peer}, not a trusted proxy");
                assert!(!crate::net::is_loopback(*client_ip), "a proxy forwarded loopback and it counted");
                assert!(!config.is_trusted_proxy(*client_ip), "the client is a trusted proxy");
            } else {
                assert_eq!(*client_ip, crate::net::canonical(peer.ip()), "a direct client is not its socket");
            }
        }
    }
    check_client_ip(locality, edge);
}

/// A refusal, written as the gateway writes it: a well-formed HTTP
/// response with a JSON body, whatever the request held.
fn answered(failure: EdgeFailure) {
    let mut written = Vec::new();
    block_on(refuse(&mut written, failure));
    check_response(&written, 0);
}

/// `status` 0: any.
fn check_response(written: &[u8], status: u16) {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = response.parse(written) else {
        panic!("the gateway wrote a malformed response: {:?}", String::from_utf8_lossy(written));
    };
    if status != 0 {
        assert_eq!(response.code, Some(status));
    }
    let body = &written[len..];
    if !body.is_empty() {
        serde_json::from_slice::<serde_json::Value>(body).expect("a refusal's body is JSON");
    }
}

/// Forwarding headers as lines of text: the first line is the socket's
/// peer address (`ip:port`; a default stranger when it does not parse),
/// every other line a header `name: value`. Judged on every listener and
/// config, with the proxy user read where the config names one.
pub fn forwarding(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let peer = lines
        .next()
        .and_then(|l| l.trim().parse::<SocketAddr>().ok())
        .unwrap_or_else(|| SocketAddr::from(([203, 0, 113, 9], 40000)));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();

    let xff: Vec<&str> = headers.iter().filter(|(k, _)| k == "x-forwarded-for").map(|(_, v)| v.as_str()).collect();
    let joined = xff.join(",");
    for config in configs() {
        // Every line counts, as if the lines were one comma-joined line.
        let by_lines = client_ip_through_proxies(&xff, &config.trusted_proxies);
        assert_eq!(by_lines, client_ip_through_proxies(&[joined.as_str()], &config.trusted_proxies));
        if let Ok(ip) = by_lines {
            assert!(!config.is_trusted_proxy(ip), "a trusted proxy named as the client");
            assert_eq!(ip, crate::net::canonical(ip));
        }

        let head = RequestHead { method: "GET".into(), path: "/".into(), headers: headers.clone() };
        for (port, trust) in [(18789, Trust::Local), (18790, Trust::Proxy), (18791, Trust::Remote)] {
            let (edge, Ok(locality)) = judge(&head, peer, port, trust, config) else { continue };
            check_locality(&locality, &edge, config);
            if config.trusted_proxy.is_some() {
                if let Ok(Credential::ProxyUser { user, via_loopback_user }) = proxy_user(&edge, &locality, config) {
                    assert!(!user.is_empty(), "an empty proxy user");
                    assert!(
                        via_loopback_user || config.is_trusted_proxy(peer.ip()),
                        "a proxy user from {peer}, not a trusted proxy"
                    );
                }
            }
        }
    }
}

fn check_client_ip(locality: &Locality, edge: &EdgeFacts) {
    let ip: IpAddr = crate::admission::ingress::client_ip(locality, edge);
    assert_eq!(ip, crate::net::canonical(ip));
}
