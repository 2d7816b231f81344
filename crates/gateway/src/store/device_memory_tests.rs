//! Devices served from memory (store/device_memory.rs) answer as the file
//! does, follow this store's writes at once and another process's at the
//! next `data_version`, and lose no batched bookkeeping at close.

use super::*;
use crate::secrets::SecretDigest;

const T0: u64 = 1_700_000_000_000;

fn temp() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairing.sqlite");
    (dir, path)
}

/// A store serving devices from memory, and a plain one on the same file.
fn pair_of(path: &std::path::Path) -> (SqliteStore, SqliteStore) {
    let memory = SqliteStore::open(path).unwrap();
    assert!(memory.keep_devices_in_memory().unwrap());
    (memory, SqliteStore::open(path).unwrap())
}

fn device(n: u8) -> NewRequest {
    let id: String = SecretDigest::of(&[n]).as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let mut r = NewRequest::new(id, format!("key-{n}"), Role::Operator, &["operator.read", "operator.write"]);
    r.remote_ip = Some("203.0.113.7".to_owned());
    r
}

fn read_scopes() -> Vec<String> {
    vec!["operator.read".to_owned()]
}

/// The view without what only bookkeeping or the copy's base generation moves.
fn relied_on(mut v: DeviceView) -> DeviceView {
    v.generation = 0;
    if let Some(d) = v.device.as_mut() {
        d.last_seen_at_ms = None;
        d.remote_ip = None;
    }
    for t in &mut v.tokens {
        t.last_used_at_ms = None;
    }
    v
}

/// Same view and same token checks from memory as from the file.
fn assert_same(memory: &SqliteStore, file: &SqliteStore, id: &str, presented: &[&str], now: u64) {
    assert_eq!(relied_on(memory.view(id).unwrap()), relied_on(file.view(id).unwrap()));
    for role in [Role::Operator, Role::Node] {
        for p in presented {
            let from_memory = memory.verify_token(id, role, p, now).unwrap();
            assert_eq!(from_memory, file.verify_token(id, role, p, now).unwrap(), "{role:?} {p}");
        }
    }
}

#[test]
fn memory_answers_as_the_file_does_through_every_change() {
    let (_dir, path) = temp();
    let (memory, file) = pair_of(&path);
    let new = device(1);
    let id = new.device_id.clone();
    assert_same(&memory, &file, &id, &["nothing"], T0);

    memory.pair_silently(&new, T0).unwrap();
    let first = memory.issue_token(&id, Role::Operator, &read_scopes(), T0 + 1).unwrap();
    let second = memory.issue_token(&id, Role::Operator, &read_scopes(), T0 + 2).unwrap();
    assert_same(&memory, &file, &id, &[&first, &second, "wrong"], T0 + 3);
    assert!(matches!(memory.verify_token(&id, Role::Operator, &first, T0 + 3).unwrap(), TokenCheck::Valid { .. }));

    let rotated = memory.rotate_token(&id, Role::Operator, &read_scopes(), T0 + 4).unwrap();
    assert_same(&memory, &file, &id, &[&first, &rotated, "wrong"], T0 + 5);
    assert_eq!(memory.verify_token(&id, Role::Operator, &first, T0 + 5).unwrap(), TokenCheck::Revoked);

    memory.rename_device(&id, "laptop", T0 + 6).unwrap();
    assert!(memory.revoke_token(&id, Role::Operator, T0 + 7).unwrap());
    assert_same(&memory, &file, &id, &[&rotated], T0 + 8);
    assert_eq!(memory.verify_token(&id, Role::Operator, &rotated, T0 + 8).unwrap(), TokenCheck::Revoked);

    memory.remove_device(&id, T0 + 9).unwrap();
    assert_same(&memory, &file, &id, &[&rotated], T0 + 10);
    assert_eq!(memory.verify_token(&id, Role::Operator, &rotated, T0 + 10).unwrap(), TokenCheck::DeviceNotPaired);
}

#[test]
fn another_process_is_followed_at_the_next_data_version() {
    let (_dir, path) = temp();
    let (memory, other) = pair_of(&path);
    let new = device(2);
    let id = new.device_id.clone();
    memory.pair_silently(&new, T0).unwrap();
    let token = memory.issue_token(&id, Role::Operator, &read_scopes(), T0).unwrap();

    // The CLI, as another process, revokes: the copy learns it when the
    // watcher asks for the data version (every poll), not before.
    assert!(other.revoke_token(&id, Role::Operator, T0 + 1).unwrap());
    assert!(matches!(memory.verify_token(&id, Role::Operator, &token, T0 + 2).unwrap(), TokenCheck::Valid { .. }));
    memory.data_version().unwrap();
    assert_eq!(memory.verify_token(&id, Role::Operator, &token, T0 + 3).unwrap(), TokenCheck::Revoked);

    // A pairing made elsewhere is known after the next poll too.
    let third = device(3);
    other.pair_silently(&third, T0 + 4).unwrap();
    memory.data_version().unwrap();
    assert!(memory.view(&third.device_id).unwrap().device.is_some());
}

