//! Store changes across instances: what one instance (or the offline CLI)
//! changes in the shared store reaches the sessions of every instance at
//! once — over NATS, over PostgreSQL's change notifications when NATS is
//! down — and what each instance does when PostgreSQL is down. The
//! instances poll the store only every 30 s here, so a session closed
//! within a few seconds was closed by a push, not by the poll.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::cluster::Instances;
use crate::common::{admitted, admitted_from, connect_params, postgres, RawConn, TestGateway, REMOTE, TOKEN};
use clawgate::config::Config;
use clawgate::ServerOptions;
use clawgate_client::DeviceIdentity;
use serde_json::{json, Value};

pub const READ: &str = "operator.read";
/// Far longer than any wait below: a close seen in time was pushed.
pub const SLOW_POLL: Duration = Duration::from_secs(30);
/// How long a pushed change may take here (a busy 2-core machine); the
/// figures measured are in docs/benchmarks.md.
pub const PUSHED_WITHIN: Duration = Duration::from_secs(5);
/// Behind a proxy, local operators connect from here: 127.0.0.1 is the
/// trusted proxy that remote clients come through (`REMOTE`).
pub const LOCAL_OPERATOR: &str = "127.0.0.2";

/// Every instance polls slowly, and listens for PostgreSQL's notifications
/// or not.
pub fn slow_poll(listen: bool) -> impl Fn(&str, &mut (Config, ServerOptions)) {
    move |_, (_, options)| {
        options.store_poll_interval = SLOW_POLL;
        options.listen_store_changes = listen;
    }
}

/// [`slow_poll`] with listening, each instance trusting 127.0.0.1 as its
/// proxy, so clients can come from far away (`REMOTE`).
pub fn behind_proxy(name: &str, parts: &mut (Config, ServerOptions)) {
    slow_poll(true)(name, parts);
    parts.0.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
}

/// A device paired silently on `gw` (a local connect with the token);
/// returns its device token.
pub async fn local_device(gw: &TestGateway, id: &DeviceIdentity) -> String {
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake_device(connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), id).await;
    assert_eq!(res["ok"], true, "{res}");
    res["payload"]["auth"]["deviceToken"].as_str().unwrap().to_owned()
}

/// A session on `gw` authenticated by the device token alone.
pub async fn token_session(gw: &TestGateway, id: &DeviceIdentity, token: &str) -> RawConn {
    let mut p = connect_params("cli", "cli", "operator", &[READ], None);
    p["auth"] = json!({ "deviceToken": token });
    let mut c = RawConn::open(gw.addr).await;
    let res = c.handshake_device(p, id).await;
    assert_eq!(res["ok"], true, "{res}");
    c
}

/// An operator on `gw` that may revoke any device's token.
pub async fn admin(gw: &TestGateway) -> RawConn {
    admitted(gw, &["operator.admin"]).await
}

/// Revoke `id`'s operator token through `admin` (on one instance) while
/// `session` (on another) waits for its close; returns the close and how
/// long after the revocation was sent it came.
pub async fn revoke_and_time(
    admin: &mut RawConn,
    id: &DeviceIdentity,
    session: &mut RawConn,
) -> ((u16, String), Duration) {
    let sent = Instant::now();
    let params = json!({ "deviceId": id.device_id(), "role": "operator" });
    let closed = async {
        let close = tokio::time::timeout(PUSHED_WITHIN, session.expect_close()).await;
        (close, sent.elapsed())
    };
    let (answer, (closed, took)) = tokio::join!(admin.call("rv", "device.token.revoke", Some(params)), closed);
    assert_eq!(answer["payload"]["revoked"], true, "{answer}");
    (closed.expect("the session on the other instance was not closed in time"), took)
}

/// `clawgate` on the cluster's database, with a clean environment.
fn clawgate(state: &Path, db_url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CLAWGATE_STATE_DIR", state).env("CLAWGATE_STORE_URL", db_url).args(args).stdin(Stdio::null());
    cmd
}

async fn run_cli(state: &Path, db_url: &str, args: &[&str]) -> Output {
    let mut cmd = clawgate(state, db_url, args);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run clawgate")).await.unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "clawgate {args:?}: {text}");
    out
}

fn state_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("clawgate-cluster").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

