//! One unsafe setup per check, through the pure function; a safe default
//! setup finds nothing.

use super::*;
use crate::config::ResolvedSecret;
use crate::config::{AuthMode, Listener, SecretSource, Trust, TrustedProxyConfig};
use crate::store::{ApprovedVia, Role};

const NOW: u64 = 1_800_000_000_000;
const OLD: u64 = NOW - (STALE_DAYS + 1) * DAY_MS;

fn safe() -> Config {
    Config::new(AuthMode::Token, Some("a-strong-shared-token-0123456789abcdef"), None)
}

fn host() -> HostFacts {
    HostFacts { uid: 1000, files: Vec::new(), in_container: false, now_ms: NOW }
}

fn ids(config: &Config, store: &StoreSnapshot, host: &HostFacts) -> Vec<(&'static str, Severity)> {
    audit(config, store, host).into_iter().map(|f| (f.id, f.severity)).collect()
}

fn config_ids(config: &Config) -> Vec<(&'static str, Severity)> {
    ids(config, &StoreSnapshot::default(), &host())
}

fn trusted_proxy(c: &mut Config) -> &mut TrustedProxyConfig {
    c.auth_mode = AuthMode::TrustedProxy;
    c.token = None;
    c.trusted_proxies = vec!["10.0.0.5".parse().unwrap()];
    let mut tp = TrustedProxyConfig::new("x-user", &[]);
    tp.allow_users = vec!["alice".into()];
    c.trusted_proxy = Some(tp);
    c.trusted_proxy.as_mut().unwrap()
}

#[test]
fn a_safe_default_finds_nothing() {
    assert_eq!(config_ids(&safe()), vec![]);
}

#[test]
fn mode_none_warns_and_is_critical_when_reachable() {
    let mut c = safe();
    c.auth_mode = AuthMode::None;
    c.token = None;
    assert_eq!(config_ids(&c), vec![("auth.none", Severity::Warn)]);
    c.listeners = vec![Listener { bind: [0, 0, 0, 0].into(), port: 18790, trust: Trust::Remote }];
    assert_eq!(config_ids(&c), vec![("gateway.bind_no_auth", Severity::Critical)]);
    let f = audit(&c, &StoreSnapshot::default(), &host());
    assert!(has_critical(&f));
    assert_eq!(f[0].key, "gateway.auth.mode");
}

#[test]
fn short_secrets() {
    let mut c = safe();
    c.token = Some(ResolvedSecret::new("short-token-1234567".into(), SecretSource::ConfigKey("gateway.auth.token")));
    assert_eq!(config_ids(&c), vec![("gateway.token_too_short", Severity::Warn)]);
    let mut c = Config::new(AuthMode::Password, None, Some("pw-only-twenty-chars"));
    c.token = None;
    assert_eq!(config_ids(&c), vec![("gateway.password_too_short", Severity::Warn)]);
}

#[test]
fn a_loopback_proxy_without_a_proxy_listener() {
    let mut c = safe();
    c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    assert_eq!(config_ids(&c), vec![("proxy.loopback_trusted", Severity::Warn)]);
    c.listeners = vec![Listener { bind: [127, 0, 0, 1].into(), port: 18790, trust: Trust::Proxy }];
    assert_eq!(config_ids(&c), vec![]);
}

#[test]
fn trusted_proxies_covering_everything() {
    for everything in ["0.0.0.0/0", "0.0.0.0/1", "::/0"] {
        let mut c = safe();
        c.trusted_proxies = vec![everything.parse().unwrap()];
        // A range that wide covers loopback too.
        assert_eq!(config_ids(&c)[0], ("proxy.broad", Severity::Critical), "{everything}");
    }
    let mut c = safe();
    c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap(), "52.1.2.3".parse().unwrap()];
    assert_eq!(config_ids(&c), vec![]);
}