#[test]
fn a_device_token_reconnect_is_checked_in_memory_and_its_last_seen_batched() {
    let (_dir, path) = temp();
    let (memory, file) = pair_of(&path);
    let new = device(4);
    let id = new.device_id.clone();
    memory.pair_silently(&new, T0).unwrap();
    let token = memory.issue_token(&id, Role::Operator, &read_scopes(), T0).unwrap();
    let generation = file.generation().unwrap();

    let reconnect = AdmissionWrite::Paired {
        device_id: id.clone(),
        role: Role::Operator,
        remote_ip: Some("::1".into()),
        issue_token: false,
    };
    let read = memory.view(&id).unwrap();
    assert!(matches!(memory.verify_token(&id, Role::Operator, &token, T0 + 10).unwrap(), TokenCheck::Valid { .. }));
    let applied = memory.apply_admission(&read, &reconnect, T0 + 10).unwrap();
    assert_eq!(applied, AdmissionApplied::Admitted { token: None });
    // Nothing written yet, and nothing that counts as a change.
    assert_eq!(file.generation().unwrap(), generation);
    assert_eq!(file.view(&id).unwrap().device.unwrap().last_seen_at_ms, None);
    memory.flush_bookkeeping().unwrap();
    let seen = file.view(&id).unwrap();
    assert_eq!(seen.device.as_ref().unwrap().last_seen_at_ms, Some(T0 + 10));
    assert_eq!(seen.device.as_ref().unwrap().remote_ip.as_deref(), Some("::1"));
    assert_eq!(seen.tokens[0].last_used_at_ms, Some(T0 + 10));
    assert_eq!(file.generation().unwrap(), generation);

    // A change between the decision's read and the apply: decide again.
    let read = memory.view(&id).unwrap();
    memory.revoke_token(&id, Role::Operator, T0 + 11).unwrap();
    let stale = memory.apply_admission(&read, &reconnect, T0 + 12).unwrap_err();
    assert_eq!(stale.code(), "STORE_STALE");
    // Bad input is refused as before.
    let bad = AdmissionWrite::Paired {
        device_id: id,
        role: Role::Operator,
        remote_ip: Some("a\nb".into()),
        issue_token: false,
    };
    assert!(memory.apply_admission(&memory.view(&new.device_id).unwrap(), &bad, T0 + 13).is_err());
}

#[test]
fn batched_times_are_written_at_close_and_shown_by_reads() {
    let (_dir, path) = temp();
    let new = device(5);
    let id = new.device_id.clone();
    {
        let (memory, _) = pair_of(&path);
        memory.pair_silently(&new, T0).unwrap();
        let token = memory.issue_token(&id, Role::Operator, &read_scopes(), T0).unwrap();
        memory.verify_token(&id, Role::Operator, &token, T0 + 20).unwrap();
        // A read of the records writes the batch first.
        assert_eq!(memory.tokens(&id).unwrap()[0].last_used_at_ms, Some(T0 + 20));
        memory.verify_token(&id, Role::Operator, &token, T0 + 30).unwrap();
    }
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.tokens(&id).unwrap()[0].last_used_at_ms, Some(T0 + 30));
}

#[test]
fn a_service_token_check_only_reads_and_its_last_use_is_batched_by_secret() {
    let (_dir, path) = temp();
    let (memory, file) = pair_of(&path);
    let issued = memory.add_service("cron", Role::Operator, &read_scopes(), T0).unwrap();
    let id = issued.principal.principal_id.clone();
    let generation = file.generation().unwrap();

    let ServiceTokenCheck::Valid(p) = memory.verify_service_token(&issued.token, T0 + 10).unwrap() else {
        panic!("the service token verifies")
    };
    assert_eq!(p.last_used_at_ms, Some(T0 + 10), "the answer shows this use");
    // Nothing written yet, and nothing that counts as a change.
    assert_eq!(file.service_by_id(&id).unwrap().unwrap().last_used_at_ms, None);
    memory.flush_bookkeeping().unwrap();
    assert_eq!(file.service_by_id(&id).unwrap().unwrap().last_used_at_ms, Some(T0 + 10));
    assert_eq!(file.generation().unwrap(), generation);

    // A use of a secret rotated away before the batch does not land on the new one.
    memory.verify_service_token(&issued.token, T0 + 20).unwrap();
    let rotated = memory.rotate_service("cron", T0 + 21).unwrap();
    memory.flush_bookkeeping().unwrap();
    assert_eq!(file.service_by_id(&id).unwrap().unwrap().last_used_at_ms, None);
    assert_eq!(memory.verify_service_token(&issued.token, T0 + 22).unwrap(), ServiceTokenCheck::Mismatch);
    memory.verify_service_token(&rotated.token, T0 + 23).unwrap();
    // A read of the records writes the batch first.
    assert_eq!(memory.list_services().unwrap()[0].last_used_at_ms, Some(T0 + 23));
}

#[test]
fn a_device_token_found_by_value_is_read_only_and_its_last_use_batched() {
    let (_dir, path) = temp();
    let (memory, file) = pair_of(&path);
    let new = device(6);
    let id = new.device_id.clone();
    memory.pair_silently(&new, T0).unwrap();
    let token = memory.issue_token(&id, Role::Operator, &read_scopes(), T0).unwrap();
    let generation = file.generation().unwrap();

    let live = memory.device_token_by_value(&token, T0 + 10).unwrap().expect("a live token");
    assert_eq!((live.device_id.as_str(), live.role), (id.as_str(), Role::Operator));
    assert_eq!(file.tokens(&id).unwrap()[0].last_used_at_ms, None, "nothing written yet");
    memory.flush_bookkeeping().unwrap();
    assert_eq!(file.tokens(&id).unwrap()[0].last_used_at_ms, Some(T0 + 10));
    assert_eq!(file.generation().unwrap(), generation);
    assert!(memory.device_token_by_value("not-a-token", T0 + 11).unwrap().is_none());
}
