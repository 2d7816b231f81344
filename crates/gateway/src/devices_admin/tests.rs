//! The policy against an in-memory store: the same answers for the gateway's
//! sessions and for the store's owner.

use clawgate_protocol::scopes::{ADMIN, PAIRING, READ, WRITE};

use super::*;
use crate::store::{ApprovedVia, NewRequest, PairingStore, Role, SqliteStore};

const NOW: u64 = 1_000_000;
const D1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const D9: &str = "9999999999999999999999999999999999999999999999999999999999999999";
const N1: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn store_with_request(device: &str, role: Role, scopes: &[&str]) -> (SqliteStore, String) {
    let store = SqliteStore::open_in_memory().unwrap();
    let outcome = store.request_pairing(&NewRequest::new(device, "key", role, scopes), NOW).unwrap();
    (store, outcome.request_id().to_owned())
}

fn owned(scopes: &[&str]) -> Vec<String> {
    scopes.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn an_approver_grants_only_what_it_holds_and_the_owner_holds_everything() {
    let (store, id) = store_with_request(D1, Role::Operator, &[READ, WRITE]);
    let reader = Actor::session(&owned(&[PAIRING, READ]), None, ApprovedVia::Owner);
    let e = approve(&store, &reader, &id, NOW).unwrap_err();
    assert_eq!(e.message(), "device pairing approval denied: missing scope: operator.write");
    assert_eq!(e.code(), "DENIED");
    let approval = approve(&store, &Actor::store_owner(), &id, NOW).unwrap();
    assert_eq!(approval.device.approved_via, ApprovedVia::CliOffline);
    assert!(matches!(approve(&store, &Actor::store_owner(), "nope", NOW), Err(AdminError::UnknownRequest)));
}

#[test]
fn a_node_role_needs_admin_to_approve() {
    let (store, id) = store_with_request(N1, Role::Node, &[]);
    let pairer = Actor::session(&owned(&[PAIRING]), None, ApprovedVia::Owner);
    let e = approve(&store, &pairer, &id, NOW).unwrap_err();
    assert!(matches!(e, AdminError::Denied { reason: DenyReason::RoleNeedsAdmin, .. }), "{e:?}");
    let admin = Actor::session(&owned(&[ADMIN]), None, ApprovedVia::Cli);
    assert_eq!(approve(&store, &admin, &id, NOW).unwrap().device.approved_via, ApprovedVia::Cli);
}

#[test]
fn a_device_token_caller_manages_only_its_own_device() {
    let (store, id) = store_with_request(D1, Role::Operator, &[READ]);
    approve(&store, &Actor::store_owner(), &id, NOW).unwrap();
    let other = Actor::session(&owned(&[PAIRING, READ]), Some(D2), ApprovedVia::Owner);
    assert!(list(&store, &other, NOW).unwrap().paired.is_empty());
    let e = remove(&store, &other, D1, NOW).unwrap_err();
    assert_eq!(e.to_string(), "device removal denied (not-own-device)");
    let e = rotate(&store, &other, D1, Role::Operator, None, NOW).unwrap_err();
    assert!(matches!(e, AdminError::Denied { reason: DenyReason::CrossDeviceNeedsAdmin, .. }), "{e:?}");
    let own = Actor::session(&owned(&[READ]), Some(D1), ApprovedVia::Owner);
    let rotation = rotate(&store, &own, D1, Role::Operator, None, NOW).unwrap();
    assert!(rotation.in_band, "its own token goes back to it");
    assert_eq!(rotation.scopes, owned(&[READ]));
}

#[test]
fn rotation_refusals_carry_the_store_codes() {
    let (store, id) = store_with_request(D1, Role::Operator, &[READ]);
    approve(&store, &Actor::store_owner(), &id, NOW).unwrap();
    let owner = Actor::store_owner();
    let code = |e: AdminError| (e.code(), e.message());
    let rotation_denied = "device token rotation denied".to_owned();
    assert_eq!(
        code(rotate(&store, &owner, D9, Role::Operator, None, NOW).unwrap_err()),
        ("DEVICE_UNKNOWN", rotation_denied.clone())
    );
    assert_eq!(
        code(rotate(&store, &owner, D1, Role::Node, None, NOW).unwrap_err()),
        ("DEVICE_ROLE_NOT_APPROVED", rotation_denied.clone())
    );
    let wider = Some(owned(&[WRITE]));
    assert_eq!(
        code(rotate(&store, &owner, D1, Role::Operator, wider, NOW).unwrap_err()),
        ("DEVICE_SCOPES_NOT_APPROVED", rotation_denied)
    );
    assert!(!rotate(&store, &owner, D1, Role::Operator, None, NOW).unwrap().in_band);
    assert!(matches!(remove(&store, &owner, D9, NOW), Err(AdminError::UnknownDevice { .. })));
}

#[test]
fn a_rejection_is_listed_until_lifted_and_only_its_manager_lifts_it() {
    let (store, id) = store_with_request(D1, Role::Operator, &[READ]);
    reject(&store, &Actor::store_owner(), &id, NOW).unwrap();
    let listing = list(&store, &Actor::store_owner(), NOW + 1).unwrap();
    assert_eq!(listing.rejected.len(), 1);
    let cooldown = &listing.rejected[0];
    assert_eq!((cooldown.device_id.as_str(), cooldown.role, cooldown.rejected_at_ms), (D1, Role::Operator, NOW));
    assert_eq!(cooldown.until_ms, NOW + crate::store::REJECT_COOLDOWN_MS);
    assert_eq!(cooldown.request.as_ref().map(|r| r.request_id.as_str()), Some(id.as_str()));

    let other = Actor::session(&owned(&[PAIRING]), Some(D2), ApprovedVia::Owner);
    assert!(list(&store, &other, NOW + 1).unwrap().rejected.is_empty(), "another device's rejection is not shown");
    let e = unreject(&store, &other, D1, None, NOW + 1).unwrap_err();
    assert_eq!(e.to_string(), "lifting a device pairing rejection denied (not-own-device)");

    let pairer = Actor::session(&owned(&[PAIRING]), None, ApprovedVia::Owner);
    assert!(unreject(&store, &pairer, D1, Some(Role::Node), NOW + 1).unwrap().roles.is_empty(), "other role");
    assert_eq!(unreject(&store, &pairer, D1, None, NOW + 1).unwrap().roles, vec![Role::Operator]);
    assert!(list(&store, &pairer, NOW + 2).unwrap().rejected.is_empty());
    let again = NewRequest::new(D1, "key", Role::Operator, &[READ]);
    assert!(store.request_pairing(&again, NOW + 2).is_ok(), "it may ask again at once");
    assert!(unreject(&store, &pairer, D1, None, NOW + 2).unwrap().roles.is_empty(), "nothing left to lift");
}

#[test]
fn a_cooldown_that_ran_out_is_no_longer_listed() {
    let (store, id) = store_with_request(D1, Role::Operator, &[READ]);
    reject(&store, &Actor::store_owner(), &id, NOW).unwrap();
    let later = NOW + crate::store::REJECT_COOLDOWN_MS;
    assert!(list(&store, &Actor::store_owner(), later).unwrap().rejected.is_empty());
}