#[test]
fn trusted_proxy_mode_checks() {
    let mut c = safe();
    trusted_proxy(&mut c);
    assert_eq!(config_ids(&c), vec![]);

    trusted_proxy(&mut c).allow_users.clear();
    assert_eq!(config_ids(&c), vec![("gateway.trusted_proxy_no_allowlist", Severity::Warn)]);

    trusted_proxy(&mut c).device_auto_approve = Some(vec!["operator.read".into()]);
    assert_eq!(config_ids(&c), vec![("gateway.trusted_proxy_device_auto_approve", Severity::Warn)]);
    trusted_proxy(&mut c).device_auto_approve = Some(vec!["operator.admin".into()]);
    assert_eq!(config_ids(&c), vec![("gateway.trusted_proxy_device_auto_approve_admin", Severity::Critical)]);

    let tp = trusted_proxy(&mut c);
    tp.allow_loopback = true;
    tp.loopback_user = Some("alice".into());
    c.trusted_proxies.push("127.0.0.1".parse().unwrap());
    c.identity_scopes.insert("alice".into(), vec!["operator.admin".into()]);
    assert_eq!(
        config_ids(&c),
        vec![
            ("proxy.loopback_trusted", Severity::Critical),
            ("proxy.loopback_user_scopes", Severity::Critical),
            ("gateway.trusted_proxy_allow_loopback", Severity::Warn),
        ]
    );
}

#[test]
fn a_wildcard_origin() {
    let mut c = safe();
    c.allowed_origins = vec!["https://ui.example".into(), "*".into()];
    assert_eq!(config_ids(&c), vec![("gateway.control_ui.allowed_origins_wildcard", Severity::Critical)]);
}

#[test]
fn local_owner_in_a_container() {
    let h = HostFacts { in_container: true, ..host() };
    assert_eq!(ids(&safe(), &StoreSnapshot::default(), &h), vec![("locality.container_forwarders", Severity::Warn)]);
    let mut c = safe();
    c.local_owner = false;
    assert_eq!(ids(&c, &StoreSnapshot::default(), &h), vec![]);
}

#[test]
fn state_files_readable_by_others_or_owned_by_another_user() {
    let file = |mode, owner_uid| FileFact { what: "store", path: "state/clawgate.sqlite".into(), mode, owner_uid };
    let h = HostFacts { files: vec![file(0o600, 1000)], ..host() };
    assert_eq!(ids(&safe(), &StoreSnapshot::default(), &h), vec![]);
    // A config file may belong to root; a store may not.
    let root_config = FileFact { what: "config file", path: "c.json5".into(), mode: 0o600, owner_uid: 0 };
    assert_eq!(ids(&safe(), &StoreSnapshot::default(), &HostFacts { files: vec![root_config], ..host() }), vec![]);
    for bad in [file(0o644, 1000), file(0o600, 0)] {
        let h = HostFacts { files: vec![bad], ..host() };
        let f = audit(&safe(), &StoreSnapshot::default(), &h);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].id, f[0].severity), ("state.permissions", Severity::Critical));
        assert_eq!(f[0].key, "state/clawgate.sqlite");
    }
}

fn device(via: ApprovedVia, scopes: &[&str], last_seen: Option<u64>) -> PairedDevice {
    PairedDevice {
        device_id: "dev-1".into(),
        public_key: "key".into(),
        display_name: None,
        label: None,
        platform: None,
        device_family: None,
        client_id: None,
        client_mode: None,
        roles: vec![Role::Operator],
        approved_scopes: scopes.iter().map(|s| s.to_string()).collect(),
        approved_via: via,
        created_at_ms: OLD,
        approved_at_ms: OLD,
        last_seen_at_ms: last_seen,
        remote_ip: None,
        proxy_user: None,
    }
}

fn service(scopes: &[&str], rotated: Option<u64>, last_used: Option<u64>) -> ServicePrincipal {
    ServicePrincipal {
        principal_id: "0123456789abcdef".into(),
        name: "ci".into(),
        role: Role::Operator,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        created_at_ms: OLD,
        rotated_at_ms: rotated,
        revoked_at_ms: None,
        last_used_at_ms: last_used,
    }
}

