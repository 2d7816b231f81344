//! Tests of config loading: keys, overrides, secrets and the unsafe combinations refused.

use super::*;
use crate::config::caps::{max_connections, session_limits};
use crate::config::Trust;

fn no_generation() -> impl FnMut() -> Result<(String, PathBuf), ConfigError> {
    || Err(ConfigError::Other("generation not expected".into()))
}

#[test]
fn unknown_keys_are_named_with_their_path() {
    let err = parse_file(Path::new("c.json5"), "{gateway: {auth: {tokn: 'x'}}}").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("gateway.auth") && text.contains("tokn"), "{text}");
    let err = parse_file(Path::new("c.json5"), "{agentz: {}}").unwrap_err();
    assert!(err.to_string().contains("agentz"), "{err}");
}

#[test]
fn json5_syntax_is_accepted() {
    let (f, _) =
        parse_file(Path::new("c.json5"), "// comment\n{gateway: {port: 1234, auth: {mode: 'none',},},}").unwrap();
    assert_eq!(f.gateway.port, Some(1234));
    assert_eq!(f.gateway.auth.mode, Some(AuthMode::None));
}

#[test]
fn defaults_generate_a_token_on_loopback() {
    let mut called = false;
    let cfg = load(&ConfigSources::default(), &mut || {
        called = true;
        Ok(("generated-secret-generated-secret".into(), PathBuf::from("state/gateway.token")))
    })
    .unwrap();
    assert!(called);
    assert_eq!(cfg.port, DEFAULT_PORT);
    assert!(cfg.bind.is_loopback());
    assert_eq!(cfg.auth_mode, AuthMode::Token);
    assert_eq!(cfg.token.unwrap().reveal(), "generated-secret-generated-secret");
}

#[test]
fn env_overrides_and_placeholders() {
    let mut s = ConfigSources::default();
    s.env.insert("OPENCLAW_GATEWAY_TOKEN".into(), "from-env".into());
    let cfg = load(&s, &mut no_generation()).unwrap();
    assert_eq!(cfg.token.as_ref().unwrap().reveal(), "from-env");
    assert_eq!(cfg.token.unwrap().source, SecretSource::Env("OPENCLAW_GATEWAY_TOKEN"));

    s.env.insert("CLAWGATE_GATEWAY_TOKEN".into(), "undefined".into());
    let err = load(&s, &mut no_generation()).unwrap_err();
    assert!(err.to_string().starts_with("CLAWGATE_GATEWAY_TOKEN"), "{err}");
}

