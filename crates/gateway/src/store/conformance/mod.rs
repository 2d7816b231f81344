//! The store's behaviour, one suite for every backend: each test is written
//! once against `&dyn PairingStore` and [`both_backends!`] runs it on a
//! SQLite file (`sqlite::…`) and on a fresh PostgreSQL database (`pg::…`,
//! a real server started by the tests: store::pg::test_server). What only a
//! SQLite file has (permissions, corruption, its application id) is tested
//! in store/tests.rs; PostgreSQL's own in store/pg_tests.rs.

mod devices;
mod pending;
mod services;

use std::path::PathBuf;

use super::pg::test_server;
use super::*;
use crate::secrets::SecretDigest;

pub(super) const MIN: u64 = 60 * 1000;
pub(super) const T0: u64 = 1_700_000_000_000;

/// A store to test: every `open` is another connection to the same state.
pub(super) trait Backend {
    fn open(&self) -> Box<dyn PairingStore>;
    /// Rows in a table, counted behind the store's back.
    fn count_rows(&self, table: &str) -> i64;
    /// The one bytes value `sql` selects, read behind the store's back.
    fn query_bytes(&self, sql: &str) -> Vec<u8>;
}

/// A store file in a temporary directory.
pub(super) struct SqliteFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SqliteFile {
    pub(super) fn new() -> SqliteFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairing.sqlite");
        SqliteFile { _dir: dir, path }
    }
}

impl Backend for SqliteFile {
    fn open(&self) -> Box<dyn PairingStore> {
        Box::new(SqliteStore::open(&self.path).unwrap())
    }

    fn count_rows(&self, table: &str) -> i64 {
        let raw = rusqlite::Connection::open(&self.path).unwrap();
        raw.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
    }

    fn query_bytes(&self, sql: &str) -> Vec<u8> {
        rusqlite::Connection::open(&self.path).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

/// A fresh database on the test process's PostgreSQL server.
pub(super) struct PgDatabase {
    pub(super) url: String,
}

impl PgDatabase {
    pub(super) fn new() -> PgDatabase {
        PgDatabase { url: test_server::fresh_database_url() }
    }
}

impl Backend for PgDatabase {
    fn open(&self) -> Box<dyn PairingStore> {
        Box::new(PgStore::open(&self.url).unwrap())
    }

    fn count_rows(&self, table: &str) -> i64 {
        let mut raw = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        raw.query_one(&format!("SELECT count(*) FROM {table}"), &[]).unwrap().get(0)
    }

    fn query_bytes(&self, sql: &str) -> Vec<u8> {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap().query_one(sql, &[]).unwrap().get(0)
    }
}

/// Run each named test (a `fn(&dyn Backend)` in scope) on both backends.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&crate::store::conformance::SqliteFile::new()) } )*
        }
        mod pg {
            $( #[test] fn $name() { super::$name(&crate::store::conformance::PgDatabase::new()) } )*
        }
    };
}
pub(super) use both_backends;

/// A device: id = hex(SHA-256(n)), key = a stand-in string.
pub(super) fn dev(n: u8) -> (String, String) {
    let id: String = SecretDigest::of(&[n]).as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    (id, format!("key-{n}"))
}

pub(super) fn req(n: u8, role: Role, scopes: &[&str]) -> NewRequest {
    let (id, key) = dev(n);
    let mut r = NewRequest::new(id, key, role, scopes);
    r.remote_ip = Some("203.0.113.7".to_owned());
    r.display_name = Some(format!("device {n}"));
    r
}

pub(super) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

pub(super) fn created(o: RequestOutcome) -> String {
    match o {
        RequestOutcome::Created { request_id } => request_id,
        other => panic!("expected Created, got {other:?}"),
    }
}