#[tokio::test]
async fn a_device_approved_on_a_is_admitted_on_b() {
    let cluster = Instances::start_with(3, behind_proxy).await;
    let [a, b, _] = &cluster.gateways[..] else { unreachable!() };
    let id = DeviceIdentity::generate();
    let params = connect_params("cli", "cli", "operator", &[READ], Some(TOKEN));
    let mut c = RawConn::open_with(b.addr, REMOTE).await.unwrap();
    let res = c.handshake_device(params.clone(), &id).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    let request_id = res["error"]["details"]["requestId"].clone();

    let mut approver = admitted_from(LOCAL_OPERATOR, a, &["operator.pairing", READ]).await;
    let r = approver.call("a", "device.pair.approve", Some(json!({ "requestId": request_id }))).await;
    assert_eq!(r["ok"], true, "{r}");

    let mut c = RawConn::open_with(b.addr, REMOTE).await.unwrap();
    let res = c.handshake_device(params, &id).await;
    assert_eq!(res["ok"], true, "approved on a, admitted on b: {res}");
    cluster.stop().await;
}

#[tokio::test]
async fn a_service_revoked_by_the_offline_cli_closes_its_session_on_c() {
    let cluster = Instances::start_with(3, behind_proxy).await;
    let c = &cluster.gateways[2];
    let dir = state_dir();
    let out =
        run_cli(dir.path(), &cluster.db_url, &["services", "add", "ci-bot", "--role", "operator", "--scopes", READ])
            .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let service_token = stdout.split_whitespace().find(|w| w.starts_with("cgs_")).expect("a token").to_owned();

    let mut session = RawConn::open_with(c.addr, REMOTE).await.unwrap();
    let res =
        session.handshake(connect_params("gateway-client", "backend", "operator", &[READ], Some(&service_token))).await;
    assert_eq!(res["ok"], true, "{res}");

    // Only PostgreSQL hears the CLI: NATS is not involved at all.
    let revoked = Instant::now();
    run_cli(dir.path(), &cluster.db_url, &["services", "revoke", "ci-bot"]).await;
    let closed = tokio::time::timeout(PUSHED_WITHIN, session.expect_close()).await.expect("closed by the push");
    assert_eq!(closed, (4001, "client invalidated: service principal revoked".into()));
    eprintln!("offline CLI revocation → session closed on c: {:?} (CLI run included)", revoked.elapsed());
    cluster.stop().await;
}

/// A device token revoked on a closes the device's session on b, pushed
/// through the one path `path` leaves (the poll is 30 s).
async fn revocation_on_a_closes_on_b(path: Push) {
    let mut cluster = Instances::start_with(3, slow_poll(path == Push::PostgresqlAlone)).await;
    if path == Push::PostgresqlAlone {
        cluster.nats.stop();
        cluster.wait_connected(false).await;
    }
    let [a, b, _] = &cluster.gateways[..] else { unreachable!() };
    let id = DeviceIdentity::generate();
    let token = local_device(a, &id).await;
    let mut session = token_session(b, &id, &token).await;
    let mut admin = admin(a).await;
    let (closed, took) = revoke_and_time(&mut admin, &id, &mut session).await;
    assert_eq!(closed, (4001, "client invalidated: device token revoked".into()));
    eprintln!("revocation on a → session closed on b ({path:?}): {took:?}");
    cluster.stop().await;
}

/// Which push carries a change between instances in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Push {
    /// No instance listens to PostgreSQL: the nudge over NATS.
    NatsAlone,
    /// NATS stopped: PostgreSQL's notifications.
    PostgresqlAlone,
}

#[tokio::test]
async fn a_device_token_revoked_on_a_closes_its_session_on_b_over_nats_alone() {
    revocation_on_a_closes_on_b(Push::NatsAlone).await;
}

#[tokio::test]
async fn with_nats_down_a_revocation_still_closes_sessions_through_postgresql() {
    revocation_on_a_closes_on_b(Push::PostgresqlAlone).await;
}

