//! `clawgate devices …`: the real binary, offline on the store file and
//! online through a running gateway, and what it does with a corrupt store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{connect_params, RawConn, TestGateway, TOKEN};
use clawgate::config::{AuthMode, Config};
use clawgate::server::now_ms;
use clawgate::store::{ApprovedVia, NewRequest, PairingStore, Role, SqliteStore};
use clawgate::ServerOptions;
use clawgate_client::DeviceIdentity;
use serde_json::{json, Value};

const READ: &str = "operator.read";
const WRITE: &str = "operator.write";
/// The remote client's address, as the trusted proxy reports it.
const REMOTE_FROM_PROXY: &[(&str, &str)] = &[("x-forwarded-for", "203.0.113.5"), ("host", "gateway.example")];
/// The trusted proxy's socket address. Not 127.0.0.1: the CLI connects from
/// there as a direct-local client, and a trusted proxy's socket is never local.
const PROXY_SOURCE: &str = "127.0.0.2";

/// `clawgate` with a clean environment of its own: only the state directory
/// and the variables given.
fn clawgate(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CLAWGATE_STATE_DIR", state).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn run(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    clawgate(state, args, env).output().expect("run clawgate")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn state_dir() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("clawgate-cli-devices").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let store = dir.path().join("clawgate.sqlite");
    (dir, store)
}

fn request(store: &SqliteStore, name: &str, ip: &str) -> (DeviceIdentity, String) {
    let id = DeviceIdentity::generate();
    let mut new = NewRequest::new(id.device_id(), id.public_key_b64url(), Role::Operator, &[READ, WRITE]);
    new.client_id = Some("openclaw-macos".into());
    new.client_mode = Some("ui".into());
    new.platform = Some("macos".into());
    new.display_name = Some(name.into());
    new.remote_ip = Some(ip.into());
    let outcome = store.request_pairing(&new, now_ms()).unwrap();
    (id, outcome.request_id().to_owned())
}

