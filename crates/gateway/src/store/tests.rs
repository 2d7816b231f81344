//! The pairing store on real temporary files. One file over 500 lines on
//! purpose: every store operation's behaviour against SQLite, sharing one set
//! of fixtures; split it when a group of operations grows its own fixtures.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::schema::{APPLICATION_ID, SCHEMA_VERSION};
use super::*;
use crate::secrets::SecretDigest;

const MIN: u64 = 60 * 1000;
const T0: u64 = 1_700_000_000_000;

struct TempStore {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl TempStore {
    fn new() -> TempStore {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairing.sqlite");
        TempStore { _dir: dir, path }
    }

    fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.path).unwrap()
    }

    fn open_err(&self) -> StoreError {
        match SqliteStore::open(&self.path) {
            Ok(_) => panic!("opening {} should fail", self.path.display()),
            Err(e) => e,
        }
    }

    /// Write `bytes` as the store file, private like a real one.
    fn write_file(&self, bytes: &[u8]) {
        fs::write(&self.path, bytes).unwrap();
        fs::set_permissions(&self.path, fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// Every byte of the store on disk, WAL included.
    fn all_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for suffix in ["", "-wal"] {
            let mut p = self.path.as_os_str().to_owned();
            p.push(suffix);
            if let Ok(b) = fs::read(Path::new(&p)) {
                out.extend(b);
            }
        }
        out
    }
}

/// A device: id = hex(SHA-256(n)), key = a stand-in string.
fn dev(n: u8) -> (String, String) {
    let id: String = SecretDigest::of(&[n]).as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    (id, format!("key-{n}"))
}