#[test]
fn secrets_from_a_file() {
    let dir = std::env::temp_dir().join(format!("clawgate-secret-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let mut s = ConfigSources::default();
    s.env.insert("CLAWGATE_GATEWAY_TOKEN_FILE".into(), file.display().to_string());
    s.env.insert("OPENCLAW_GATEWAY_TOKEN".into(), "loses-to-the-file".into());
    let cfg = load(&s, &mut no_generation()).unwrap();
    assert_eq!(cfg.token.as_ref().unwrap().reveal(), "from-a-file");
    assert_eq!(cfg.token.unwrap().source, SecretSource::File(file.clone()));
    s.env.insert("CLAWGATE_GATEWAY_TOKEN_FILE".into(), dir.join("missing").display().to_string());
    let err = load(&s, &mut no_generation()).unwrap_err();
    assert!(err.to_string().starts_with("CLAWGATE_GATEWAY_TOKEN_FILE"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unsafe_combinations_name_the_key() {
    let s = ConfigSources { bind: Some("lan".into()), auth_mode: Some(AuthMode::None), ..Default::default() };
    assert!(load(&s, &mut no_generation()).unwrap_err().to_string().starts_with("gateway.auth.mode"));
    let s = ConfigSources { auth_mode: Some(AuthMode::Password), ..Default::default() };
    assert!(load(&s, &mut no_generation()).unwrap_err().to_string().starts_with("gateway.auth.password"));
    let s = ConfigSources { bind: Some("nowhere".into()), ..Default::default() };
    assert!(load(&s, &mut no_generation()).unwrap_err().to_string().starts_with("gateway.bind"));
}

fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json5");
    std::fs::write(&path, text).unwrap();
    let mut s = ConfigSources { file: Some(path), ..Default::default() };
    for (k, v) in env {
        s.env.insert((*k).to_owned(), (*v).to_owned());
    }
    load(&s, &mut || Ok(("generated-secret-generated-secret".into(), PathBuf::from("t"))))
}

fn err_key(text: &str) -> String {
    match load_text(text, &[]) {
        Ok(_) => panic!("should not load: {text}"),
        Err(e) => {
            assert_eq!(e.code(), "CONFIG_UNSAFE", "{e}");
            e.to_string()
        }
    }
}

const PROXY_OK: &str = r#"{gateway: {trustedProxies: ["10.0.0.0/8"], auth: {mode: "trusted-proxy",
    trustedProxy: {userHeader: "X-Forwarded-User", requiredHeaders: ["X-Auth-Request-Email"],
                   allowUsers: ["alice", "svc"], allowLoopback: true, loopbackUser: "svc"},
    identityScopes: {alice: ["operator.write", "operator.read"], "*": ["operator.read"]}}}}"#;

#[test]
fn trusted_proxy_mode_loads() {
    let c = load_text(PROXY_OK, &[]).unwrap();
    assert_eq!(c.auth_mode, AuthMode::TrustedProxy);
    assert!(c.token.is_none());
    let tp = c.trusted_proxy.as_ref().unwrap();
    assert_eq!(tp.user_header, "x-forwarded-user");
    assert_eq!(tp.required_headers[0].name, "x-auth-request-email");
    assert_eq!(tp.required_headers[0].reason, "trusted_proxy_missing_header_X-Auth-Request-Email");
    assert_eq!(tp.loopback_user.as_deref(), Some("svc"));
    assert_eq!(c.identity_scopes_for("alice"), ["operator.read", "operator.write"]);
    assert_eq!(c.identity_scopes_for("bob"), ["operator.read"]);
}

#[test]
fn trusted_proxy_mistakes_name_their_key() {
    let no_proxies = r#"{gateway: {auth: {mode: "trusted-proxy", trustedProxy: {userHeader: "x-user"}}}}"#;
    assert!(err_key(no_proxies).starts_with("gateway.trustedProxies:"));
    let no_section = r#"{gateway: {trustedProxies: ["10.0.0.1"], auth: {mode: "trusted-proxy"}}}"#;
    assert!(err_key(no_section).starts_with("gateway.auth.trustedProxy:"));
    let no_header = r#"{gateway: {trustedProxies: ["10.0.0.1"], auth: {mode: "trusted-proxy", trustedProxy: {}}}}"#;
    assert!(err_key(no_header).starts_with("gateway.auth.trustedProxy.userHeader:"));
    let with_token = r#"{gateway: {trustedProxies: ["10.0.0.1"],
        auth: {mode: "trusted-proxy", token: "abc", trustedProxy: {userHeader: "x-user"}}}}"#;
    assert!(err_key(with_token).starts_with("gateway.auth.token:"));
    let ok = r#"{gateway: {trustedProxies: ["10.0.0.1"], auth: {mode: "trusted-proxy", trustedProxy: {userHeader: "x-user"}}}}"#;
    let e = load_text(ok, &[("OPENCLAW_GATEWAY_TOKEN", "t")]).unwrap_err();
    assert!(e.to_string().starts_with("OPENCLAW_GATEWAY_TOKEN:"), "{e}");
    let not_allowed = r#"{gateway: {trustedProxies: ["10.0.0.1"], auth: {mode: "trusted-proxy",
        trustedProxy: {userHeader: "x-user", allowUsers: ["alice"], allowLoopback: true, loopbackUser: "svc"}}}}"#;
    assert!(err_key(not_allowed).starts_with("gateway.auth.trustedProxy.loopbackUser:"));
    let without_allow = r#"{gateway: {trustedProxies: ["10.0.0.1"], auth: {mode: "trusted-proxy",
        trustedProxy: {userHeader: "x-user", loopbackUser: "svc"}}}}"#;
    assert!(err_key(without_allow).starts_with("gateway.auth.trustedProxy.loopbackUser:"));
    let bad_header = r#"{gateway: {trustedProxies: ["10.0.0.1"], auth: {mode: "trusted-proxy",
        trustedProxy: {userHeader: "x user"}}}}"#;
    assert!(err_key(bad_header).starts_with("gateway.auth.trustedProxy.userHeader:"));
    let bad_scope = r#"{gateway: {auth: {identityScopes: {alice: ["admin"]}}}}"#;
    assert!(err_key(bad_scope).starts_with("gateway.auth.identityScopes[\"alice\"][0]:"));
}

