//! Service principals, relay identities and trusted-proxy users' devices
//! on every backend.

use super::{both_backends, Backend};
use crate::secrets::SecretDigest;
use crate::store::relay_identities::{browser_identity_key, node_identity_key, RelayDeviceToken};
use crate::store::*;

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

fn token(t: &str) -> RelayDeviceToken {
    RelayDeviceToken { token: t.into(), role: Role::Node, scopes: vec![], issued_at_ms: T0 + 5 }
}

fn scopes(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

both_backends!(
    requests_and_pairings_name_the_user,
    another_users_approval_replaces_the_pairing_and_its_tokens,
    created_on_first_use_then_stable_across_reopen,
    the_upstream_device_token_is_kept_and_forgotten,
    relay_identities_are_not_admission_state,
    relay_bad_input_is_refused,
    add_verify_rotate_revoke,
    invalid_principals_are_refused,
);

fn requests_and_pairings_name_the_user(b: &dyn Backend) {
    let s = b.open();
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

fn another_users_approval_replaces_the_pairing_and_its_tokens(b: &dyn Backend) {
    let s = b.open();
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

fn created_on_first_use_then_stable_across_reopen(b: &dyn Backend) {
    let s = b.open();
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
    let s = b.open();
    let again = s.relay_identity(&browser, T0 + 2).unwrap();
    assert_eq!(again.device_identity().public_key_raw(), first.device_identity().public_key_raw());
}

fn the_upstream_device_token_is_kept_and_forgotten(b: &dyn Backend) {
    let s = b.open();
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

fn relay_identities_are_not_admission_state(b: &dyn Backend) {
    let s = b.open();
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

fn relay_bad_input_is_refused(b: &dyn Backend) {
    let s = b.open();
    assert!(matches!(s.relay_identity("", T0), Err(StoreError::InvalidInput(_))));
    assert!(matches!(s.relay_identity(&"k".repeat(513), T0), Err(StoreError::InvalidInput(_))));
    s.relay_identity("k", T0).unwrap();
    let long = token(&"t".repeat(2000));
    assert!(matches!(s.set_relay_device_token("k", Some(&long), T0), Err(StoreError::InvalidInput(_))));
}

fn add_verify_rotate_revoke(b: &dyn Backend) {
    let store = b.open();
    let g0 = store.generation().unwrap();
    let issued = store.add_service("cron", Role::Operator, &scopes(&["operator.write", "operator.read"]), T0).unwrap();
    assert!(store.generation().unwrap() > g0);
    let p = &issued.principal;
    assert_eq!((p.name.as_str(), p.role), ("cron", Role::Operator));
    assert_eq!(p.scopes, scopes(&["operator.read", "operator.write"]));
    assert!(issued.token.starts_with(&format!("cgs_{}_", p.principal_id)));

    // Only the digest is stored: the secret appears nowhere in the row.
    let secret = parse_service_token(&issued.token).unwrap().1.to_owned();
    let blob = b.query_bytes("SELECT secret_sha256 FROM service_principals");
    assert_eq!(blob, SecretDigest::of(secret.as_bytes()).as_bytes().to_vec());

    match store.verify_service_token(&issued.token, T0 + 1).unwrap() {
        ServiceTokenCheck::Valid(v) => assert_eq!(v.last_used_at_ms, Some(T0 + 1)),
        other => panic!("{other:?}"),
    }
    let wrong = format!("cgs_{}_{}", p.principal_id, "x".repeat(43));
    assert_eq!(store.verify_service_token(&wrong, T0).unwrap(), ServiceTokenCheck::Mismatch);
    assert_eq!(store.verify_service_token("cgs_0000000000000000_abc", T0).unwrap(), ServiceTokenCheck::Unknown);
    assert_eq!(store.verify_service_token("cgs_nope", T0).unwrap(), ServiceTokenCheck::Malformed);

    // A second live principal of the same name is refused.
    let err = store.add_service("cron", Role::Node, &[], T0).unwrap_err();
    assert_eq!(err.code(), "SERVICE_EXISTS");

    // Rotation: the old token stops at once, the new one works.
    let rotated = store.rotate_service("cron", T0 + 2).unwrap();
    assert_eq!(rotated.principal.principal_id, p.principal_id);
    assert!(rotated.principal.issued_at_ms() > p.issued_at_ms());
    assert_eq!(store.verify_service_token(&issued.token, T0 + 3).unwrap(), ServiceTokenCheck::Mismatch);
    assert!(matches!(store.verify_service_token(&rotated.token, T0 + 3).unwrap(), ServiceTokenCheck::Valid(_)));

    // Revocation: the token stops, the row stays, the name is free again.
    let revoked = store.revoke_service("cron", T0 + 4).unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(T0 + 4));
    assert_eq!(store.verify_service_token(&rotated.token, T0 + 5).unwrap(), ServiceTokenCheck::Revoked);
    assert_eq!(store.revoke_service("cron", T0 + 5).unwrap_err().code(), "SERVICE_UNKNOWN");
    let again = store.add_service("cron", Role::Node, &[], T0 + 6).unwrap();
    assert_ne!(again.principal.principal_id, p.principal_id);
    let listed = store.list_services().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(!listed[0].is_revoked() && listed[1].is_revoked());
    assert_eq!(again.principal.node_id(), "svc:cron");
}

fn invalid_principals_are_refused(b: &dyn Backend) {
    let store = b.open();
    for (name, role, s) in [
        ("bad name", Role::Operator, vec![]),
        ("node-with-scopes", Role::Node, scopes(&["operator.read"])),
        ("not-operator", Role::Operator, scopes(&["admin"])),
    ] {
        let err = store.add_service(name, role, &s, T0).unwrap_err();
        assert_eq!(err.code(), "STORE_INVALID_INPUT", "{name}");
    }
    assert!(store.list_services().unwrap().is_empty());
    assert_eq!(store.rotate_service("ghost", T0).unwrap_err().code(), "SERVICE_UNKNOWN");
}