fn req(n: u8, role: Role, scopes: &[&str]) -> NewRequest {
    let (id, key) = dev(n);
    let mut r = NewRequest::new(id, key, role, scopes);
    r.remote_ip = Some("203.0.113.7".to_owned());
    r.display_name = Some(format!("device {n}"));
    r
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn created(o: RequestOutcome) -> String {
    match o {
        RequestOutcome::Created { request_id } => request_id,
        other => panic!("expected Created, got {other:?}"),
    }
}

// ---- the file -------------------------------------------------------------

#[test]
fn migrates_an_empty_file_to_the_current_schema() {
    let t = TempStore::new();
    let store = t.open();
    assert_eq!(store.generation().unwrap(), 0);
    assert!(store.list_devices().unwrap().is_empty());
    store.pair_silently(&req(1, Role::Operator, &[]), T0).unwrap();
    // SQLite gives the WAL and shared-memory files the database's mode.
    for suffix in ["-wal", "-shm"] {
        let mut p = t.path.as_os_str().to_owned();
        p.push(suffix);
        let mode = fs::metadata(Path::new(&p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{suffix}");
    }
    drop(store);

    let mode = fs::metadata(&t.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let raw = rusqlite::Connection::open(&t.path).unwrap();
    let v: u32 = raw.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let app: i32 = raw.pragma_query_value(None, "application_id", |r| r.get(0)).unwrap();
    assert_eq!(app, APPLICATION_ID);
    let journal: String = raw.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(journal, "wal");
    let tables: Vec<String> = raw
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        [
            "device_tokens",
            "devices",
            "meta",
            "pairing_rejections",
            "pending_requests",
            "relay_identities",
            "service_principals"
        ]
    );
    drop(raw);

    // Opening again is a no-op migration.
    let store = t.open();
    assert_eq!(store.generation().unwrap(), 1);
    assert_eq!(store.list_devices().unwrap().len(), 1);
}

#[test]
fn pragmas_are_set_on_open() {
    let t = TempStore::new();
    let store = t.open();
    let conn = store.conn.lock().unwrap();
    let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
    let fk: i64 = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();
    assert_eq!(fk, 1);
    let busy: i64 = conn.pragma_query_value(None, "busy_timeout", |r| r.get(0)).unwrap();
    assert_eq!(busy, 5000);
}

#[test]
fn reopening_keeps_everything() {
    let t = TempStore::new();
    let store = t.open();
    let (id, _) = dev(1);
    store.pair_silently(&req(1, Role::Operator, &["operator.read"]), T0).unwrap();
    let token = store.issue_token(&id, Role::Operator, &strings(&["operator.read"]), T0).unwrap();
    let pending = created(store.request_pairing(&req(2, Role::Node, &[]), T0).unwrap());
    let generation = store.generation().unwrap();
    drop(store);

    let store = t.open();
    let device = store.device(&id).unwrap().unwrap();
    assert_eq!(device.approved_scopes, ["operator.read"]);
    assert_eq!(device.approved_via, ApprovedVia::Silent);
    assert_eq!(
        store.verify_token(&id, Role::Operator, &token, T0).unwrap(),
        TokenCheck::Valid { scopes: strings(&["operator.read"]), issued_at_ms: T0 }
    );
    assert!(store.request(&pending, T0).unwrap().unwrap().is_open());
    assert_eq!(store.generation().unwrap(), generation);
}

#[test]
fn garbage_is_corrupt_not_empty() {
    let t = TempStore::new();
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 13) as u8).collect();
    t.write_file(&garbage);
    let err = t.open_err();
    assert_eq!(err.code(), "STORE_CORRUPT", "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&t.path.display().to_string()), "{msg}");
    assert!(msg.contains("restore a backup"), "{msg}");
    // The file was left as it was.
    assert_eq!(fs::read(&t.path).unwrap(), garbage);

    t.write_file(b"this is not a database, it is a text file\n");
    assert_eq!(t.open_err().code(), "STORE_CORRUPT");
}

#[test]
fn damaged_pages_are_corrupt() {
    let t = TempStore::new();
    let store = t.open();
    for n in 0..40 {
        store.pair_silently(&req(n, Role::Operator, &["operator.read"]), T0).unwrap();
    }
    drop(store); // the last close checkpoints the WAL into the file
    let mut bytes = fs::read(&t.path).unwrap();
    assert!(bytes.len() >= 3 * 4096, "{}", bytes.len());
    for (i, b) in bytes[4096..3 * 4096].iter_mut().enumerate() {
        *b = (i * 31 + 7) as u8;
    }
    t.write_file(&bytes);
    let err = t.open_err();
    assert_eq!(err.code(), "STORE_CORRUPT", "{err}");
    assert!(err.to_string().contains(&t.path.display().to_string()));
}

#[test]
fn a_newer_schema_is_refused() {
    let t = TempStore::new();
    drop(t.open());
    let raw = rusqlite::Connection::open(&t.path).unwrap();
    raw.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
    drop(raw);
    let err = t.open_err();
    assert_eq!(err.code(), "STORE_TOO_NEW");
    let msg = err.to_string();
    assert!(msg.contains(&t.path.display().to_string()), "{msg}");
    assert!(msg.contains("upgrade clawgate"), "{msg}");
}

#[test]
fn another_programs_database_is_refused() {
    let t = TempStore::new();
    let raw = rusqlite::Connection::open(&t.path).unwrap();
    raw.execute_batch("CREATE TABLE notes (body TEXT);").unwrap();
    drop(raw);
    fs::set_permissions(&t.path, fs::Permissions::from_mode(0o600)).unwrap();
    let err = t.open_err();
    assert_eq!(err.code(), "STORE_FOREIGN", "{err}");
    // Untouched: still no clawgate tables.
    let raw = rusqlite::Connection::open(&t.path).unwrap();
    let n: i64 = raw.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_file_open_to_others_is_refused() {
    let t = TempStore::new();
    drop(t.open());
    fs::set_permissions(&t.path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = t.open_err();
    assert_eq!(err.code(), "STORE_UNSAFE");
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn a_directory_or_missing_parent_is_unreadable() {
    let t = TempStore::new();
    fs::create_dir(&t.path).unwrap();
    assert_eq!(t.open_err().code(), "STORE_UNREADABLE");
    let missing = t.path.join("no/such/dir/pairing.sqlite");
    let err = SqliteStore::open(&missing).err().unwrap();
    assert_eq!(err.code(), "STORE_UNREADABLE");
}

#[test]
fn data_version_sees_other_processes() {
    let t = TempStore::new();
    let gateway = t.open();
    let cli = t.open();
    let before = gateway.data_version().unwrap();
    assert_eq!(gateway.data_version().unwrap(), before);
    cli.pair_silently(&req(1, Role::Operator, &[]), T0).unwrap();
    assert_ne!(gateway.data_version().unwrap(), before);
    // The generation lives in the file: the gateway sees the CLI's bump.
    assert_eq!(gateway.generation().unwrap(), cli.generation().unwrap());
    assert!(gateway.generation().unwrap() > 0);
}

// ---- pending requests ------------------------------------------------------

#[test]
fn retries_keep_the_id_and_broader_ones_supersede() {
    let t = TempStore::new();
    let s = t.open();
    let asked = req(1, Role::Operator, &["operator.write"]);
    let id = created(s.request_pairing(&asked, T0).unwrap());
    assert_eq!(id.len(), 36);

    // The same again, and a narrower one: refreshed, same id.
    assert_eq!(s.request_pairing(&asked, T0 + MIN).unwrap(), RequestOutcome::Refreshed { request_id: id.clone() });
    let narrower = req(1, Role::Operator, &["operator.read", "operator.talk"]);
    assert_eq!(
        s.request_pairing(&narrower, T0 + 2 * MIN).unwrap(),
        RequestOutcome::Refreshed { request_id: id.clone() }
    );
    let r = s.request(&id, T0 + 2 * MIN).unwrap().unwrap();
    assert_eq!(r.refreshed_at_ms, T0 + 2 * MIN);
    assert_eq!(r.created_at_ms, T0);
    assert_eq!(r.scopes, ["operator.write"], "scopes never change under an id");
    assert_eq!(s.open_requests(T0 + 2 * MIN).unwrap().len(), 1);

    // Broader: a new id; the old one answers "superseded by".
    let broader = req(1, Role::Operator, &["operator.admin"]);
    let RequestOutcome::Superseded { old, new } = s.request_pairing(&broader, T0 + 3 * MIN).unwrap() else {
        panic!("expected Superseded")
    };
    assert_eq!(old, id);
    assert_ne!(new, id);
    let old_r = s.request(&id, T0 + 3 * MIN).unwrap().unwrap();
    assert_eq!(old_r.state, RequestState::Superseded { by: new.clone() });
    let err = s.approve(&id, ApprovedVia::Owner, T0 + 3 * MIN).unwrap_err();
    assert_eq!(err.code(), "PAIRING_SUPERSEDED");
    assert!(err.to_string().contains(&new), "{err}");
    let open = s.open_requests(T0 + 3 * MIN).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].request_id, new);
    assert_eq!(open[0].scopes, ["operator.admin"]);

    // Another role is another request.
    let node = created(s.request_pairing(&req(1, Role::Node, &[]), T0 + 3 * MIN).unwrap());
    assert_ne!(node, new);
    assert_eq!(s.open_requests(T0 + 3 * MIN).unwrap().len(), 2);
}

#[test]
fn a_chain_of_supersessions_points_at_the_newest() {
    let s = SqliteStore::open_in_memory().unwrap();
    let a = created(s.request_pairing(&req(1, Role::Operator, &["operator.read"]), T0).unwrap());
    let b = s.request_pairing(&req(1, Role::Operator, &["operator.write"]), T0).unwrap();
    let c = s.request_pairing(&req(1, Role::Operator, &["operator.admin"]), T0).unwrap();
    assert_ne!(b.request_id(), c.request_id());
    match s.approve(&a, ApprovedVia::Owner, T0).unwrap_err() {
        StoreError::Superseded { by, .. } => assert_eq!(by, c.request_id()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn requests_expire_five_minutes_after_the_last_refresh() {
    let t = TempStore::new();
    let s = t.open();
    let asked = req(1, Role::Operator, &["operator.read"]);
    let id = created(s.request_pairing(&asked, T0).unwrap());
    // A refresh at +4 min pushes expiry to +9 min.
    s.request_pairing(&asked, T0 + 4 * MIN).unwrap();
    assert!(s.request(&id, T0 + 9 * MIN - 1).unwrap().unwrap().is_open());
    assert_eq!(s.open_requests(T0 + 9 * MIN - 1).unwrap().len(), 1);

    // Read as expired before any mutation marks it.
    let r = s.request(&id, T0 + 9 * MIN).unwrap().unwrap();
    assert_eq!(r.state, RequestState::Expired);
    assert!(s.open_requests(T0 + 9 * MIN).unwrap().is_empty());
    let err = s.approve(&id, ApprovedVia::Owner, T0 + 9 * MIN).unwrap_err();
    assert_eq!(err.code(), "PAIRING_EXPIRED");

    // A retry after expiry opens a new request.
    let again = created(s.request_pairing(&asked, T0 + 10 * MIN).unwrap());
    assert_ne!(again, id);
    assert_eq!(s.request(&id, T0 + 10 * MIN).unwrap().unwrap().state, RequestState::Expired);

    // Resolved requests are forgotten after a day.
    assert!(s.request(&id, T0 + 10 * MIN + RESOLVED_RETENTION_MS).unwrap().is_some());
    s.request_pairing(&req(9, Role::Node, &[]), T0 + 10 * MIN + RESOLVED_RETENTION_MS).unwrap();
    assert!(s.request(&id, T0 + 10 * MIN + RESOLVED_RETENTION_MS).unwrap().is_none());
}

#[test]
fn open_requests_are_capped_per_ip_and_in_all() {
    let t = TempStore::new();
    let s = t.open();
    for n in 0..10 {
        s.request_pairing(&req(n, Role::Operator, &[]), T0).unwrap();
    }
    let err = s.request_pairing(&req(10, Role::Operator, &[]), T0).unwrap_err();
    assert_eq!(err.code(), "PAIRING_CAP");
    assert!(matches!(err, StoreError::TooManyPending(PendingCap::PerIp { limit: 10, .. })));
    // A retry of an existing request is not a new one: still fine.
    assert!(matches!(s.request_pairing(&req(3, Role::Operator, &[]), T0).unwrap(), RequestOutcome::Refreshed { .. }));
    // And neither is a broader one (supersession replaces, it does not add).
    assert!(matches!(
        s.request_pairing(&req(3, Role::Operator, &["operator.admin"]), T0).unwrap(),
        RequestOutcome::Superseded { .. }
    ));

    // Other IPs fill the total.
    let mut n: u8 = 10;
    for ip in 0..9 {
        for _ in 0..10 {
            let mut r = req(n, Role::Operator, &[]);
            r.remote_ip = Some(format!("198.51.100.{ip}"));
            s.request_pairing(&r, T0).unwrap();
            n += 1;
        }
    }
    assert_eq!(s.open_requests(T0).unwrap().len(), 100);
    let mut r = req(n, Role::Operator, &[]);
    r.remote_ip = Some("192.0.2.1".to_owned());
    let err = s.request_pairing(&r, T0).unwrap_err();
    assert!(matches!(err, StoreError::TooManyPending(PendingCap::Total { limit: 100 })));
    assert_eq!(err.code(), "PAIRING_CAP");

    // Expiry frees the caps.
    assert!(matches!(s.request_pairing(&r, T0 + 5 * MIN).unwrap(), RequestOutcome::Created { .. }));
}

#[test]
fn rejection_starts_a_ten_minute_cooldown() {
    let t = TempStore::new();
    let s = t.open();
    let asked = req(1, Role::Operator, &["operator.read"]);
    let id = created(s.request_pairing(&asked, T0).unwrap());
    let rejection = s.reject(&id, T0 + MIN).unwrap();
    assert_eq!(rejection.cooldown_until_ms, T0 + 11 * MIN);
    assert_eq!(rejection.request.state, RequestState::Rejected);
    assert_eq!(s.request(&id, T0 + MIN).unwrap().unwrap().state, RequestState::Rejected);

    let err = s.request_pairing(&asked, T0 + 2 * MIN).unwrap_err();
    assert_eq!(err.code(), "PAIRING_REJECTED");
    assert!(matches!(
        err,
        StoreError::PairingRejected { until_ms, .. } if until_ms == T0 + 11 * MIN
    ));
    assert!(s.open_requests(T0 + 2 * MIN).unwrap().is_empty());
    // Only that (device, role): the node role may still ask.
    s.request_pairing(&req(1, Role::Node, &[]), T0 + 2 * MIN).unwrap();
    // Approving or rejecting again says it is resolved.
    assert_eq!(s.approve(&id, ApprovedVia::Owner, T0 + 2 * MIN).unwrap_err().code(), "PAIRING_RESOLVED");
    assert_eq!(s.reject(&id, T0 + 2 * MIN).unwrap_err().code(), "PAIRING_RESOLVED");

    assert_eq!(s.request_pairing(&asked, T0 + 11 * MIN - 1).unwrap_err().code(), "PAIRING_REJECTED");
    assert!(matches!(s.request_pairing(&asked, T0 + 11 * MIN).unwrap(), RequestOutcome::Created { .. }));
}

#[test]
fn approval_merges_roles_and_scopes() {
    let t = TempStore::new();
    let s = t.open();
    let (id, key) = dev(1);
    let mut first = req(1, Role::Operator, &["operator.read", " operator.read"]);
    first.platform = Some("linux".to_owned());
    let r1 = created(s.request_pairing(&first, T0).unwrap());
    let a = s.approve(&r1, ApprovedVia::Owner, T0 + 1).unwrap();
    assert_eq!(a.request.request_id, r1);
    assert_eq!(a.request.state, RequestState::Approved);
    let d = a.device;
    assert_eq!(d.device_id, id);
    assert_eq!(d.public_key, key);
    assert_eq!(d.roles, [Role::Operator]);
    assert_eq!(d.approved_scopes, ["operator.read"]);
    assert_eq!(d.approved_via, ApprovedVia::Owner);
    assert_eq!(d.created_at_ms, T0 + 1);
    assert_eq!(d.platform.as_deref(), Some("linux"));
    assert_eq!(d.remote_ip.as_deref(), Some("203.0.113.7"));

    let r2 =
        created(s.request_pairing(&req(1, Role::Operator, &["operator.write", "operator.pairing"]), T0 + 2).unwrap());
    let d = s.approve(&r2, ApprovedVia::Cli, T0 + 3).unwrap().device;
    assert_eq!(d.approved_scopes, ["operator.pairing", "operator.read", "operator.write"]);
    assert_eq!(d.approved_via, ApprovedVia::Cli);
    assert_eq!(d.created_at_ms, T0 + 1);
    assert_eq!(d.approved_at_ms, T0 + 3);
    assert_eq!(d.platform.as_deref(), Some("linux"), "kept when not re-sent");

    let r3 = created(s.request_pairing(&req(1, Role::Node, &[]), T0 + 4).unwrap());
    let d = s.approve_device(&id, ApprovedVia::CliOffline, T0 + 5).unwrap().device;
    assert_eq!(d.roles, [Role::Operator, Role::Node]);
    assert_eq!(d.approved_via, ApprovedVia::CliOffline);
    assert_eq!(s.request(&r3, T0 + 5).unwrap().unwrap().state, RequestState::Approved);
    assert_eq!(s.list_devices().unwrap(), [d]);
}

#[test]
fn approval_errors_are_specific() {
    let s = SqliteStore::open_in_memory().unwrap();
    let err = s.approve("00000000-0000-4000-8000-000000000000", ApprovedVia::Owner, T0).unwrap_err();
    assert_eq!(err.code(), "PAIRING_UNKNOWN_REQUEST");
    let id = created(s.request_pairing(&req(1, Role::Operator, &[]), T0).unwrap());
    s.approve(&id, ApprovedVia::Owner, T0).unwrap();
    assert_eq!(s.approve(&id, ApprovedVia::Owner, T0).unwrap_err().code(), "PAIRING_RESOLVED");
    let (dev_id, _) = dev(1);
    assert_eq!(s.approve_device(&dev_id, ApprovedVia::Owner, T0).unwrap_err().code(), "PAIRING_NONE_PENDING");
}

#[test]
fn approve_latest_refuses_when_ambiguous() {
    let t = TempStore::new();
    let s = t.open();
    assert_eq!(s.approve_latest(ApprovedVia::Cli, T0, LATEST_WINDOW_MS).unwrap_err().code(), "PAIRING_NONE_PENDING");
    let a = created(s.request_pairing(&req(1, Role::Operator, &[]), T0).unwrap());
    let b = created(s.request_pairing(&req(2, Role::Operator, &[]), T0 + MIN).unwrap());
    let err = s.approve_latest(ApprovedVia::Cli, T0 + 2 * MIN, LATEST_WINDOW_MS).unwrap_err();
    assert_eq!(err.code(), "PAIRING_AMBIGUOUS");
    match &err {
        StoreError::AmbiguousLatest { ids } => assert_eq!(ids, &[a.clone(), b.clone()]),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(&a) && err.to_string().contains(&b));
    // Nothing was approved.
    assert!(s.list_devices().unwrap().is_empty());

    // With a window that holds only the newer one, it is approved.
    let approval = s.approve_latest(ApprovedVia::Cli, T0 + 2 * MIN, MIN).unwrap();
    assert_eq!(approval.request.request_id, b);
    assert_eq!(approval.device.device_id, dev(2).0);
}

#[test]
fn approve_device_refuses_several_roles() {
    let s = SqliteStore::open_in_memory().unwrap();
    let (id, _) = dev(1);
    let a = created(s.request_pairing(&req(1, Role::Operator, &[]), T0).unwrap());
    let b = created(s.request_pairing(&req(1, Role::Node, &[]), T0).unwrap());
    let err = s.approve_device(&id, ApprovedVia::Cli, T0).unwrap_err();
    assert_eq!(err.code(), "PAIRING_AMBIGUOUS");
    let msg = err.to_string();
    assert!(msg.contains(&a) && msg.contains(&b), "{msg}");
}

#[test]
fn approving_never_creates_a_request() {
    let t = TempStore::new();
    let s = t.open();
    let id = created(s.request_pairing(&req(1, Role::Operator, &["operator.read"]), T0).unwrap());
    let other = created(s.request_pairing(&req(2, Role::Node, &[]), T0).unwrap());
    let count = |s: &SqliteStore| -> i64 {
        s.conn.lock().unwrap().query_row("SELECT count(*) FROM pending_requests", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(count(&s), 2);
    s.approve(&id, ApprovedVia::Owner, T0 + 1).unwrap();
    s.approve_device(&dev(2).0, ApprovedVia::Owner, T0 + 1).unwrap();
    let _ = s.approve_latest(ApprovedVia::Owner, T0 + 2, LATEST_WINDOW_MS);
    let _ = s.approve(&other, ApprovedVia::Owner, T0 + 2);
    assert_eq!(count(&s), 2);
    assert!(s.open_requests(T0 + 2).unwrap().is_empty());
}

#[test]
fn silent_pairing_closes_what_it_covers() {
    let s = SqliteStore::open_in_memory().unwrap();
    let (id, _) = dev(1);
    let narrow = created(s.request_pairing(&req(1, Role::Operator, &["operator.read"]), T0).unwrap());
    let d = s.pair_silently(&req(1, Role::Operator, &["operator.write"]), T0 + 1).unwrap();
    assert_eq!(d.approved_via, ApprovedVia::Silent);
    assert_eq!(d.approved_scopes, ["operator.write"]);
    assert_eq!(s.request(&narrow, T0 + 1).unwrap().unwrap().state, RequestState::Approved);

    // An open request for more than the silent grant stays for the owner.
    let broad = created(s.request_pairing(&req(1, Role::Node, &[]), T0 + 2).unwrap());
    let admin = created(s.request_pairing(&req(1, Role::Operator, &["operator.admin"]), T0 + 2).unwrap());
    s.pair_silently(&req(1, Role::Operator, &["operator.read"]), T0 + 3).unwrap();
    assert!(s.request(&admin, T0 + 3).unwrap().unwrap().is_open());
    assert!(s.request(&broad, T0 + 3).unwrap().unwrap().is_open());
    assert_eq!(s.device(&id).unwrap().unwrap().roles, [Role::Operator]);
}

#[test]
fn a_new_key_under_the_same_id_replaces_the_record_and_revokes_tokens() {
    let s = SqliteStore::open_in_memory().unwrap();
    let (id, _) = dev(1);
    s.pair_silently(&req(1, Role::Operator, &["operator.admin"]), T0).unwrap();
    s.rename_device(&id, "my laptop", T0).unwrap();
    let token = s.issue_token(&id, Role::Operator, &strings(&["operator.admin"]), T0).unwrap();
    let mut other_key = req(1, Role::Operator, &["operator.read"]);
    other_key.public_key = "another-key".to_owned();
    let r = created(s.request_pairing(&other_key, T0 + 1).unwrap());
    let d = s.approve(&r, ApprovedVia::Owner, T0 + 2).unwrap().device;
    assert_eq!(d.public_key, "another-key");
    assert_eq!(d.approved_scopes, ["operator.read"], "not merged");
    assert_eq!(d.label, None);
    assert_eq!(d.created_at_ms, T0 + 2);
    assert_eq!(s.verify_token(&id, Role::Operator, &token, T0 + 3).unwrap(), TokenCheck::Revoked);
}

#[test]
fn remove_and_rename() {
    let s = SqliteStore::open_in_memory().unwrap();
    let (id, _) = dev(1);
    assert_eq!(s.rename_device(&id, "x", T0).unwrap_err().code(), "DEVICE_UNKNOWN");
    s.pair_silently(&req(1, Role::Operator, &[]), T0).unwrap();
    let d = s.rename_device(&id, "  kitchen tablet ", T0).unwrap();
    assert_eq!(d.label.as_deref(), Some("kitchen tablet"));
    assert_eq!(d.display_name.as_deref(), Some("device 1"));
    assert_eq!(s.rename_device(&id, &"x".repeat(65), T0).unwrap_err().code(), "STORE_INVALID_INPUT");
    assert_eq!(s.rename_device(&id, "", T0).unwrap().label, None);

    let token = s.issue_token(&id, Role::Operator, &[], T0).unwrap();
    let removed = s.remove_device(&id, T0).unwrap();
    assert_eq!(removed.device_id, id);
    assert!(s.device(&id).unwrap().is_none());
    assert!(s.tokens(&id).unwrap().is_empty());
    assert_eq!(s.verify_token(&id, Role::Operator, &token, T0).unwrap(), TokenCheck::DeviceNotPaired);
    assert_eq!(s.remove_device(&id, T0).unwrap_err().code(), "DEVICE_UNKNOWN");
}

#[test]
fn touch_last_seen_is_bookkeeping() {
    let s = SqliteStore::open_in_memory().unwrap();
    let (id, _) = dev(1);
    assert!(!s.touch_last_seen(&id, Some("::1"), T0).unwrap());
    s.pair_silently(&req(1, Role::Operator, &[]), T0).unwrap();
    let g = s.generation().unwrap();
    assert!(s.touch_last_seen(&id, Some("::1"), T0 + 5).unwrap());
    let d = s.device(&id).unwrap().unwrap();
    assert_eq!(d.last_seen_at_ms, Some(T0 + 5));
    assert_eq!(d.remote_ip.as_deref(), Some("::1"));
    assert_eq!(s.generation().unwrap(), g);
}

#[test]
fn bad_input_is_refused() {
    let s = SqliteStore::open_in_memory().unwrap();
    let mut r = req(1, Role::Operator, &[]);
    r.device_id = r.device_id.to_uppercase();
    assert_eq!(s.request_pairing(&r, T0).unwrap_err().code(), "STORE_INVALID_INPUT");
    let mut r = req(1, Role::Operator, &[]);
    r.public_key = String::new();
    assert_eq!(s.pair_silently(&r, T0).unwrap_err().code(), "STORE_INVALID_INPUT");
    assert_eq!(s.request_pairing(&req(1, Role::Operator, &[]), u64::MAX).unwrap_err().code(), "STORE_INVALID_INPUT");
    assert_eq!(s.generation().unwrap(), 0);
}

// ---- tokens ----------------------------------------------------------------

#[test]
fn tokens_issue_verify_rotate_revoke() {
    let t = TempStore::new();
    let s = t.open();
    let (id, _) = dev(1);
    assert_eq!(s.issue_token(&id, Role::Operator, &[], T0).unwrap_err().code(), "DEVICE_UNKNOWN");
    assert_eq!(s.verify_token(&id, Role::Operator, "x", T0).unwrap(), TokenCheck::DeviceNotPaired);
    s.pair_silently(&req(1, Role::Operator, &["operator.write"]), T0).unwrap();
    assert_eq!(s.verify_token(&id, Role::Operator, "x", T0).unwrap(), TokenCheck::Missing);
    assert_eq!(s.issue_token(&id, Role::Node, &[], T0).unwrap_err().code(), "DEVICE_ROLE_NOT_APPROVED");
    let err = s.issue_token(&id, Role::Operator, &strings(&["operator.read", "operator.admin"]), T0).unwrap_err();
    assert_eq!(err.code(), "DEVICE_SCOPES_NOT_APPROVED");
    assert!(matches!(&err, StoreError::ScopesNotApproved { missing, .. } if missing == &["operator.admin"]));

    let first = s.issue_token(&id, Role::Operator, &strings(&["operator.read"]), T0).unwrap();
    assert_eq!(first.len(), 43);
    assert!(first.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(
        s.verify_token(&id, Role::Operator, &first, T0 + 1).unwrap(),
        TokenCheck::Valid { scopes: strings(&["operator.read"]), issued_at_ms: T0 }
    );
    let info = &s.tokens(&id).unwrap()[0];
    assert_eq!(info.last_used_at_ms, Some(T0 + 1));
    assert_eq!(info.created_at_ms, T0);
    assert_eq!(info.rotated_at_ms, None);
    assert_eq!(s.verify_token(&id, Role::Operator, "not-the-token", T0).unwrap(), TokenCheck::Mismatch);
    assert_eq!(s.verify_token(&id, Role::Node, &first, T0).unwrap(), TokenCheck::Missing);

    // Issuing another never invalidates the first: both verify.
    let second = s.issue_token(&id, Role::Operator, &strings(&["operator.write"]), T0 + 2).unwrap();
    assert_ne!(first, second);
    assert!(matches!(s.verify_token(&id, Role::Operator, &first, T0 + 3).unwrap(), TokenCheck::Valid { .. }));
    assert_eq!(
        s.verify_token(&id, Role::Operator, &second, T0 + 3).unwrap(),
        TokenCheck::Valid { scopes: strings(&["operator.write"]), issued_at_ms: T0 + 2 }
    );
    assert_eq!(s.tokens(&id).unwrap().len(), 2);

    // Rotation ends both and mints one.
    let third = s.rotate_token(&id, Role::Operator, &strings(&["operator.read"]), T0 + 4).unwrap();
    assert_eq!(s.verify_token(&id, Role::Operator, &first, T0 + 5).unwrap(), TokenCheck::Revoked);
    assert_eq!(s.verify_token(&id, Role::Operator, &second, T0 + 5).unwrap(), TokenCheck::Revoked);
    assert!(matches!(s.verify_token(&id, Role::Operator, &third, T0 + 5).unwrap(), TokenCheck::Valid { .. }));
    let info = &s.tokens(&id).unwrap()[0];
    assert_eq!((info.rotated_at_ms, info.issued_at_ms(), info.is_revoked()), (Some(T0 + 4), T0 + 4, false));

    // Revocation ends every live one.
    let fourth = s.issue_token(&id, Role::Operator, &[], T0 + 6).unwrap();
    assert!(s.revoke_token(&id, Role::Operator, T0 + 7).unwrap());
    assert!(!s.revoke_token(&id, Role::Operator, T0 + 8).unwrap());
    for t in [&third, &fourth] {
        assert_eq!(s.verify_token(&id, Role::Operator, t, T0 + 9).unwrap(), TokenCheck::Revoked);
    }
    assert_eq!(s.verify_token(&id, Role::Operator, "guess", T0 + 9).unwrap(), TokenCheck::Mismatch);
    assert!(s.tokens(&id).unwrap().iter().all(|t| t.is_revoked()));
    assert_eq!(s.revoke_token(&id, Role::Node, T0).unwrap_err().code(), "DEVICE_TOKEN_MISSING");

    // Reissuing after a revoke gives a live token again.
    let fifth = s.issue_token(&id, Role::Operator, &[], T0 + 10).unwrap();
    assert!(matches!(s.verify_token(&id, Role::Operator, &fifth, T0 + 11).unwrap(), TokenCheck::Valid { .. }));
}

#[test]
fn a_v4_token_survives_the_move_to_several_tokens_per_role() {
    let t = TempStore::new();
    let (id, _) = dev(1);
    {
        let raw = rusqlite::Connection::open(&t.path).unwrap();
        raw.pragma_update(None, "application_id", APPLICATION_ID).unwrap();
        for (i, step) in schema::MIGRATIONS[..4].iter().enumerate() {
            raw.execute_batch(step).unwrap();
            raw.pragma_update(None, "user_version", i as i64 + 1).unwrap();
        }
        raw.execute(
            "INSERT INTO devices (device_id, public_key, roles, approved_scopes, approved_via, created_at_ms,
                 approved_at_ms) VALUES (?1, 'k', '[\"operator\"]', '[\"operator.read\"]', 'silent', 1, 1)",
            [&id],
        )
        .unwrap();
        raw.execute(
            "INSERT INTO device_tokens (device_id, role, token_sha256, scopes, created_at_ms, rotated_at_ms)
             VALUES (?1, 'operator', ?2, '[\"operator.read\"]', 1, 5)",
            rusqlite::params![&id, &SecretDigest::of(b"old-token").as_bytes()[..]],
        )
        .unwrap();
    }
    fs::set_permissions(&t.path, fs::Permissions::from_mode(0o600)).unwrap();
    let s = t.open();
    assert_eq!(
        s.verify_token(&id, Role::Operator, "old-token", T0).unwrap(),
        TokenCheck::Valid { scopes: strings(&["operator.read"]), issued_at_ms: 5 }
    );
    let newer = s.issue_token(&id, Role::Operator, &[], T0).unwrap();
    assert!(matches!(s.verify_token(&id, Role::Operator, "old-token", T0).unwrap(), TokenCheck::Valid { .. }));
    assert!(matches!(s.verify_token(&id, Role::Operator, &newer, T0).unwrap(), TokenCheck::Valid { .. }));
}

#[test]
fn at_most_eight_live_tokens_and_the_one_unused_longest_is_dropped() {
    let t = TempStore::new();
    let s = t.open();
    let (id, _) = dev(1);
    s.pair_silently(&req(1, Role::Operator, &["operator.read"]), T0).unwrap();
    let issued: Vec<String> =
        (0..MAX_LIVE_TOKENS as u64).map(|i| s.issue_token(&id, Role::Operator, &[], T0 + i).unwrap()).collect();
    // The first is in use; the second is the one unused longest.
    assert!(matches!(s.verify_token(&id, Role::Operator, &issued[0], T0 + 100).unwrap(), TokenCheck::Valid { .. }));
    let ninth = s.issue_token(&id, Role::Operator, &[], T0 + 101).unwrap();
    let live =
        |tok: &str| matches!(s.verify_token(&id, Role::Operator, tok, T0 + 102).unwrap(), TokenCheck::Valid { .. });
    assert!(live(&ninth));
    assert!(live(&issued[0]), "a token in use stays");
    assert!(!live(&issued[1]), "the one unused longest is dropped");
    assert!(issued[2..].iter().all(|tok| live(tok)));
    assert_eq!(s.tokens(&id).unwrap().len(), MAX_LIVE_TOKENS);
}

#[test]
fn a_live_token_is_found_by_its_value_alone() {
    let t = TempStore::new();
    let s = t.open();
    let (id, _) = dev(1);
    assert_eq!(s.device_token_by_value("anything", T0).unwrap(), None);
    s.pair_silently(&req(1, Role::Operator, &["operator.read"]), T0).unwrap();
    let token = s.issue_token(&id, Role::Operator, &strings(&["operator.read"]), T0).unwrap();
    let live = LiveToken { device_id: id.clone(), role: Role::Operator, scopes: strings(&["operator.read"]) };
    assert_eq!(s.device_token_by_value(&token, T0 + 1).unwrap(), Some(live));
    assert_eq!(s.tokens(&id).unwrap()[0].last_used_at_ms, Some(T0 + 1));
    assert_eq!(s.device_token_by_value("guess", T0 + 1).unwrap(), None);
    assert_eq!(s.device_token_by_value(&token[1..], T0 + 1).unwrap(), None);

    // Rotated, revoked, or the device removed: no longer live.
    let rotated = s.rotate_token(&id, Role::Operator, &[], T0 + 2).unwrap();
    assert_eq!(s.device_token_by_value(&token, T0 + 3).unwrap(), None);
    assert!(s.device_token_by_value(&rotated, T0 + 3).unwrap().is_some());
    s.revoke_token(&id, Role::Operator, T0 + 4).unwrap();
    assert_eq!(s.device_token_by_value(&rotated, T0 + 5).unwrap(), None);
    let again = s.issue_token(&id, Role::Operator, &[], T0 + 6).unwrap();
    s.remove_device(&id, T0 + 7).unwrap();
    assert_eq!(s.device_token_by_value(&again, T0 + 8).unwrap(), None);

    // The lookup goes through the digest index.
    drop(s);
    let raw = rusqlite::Connection::open(&t.path).unwrap();
    let plan: String = raw
        .query_row("EXPLAIN QUERY PLAN SELECT device_id FROM device_tokens WHERE token_sha256 = x'00'", [], |r| {
            r.get(3)
        })
        .unwrap();
    assert!(plan.contains("device_tokens_by_digest"), "{plan}");
}

#[test]
fn the_file_never_holds_a_token() {
    let t = TempStore::new();
    let s = t.open();
    let (id, _) = dev(1);
    s.pair_silently(&req(1, Role::Operator, &["operator.admin"]), T0).unwrap();
    s.pair_silently(&req(1, Role::Node, &[]), T0).unwrap();
    let mut issued = Vec::new();
    for i in 0..5 {
        issued.push(s.issue_token(&id, Role::Operator, &strings(&["operator.admin"]), T0 + i).unwrap());
    }
    issued.push(s.issue_token(&id, Role::Node, &[], T0).unwrap());

    // While open (WAL not yet checkpointed) and after closing.
    let scan = |bytes: &[u8]| {
        for token in &issued {
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "a plaintext token is in the store file"
            );
        }
    };
    scan(&t.all_bytes());
    // The table holds 32-byte digests; the newest row, the newest token's.
    {
        let conn = s.conn.lock().unwrap();
        let mut stmt =
            conn.prepare("SELECT * FROM device_tokens WHERE role = 'operator' ORDER BY token_id DESC").unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        let row = rows.next().unwrap().unwrap();
        for i in 0..columns {
            if let Ok(text) = row.get::<_, String>(i) {
                assert!(!issued.iter().any(|t| text.contains(t.as_str())));
            }
        }
        let digest: Vec<u8> = row.get("token_sha256").unwrap();
        assert_eq!(digest, SecretDigest::of(issued[4].as_bytes()).as_bytes().to_vec());
    }
    drop(s);
    scan(&t.all_bytes());
}

#[test]
fn generation_moves_on_every_state_change() {
    let t = TempStore::new();
    let s = t.open();
    let (id, _) = dev(1);
    let mut last = s.generation().unwrap();
    let mut step = |s: &SqliteStore, what: &str| {
        let g = s.generation().unwrap();
        assert!(g > last, "{what}: generation {g} did not move past {last}");
        last = g;
    };

    let r = created(s.request_pairing(&req(1, Role::Operator, &["operator.read"]), T0).unwrap());
    step(&s, "create");
    s.request_pairing(&req(1, Role::Operator, &["operator.read"]), T0 + 1).unwrap();
    step(&s, "refresh");
    let r2 = s.request_pairing(&req(1, Role::Operator, &["operator.write"]), T0 + 2).unwrap();
    step(&s, "supersede");
    assert_ne!(r, r2.request_id());
    s.approve(r2.request_id(), ApprovedVia::Owner, T0 + 3).unwrap();
    step(&s, "approve");
    let r3 = created(s.request_pairing(&req(2, Role::Node, &[]), T0 + 3).unwrap());
    step(&s, "create 2");
    s.reject(&r3, T0 + 4).unwrap();
    step(&s, "reject");
    s.pair_silently(&req(3, Role::Operator, &[]), T0 + 5).unwrap();
    step(&s, "silent");
    s.issue_token(&id, Role::Operator, &[], T0 + 6).unwrap();
    step(&s, "issue");
    s.revoke_token(&id, Role::Operator, T0 + 7).unwrap();
    step(&s, "revoke");
    s.rename_device(&id, "label", T0 + 8).unwrap();
    step(&s, "rename");
    s.request_pairing(&req(4, Role::Operator, &[]), T0 + 8).unwrap();
    step(&s, "create 3");
    s.approve_latest(ApprovedVia::Cli, T0 + 9, LATEST_WINDOW_MS).unwrap();
    step(&s, "approve latest");
    s.request_pairing(&req(5, Role::Operator, &[]), T0 + 9).unwrap();
    step(&s, "create 4");
    s.approve_device(&dev(5).0, ApprovedVia::Cli, T0 + 10).unwrap();
    step(&s, "approve device");
    s.request_pairing(&req(6, Role::Operator, &[]), T0 + 10).unwrap();
    step(&s, "create 5");
    // Expiry, marked by the next mutation (even a bookkeeping one).
    s.touch_last_seen(&id, None, T0 + 10 + PENDING_TTL_MS).unwrap();
    step(&s, "expiry");
    s.remove_device(&id, T0 + 11 + PENDING_TTL_MS).unwrap();
    step(&s, "remove");

    // A failed operation changes nothing.
    assert!(s.approve("nope", ApprovedVia::Owner, T0).is_err());
    assert_eq!(s.generation().unwrap(), last);
    // Neither do reads and a verify.
    s.list_devices().unwrap();
    s.open_requests(T0).unwrap();
    s.verify_token(&dev(3).0, Role::Operator, "x", T0 + 12 + PENDING_TTL_MS).unwrap();
    assert_eq!(s.generation().unwrap(), last);
}

#[test]
fn a_view_is_one_snapshot() {
    let s = SqliteStore::open_in_memory().unwrap();
    let (id, _) = dev(1);
    let empty = s.view(&id).unwrap();
    assert_eq!(empty.generation, 0);
    assert!(empty.device.is_none() && empty.tokens.is_empty());
    s.pair_silently(&req(1, Role::Operator, &["operator.read"]), T0).unwrap();
    s.issue_token(&id, Role::Operator, &strings(&["operator.read"]), T0).unwrap();
    let v = s.view(&id).unwrap();
    assert_eq!(v.generation, 2);
    assert_eq!(v.device.unwrap().device_id, id);
    assert_eq!(v.tokens.len(), 1);
    assert_eq!(v.tokens[0].scopes, ["operator.read"]);
}

#[test]
fn errors_have_codes_and_advice() {
    let e = StoreError::TooManyPending(PendingCap::PerIp { ip: "192.0.2.9".into(), limit: 10 });
    assert_eq!(e.code(), "PAIRING_CAP");
    assert!(e.to_string().contains("192.0.2.9"));
    let e = StoreError::PairingRejected { role: Role::Node, until_ms: 5 };
    assert_eq!(e.code(), "PAIRING_REJECTED");
    assert!(e.to_string().contains("role node"), "{e}");
    assert!(!e.is_store_failure());
    let e = StoreError::Busy { path: "state/pairing.sqlite".into() };
    assert!(e.is_store_failure());
}

#[test]
fn the_store_is_shared_between_threads() {
    let t = TempStore::new();
    let s = std::sync::Arc::new(t.open());
    let handles: Vec<_> = (0..4u8)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                for j in 0..5u8 {
                    let mut r = req(i * 10 + j, Role::Operator, &[]);
                    r.remote_ip = Some(format!("192.0.2.{i}"));
                    s.request_pairing(&r, T0).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(s.open_requests(T0).unwrap().len(), 20);
    assert_eq!(s.generation().unwrap(), 20);
}