#[test]
fn offline_list_and_approve_latest_and_its_refusal() {
    let (dir, path) = state_dir();
    let store = SqliteStore::open(&path).unwrap();
    let (id, request_id) = request(&store, "Alice's laptop", "203.0.113.5");

    // --json prints the raw listing, shaped like device.pair.list.
    let out = run(dir.path(), &["devices", "list", "--offline", "--json"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let listing: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listing["pending"].as_array().unwrap().len(), 1, "{listing}");
    assert_eq!(listing["pending"][0]["requestId"], request_id.as_str());
    assert_eq!(listing["pending"][0]["deviceId"], id.device_id());
    assert_eq!(listing["pending"][0]["scopes"], json!([READ, WRITE]));
    assert_eq!(listing["paired"], json!([]));

    // The table labels the name as self-reported and shows the key fingerprint.
    let out = run(dir.path(), &["devices", "list", "--offline"], &[]);
    let (stdout, _) = text(&out);
    let fp = format!("sha256:{}", &id.device_id()[..16]);
    assert!(stdout.contains(&request_id), "{stdout}");
    assert!(stdout.contains("name \"Alice's laptop\" (self-reported)"), "{stdout}");
    assert!(stdout.contains(&fp), "{stdout}");
    assert!(stdout.contains("client openclaw-macos/ui"), "{stdout}");
    assert!(stdout.contains("asked just now") || stdout.contains("s ago"), "{stdout}");

    // --latest approves the only recent request, after saying what it grants.
    let out = run(dir.path(), &["devices", "approve", "--latest", "--offline"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let preview = stdout.find("Approving pairing request").expect("a preview");
    let done = stdout.find("Approved").expect("a confirmation");
    assert!(preview < done, "{stdout}");
    for needle in [request_id.as_str(), fp.as_str(), "operator.read, operator.write", "(self-reported)", "cli-offline"]
    {
        assert!(stdout.contains(needle), "{needle:?} missing from:\n{stdout}");
    }
    let paired = store.device(&id.device_id()).unwrap().expect("paired");
    assert_eq!(paired.approved_via, ApprovedVia::CliOffline);
    assert_eq!(paired.approved_scopes, vec![READ.to_owned(), WRITE.to_owned()]);
    assert!(store.open_requests(now_ms()).unwrap().is_empty(), "approving never creates a request");

    // Two requests within 5 minutes: --latest refuses and lists both.
    let (a, first) = request(&store, "phone", "203.0.113.6");
    let (b, second) = request(&store, "tablet", "203.0.113.7");
    let out = run(dir.path(), &["devices", "approve", "--latest", "--offline"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("PAIRING_AMBIGUOUS"), "{stderr}");
    assert!(stderr.contains(&first) && stderr.contains(&second), "{stderr}");
    assert!(!stdout.contains("Approved"), "{stdout}");
    assert!(store.device(&a.device_id()).unwrap().is_none());
    assert!(store.device(&b.device_id()).unwrap().is_none());

    // By id works, and so does --device with a prefix.
    let out = run(dir.path(), &["devices", "approve", &first, "--offline"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = run(dir.path(), &["devices", "approve", "--device", &b.device_id()[..10], "--offline"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(store.device(&b.device_id()).unwrap().is_some());

    // Nothing left: the store's code.
    let out = run(dir.path(), &["devices", "approve", "--latest", "--offline"], &[]);
    assert!(text(&out).1.contains("PAIRING_NONE_PENDING"), "{:?}", text(&out));
    let out = run(dir.path(), &["devices", "approve", &first, "--offline"], &[]);
    assert!(text(&out).1.contains("PAIRING_RESOLVED"), "{:?}", text(&out));
}

#[test]
fn offline_reject_rotate_revoke_remove() {
    let (dir, path) = state_dir();
    let store = SqliteStore::open(&path).unwrap();
    let (rejected, rid) = request(&store, "unknown", "203.0.113.9");
    let out = run(dir.path(), &["devices", "reject", &rid, "--offline"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(store.open_requests(now_ms()).unwrap().is_empty());
    // The cooldown stands: the device cannot ask again right away.
    let again = NewRequest::new(rejected.device_id(), rejected.public_key_b64url(), Role::Operator, &[READ]);
    assert_eq!(store.request_pairing(&again, now_ms()).unwrap_err().code(), "PAIRING_REJECTED");

    let (id, req) = request(&store, "laptop", "203.0.113.5");
    store.approve(&req, ApprovedVia::Owner, now_ms()).unwrap();
    let dev = id.device_id();
    let first = store.issue_token(&dev, Role::Operator, &[READ.to_owned(), WRITE.to_owned()], now_ms()).unwrap();

    // Rotate to read only: the old token stops verifying; the new one is not shown.
    let out = run(dir.path(), &["devices", "rotate", &dev[..12], "--scopes", READ, "--offline"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("not shown"), "{stdout}");
    assert!(!stdout.contains(&first));
    let tokens = store.tokens(&dev).unwrap();
    assert_eq!(tokens[0].scopes, vec![READ.to_owned()]);
    assert!(tokens[0].rotated_at_ms.is_some());
    // Beyond the approval: the store's code.
    let out = run(dir.path(), &["devices", "rotate", &dev, "--scopes", "operator.admin", "--offline"], &[]);
    assert!(text(&out).1.contains("DEVICE_SCOPES_NOT_APPROVED"), "{:?}", text(&out));
    let out = run(dir.path(), &["devices", "rotate", &dev, "--role", "node", "--offline"], &[]);
    assert!(text(&out).1.contains("DEVICE_ROLE_NOT_APPROVED"), "{:?}", text(&out));

    let out = run(dir.path(), &["devices", "revoke", &dev, "--offline"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(store.tokens(&dev).unwrap()[0].is_revoked());

    let out = run(dir.path(), &["devices", "remove", &dev, "--offline"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(store.device(&dev).unwrap().is_none());
    let out = run(dir.path(), &["devices", "remove", &dev, "--offline"], &[]);
    assert!(text(&out).1.contains("DEVICE_UNKNOWN"), "{:?}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_approve_through_the_gateway_then_the_device_connects() {
    let (dir, path) = state_dir();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.trusted_proxies = vec![PROXY_SOURCE.parse().unwrap()];
    let gw = TestGateway::start_with_store(config, ServerOptions::default(), store.clone()).await;

    // A remote device asks to pair.
    let id = DeviceIdentity::generate();
    let mut params = connect_params("openclaw-macos", "ui", "operator", &[READ], Some(TOKEN));
    params["client"]["displayName"] = json!("Bob's Mac");
    let mut c = RawConn::open_from(PROXY_SOURCE, gw.addr, REMOTE_FROM_PROXY).await.unwrap();
    let res = c.handshake_device(params.clone(), &id).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    let request_id = res["error"]["details"]["requestId"].as_str().unwrap().to_owned();

    let state = dir.path().to_owned();
    let url = gw.url();
    let env = [("OPENCLAW_GATEWAY_TOKEN", TOKEN)];

    // The listing through the gateway shows it.
    let (s2, u2) = (state.clone(), url.clone());
    let out = tokio::task::spawn_blocking(move || run(&s2, &["devices", "list", "--url", &u2], &env)).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&request_id), "{stdout}");
    assert!(stdout.contains("name \"Bob's Mac\" (self-reported)"), "{stdout}");
    assert!(stdout.contains("from 203.0.113.5"), "{stdout}");

    let (s2, u2, r2) = (state.clone(), url.clone(), request_id.clone());
    let out =
        tokio::task::spawn_blocking(move || run(&s2, &["devices", "approve", &r2, "--url", &u2], &env)).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("sha256:{}", &id.device_id()[..16])), "{stdout}");
    assert!(stdout.contains(&format!("Approved {request_id}")), "{stdout}");

    // Paired through the gateway; the CLI's own connection opened no request.
    let paired = store.device(&id.device_id()).unwrap().expect("paired");
    assert_eq!(paired.approved_scopes, vec![READ.to_owned()]);
    assert_ne!(paired.approved_via, ApprovedVia::CliOffline);
    assert!(store.open_requests(now_ms()).unwrap().is_empty());
    assert_eq!(store.list_devices().unwrap().len(), 1);

    // The device connects.
    let mut c = RawConn::open_from(PROXY_SOURCE, gw.addr, REMOTE_FROM_PROXY).await.unwrap();
    let res = c.handshake_device(params, &id).await;
    assert_eq!(res["ok"], true, "{res}");
    assert!(res["payload"]["auth"]["deviceToken"].is_string(), "{res}");

    let device_token = res["payload"]["auth"]["deviceToken"].as_str().unwrap().to_owned();
    drop(c);

    // Revoked through the gateway: the device token no longer admits it.
    let (s2, u2, d2) = (state.clone(), url.clone(), id.device_id());
    let out = tokio::task::spawn_blocking(move || run(&s2, &["devices", "revoke", &d2[..16], "--url", &u2], &env))
        .await
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Revoked the operator token"), "{stdout}");
    let mut with_token = connect_params("openclaw-macos", "ui", "operator", &[READ], None);
    with_token["auth"] = json!({ "token": device_token, "deviceToken": device_token });
    let mut c = RawConn::open_from(PROXY_SOURCE, gw.addr, REMOTE_FROM_PROXY).await.unwrap();
    let res = c.handshake_device(with_token, &id).await;
    assert_eq!(res["ok"], false, "{res}");
    assert!(res["error"]["details"]["code"].as_str().unwrap().starts_with("AUTH_DEVICE_TOKEN"), "{res}");

    // Errors carry the gateway's codes.
    let (s2, u2) = (state.clone(), url.clone());
    let out = tokio::task::spawn_blocking(move || run(&s2, &["devices", "approve", "--latest", "--url", &u2], &env))
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).1.contains("PAIRING_NONE_PENDING"), "{:?}", text(&out));
    gw.stop().await;
}

#[test]
fn an_unreachable_gateway_says_to_pass_offline_and_never_falls_back() {
    let (dir, path) = state_dir();
    let store = SqliteStore::open(&path).unwrap();
    let (_, _) = request(&store, "laptop", "203.0.113.5");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}");
    let out = run(dir.path(), &["devices", "approve", "--latest", "--url", &url], &[("OPENCLAW_GATEWAY_TOKEN", TOKEN)]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("GATEWAY_UNREACHABLE") && stderr.contains("--offline"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(store.open_requests(now_ms()).unwrap().len(), 1, "nothing was approved behind the user's back");
    assert!(store.list_devices().unwrap().is_empty());

    // No store at all is an error naming the file, not an empty listing.
    let empty = tempfile::tempdir().unwrap();
    let out = run(empty.path(), &["devices", "list", "--offline"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("STORE_MISSING") && stderr.contains("clawgate.sqlite"), "{stderr}");
}

/// Wait for a child to exit within `limit`; kill it and fail otherwise.
fn wait_exit(mut child: std::process::Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("did not exit within {limit:?}: {:?}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_corrupt_store_stops_the_gateway_and_the_cli_never_reads_it_as_empty() {
    use std::os::unix::fs::OpenOptionsExt;
    let (dir, path) = state_dir();
    // Deterministic garbage, long enough to look like a database file.
    let garbage: Vec<u8> = (0u32..8192).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).unwrap();
        f.write_all(&garbage).unwrap();
    }
    let shown = path.display().to_string();

    let child = clawgate(dir.path(), &["gateway", "run", "--port", "0"], &[("OPENCLAW_GATEWAY_TOKEN", TOKEN)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_exit(child, Duration::from_secs(10));
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("STORE_CORRUPT") && stderr.contains(&shown), "{stderr}");

    for args in [&["devices", "list", "--offline"][..], &["devices", "list", "--offline", "--json"][..]] {
        let out = run(dir.path(), args, &[]);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?}: {stdout}");
        assert!(stderr.contains("STORE_CORRUPT") && stderr.contains(&shown), "{stderr}");
        assert!(!stdout.contains("No pending") && !stdout.contains("pending"), "{stdout}");
    }
    let out = run(dir.path(), &["devices", "approve", "--latest", "--offline"], &[]);
    assert!(text(&out).1.contains("STORE_CORRUPT"), "{:?}", text(&out));
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "the corrupt file is left untouched");
}

#[test]
fn offline_rejections_are_listed_and_lifted_by_unreject_or_approve_device() {
    let (dir, path) = state_dir();
    let store = SqliteStore::open(&path).unwrap();
    let (first, rid) = request(&store, "stranger", "203.0.113.9");
    let out = run(dir.path(), &["devices", "reject", &rid, "--offline"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));

    // The listing shows the rejection: its cool-down, key and source.
    let out = run(dir.path(), &["devices", "list", "--offline", "--json"], &[]);
    let listing: Value = serde_json::from_str(&text(&out).0).unwrap();
    let rejected = &listing["rejected"][0];
    assert_eq!(rejected["deviceId"], first.device_id(), "{listing}");
    assert_eq!(rejected["role"], "operator");
    assert_eq!(rejected["remoteIp"], "203.0.113.9");
    assert_eq!(rejected["requestId"], rid.as_str());
    let until = rejected["cooldownUntilMs"].as_u64().unwrap();
    assert!(until > now_ms() + 9 * 60_000 && until <= now_ms() + 10 * 60_000, "{listing}");
    let out = run(dir.path(), &["devices", "list", "--offline"], &[]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("Recently rejected, in their cool-down (1)"), "{stdout}");
    assert!(stdout.contains(&first.device_id()[..12]) && stdout.contains("may ask again in"), "{stdout}");
    assert!(stdout.contains(&format!("sha256:{}", &first.device_id()[..16])), "{stdout}");
    assert!(stdout.contains("from 203.0.113.9") && stdout.contains("devices unreject"), "{stdout}");

    // `unreject` by prefix lifts it: the device may ask again at once.
    let out = run(dir.path(), &["devices", "unreject", &first.device_id()[..10], "--offline"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Lifted the rejection") && stdout.contains("role operator"), "{stdout}");
    let again = NewRequest::new(first.device_id(), first.public_key_b64url(), Role::Operator, &[READ]);
    assert!(store.request_pairing(&again, now_ms()).is_ok(), "the cool-down is over");
    let out = run(dir.path(), &["devices", "unreject", "--device", &first.device_id(), "--offline"], &[]);
    assert!(text(&out).0.contains("nothing to do"), "{:?}", text(&out));

    // `approve --device` on a rejected device (no open request) lifts it too.
    let (second, rid) = request(&store, "another", "203.0.113.10");
    store.reject(&rid, now_ms()).unwrap();
    let out = run(dir.path(), &["devices", "approve", "--device", &second.device_id()[..10], "--offline"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("was rejected") && stdout.contains("Lifted the rejection"), "{stdout}");
    assert!(store.rejections(now_ms()).unwrap().is_empty());
    assert!(store.device(&second.device_id()).unwrap().is_none(), "lifting pairs nothing");
}

#[test]
fn approve_latest_shows_source_key_and_scopes_and_its_refusal_tells_look_alikes_apart() {
    let (dir, path) = state_dir();
    let store = SqliteStore::open(&path).unwrap();
    // Two requests that read the same: same client, platform and name.
    let (a, first) = request(&store, "laptop", "203.0.113.6");
    let (b, second) = request(&store, "laptop", "203.0.113.7");
    let out = run(dir.path(), &["devices", "approve", "--latest", "--offline"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("PAIRING_AMBIGUOUS"), "{stderr}");
    for (id, request_id, ip) in [(&a, &first, "203.0.113.6"), (&b, &second, "203.0.113.7")] {
        let fp = format!("sha256:{}", &id.device_id()[..16]);
        let line = stderr.lines().skip_while(|l| !l.contains(request_id.as_str())).nth(1).unwrap_or_default();
        assert!(line.contains(&fp) && line.contains(&format!("from {ip}")), "{request_id}: {stderr}");
    }

    store.reject(&first, now_ms()).unwrap();
    let out = run(dir.path(), &["devices", "approve", "--latest", "--offline"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let fp = format!("sha256:{}", &b.device_id()[..16]);
    for needle in [fp.as_str(), "from         203.0.113.7", "scopes       operator.read, operator.write"] {
        assert!(stdout.contains(needle), "{needle:?} missing from:\n{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_gateway_a_rejection_is_listed_and_lifted() {
    let (dir, path) = state_dir();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.trusted_proxies = vec![PROXY_SOURCE.parse().unwrap()];
    let gw = TestGateway::start_with_store(config, ServerOptions::default(), store.clone()).await;
    let (state, url) = (dir.path().to_owned(), gw.url());
    let env = [("OPENCLAW_GATEWAY_TOKEN", TOKEN)];
    let cli = move |args: Vec<String>| {
        let (state, url) = (state.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
            all.extend(["--url", &url]);
            run(&state, &all, &env)
        })
    };

    let id = DeviceIdentity::generate();
    let params = connect_params("openclaw-macos", "ui", "operator", &[READ], Some(TOKEN));
    let mut c = RawConn::open_from(PROXY_SOURCE, gw.addr, REMOTE_FROM_PROXY).await.unwrap();
    let res = c.handshake_device(params.clone(), &id).await;
    let request_id = res["error"]["details"]["requestId"].as_str().unwrap().to_owned();
    let out = cli(vec!["devices".into(), "reject".into(), request_id]).await.unwrap();
    assert!(out.status.success(), "{:?}", text(&out));

    // Refused while it cools down, with a hint that names the way out.
    let mut c = RawConn::open_from(PROXY_SOURCE, gw.addr, REMOTE_FROM_PROXY).await.unwrap();
    let res = c.handshake_device(params.clone(), &id).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REJECTED", "{res}");
    assert!(res["error"]["message"].as_str().unwrap().contains("devices unreject"), "{res}");

    let out = cli(vec!["devices".into(), "list".into()]).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Recently rejected") && stdout.contains("from 203.0.113.5"), "{stdout}");

    let out = cli(vec!["devices".into(), "unreject".into(), id.device_id()[..12].to_owned()]).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Lifted the rejection"), "{stdout}");

    // It may ask again: a new pairing request, not a rejection.
    let mut c = RawConn::open_from(PROXY_SOURCE, gw.addr, REMOTE_FROM_PROXY).await.unwrap();
    let res = c.handshake_device(params, &id).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    gw.stop().await;
}

#[test]
fn empty_and_short_ids_match_nothing() {
    let (dir, path) = state_dir();
    let store = SqliteStore::open(&path).unwrap();
    let (_, rid) = request(&store, "only-request", "203.0.113.9");
    let (paired, req) = request(&store, "only-device", "203.0.113.5");
    store.approve(&req, ApprovedVia::Owner, now_ms()).unwrap();
    let dev = paired.device_id();
    // The attack: an empty variable, `clawgate devices approve "$ID"`.
    for args in [
        vec!["devices", "approve", "", "--offline"],
        vec!["devices", "approve", &rid[..3], "--offline"],
        vec!["devices", "reject", "", "--offline"],
        vec!["devices", "remove", "", "--offline"],
        vec!["devices", "remove", &dev[..2], "--offline"],
        vec!["devices", "rotate", "", "--offline"],
        vec!["devices", "revoke", "a", "--offline"],
    ] {
        let out = run(dir.path(), &args, &[]);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?}: {stdout}");
        assert!(stderr.contains("INVALID_INPUT") && stderr.contains("too short"), "{args:?}: {stderr}");
    }
    assert_eq!(store.open_requests(now_ms()).unwrap().len(), 1, "nothing approved or rejected");
    assert!(store.device(&dev).unwrap().is_some(), "nothing removed");
    let token = [("OPENCLAW_GATEWAY_TOKEN", "a-long-enough-token-0123456789abcdef")];
    let out = run(dir.path(), &["auth", "explain", "--device", "proven", "--device-id", "ab"], &token);
    let (_, stderr) = text(&out);
    assert!(!out.status.success() && stderr.contains("too short"), "{stderr}");
}
