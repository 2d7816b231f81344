//! What only the PostgreSQL store has, against a real server
//! (store::pg::test_server): its schema version, another program's
//! database, digests in the tables, a lost connection, writers on several
//! connections at once.

use super::conformance::{dev, req, strings, PgDatabase, T0};
use super::pg::test_server;
use super::*;
use crate::secrets::SecretDigest;

fn raw(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

#[test]
fn an_empty_database_gets_the_schema_once() {
    let db = PgDatabase::new();
    let store = PgStore::open(&db.url).unwrap();
    assert_eq!(store.generation().unwrap(), 0);
    store.pair_silently(&req(1, Role::Operator, &[]), T0).unwrap();
    drop(store);
    let mut c = raw(&db.url);
    let v: i32 = c.query_one("SELECT version FROM clawgate_schema", &[]).unwrap().get(0);
    assert_eq!(v as u32, PG_SCHEMA_VERSION);
    // Opening again is a no-op migration; several at once take turns.
    let opened: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn({
                let url = db.url.clone();
                move || PgStore::open(&url).map(|s| s.generation().unwrap())
            })
        })
        .collect();
    for o in opened {
        assert_eq!(o.join().unwrap().unwrap(), 1);
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let db = PgDatabase::new();
    drop(PgStore::open(&db.url).unwrap());
    raw(&db.url).execute("UPDATE clawgate_schema SET version = version + 1", &[]).unwrap();
    let err = PgStore::open(&db.url).err().unwrap();
    assert_eq!(err.code(), "STORE_TOO_NEW");
    assert!(err.to_string().contains("upgrade clawgate"), "{err}");
}

#[test]
fn another_programs_database_is_refused_and_left_alone() {
    let db = PgDatabase::new();
    raw(&db.url).batch_execute("CREATE TABLE devices (serial TEXT)").unwrap();
    let err = PgStore::open(&db.url).err().unwrap();
    assert_eq!(err.code(), "STORE_FOREIGN", "{err}");
    let n: i64 =
        raw(&db.url).query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", &[]).unwrap().get(0);
    assert_eq!(n, 1);
}

#[test]
fn a_missing_database_is_an_error_not_empty() {
    let url = test_server::shared().url_of("no_such_database");
    let err = PgStore::open(&url).err().unwrap();
    assert!(err.is_store_failure(), "{err}");
    assert_eq!(err.code(), "STORE_UNREADABLE", "{err}");
}

#[test]
fn the_tables_hold_only_digests() {
    let db = PgDatabase::new();
    let s = PgStore::open(&db.url).unwrap();
    let (id, _) = dev(1);
    s.pair_silently(&req(1, Role::Operator, &["operator.admin"]), T0).unwrap();
    let token = s.issue_token(&id, Role::Operator, &strings(&["operator.admin"]), T0).unwrap();
    let service = s.add_service("cron", Role::Operator, &[], T0).unwrap();
    let mut c = raw(&db.url);
    let dump: String = c
        .query_one(
            "SELECT (SELECT string_agg(t::text, ',') FROM device_tokens t) || \
                    (SELECT string_agg(p::text, ',') FROM service_principals p)",
            &[],
        )
        .unwrap()
        .get(0);
    let secret = parse_service_token(&service.token).unwrap().1;
    assert!(!dump.contains(&token) && !dump.contains(secret), "a plaintext token is in a table");
    let digest: Vec<u8> = c.query_one("SELECT token_sha256 FROM device_tokens", &[]).unwrap().get(0);
    assert_eq!(digest, SecretDigest::of(token.as_bytes()).as_bytes().to_vec());
}

#[test]
fn a_lost_connection_is_unavailable_then_recovers() {
    let db = PgDatabase::new();
    let s = PgStore::open(&db.url).unwrap();
    s.pair_silently(&req(1, Role::Operator, &[]), T0).unwrap();
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    test_server::shared().cut_connections(&name);
    let err = s.list_devices().unwrap_err();
    assert_eq!(err.code(), "STORE_UNAVAILABLE", "{err}");
    assert!(err.is_store_failure());
    assert!(!err.to_string().contains("password"), "{err}");
    // The next operation connects again.
    assert_eq!(s.list_devices().unwrap().len(), 1);
}

