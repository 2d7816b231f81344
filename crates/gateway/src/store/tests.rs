//! What only the SQLite store has, on real temporary files: the file's
//! mode, corruption, its application id and schema version, pragmas, old
//! file formats. The behaviour every backend shares is in store/conformance.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::schema::{APPLICATION_ID, SCHEMA_VERSION};
use super::*;
use crate::secrets::SecretDigest;

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

// ---- pending requests ------------------------------------------------------

// ---- tokens ----------------------------------------------------------------

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
fn a_token_lookup_by_value_uses_the_digest_index() {
    let t = TempStore::new();
    drop(t.open());
    let raw = rusqlite::Connection::open(&t.path).unwrap();
    let plan: String = raw
        .query_row("EXPLAIN QUERY PLAN SELECT device_id FROM device_tokens WHERE token_sha256 = x'00'", [], |r| {
            r.get(3)
        })
        .unwrap();
    assert!(plan.contains("device_tokens_by_digest"), "{plan}");
}