fn store_ids(store: StoreSnapshot) -> Vec<(&'static str, Severity)> {
    ids(&safe(), &store, &host())
}

#[test]
fn devices_silently_approved_as_admin_or_unused() {
    let recent = Some(NOW - DAY_MS);
    let ok =
        StoreSnapshot { devices: vec![device(ApprovedVia::Owner, &["operator.admin"], recent)], ..Default::default() };
    assert_eq!(store_ids(ok), vec![]);
    for via in [ApprovedVia::Silent, ApprovedVia::ProxyAuto] {
        let s = StoreSnapshot { devices: vec![device(via, &["operator.admin"], recent)], ..Default::default() };
        assert_eq!(store_ids(s), vec![("devices.silent_admin", Severity::Warn)]);
    }
    let s = StoreSnapshot { devices: vec![device(ApprovedVia::Owner, &["operator.read"], None)], ..Default::default() };
    assert_eq!(store_ids(s), vec![("devices.unused", Severity::Warn)]);
}

#[test]
fn services_never_rotated_unused_or_overbroad() {
    let recent = Some(NOW - DAY_MS);
    let ok = StoreSnapshot { services: vec![service(&["operator.read"], recent, recent)], ..Default::default() };
    assert_eq!(store_ids(ok), vec![]);
    let s = StoreSnapshot { services: vec![service(&["operator.read"], None, recent)], ..Default::default() };
    assert_eq!(store_ids(s), vec![("services.never_rotated", Severity::Warn)]);
    let s = StoreSnapshot { services: vec![service(&["operator.read"], recent, Some(OLD))], ..Default::default() };
    assert_eq!(store_ids(s), vec![("services.unused", Severity::Warn)]);
    let s = StoreSnapshot { services: vec![service(&["operator.admin"], recent, recent)], ..Default::default() };
    assert_eq!(store_ids(s), vec![("services.overbroad", Severity::Info)]);
    let mut revoked = service(&["operator.admin"], None, None);
    revoked.revoked_at_ms = Some(OLD);
    assert_eq!(store_ids(StoreSnapshot { services: vec![revoked], ..Default::default() }), vec![]);
}

#[test]
fn a_cluster_bus_in_the_clear_to_another_host() {
    let with_nats = |url: &str| {
        let mut c = safe();
        c.cluster = Some(crate::config::cluster::ClusterConfig::new(url, "a", "prod").unwrap());
        c
    };
    for fine in ["tls://nats.internal:4222", "nats://127.0.0.1:4222", "nats://localhost:4222"] {
        assert_eq!(config_ids(&with_nats(fine)), vec![], "{fine}");
    }
    let c = with_nats("nats://gw:s3cret@10.0.0.5:4222");
    assert_eq!(config_ids(&c), vec![("cluster.nats_plaintext", Severity::Warn)]);
    let f = &audit(&c, &StoreSnapshot::default(), &host())[0];
    assert_eq!(f.key, "gateway.cluster.nats");
    assert!(f.message.contains("password") && !f.message.contains("s3cret"), "{}", f.message);
    let listed = with_nats("tls://nats-1.internal:4222,nats://nats-2.internal:4222");
    assert_eq!(config_ids(&listed), vec![("cluster.nats_plaintext", Severity::Warn)]);
}

/// `safe()` with its store in the PostgreSQL database at `url`, set in the
/// config file or (`from_env`) in `CLAWGATE_STORE_URL`.
fn with_store(url: &str, from_env: bool) -> Config {
    use crate::config::store::{resolve, StoreSection};
    let mut c = safe();
    c.store_url = if from_env {
        resolve(None, Some(url.to_owned()))
    } else {
        resolve(Some(&StoreSection { url: Some(url.to_owned()) }), None)
    }
    .unwrap();
    c
}

