//! Devices of trusted-proxy users in the store: requests and pairings name
//! the user, another user's approval replaces the pairing, and a version-4
//! file migrates keeping its devices and tokens.

use std::os::unix::fs::PermissionsExt;

use super::schema::{create_at_version, SCHEMA_VERSION};
use super::{ApprovedVia, NewRequest, PairingStore, RequestOutcome, Role, SqliteStore, TokenCheck};

const T0: u64 = 1_700_000_000_000;
const READ: &str = "operator.read";
const WRITE: &str = "operator.write";

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
fn requests_and_pairings_name_the_user() {
    let s = SqliteStore::open_in_memory().unwrap();
    let id = s.request_pairing(&request(Some("alice"), &[READ]), T0).unwrap().request_id().to_owned();
    assert_eq!(s.request(&id, T0).unwrap().unwrap().proxy_user.as_deref(), Some("alice"));
    // The same device asking as another user is a new request, never a refresh.
    match s.request_pairing(&request(Some("bob"), &[READ]), T0 + 1).unwrap() {
        RequestOutcome::Superseded { old, .. } => assert_eq!(old, id),
        other => panic!("{other:?}"),
    }
    let latest = s.open_requests(T0 + 2).unwrap().remove(0);
    let paired = s.approve(&latest.request_id, ApprovedVia::Cli, T0 + 3).unwrap().device;
    assert_eq!(paired.proxy_user.as_deref(), Some("bob"));
}

#[test]
fn another_users_approval_replaces_the_pairing_and_its_tokens() {
    let s = SqliteStore::open_in_memory().unwrap();
    let (id, _) = device();
    let d = s.pair_proxy_auto(&request(Some("alice"), &[READ, WRITE]), T0).unwrap();
    assert_eq!((d.approved_via, d.proxy_user.as_deref()), (ApprovedVia::ProxyAuto, Some("alice")));
    let token = s.issue_token(&id, Role::Operator, &d.approved_scopes, T0).unwrap();
    let d = s.pair_proxy_auto(&request(Some("bob"), &[READ]), T0 + 1).unwrap();
    assert_eq!(d.proxy_user.as_deref(), Some("bob"));
    assert_eq!(d.approved_scopes, vec![READ.to_owned()], "nothing approved for alice carries over");
    assert_eq!(s.verify_token(&id, Role::Operator, &token, T0 + 2).unwrap(), TokenCheck::Revoked);
    // A proxy-auto approval always names its user.
    assert!(s.pair_proxy_auto(&request(None, &[READ]), T0 + 3).is_err());
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
