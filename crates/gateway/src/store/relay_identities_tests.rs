//! Relay identities in an old SQLite file (the behaviour on every backend
//! is in store/conformance/services.rs).

use super::super::schema::SCHEMA_VERSION;
use super::super::{PairingStore, SqliteStore};

const T0: u64 = 1_700_000_000_000;

#[test]
fn a_version_2_store_gains_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairing.sqlite");
    super::super::schema::create_at_version(&path, 2);
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let s = SqliteStore::open(&path).unwrap();
    s.relay_identity("browser:x", T0).unwrap();
    drop(s);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let v: u32 = raw.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v, SCHEMA_VERSION);
}
