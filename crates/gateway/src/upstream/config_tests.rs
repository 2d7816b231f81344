use std::collections::BTreeMap;

use super::*;

struct Case {
    section: Option<UpstreamSection>,
    flag: Option<String>,
    env: BTreeMap<String, String>,
    home: Option<PathBuf>,
}

impl Case {
    fn new(section: UpstreamSection) -> Case {
        Case { section: Some(section), flag: None, env: BTreeMap::new(), home: None }
    }

    fn run(&self) -> Result<Option<UpstreamConfig>, ConfigError> {
        let env = |k: &str| self.env.get(k).cloned();
        let inputs =
            UpstreamInputs { url_flag: self.flag.as_deref(), env: &env, home: self.home.clone(), own_port: 18789 };
        resolve(self.section.as_ref(), &inputs)
    }

    fn ok(&self) -> UpstreamConfig {
        self.run().unwrap().expect("upstream mode on")
    }

    /// The key the refusal names.
    fn refused_key(&self) -> String {
        match self.run() {
            Ok(_) => panic!("should be refused"),
            Err(ConfigError::Unsafe { key, .. }) => key,
            Err(e) => panic!("unexpected error kind: {e}"),
        }
    }
}

fn section(url: &str, token: &str) -> UpstreamSection {
    UpstreamSection { url: Some(url.into()), token: Some(token.into()), ..Default::default() }
}

#[test]
fn off_without_section_or_flag() {
    let c = Case { section: None, flag: None, env: BTreeMap::new(), home: None };
    assert!(c.run().unwrap().is_none());
}

#[test]
fn loopback_ws_with_a_token() {
    let u = Case::new(section("ws://127.0.0.1:18790", "t0k")).ok();
    assert_eq!(u.url.to_string(), "ws://127.0.0.1:18790/");
    assert_eq!(u.secret.kind, SecretKind::Token);
    assert_eq!(u.secret.value.reveal(), "t0k");
    assert!(!u.forward_client_address);
    for url in ["ws://localhost:18790", "ws://[::1]:18790/x", "ws://127.9.9.9:1"] {
        assert!(Case::new(section(url, "t")).ok().url.is_loopback(), "{url}");
    }
    assert_eq!(Case::new(section("ws://[::1]:18790/x", "t")).ok().url.authority(), "[::1]:18790");
}

#[test]
fn plain_ws_off_loopback_and_wss_are_refused() {
    assert_eq!(Case::new(section("ws://10.0.0.5:18790", "t")).refused_key(), "gateway.upstream.url");
    assert_eq!(Case::new(section("ws://gateway.example:18790", "t")).refused_key(), "gateway.upstream.url");
    // Parsed, but this build has no TLS client: refused at start-up, not at the first connect.
    let url = UpstreamUrl::parse("wss://gateway.example").unwrap();
    assert_eq!((url.scheme, url.port), (UpstreamScheme::Wss, 443));
    let err = Case::new(section("wss://gateway.example", "t")).run().unwrap_err();
    assert!(err.to_string().starts_with("gateway.upstream.url: wss://gateway.example:443/: wss://"), "{err}");
}

#[test]
fn unparsable_urls_name_the_key() {
    for url in ["http://127.0.0.1:1", "not a url", "ws://", "ws://user:pw@127.0.0.1:1"] {
        assert_eq!(Case::new(section(url, "t")).refused_key(), "gateway.upstream.url", "{url}");
    }
    let mut c = Case::new(section("ws://127.0.0.1:1", "t"));
    c.flag = Some("ftp://x".into());
    assert_eq!(c.refused_key(), "--upstream");
}

#[test]
fn clawgates_own_port_is_refused() {
    assert_eq!(Case::new(section("ws://127.0.0.1:18789", "t")).refused_key(), "gateway.upstream.url");
}

#[test]
fn secrets_missing_doubled_or_blank() {
    let s = UpstreamSection { url: Some("ws://127.0.0.1:1".into()), ..Default::default() };
    assert_eq!(Case::new(s.clone()).refused_key(), "gateway.upstream.token");
    let both = UpstreamSection { token: Some("a".into()), password: Some("b".into()), ..s.clone() };
    assert_eq!(Case::new(both).refused_key(), "gateway.upstream.password");
    let blank = UpstreamSection { token: Some(" undefined ".into()), ..s.clone() };
    assert_eq!(Case::new(blank).refused_key(), "gateway.upstream.token");
    let password = UpstreamSection { password: Some("pw".into()), ..s };
    assert_eq!(Case::new(password).ok().secret.kind, SecretKind::Password);
}

#[test]
fn environment_wins_and_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upstream.token");
    std::fs::write(&file, "from-file\n").unwrap();

    let mut c = Case::new(section("ws://127.0.0.1:1", "from-config"));
    c.env.insert("CLAWGATE_UPSTREAM_TOKEN_FILE".into(), file.display().to_string());
    assert_eq!(c.ok().secret.value.reveal(), "from-file");
    c.env.insert("CLAWGATE_UPSTREAM_TOKEN".into(), "from-env".into());
    let u = c.ok();
    assert_eq!(u.secret.value.reveal(), "from-env");
    assert_eq!(u.secret.value.source, SecretSource::Env("CLAWGATE_UPSTREAM_TOKEN"));

    let mut c = Case::new(section("ws://127.0.0.1:1", "x"));
    c.env.insert("CLAWGATE_UPSTREAM_TOKEN_FILE".into(), dir.path().join("missing").display().to_string());
    assert_eq!(c.refused_key(), "CLAWGATE_UPSTREAM_TOKEN_FILE");

    let s = UpstreamSection {
        url: Some("ws://127.0.0.1:1".into()),
        token_file: Some("~/upstream.token".into()),
        ..Default::default()
    };
    let mut c = Case::new(s.clone());
    c.home = Some(dir.path().to_owned());
    assert_eq!(c.ok().secret.value.reveal(), "from-file");
    c.home = Some(dir.path().join("elsewhere"));
    assert_eq!(c.refused_key(), "gateway.upstream.tokenFile");
}

