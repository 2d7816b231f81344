//! Relay identities on a real temporary store file.

use super::super::schema::SCHEMA_VERSION;
use super::super::{PairingStore, SqliteStore, StoreError};
use super::*;

const T0: u64 = 1_700_000_000_000;

fn temp_store() -> (tempfile::TempDir, std::path::PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairing.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    (dir, path, store)
}

fn token(t: &str) -> RelayDeviceToken {
    RelayDeviceToken { token: t.into(), role: Role::Node, scopes: vec![], issued_at_ms: T0 + 5 }
}

#[test]
fn created_on_first_use_then_stable_across_reopen() {
    let (_dir, path, s) = temp_store();
    let browser = browser_identity_key(&"a".repeat(64));
    let first = s.relay_identity(&browser, T0).unwrap();
    assert_eq!(first.identity_key, format!("browser:{}", "a".repeat(64)));
    assert_eq!(first.created_at_ms, T0);
    assert_eq!(first.device_id, first.device_identity().device_id());
    assert!(first.device_token.is_none());
    assert_eq!(s.relay_identity(&browser, T0 + 1).unwrap(), first);

    let node = s.relay_identity(&node_identity_key("svc:camera"), T0).unwrap();
    assert_ne!(node.device_id, first.device_id, "one key per downstream identity");
    drop(s);
    let s = SqliteStore::open(&path).unwrap();
    let again = s.relay_identity(&browser, T0 + 2).unwrap();
    assert_eq!(again.device_identity().public_key_raw(), first.device_identity().public_key_raw());
}

#[test]
fn the_upstream_device_token_is_kept_and_forgotten() {
    let (_dir, _path, s) = temp_store();
    let key = node_identity_key("n-1");
    assert!(!s.set_relay_device_token(&key, Some(&token("dt-1")), T0).unwrap(), "no identity yet");
    s.relay_identity(&key, T0).unwrap();
    assert!(s.set_relay_device_token(&key, Some(&token("dt-1")), T0).unwrap());
    let mut operator = token("dt-2");
    operator.role = Role::Operator;
    operator.scopes = vec!["operator.write".into(), "operator.read".into()];
    assert!(s.set_relay_device_token(&key, Some(&operator), T0).unwrap());
    let kept = s.relay_identity(&key, T0).unwrap().device_token.unwrap();
    assert_eq!(kept.token, "dt-2");
    assert_eq!(kept.scopes, ["operator.read", "operator.write"]);
    assert!(!format!("{kept:?}").contains("dt-2"), "tokens never reach logs");
    assert!(s.set_relay_device_token(&key, None, T0).unwrap());
    assert!(s.relay_identity(&key, T0).unwrap().device_token.is_none());
}

#[test]
fn relay_identities_are_not_admission_state() {
    let (_dir, _path, s) = temp_store();
    let before = s.generation().unwrap();
    let key = browser_identity_key("b");
    s.relay_identity(&key, T0).unwrap();
    s.set_relay_device_token(&key, Some(&token("dt")), T0).unwrap();
    assert!(s.remove_relay_identity(&key, T0).unwrap());
    assert!(!s.remove_relay_identity(&key, T0).unwrap());
    assert_eq!(s.generation().unwrap(), before);
    // Removed means a fresh key next time.
    let fresh = s.relay_identity(&key, T0 + 1).unwrap();
    assert_eq!(fresh.created_at_ms, T0 + 1);
}

#[test]
fn bad_input_is_refused() {
    let (_dir, _path, s) = temp_store();
    assert!(matches!(s.relay_identity("", T0), Err(StoreError::InvalidInput(_))));
    assert!(matches!(s.relay_identity(&"k".repeat(513), T0), Err(StoreError::InvalidInput(_))));
    s.relay_identity("k", T0).unwrap();
    let long = token(&"t".repeat(2000));
    assert!(matches!(s.set_relay_device_token("k", Some(&long), T0), Err(StoreError::InvalidInput(_))));
}

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