#[test]
fn upstream_is_a_known_key_and_its_errors_name_it() {
    let c = load_text(r#"{gateway: {upstream: {url: "ws://127.0.0.1:18790", token: "up"}}}"#, &[]).unwrap();
    assert_eq!(c.upstream.unwrap().url.port, 18790);
    assert!(load_text("{}", &[]).unwrap().upstream.is_none());
    assert!(err_key(r#"{gateway: {upstream: {url: "ws://10.1.1.1:18790", token: "up"}}}"#)
        .starts_with("gateway.upstream.url:"));
    let e = load_text(r#"{gateway: {upstream: {url: "ws://127.0.0.1:1", tokn: "x"}}}"#, &[]).unwrap_err();
    assert!(e.to_string().contains("tokn"), "{e}");
}

#[test]
fn mode_none_never_widens_who_is_local() {
    let with_proxies = r#"{gateway: {trustedProxies: ["127.0.0.1"], auth: {mode: "none"}}}"#;
    assert!(err_key(with_proxies).starts_with("gateway.trustedProxies:"));
    let with_loopback_user = r#"{gateway: {auth: {mode: "none", trustedProxy: {allowLoopback: true}}}}"#;
    assert!(err_key(with_loopback_user).starts_with("gateway.auth.trustedProxy:"));
}

#[test]
fn trusted_local_services_shape() {
    let c = load_text(
        r#"{gateway: {auth: {token: "t0123456789"}, trustedLocalServices: [
            {clientId: "gateway-client", mode: "backend", maxScopes: ["operator.write"]},
            {clientId: "node-host", mode: "node", roles: ["node"]}]}}"#,
        &[],
    )
    .unwrap();
    let list = c.trusted_local_services.unwrap();
    assert_eq!(list[0].roles, [clawgate_protocol::Role::Operator]);
    assert_eq!(list[0].max_scopes.as_deref(), Some(&["operator.write".to_owned()][..]));
    assert_eq!(list[1].max_scopes, None);
    let twice = r#"{gateway: {auth: {token: "t0123456789"}, trustedLocalServices: [
        {clientId: "cli", mode: "cli"}, {clientId: "cli", mode: "cli"}]}}"#;
    assert!(err_key(twice).starts_with("gateway.trustedLocalServices[1]:"));
    let browser = r#"{gateway: {auth: {token: "t0123456789"}, trustedLocalServices: [
        {clientId: "openclaw-control-ui", mode: "webchat"}]}}"#;
    assert!(err_key(browser).starts_with("gateway.trustedLocalServices[0]:"));
    let role = r#"{gateway: {auth: {token: "t0123456789"}, trustedLocalServices: [
        {clientId: "cli", mode: "cli", roles: ["admin"]}]}}"#;
    assert!(err_key(role).starts_with("gateway.trustedLocalServices[0].roles[0]:"));
    let unknown = r#"{gateway: {trustedLocalServices: [{clientId: "cli", mode: "cli", maxScope: []}]}}"#;
    let e = load_text(unknown, &[]).unwrap_err();
    assert!(e.to_string().contains("maxScope"), "{e}");
}

