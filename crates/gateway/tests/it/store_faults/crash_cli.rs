//! SIGKILL of the CLI while it writes the store file directly:
//! `clawgate services add | rotate | revoke` (they always work on the
//! file) and `clawgate devices approve --offline`; and of the gateway's
//! first start, while it creates the store and climbs the migration
//! ladder. Each command is killed after a random delay up to about its own
//! run time; a command that exited with success was acknowledged. After every kill the store is clean and
//! the command either fully happened or not at all; at the end the gateway
//! starts on the store.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clawgate::server::now_ms;
use clawgate::store::{PairingStore, RequestState, ServiceTokenCheck, SqliteStore};

use super::harness::{
    check_store_clean, clawgate, restarts_and_serves, rounds, start_gateway, state_dir, store_path, Rng,
};

/// Principals (three writes each) and offline approvals per run, unless
/// `CLAWGATE_FAULT_ROUNDS` asks for more.
const NAMES: usize = 8;

/// The outcome of one CLI run.
struct Run {
    /// Exited with success: the write was acknowledged.
    acked: bool,
    stdout: String,
}

/// Run `clawgate <args>` on `state`, SIGKILLed after `kill_after` unless it
/// finished first.
fn run_killed(state: &Path, args: &[&str], kill_after: Duration) -> Run {
    let mut child = clawgate(state)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the CLI");
    let deadline = Instant::now() + kill_after;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    Run { acked: out.status.success(), stdout: String::from_utf8_lossy(&out.stdout).trim().to_owned() }
}

