//! Devices of trusted-proxy users in an old SQLite file: a version-4 file
//! migrates keeping its devices and tokens (the behaviour on every backend
//! is in store/conformance/services.rs).

use std::os::unix::fs::PermissionsExt;

use super::schema::{create_at_version, SCHEMA_VERSION};
use super::{ApprovedVia, NewRequest, PairingStore, Role, SqliteStore};

const T0: u64 = 1_700_000_000_000;
const READ: &str = "operator.read";

fn device() -> (String, String) {
    ("cd".repeat(32), "key-of-cd".into())
}

fn request(user: Option<&str>, scopes: &[&str]) -> NewRequest {
    let (id, key) = device();
    let r = NewRequest::new(id, key, Role::Operator, scopes);
    match user {
        Some(u) => r.for_proxy_user(u),
        None => r,
    }
}

#[test]
fn a_version_4_store_keeps_its_devices_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairing.sqlite");
    create_at_version(&path, 4);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (id, key) = device();
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute(
            "INSERT INTO devices (device_id, public_key, roles, approved_scopes, approved_via, created_at_ms,
                 approved_at_ms) VALUES (?1, ?2, '[\"operator\"]', '[\"operator.read\"]', 'silent', 1, 1)",
            [&id, &key],
        )
        .unwrap();
        raw.execute(
            "INSERT INTO device_tokens (device_id, role, token_sha256, scopes, created_at_ms)
             VALUES (?1, 'operator', zeroblob(32), '[]', 1)",
            [&id],
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let d = s.device(&id).unwrap().unwrap();
    assert_eq!((d.approved_via, d.proxy_user), (ApprovedVia::Silent, None));
    assert_eq!(s.tokens(&id).unwrap().len(), 1, "the rebuild of devices kept the tokens that reference it");
    s.pair_proxy_auto(&request(Some("alice"), &[READ]), T0).unwrap();
    drop(s);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let v: u32 = raw.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v, SCHEMA_VERSION);
}