#[test]
fn listeners_and_device_auto_approve() {
    let base = "gateway: {auth: {mode: 'trusted-proxy', password: 'a-long-enough-password-0123', \
        trustedProxy: {userHeader: 'x-forwarded-user', deviceAutoApprove: {scopes: ['operator.read', 'operator.admin']}}},";
    let c = load_text(
        &format!("{{{base} trustedProxies: ['10.0.0.1'], listeners: [{{port: 18790, trust: 'proxy'}}, {{port: 18791, bind: 'lan', trust: 'remote'}}]}}}}"),
        &[],
    )
    .unwrap();
    assert_eq!(c.listeners.len(), 2);
    assert!(c.has_proxy_listener() && !c.proxies_count_on(Trust::Local) && !c.proxies_count_on(Trust::Remote));
    assert_eq!(c.listeners[1].bind, IpAddr::from([0, 0, 0, 0]));
    let auto = c.trusted_proxy.as_ref().unwrap().device_auto_approve.clone().unwrap();
    assert_eq!(auto, vec!["operator.admin".to_owned(), "operator.read".to_owned()]);
    // Allowed, but said once at start-up.
    assert!(c.startup_warnings().iter().any(|w| w.contains("operator.admin")), "{:?}", c.startup_warnings());

    let err = load_text(
        &format!("{{{base} trustedProxies: ['10.0.0.1'], listeners: [{{port: 18789, trust: 'remote'}}]}}}}"),
        &[],
    );
    assert!(err.unwrap_err().to_string().contains("gateway.listeners[0].port"));
    let err = load_text(
        "{gateway: {auth: {token: 'a-long-enough-token-0123456789'}, listeners: [{port: 18790, trust: 'proxy'}]}}",
        &[],
    );
    assert!(err.unwrap_err().to_string().contains("gateway.listeners[0].trust"));
    let err = load_text("{gateway: {listeners: [{port: 1, trust: 'open'}]}}", &[]);
    assert!(err.is_err());
}

#[test]
fn session_caps_come_from_the_clawgate_section() {
    let (f, _) = parse_file(Path::new("c.json5"), "{clawgate: {sessions: {maxPerAddress: 8}}}").unwrap();
    let limits = session_limits(&f.clawgate.sessions).unwrap();
    assert_eq!(limits.max_per_address, 8);
    assert_eq!(limits.max_per_principal, crate::config::SessionLimits::default().max_per_principal);
    let (f, _) = parse_file(Path::new("c.json5"), "{clawgate: {sessions: {maxPerPrincipal: 0}}}").unwrap();
    let err = session_limits(&f.clawgate.sessions).unwrap_err();
    assert!(err.to_string().contains("clawgate.sessions.maxPerPrincipal"), "{err}");
    assert!(parse_file(Path::new("c.json5"), "{clawgate: {sesions: {}}}").is_err());
}

#[test]
fn max_connections_is_read_and_zero_refused() {
    let (f, _) = parse_file(Path::new("c.json5"), "{gateway: {limits: {maxConnections: 500}}}").unwrap();
    assert_eq!(max_connections(f.gateway.limits.max_connections).unwrap(), Some(500));
    let (f, _) = parse_file(Path::new("c.json5"), "{gateway: {}}").unwrap();
    assert_eq!(max_connections(f.gateway.limits.max_connections).unwrap(), None);
    let (f, _) = parse_file(Path::new("c.json5"), "{gateway: {limits: {maxConnections: 0}}}").unwrap();
    let err = max_connections(f.gateway.limits.max_connections).unwrap_err();
    assert!(err.to_string().contains("gateway.limits.maxConnections"), "{err}");
    assert!(parse_file(Path::new("c.json5"), "{gateway: {limits: {maxConections: 5}}}").is_err());
}