/// No part of any finding shows `secret`.
fn never_shown(findings: &[Finding], secret: &str) {
    for f in findings {
        let all = format!("{} {} {} {}", f.id, f.key, f.message, f.fix);
        assert!(!all.contains(secret), "{all}");
    }
}

#[test]
fn a_postgres_store_says_so_and_skips_the_file_checks() {
    for local in [
        "postgres://gw@127.0.0.1:5432/clawgate",
        "postgres://gw@localhost/clawgate",
        "postgresql://gw@[::1]:5433/clawgate",
        "postgres:///clawgate?host=/run/postgresql",
        "postgres://gw@/clawgate",
    ] {
        let c = with_store(local, false);
        assert_eq!(config_ids(&c), vec![("store.postgres", Severity::Info)], "{local}");
    }
    let f = &audit(&with_store("postgres://gw:s3cret@127.0.0.1/clawgate", true), &StoreSnapshot::default(), &host());
    assert_eq!(f[0].key, "CLAWGATE_STORE_URL");
    assert!(f[0].message.contains("postgres://gw:***@127.0.0.1/clawgate"), "{}", f[0].message);
    never_shown(f, "s3cret");
}

#[test]
fn a_postgres_store_on_another_host_in_the_clear() {
    let c = with_store("postgres://gw:s3cret@db.internal:5432/clawgate", false);
    assert_eq!(config_ids(&c), vec![("store.postgres_plaintext", Severity::Warn), ("store.postgres", Severity::Info)]);
    let f = audit(&c, &StoreSnapshot::default(), &host());
    assert_eq!(f[0].key, "gateway.store.url");
    assert!(f[0].message.contains("db.internal") && f[0].message.contains("password"), "{}", f[0].message);
    never_shown(&f, "s3cret");
    // One remote host of several is enough; a password in the query is hidden too.
    for remote in [
        "postgres://gw@127.0.0.1:5432,10.0.0.7:5432/clawgate",
        "postgres://gw@localhost/clawgate?host=db.internal&password=s3cret",
    ] {
        let c = with_store(remote, true);
        assert_eq!(config_ids(&c)[0], ("store.postgres_plaintext", Severity::Warn), "{remote}");
        never_shown(&audit(&c, &StoreSnapshot::default(), &host()), "s3cret");
    }
}

#[test]
fn a_store_password_in_a_config_file_others_can_read() {
    let config_file = |mode| FileFact { what: host::CONFIG_FILE, path: "clawgate.json5".into(), mode, owner_uid: 1000 };
    let with_file = |mode| HostFacts { files: vec![config_file(mode)], ..host() };
    let in_file = with_store("postgres://gw:s3cret@127.0.0.1/clawgate", false);
    assert_eq!(ids(&in_file, &StoreSnapshot::default(), &with_file(0o600)), vec![("store.postgres", Severity::Info)]);
    let readable = [("state.permissions", Severity::Critical), ("store.postgres", Severity::Info)];
    for mode in [0o644, 0o640] {
        let f = audit(&in_file, &StoreSnapshot::default(), &with_file(mode));
        let found: Vec<_> = f.iter().map(|f| (f.id, f.severity)).collect();
        assert_eq!(found, [readable[0], ("store.url_password_readable", Severity::Critical), readable[1]]);
        assert_eq!(f[1].key, "gateway.store.url");
        assert!(f[1].fix.contains("CLAWGATE_STORE_URL"), "{}", f[1].fix);
        never_shown(&f, "s3cret");
    }
    // From the environment, or without a password, the file holds no store secret.
    for c in [
        with_store("postgres://gw:s3cret@127.0.0.1/clawgate", true),
        with_store("postgres://gw@127.0.0.1/clawgate", false),
    ] {
        assert_eq!(ids(&c, &StoreSnapshot::default(), &with_file(0o644)), readable);
    }
}