#[test]
fn openclaw_config_gives_port_and_secret() {
    let dir = tempfile::tempdir().unwrap();
    let oc = dir.path().join(".openclaw/openclaw.json");
    std::fs::create_dir_all(oc.parent().unwrap()).unwrap();
    std::fs::write(&oc, "// json5\n{gateway: {mode: 'local', port: 18790, auth: {mode: 'token', token: 'oc-secret'}}}")
        .unwrap();
    let s = UpstreamSection { openclaw_config: Some("~/.openclaw/openclaw.json".into()), ..Default::default() };
    let mut c = Case::new(s.clone());
    c.home = Some(dir.path().to_owned());
    let u = c.ok();
    assert_eq!(u.url.to_string(), "ws://127.0.0.1:18790/");
    assert_eq!(u.secret.value.reveal(), "oc-secret");
    assert_eq!(u.secret.value.source, SecretSource::File(oc.clone()));

    // Our own keys win over the file's secret; an explicit url over its port.
    let mut c2 = Case::new(UpstreamSection {
        url: Some("ws://127.0.0.1:18800".into()),
        token: Some("mine".into()),
        ..s.clone()
    });
    c2.home = c.home.clone();
    let u = c2.ok();
    assert_eq!((u.url.port, u.secret.value.reveal()), (18800, "mine"));

    // Password mode.
    std::fs::write(&oc, r#"{"gateway": {"port": 18790, "auth": {"mode": "password", "password": "pw"}}}"#).unwrap();
    let u = c.ok();
    assert_eq!((u.secret.kind, u.secret.value.reveal()), (SecretKind::Password, "pw"));

    // No secret in the file: one is required from our keys or environment.
    std::fs::write(&oc, r#"{"gateway": {"port": 18790}}"#).unwrap();
    assert_eq!(c.refused_key(), "gateway.upstream.openclawConfig");
    c.env.insert("CLAWGATE_UPSTREAM_TOKEN".into(), "env".into());
    assert_eq!(c.ok().secret.value.reveal(), "env");
    c.env.clear();
    // OpenClaw's own variable is clawgate's downstream secret, never the upstream's.
    c.env.insert("OPENCLAW_GATEWAY_TOKEN".into(), "downstream".into());
    assert_eq!(c.refused_key(), "gateway.upstream.openclawConfig");

    // No port: OpenClaw's default, which is clawgate's own here.
    std::fs::write(&oc, r#"{"gateway": {"auth": {"token": "t"}}}"#).unwrap();
    assert_eq!(c.refused_key(), "gateway.upstream.openclawConfig");

    // Secret references, bad ports, bad syntax, missing files.
    std::fs::write(&oc, r#"{"gateway": {"port": 1, "auth": {"token": {"source": "env", "id": "X"}}}}"#).unwrap();
    assert_eq!(c.refused_key(), "gateway.upstream.openclawConfig");
    std::fs::write(&oc, r#"{"gateway": {"port": 70000}}"#).unwrap();
    assert_eq!(c.refused_key(), "gateway.upstream.openclawConfig");
    std::fs::write(&oc, "{gateway").unwrap();
    assert_eq!(c.refused_key(), "gateway.upstream.openclawConfig");
    std::fs::remove_file(&oc).unwrap();
    assert_eq!(c.refused_key(), "gateway.upstream.openclawConfig");
}

#[test]
fn a_flag_alone_turns_upstream_mode_on() {
    let mut c = Case { section: None, flag: Some("ws://127.0.0.1:18790".into()), env: BTreeMap::new(), home: None };
    assert_eq!(c.refused_key(), "gateway.upstream.token");
    c.env.insert("CLAWGATE_UPSTREAM_TOKEN".into(), "t".into());
    assert_eq!(c.ok().url.port, 18790);
}

#[test]
fn home_expansion() {
    let home = Path::new("/home/u");
    assert_eq!(expand_home("~", Some(home)), PathBuf::from("/home/u"));
    assert_eq!(expand_home("~/a/b", Some(home)), PathBuf::from("/home/u/a/b"));
    assert_eq!(expand_home("~other/a", Some(home)), PathBuf::from("~other/a"));
    assert_eq!(expand_home("/abs", Some(home)), PathBuf::from("/abs"));
    assert_eq!(expand_home("~/a", None), PathBuf::from("~/a"));
}

#[test]
fn the_timeouts_come_from_their_keys_and_are_range_checked() {
    let defaults = Case::new(section("ws://127.0.0.1:18790", "t")).ok().timeouts;
    assert_eq!(defaults, UpstreamTimeouts::default());
    let mut s = section("ws://127.0.0.1:18790", "t");
    s.handshake_timeout_ms = Some(2_500);
    s.liveness_timeout_ms = Some(9_000);
    let t = Case::new(s.clone()).ok().timeouts;
    assert_eq!((t.handshake.as_millis(), t.liveness.as_millis()), (2_500, 9_000));
    s.liveness_timeout_ms = Some(10);
    assert_eq!(Case::new(s).refused_key(), "gateway.upstream.livenessTimeoutMs");
}