/// A typical openclaw.json: sections clawgate does not read, and gateway keys
/// it does not act on.
const TYPICAL_OPENCLAW_JSON: &str = r#"{
  agents: { defaults: { model: { primary: "anthropic/claude-opus-4-6" } } },
  channels: { telegram: { enabled: true } },
  logging: { level: "info" },
  gateway: {
    mode: "local",
    port: 18789,
    bind: "loopback",
    auth: { mode: "token", token: "a-long-enough-shared-token-0123456789" },
    controlUi: { enabled: true },
    remote: { url: "ws://example.invalid:18789", token: "remote-token" },
    tailscale: { mode: "off" },
  },
}"#;

#[test]
fn a_typical_openclaw_json_loads_with_the_ignored_keys_named() {
    let (file, notes) = parse_file(Path::new("openclaw.json"), TYPICAL_OPENCLAW_JSON).unwrap();
    assert_eq!(file.gateway.port, Some(18789));
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].contains("agents, channels, logging"), "{notes:?}");
    for key in ["gateway.mode", "gateway.controlUi.enabled", "gateway.remote", "gateway.tailscale"] {
        assert!(notes[1].contains(key), "{key} in {notes:?}");
    }
}

#[test]
fn a_misspelt_key_names_the_closest_known_one() {
    for (text, key, closest) in [
        ("{gateway: {auth: {tokn: 'x'}}}", "gateway.auth.tokn", "token"),
        ("{gateway: {trustedProxy: []}}", "gateway.trustedProxy", "trustedProxies"),
        ("{gateway: {controlUi: {allowedOrigin: []}}}", "gateway.controlUi.allowedOrigin", "allowedOrigins"),
        ("{chanels: {}}", "chanels", "channels"),
    ] {
        let err = parse_file(Path::new("c.json5"), text).unwrap_err();
        assert_eq!(err.code(), "CONFIG_UNKNOWN_KEY", "{err}");
        let msg = err.to_string();
        assert!(msg.starts_with(key) && msg.contains(&format!("`{closest}`")), "{msg}");
    }
}

#[test]
fn ignoring_a_restrictive_openclaw_key_is_refused() {
    for (text, key) in [
        ("{gateway: {roles: {default: 'viewer', definitions: {viewer: {scopes: []}}}}}", "gateway.roles"),
        ("{gateway: {nodes: {commands: {deny: ['system.run']}}}}", "gateway.nodes.commands"),
        ("{gateway: {tools: {deny: ['exec']}}}", "gateway.tools"),
        ("{gateway: {tls: {enabled: true}}}", "gateway.tls"),
    ] {
        let err = parse_file(Path::new("c.json5"), text).unwrap_err();
        assert_eq!(err.code(), "CONFIG_UNSAFE", "{err}");
        assert!(err.to_string().starts_with(key), "{err}");
    }
    // The same keys without a restriction in them are only named.
    for text in ["{gateway: {nodes: {commands: {allow: ['x']}}}}", "{gateway: {tls: {enabled: false}}}"] {
        let (_, notes) = parse_file(Path::new("c.json5"), text).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
    }
}

#[test]
fn device_auto_approve_turned_off_by_openclaws_switch_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openclaw.json");
    std::fs::write(
        &path,
        "{gateway: {trustedProxies: ['10.0.0.1'], auth: {mode: 'trusted-proxy', trustedProxy: {userHeader: \
         'x-user', deviceAutoApprove: {enabled: false, scopes: ['operator.read']}}}}}",
    )
    .unwrap();
    let sources = ConfigSources { file: Some(path), ..Default::default() };
    let c = load(&sources, &mut no_generation()).unwrap();
    assert_eq!(c.trusted_proxy.unwrap().device_auto_approve, None);
}