#[tokio::test]
async fn with_postgresql_down_sessions_carry_on_store_connects_are_refused_and_all_recovers() {
    let mut cluster = Instances::start_with(3, slow_poll(true)).await;
    // NATS down too: what follows can only travel through PostgreSQL.
    cluster.nats.stop();
    cluster.wait_connected(false).await;
    let [a, b, c] = &cluster.gateways[..] else { unreachable!() };
    let id = DeviceIdentity::generate();
    let token = local_device(a, &id).await;
    let mut on_c = token_session(c, &id, &token).await;
    let mut on_b = admitted(b, &[READ]).await;

    let pg = postgres::shared();
    let database = cluster.db_url.rsplit('/').next().unwrap().to_owned();
    pg.admin(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS false"));
    pg.cut_connections(&database);
    // A connect that needs the store is refused with a code that says so.
    let someone = DeviceIdentity::generate();
    let mut refused = RawConn::open(b.addr).await;
    let res = refused.handshake_device(connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), &someone).await;
    assert_eq!(res["error"]["details"]["code"], "STORE_UNAVAILABLE", "{res}");
    // Admitted sessions carry on, whichever instance they are on.
    assert_eq!(on_b.call("h1", "health", None).await["ok"], true);
    assert_eq!(on_c.call("h2", "health", None).await["ok"], true);

    // Back, without a restart: connects are admitted again, and each
    // instance's listening connection is open again, so a revocation on a
    // reaches c with NATS still down.
    pg.admin(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"));
    let mut back = RawConn::open(b.addr).await;
    let res = back.handshake_device(connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), &someone).await;
    assert_eq!(res["ok"], true, "{res}");
    // The first use of a connection the outage cut fails, and opens it
    // again (the store's rule): a's next store operation works.
    let mut admin = admin(a).await;
    for attempt in 0.. {
        let listed = admin.call("l", "device.pair.list", None).await;
        if listed["ok"] == true {
            break;
        }
        assert_eq!(listed["error"]["details"]["code"], "STORE_UNAVAILABLE", "{listed}");
        assert!(attempt < 3, "a does not recover: {listed}");
    }
    let (closed, _) = revoke_and_time(&mut admin, &id, &mut on_c).await;
    assert_eq!(closed, (4001, "client invalidated: device token revoked".into()));
    cluster.stop().await;
}

#[tokio::test]
async fn the_bus_shows_in_metrics_and_readyz_but_never_makes_an_instance_unready() {
    use crate::admin_metrics::{admin_listener, http, sample};
    let mut cluster = Instances::start_with(2, slow_poll(false)).await;
    let [a, b] = &cluster.gateways[..] else { unreachable!() };
    let (admin_a, admin_b) = (admin_listener(a).await, admin_listener(b).await);
    let id = DeviceIdentity::generate();
    let token = local_device(a, &id).await;
    let mut session = token_session(b, &id, &token).await;
    revoke_and_time(&mut admin(a).await, &id, &mut session).await;

    let (_, on_a) = http(admin_a, "GET", "/metrics").await;
    let (_, on_b) = http(admin_b, "GET", "/metrics").await;
    let messages = "clawgate_cluster_messages_total";
    assert!(sample(&on_a, messages, &[r#"subject="store.changed""#, r#"direction="out""#]) >= 1.0, "{on_a}");
    assert!(sample(&on_b, messages, &[r#"subject="store.changed""#, r#"direction="in""#]) >= 1.0, "{on_b}");
    assert_eq!(sample(&on_b, "clawgate_cluster_connected", &[]), 1.0, "{on_b}");

    cluster.nats.stop();
    cluster.wait_connected(false).await;
    let (status, ready) = http(admin_b, "GET", "/readyz").await;
    assert_eq!(status, 200, "NATS down is not a reason to take b out of service: {ready}");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!((ready["ready"].clone(), ready["cluster"].clone()), (json!(true), json!("disconnected")));
    let (_, on_b) = http(admin_b, "GET", "/metrics").await;
    assert_eq!(sample(&on_b, "clawgate_cluster_connected", &[]), 0.0, "{on_b}");
    cluster.stop().await;
}

/// `n` revocations on `a` of sessions on `b`: the closes' delays, sorted.
pub async fn revocation_delays(cluster: &Instances, n: usize) -> Vec<Duration> {
    let [a, b, ..] = &cluster.gateways[..] else { unreachable!() };
    let mut admin = admin(a).await;
    let mut delays = Vec::with_capacity(n);
    for _ in 0..n {
        let id = DeviceIdentity::generate();
        let token = local_device(a, &id).await;
        let mut session = token_session(b, &id, &token).await;
        let (closed, took) = revoke_and_time(&mut admin, &id, &mut session).await;
        assert_eq!(closed.0, 4001, "{closed:?}");
        delays.push(took);
    }
    delays.sort();
    delays
}

/// The `q`-quantile of sorted `delays` (nearest rank).
pub fn quantile(delays: &[Duration], q: f64) -> Duration {
    let rank = ((delays.len() as f64 * q).ceil() as usize).clamp(1, delays.len());
    delays[rank - 1]
}

pub fn summary(delays: &[Duration]) -> Value {
    let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    json!({
        "n": delays.len(),
        "p50_ms": ms(quantile(delays, 0.5)),
        "p99_ms": ms(quantile(delays, 0.99)),
        "max_ms": ms(*delays.last().unwrap()),
    })
}
