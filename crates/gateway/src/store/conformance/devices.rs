//! Devices, tokens and the generation on every backend.

use super::{both_backends, created, dev, req, strings, Backend, T0};
use crate::store::*;

both_backends!(
    reopening_keeps_everything,
    data_version_sees_other_processes,
    a_new_key_under_the_same_id_replaces_the_record_and_revokes_tokens,
    remove_and_rename,
    touch_last_seen_is_bookkeeping,
    bad_input_is_refused,
    tokens_issue_verify_rotate_revoke,
    at_most_eight_live_tokens_and_the_one_unused_longest_is_dropped,
    a_live_token_is_found_by_its_value_alone,
    generation_moves_on_every_state_change,
    a_view_is_one_snapshot,
    the_store_is_shared_between_threads,
);

fn reopening_keeps_everything(b: &dyn Backend) {
    let store = b.open();
    let (id, _) = dev(1);
    store.pair_silently(&req(1, Role::Operator, &["operator.read"]), T0).unwrap();
    let token = store.issue_token(&id, Role::Operator, &strings(&["operator.read"]), T0).unwrap();
    let pending = created(store.request_pairing(&req(2, Role::Node, &[]), T0).unwrap());
    let generation = store.generation().unwrap();
    drop(store);

    let store = b.open();
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

fn data_version_sees_other_processes(b: &dyn Backend) {
    let gateway = b.open();
    let cli = b.open();
    let before = gateway.data_version().unwrap();
    assert_eq!(gateway.data_version().unwrap(), before);
    cli.pair_silently(&req(1, Role::Operator, &[]), T0).unwrap();
    assert_ne!(gateway.data_version().unwrap(), before);
    // The generation lives in the file: the gateway sees the CLI's bump.
    assert_eq!(gateway.generation().unwrap(), cli.generation().unwrap());
    assert!(gateway.generation().unwrap() > 0);
}

fn a_new_key_under_the_same_id_replaces_the_record_and_revokes_tokens(b: &dyn Backend) {
    let s = b.open();
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

fn remove_and_rename(b: &dyn Backend) {
    let s = b.open();
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

fn touch_last_seen_is_bookkeeping(b: &dyn Backend) {
    let s = b.open();
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

fn bad_input_is_refused(b: &dyn Backend) {
    let s = b.open();
    let mut r = req(1, Role::Operator, &[]);
    r.device_id = r.device_id.to_uppercase();
    assert_eq!(s.request_pairing(&r, T0).unwrap_err().code(), "STORE_INVALID_INPUT");
    let mut r = req(1, Role::Operator, &[]);
    r.public_key = String::new();
    assert_eq!(s.pair_silently(&r, T0).unwrap_err().code(), "STORE_INVALID_INPUT");
    assert_eq!(s.request_pairing(&req(1, Role::Operator, &[]), u64::MAX).unwrap_err().code(), "STORE_INVALID_INPUT");
    assert_eq!(s.generation().unwrap(), 0);
}

fn tokens_issue_verify_rotate_revoke(b: &dyn Backend) {
    let s = b.open();
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

fn at_most_eight_live_tokens_and_the_one_unused_longest_is_dropped(b: &dyn Backend) {
    let s = b.open();
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

fn a_live_token_is_found_by_its_value_alone(b: &dyn Backend) {
    let s = b.open();
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
}

fn generation_moves_on_every_state_change(b: &dyn Backend) {
    let s = b.open();
    let (id, _) = dev(1);
    let mut last = s.generation().unwrap();
    let mut step = |s: &dyn PairingStore, what: &str| {
        let g = s.generation().unwrap();
        assert!(g > last, "{what}: generation {g} did not move past {last}");
        last = g;
    };

    let r = created(s.request_pairing(&req(1, Role::Operator, &["operator.read"]), T0).unwrap());
    step(&*s, "create");
    s.request_pairing(&req(1, Role::Operator, &["operator.read"]), T0 + 1).unwrap();
    step(&*s, "refresh");
    let r2 = s.request_pairing(&req(1, Role::Operator, &["operator.write"]), T0 + 2).unwrap();
    step(&*s, "supersede");
    assert_ne!(r, r2.request_id());
    s.approve(r2.request_id(), ApprovedVia::Owner, T0 + 3).unwrap();
    step(&*s, "approve");
    let r3 = created(s.request_pairing(&req(2, Role::Node, &[]), T0 + 3).unwrap());
    step(&*s, "create 2");
    s.reject(&r3, T0 + 4).unwrap();
    step(&*s, "reject");
    s.pair_silently(&req(3, Role::Operator, &[]), T0 + 5).unwrap();
    step(&*s, "silent");
    s.issue_token(&id, Role::Operator, &[], T0 + 6).unwrap();
    step(&*s, "issue");
    s.revoke_token(&id, Role::Operator, T0 + 7).unwrap();
    step(&*s, "revoke");
    s.rename_device(&id, "label", T0 + 8).unwrap();
    step(&*s, "rename");
    s.request_pairing(&req(4, Role::Operator, &[]), T0 + 8).unwrap();
    step(&*s, "create 3");
    s.approve_latest(ApprovedVia::Cli, T0 + 9, LATEST_WINDOW_MS).unwrap();
    step(&*s, "approve latest");
    s.request_pairing(&req(5, Role::Operator, &[]), T0 + 9).unwrap();
    step(&*s, "create 4");
    s.approve_device(&dev(5).0, ApprovedVia::Cli, T0 + 10).unwrap();
    step(&*s, "approve device");
    s.request_pairing(&req(6, Role::Operator, &[]), T0 + 10).unwrap();
    step(&*s, "create 5");
    // Expiry, marked by the next mutation (even a bookkeeping one).
    s.touch_last_seen(&id, None, T0 + 10 + PENDING_TTL_MS).unwrap();
    step(&*s, "expiry");
    s.remove_device(&id, T0 + 11 + PENDING_TTL_MS).unwrap();
    step(&*s, "remove");

    // A failed operation changes nothing.
    assert!(s.approve("nope", ApprovedVia::Owner, T0).is_err());
    assert_eq!(s.generation().unwrap(), last);
    // Neither do reads and a verify.
    s.list_devices().unwrap();
    s.open_requests(T0).unwrap();
    s.verify_token(&dev(3).0, Role::Operator, "x", T0 + 12 + PENDING_TTL_MS).unwrap();
    assert_eq!(s.generation().unwrap(), last);
}

fn a_view_is_one_snapshot(b: &dyn Backend) {
    let s = b.open();
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

fn the_store_is_shared_between_threads(b: &dyn Backend) {
    let s = std::sync::Arc::new(b.open());
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