#[test]
fn one_request_is_approved_once_across_connections() {
    let db = PgDatabase::new();
    let first = PgStore::open(&db.url).unwrap();
    let id = first.request_pairing(&req(1, Role::Operator, &["operator.read"]), T0).unwrap();
    let id = id.request_id().to_owned();
    let approvals: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            let id = id.clone();
            std::thread::spawn(move || PgStore::open(&url).unwrap().approve(&id, ApprovedVia::Owner, T0 + 1))
        })
        .collect();
    let results: Vec<_> = approvals.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.code(), "PAIRING_RESOLVED");
    }
    // The same (device, role) asking from several connections at once
    // leaves one open request.
    let asks: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                PgStore::open(&url)
                    .unwrap()
                    .request_pairing(&req(2, Role::Node, &[]), T0 + 2)
                    .map(|o| o.request_id().to_owned())
            })
        })
        .collect();
    let ids: std::collections::HashSet<String> = asks.into_iter().map(|h| h.join().unwrap().unwrap()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(first.open_requests(T0 + 2).unwrap().len(), 1);
}

#[test]
fn a_decision_is_stale_when_another_instance_changed_the_device() {
    let db = PgDatabase::new();
    let a = PgStore::open(&db.url).unwrap();
    let b = PgStore::open(&db.url).unwrap();
    let (id, _) = dev(1);
    a.pair_silently(&req(1, Role::Operator, &["operator.read"]), T0).unwrap();
    a.issue_token(&id, Role::Operator, &strings(&["operator.read"]), T0).unwrap();
    let view = a.view(&id).unwrap();
    b.revoke_token(&id, Role::Operator, T0 + 1).unwrap();
    let write =
        AdmissionWrite::Paired { device_id: id.clone(), role: Role::Operator, remote_ip: None, issue_token: true };
    let err = a.apply_admission(&view, &write, T0 + 2).unwrap_err();
    assert_eq!(err.code(), "STORE_STALE");
    // Another device's change does not make it stale.
    let view = a.view(&id).unwrap();
    b.pair_silently(&req(2, Role::Node, &[]), T0 + 3).unwrap();
    assert!(a.apply_admission(&view, &write, T0 + 4).is_ok());
}

#[test]
fn every_change_is_announced_to_listeners_and_own_changes_to_the_writer() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let db = PgDatabase::new();
    let writer = PgStore::open(&db.url).unwrap();
    let listener = PgStore::open(&db.url).unwrap().change_listener().expect("PostgreSQL has notifications");
    let mut own = writer.own_commits().expect("PostgreSQL announces its own commits");
    let (heard, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let listening = std::thread::spawn({
        let (heard, stop) = (heard.clone(), stop.clone());
        move || {
            let changed = || {
                heard.fetch_add(1, Ordering::SeqCst);
            };
            listener.run(&changed, &|| stop.load(Ordering::SeqCst));
        }
    });
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while heard.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "heard {} of {n}", heard.load(Ordering::SeqCst));
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // One wake-up on connecting: what was committed before was not heard.
    wait_for(1);
    writer.pair_silently(&req(1, Role::Operator, &[]), T0).unwrap();
    wait_for(2);
    assert!(own.has_changed().unwrap());
    assert_eq!(*own.borrow_and_update(), writer.generation().unwrap());
    // Bookkeeping is no change: neither is told.
    writer.touch_last_seen(&dev(1).0, None, T0 + 1).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(heard.load(Ordering::SeqCst), 2);
    assert!(!own.has_changed().unwrap());
    // A cut connection is opened again, with a wake-up for what it missed.
    test_server::shared().cut_connections(db.url.rsplit('/').next().unwrap());
    wait_for(3);
    stop.store(true, Ordering::SeqCst);
    listening.join().unwrap();
}
