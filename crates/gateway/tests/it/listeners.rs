//! Listener trust levels (`gateway.listeners`): a `proxy` listener for a
//! same-host reverse proxy (Debian's nginx), which leaves local programs on
//! the main port their local trust, and a `remote` listener for tunnels and
//! port-forwards that arrive on loopback but are never the owner.

use clawgate::config::{AuthMode, Config, Trust};

use crate::common::nginx::{Nginx, Site};
use crate::common::proxy::Proxy;
use crate::common::{connect_params, RawConn, TestGateway, TOKEN};
use crate::interop_client::run_scenario;

fn config_with_loopback_proxies() -> Config {
    let mut c = Config::new(AuthMode::Token, Some(TOKEN), None);
    // The edge proxy (127.0.0.2) and nginx (127.0.0.3): loopback is a
    // trusted proxy, which without a proxy listener would make every
    // headerless loopback caller ambiguous.
    c.trusted_proxies = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
    c
}

async fn scenario(name: &'static str, env: Vec<(&'static str, String)>) -> serde_json::Value {
    let (ok, seen, stderr) = tokio::task::spawn_blocking(move || run_scenario(name, &env)).await.unwrap();
    assert!(ok, "scenario {name} failed: {seen}\n{stderr}");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_listener_behind_nginx_leaves_local_programs_local() {
    let mut config = config_with_loopback_proxies();
    config.listeners = vec![clawgate::config::Listener { bind: [127, 0, 0, 1].into(), port: 0, trust: Trust::Proxy }];
    let (gw, extra) = TestGateway::start_listeners(config, &[Trust::Proxy]).await;
    let proxy_port = extra[0];
    let site = vec![Site { upstream: proxy_port, user: None }];
    let nginx = tokio::task::spawn_blocking(move || Nginx::start(&site, "127.0.0.3")).await.unwrap();
    let edge = Proxy::start(nginx.addrs[0], "127.0.0.2", "203.0.113.5", None).await;
    let state = tempfile::tempdir().unwrap();
    let identity = state.path().join("device.json").display().to_string();

    // 1. Through nginx to the proxy listener: a remote client (from
    //    X-Forwarded-For), whose device waits for approval.
    let env = vec![
        ("CLAWGATE_URL", edge.url()),
        ("CLAWGATE_TOKEN", TOKEN.to_owned()),
        ("CLAWGATE_IDENTITY_FILE", identity),
        ("CLAWGATE_EXPECT", "pairing-required".to_owned()),
    ];
    let seen = scenario("device-remote", env).await;
    assert_eq!(seen["connectError"]["details"]["code"], "PAIRING_REQUIRED", "{seen}\nnginx: {}", nginx.log());
    let pending = gw.gateway.store.open_requests(clawgate::server::now_ms()).unwrap();
    assert_eq!(pending[0].remote_ip.as_deref(), Some("203.0.113.5"));

    // 2. On the main port, a local program with the token is the local
    //    owner, and a local program's device pairs silently: a same-host
    //    proxy no longer makes them ambiguous.
    let main = vec![("CLAWGATE_URL", gw.url()), ("CLAWGATE_TOKEN", TOKEN.to_owned())];
    let seen = scenario("token-connect", main.clone()).await;
    assert_eq!(seen["status"]["you"]["rule"], "local-owner", "{seen}");
    let seen = scenario("device-local", main).await;
    assert_eq!(seen["first"]["rule"], "silent-local-pairing", "{seen}");

    // 3. Forwarding headers straight at the main port are refused, even from
    //    a trusted proxy's address: trusted proxies count on the proxy
    //    listener only.
    for source in ["127.0.0.1", "127.0.0.2"] {
        let refused = RawConn::open_from(source, gw.addr, &[("X-Forwarded-For", "203.0.113.9")]).await.err().unwrap();
        assert_eq!(refused.status, 403, "{source}");
        assert!(refused.body.contains("proxy_attribution_required"), "{}", refused.body);
    }
    // 4. The proxy listener refuses anyone but a trusted proxy.
    let refused = RawConn::open_from("127.0.0.1", proxy_port, &[]).await.err().unwrap();
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("proxy_listener_untrusted_peer"), "{}", refused.body);
    drop(edge);
    drop(nginx);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_listener_never_makes_a_loopback_client_the_owner() {
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.listeners = vec![clawgate::config::Listener { bind: [127, 0, 0, 1].into(), port: 0, trust: Trust::Remote }];
    let (gw, extra) = TestGateway::start_listeners(config, &[Trust::Remote]).await;
    let remote = extra[0];

    // A loopback client holding the token: no local-owner; the refusal names
    // the rule and the ways in.
    let mut conn = RawConn::open(remote).await;
    let res = conn.handshake(connect_params("cli", "cli", "operator", &["operator.read"], Some(TOKEN))).await;
    assert_eq!(res["ok"], false, "{res}");
    let details = &res["error"]["details"];
    assert_eq!(details["code"], "DEVICE_IDENTITY_REQUIRED", "{res}");
    assert_eq!(details["rule"], "no-identity", "{res}");
    assert!(details["remediationHint"].as_str().is_some_and(|h| !h.is_empty()), "{res}");
    // The same program on the main port is the owner.
    let mut conn = RawConn::open(gw.addr).await;
    let res = conn.handshake(connect_params("cli", "cli", "operator", &["operator.read"], Some(TOKEN))).await;
    assert_eq!(res["ok"], true, "{res}");
    // No forwarding headers on a remote listener, from anyone.
    let refused = RawConn::open_with(remote, &[("X-Forwarded-For", "203.0.113.9")]).await.err().unwrap();
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("remote"), "{}", refused.body);
    gw.stop().await;
}