/// How long one CLI write takes here, warm: the median of three rotations
/// of a principal of its own. Kill delays are drawn up to 1.5 × that, so
/// about a third of the commands finish and the rest die at every stage of
/// their run, the write included.
fn calibrate(state: &Path) -> Duration {
    let out = clawgate(state).args(["services", "add", "calibration", "--role", "node"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut runs: Vec<Duration> = (0..3)
        .map(|_| {
            let started = Instant::now();
            let out = clawgate(state).args(["services", "rotate", "calibration"]).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            started.elapsed()
        })
        .collect();
    runs.sort();
    runs[1]
}

fn delay(rng: &mut Rng, typical: Duration) -> Duration {
    Duration::from_micros(rng.below(typical.as_micros() as u64 * 3 / 2 + 1))
}

fn live_service(store: &SqliteStore, name: &str) -> Option<clawgate::store::ServicePrincipal> {
    store.list_services().unwrap().into_iter().find(|p| p.name == name && p.revoked_at_ms.is_none())
}

fn verifies(store: &SqliteStore, token: &str) -> bool {
    matches!(store.verify_service_token(token, now_ms()).unwrap(), ServiceTokenCheck::Valid(_))
}

#[test]
fn sigkill_during_services_add_rotate_revoke() {
    let mut rng = Rng::from_env("crash: services add/rotate/revoke (CLI)");
    let dir = state_dir("{}\n");
    let typical = calibrate(dir.path());
    let path = store_path(dir.path());
    // `landed`: killed after its commit, before it could say so.
    let (mut kills, mut acks, mut landed) = (0, 0, 0);
    for n in 0..rounds(NAMES) {
        let name = format!("svc{n}");
        // add: acknowledged means live with the printed token; killed means
        // live or absent, nothing else.
        let run = run_killed(
            dir.path(),
            &["services", "add", &name, "--role", "operator", "--scopes", "operator.read"],
            delay(&mut rng, typical),
        );
        let store = check_store_clean(&path);
        let mut token = None;
        if run.acked {
            acks += 1;
            assert!(verifies(&store, &run.stdout), "acknowledged add of {name}: its token does not verify");
            token = Some(run.stdout);
        } else {
            kills += 1;
        }
        let Some(p) = live_service(&store, &name) else {
            assert!(token.is_none());
            continue;
        };
        landed += usize::from(token.is_none());
        drop(store);

        // rotate: acknowledged means the new token verifies and the old one
        // does not; killed means exactly one of the two states.
        let run = run_killed(dir.path(), &["services", "rotate", &name], delay(&mut rng, typical));
        let store = check_store_clean(&path);
        let now = live_service(&store, &name).expect("rotation keeps the principal");
        assert_eq!(now.principal_id, p.principal_id);
        let old_valid = token.as_deref().map(|t| verifies(&store, t));
        if run.acked {
            acks += 1;
            assert!(verifies(&store, &run.stdout), "acknowledged rotation of {name}: the new token does not verify");
            assert_ne!(old_valid, Some(true), "acknowledged rotation of {name}: the old token still verifies");
            assert!(now.rotated_at_ms.is_some());
        } else {
            kills += 1;
            if let Some(valid) = old_valid {
                assert_eq!(valid, now.rotated_at_ms.is_none(), "{name}: rotated half-way");
                landed += usize::from(!valid);
            }
        }
        drop(store);

        // revoke: acknowledged means revoked; killed means live or revoked.
        let run = run_killed(dir.path(), &["services", "revoke", &name], delay(&mut rng, typical));
        let store = check_store_clean(&path);
        let state = store.service_by_id(&p.principal_id).unwrap().expect("the principal stays on record");
        if run.acked {
            acks += 1;
            assert!(state.revoked_at_ms.is_some(), "acknowledged revocation of {name} lost");
        } else {
            kills += 1;
            landed += usize::from(state.revoked_at_ms.is_some());
        }
        assert_eq!(live_service(&store, &name).is_none(), state.revoked_at_ms.is_some());
    }
    eprintln!(
        "services: {acks} CLI writes acknowledged and kept, {kills} killed (delays up to 1.5 × {typical:?}), \
         each all or nothing; {landed} of those committed before the kill"
    );
    tokio_run(restarts_and_serves(dir.path()));
}

#[test]
fn sigkill_during_offline_device_approval() {
    let mut rng = Rng::from_env("crash: devices approve --offline (CLI)");
    let dir = state_dir(&super::harness::proxied_config());
    // Pairing requests from remote devices, through a gateway that is then stopped.
    let requests = {
        let gw = tokio_run(start_gateway(dir.path()));
        tokio_run(super::crash_matrix::remote_requests(gw.addr, rounds(NAMES).min(100)))
    };
    let path = store_path(dir.path());
    let typical = calibrate(dir.path());
    let (mut kills, mut acks, mut landed) = (0, 0, 0);
    for (i, (id, rid)) in requests.iter().enumerate() {
        let run = run_killed(dir.path(), &["devices", "approve", rid, "--offline"], delay(&mut rng, typical));
        let store = check_store_clean(&path);
        let state = store.request(rid, now_ms()).unwrap().expect("remembered").state;
        let paired = store.device(&id.device_id()).unwrap().is_some();
        assert_eq!(state == RequestState::Approved, paired, "request {i}: {state:?}, paired {paired}");
        if run.acked {
            acks += 1;
            assert!(paired, "acknowledged offline approval {i} lost");
        } else {
            kills += 1;
            landed += usize::from(paired);
            assert!(paired || state == RequestState::Open, "request {i}: {state:?}");
        }
    }
    eprintln!(
        "devices approve --offline: {acks} acknowledged and kept, {kills} killed (delays up to 1.5 × {typical:?}), \
         each all or nothing; {landed} of those committed before the kill"
    );
    tokio_run(restarts_and_serves(dir.path()));
}

#[test]
fn gateway_sigkill_during_online_cli_approvals() {
    let mut rng = Rng::from_env("crash: devices approve through the gateway (CLI online)");
    for round in 0..3 {
        online_approval_round(&mut rng, round);
    }
}

/// `n` CLIs approve through the gateway at once; the gateway is killed
/// meanwhile. An approval the CLI reported (exit 0) is in the store.
fn online_approval_round(rng: &mut Rng, round: usize) {
    let n = NAMES;
    let dir = state_dir(&super::harness::proxied_config());
    let mut gw = tokio_run(start_gateway(dir.path()));
    let requests = tokio_run(super::crash_matrix::remote_requests(gw.addr, n + 1));
    let port = gw.addr.port().to_string();
    let approve = |rid: &str| {
        let mut cmd = clawgate(dir.path());
        cmd.args(["devices", "approve", rid, "--port", &port]).stdin(Stdio::null()).stdout(Stdio::null());
        cmd.stderr(Stdio::null());
        cmd
    };
    // One approval, timed. The rest start at once and share two cores, so
    // they take up to about n times as long: the kill comes within that.
    let started = Instant::now();
    assert!(approve(&requests[n].1).status().unwrap().success());
    let typical = started.elapsed();
    let mut running: Vec<_> = requests[..n].iter().map(|(_, rid)| approve(rid).spawn().unwrap()).collect();
    let kill = Duration::from_micros(rng.below(typical.as_micros() as u64 * n as u64 + 1));
    std::thread::sleep(kill);
    gw.kill9();
    let acked: Vec<bool> = running.iter_mut().map(|c| c.wait().unwrap().success()).collect();

    let store = check_store_clean(&store_path(dir.path()));
    let mut landed = 0;
    for (i, (id, rid)) in requests[..n].iter().enumerate() {
        let state = store.request(rid, now_ms()).unwrap().expect("remembered").state;
        let paired = store.device(&id.device_id()).unwrap().is_some();
        assert_eq!(state == RequestState::Approved, paired, "request {i}: {state:?}, paired {paired}");
        if acked[i] {
            assert!(paired, "approval {i} acknowledged to the CLI, lost");
        } else {
            landed += usize::from(paired);
            assert!(paired || state == RequestState::Open, "request {i}: {state:?}");
        }
    }
    eprintln!(
        "devices approve (online) round {round}: gateway killed {kill:?} after {n} CLIs started; {} acknowledged and kept, \
         {landed} more committed unacknowledged",
        acked.iter().filter(|a| **a).count()
    );
    drop(store);
    tokio_run(restarts_and_serves(dir.path()));
}

#[test]
fn sigkill_during_the_first_start_and_its_migrations() {
    let mut rng = Rng::from_env("crash: first start (store creation, migrations)");
    // The time to listen, warm: kill delays are drawn from 0.5 to 2 × that
    // (the store is created and migrated late in the start).
    let typical = (0..3)
        .map(|_| {
            let dir = state_dir("{}\n");
            tokio_run(async {
                let started = Instant::now();
                drop(start_gateway(dir.path()).await);
                started.elapsed()
            })
        })
        .min()
        .unwrap();
    // What each kill left: no file, a file at version 0, a migrated one.
    let (mut none, mut empty, mut migrated) = (0, 0, 0);
    for _ in 0..rounds(NAMES) {
        let dir = state_dir("{}\n");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
        let kill = typical / 2 + delay(&mut rng, typical);
        let run = run_killed(dir.path(), &["gateway", "run", "--port", &port], kill);
        assert!(!run.acked, "the gateway does not exit by itself");
        let path = store_path(dir.path());
        if path.exists() {
            // Whatever the kill left, the next open finishes it: the ladder
            // is one transaction, so the file is at version 0 or the latest.
            let version: u32 = rusqlite::Connection::open(&path)
                .unwrap()
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            migrated += usize::from(version == clawgate::store::schema::SCHEMA_VERSION);
            empty += usize::from(version == 0);
            assert!(version == 0 || version == clawgate::store::schema::SCHEMA_VERSION, "version {version}");
            drop(SqliteStore::open(&path).expect("the store opens after a kill during its creation"));
            drop(check_store_clean(&path));
        } else {
            none += 1;
        }
        tokio_run(restarts_and_serves(dir.path()));
    }
    eprintln!(
        "first start: kills 0.5–2 × {typical:?} after spawn left {none} × no store, {empty} × an empty one, \
         {migrated} × a migrated one; every one opened clean"
    );
}

fn tokio_run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f)
}
