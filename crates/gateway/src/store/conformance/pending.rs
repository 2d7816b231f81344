//! Pending pairing requests on every backend: ids, retries, expiry, caps,
//! cool-downs, approval.

use super::{both_backends, created, dev, req, Backend, MIN, T0};
use crate::store::*;

both_backends!(
    retries_keep_the_id_and_broader_ones_supersede,
    a_chain_of_supersessions_points_at_the_newest,
    requests_expire_five_minutes_after_the_last_refresh,
    open_requests_are_capped_per_ip_and_in_all,
    rejection_starts_a_ten_minute_cooldown,
    approval_merges_roles_and_scopes,
    approval_errors_are_specific,
    approve_latest_refuses_when_ambiguous,
    approve_device_refuses_several_roles,
    approving_never_creates_a_request,
    silent_pairing_closes_what_it_covers,
);

fn retries_keep_the_id_and_broader_ones_supersede(b: &dyn Backend) {
    let s = b.open();
    let asked = req(1, Role::Operator, &["operator.write"]);
    let id = created(s.request_pairing(&asked, T0).unwrap());
    assert_eq!(id.len(), 36);

    // The same again, and a narrower one: refreshed, same id.
    assert_eq!(s.request_pairing(&asked, T0 + MIN).unwrap(), RequestOutcome::Refreshed { request_id: id.clone() });
    let narrower = req(1, Role::Operator, &["operator.read", "operator.talk"]);
    assert_eq!(
        s.request_pairing(&narrower, T0 + 2 * MIN).unwrap(),
        RequestOutcome::Refreshed { request_id: id.clone() }
    );
    let r = s.request(&id, T0 + 2 * MIN).unwrap().unwrap();
    assert_eq!(r.refreshed_at_ms, T0 + 2 * MIN);
    assert_eq!(r.created_at_ms, T0);
    assert_eq!(r.scopes, ["operator.write"], "scopes never change under an id");
    assert_eq!(s.open_requests(T0 + 2 * MIN).unwrap().len(), 1);

    // Broader: a new id; the old one answers "superseded by".
    let broader = req(1, Role::Operator, &["operator.admin"]);
    let RequestOutcome::Superseded { old, new } = s.request_pairing(&broader, T0 + 3 * MIN).unwrap() else {
        panic!("expected Superseded")
    };
    assert_eq!(old, id);
    assert_ne!(new, id);
    let old_r = s.request(&id, T0 + 3 * MIN).unwrap().unwrap();
    assert_eq!(old_r.state, RequestState::Superseded { by: new.clone() });
    let err = s.approve(&id, ApprovedVia::Owner, T0 + 3 * MIN).unwrap_err();
    assert_eq!(err.code(), "PAIRING_SUPERSEDED");
    assert!(err.to_string().contains(&new), "{err}");
    let open = s.open_requests(T0 + 3 * MIN).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].request_id, new);
    assert_eq!(open[0].scopes, ["operator.admin"]);

    // Another role is another request.
    let node = created(s.request_pairing(&req(1, Role::Node, &[]), T0 + 3 * MIN).unwrap());
    assert_ne!(node, new);
    assert_eq!(s.open_requests(T0 + 3 * MIN).unwrap().len(), 2);
}

fn a_chain_of_supersessions_points_at_the_newest(b: &dyn Backend) {
    let s = b.open();
    let a = created(s.request_pairing(&req(1, Role::Operator, &["operator.read"]), T0).unwrap());
    let b = s.request_pairing(&req(1, Role::Operator, &["operator.write"]), T0).unwrap();
    let c = s.request_pairing(&req(1, Role::Operator, &["operator.admin"]), T0).unwrap();
    assert_ne!(b.request_id(), c.request_id());
    match s.approve(&a, ApprovedVia::Owner, T0).unwrap_err() {
        StoreError::Superseded { by, .. } => assert_eq!(by, c.request_id()),
        other => panic!("{other:?}"),
    }
}

fn requests_expire_five_minutes_after_the_last_refresh(b: &dyn Backend) {
    let s = b.open();
    let asked = req(1, Role::Operator, &["operator.read"]);
    let id = created(s.request_pairing(&asked, T0).unwrap());
    // A refresh at +4 min pushes expiry to +9 min.
    s.request_pairing(&asked, T0 + 4 * MIN).unwrap();
    assert!(s.request(&id, T0 + 9 * MIN - 1).unwrap().unwrap().is_open());
    assert_eq!(s.open_requests(T0 + 9 * MIN - 1).unwrap().len(), 1);

    // Read as expired before any mutation marks it.
    let r = s.request(&id, T0 + 9 * MIN).unwrap().unwrap();
    assert_eq!(r.state, RequestState::Expired);
    assert!(s.open_requests(T0 + 9 * MIN).unwrap().is_empty());
    let err = s.approve(&id, ApprovedVia::Owner, T0 + 9 * MIN).unwrap_err();
    assert_eq!(err.code(), "PAIRING_EXPIRED");

    // A retry after expiry opens a new request.
    let again = created(s.request_pairing(&asked, T0 + 10 * MIN).unwrap());
    assert_ne!(again, id);
    assert_eq!(s.request(&id, T0 + 10 * MIN).unwrap().unwrap().state, RequestState::Expired);

    // Resolved requests are forgotten after a day.
    assert!(s.request(&id, T0 + 10 * MIN + RESOLVED_RETENTION_MS).unwrap().is_some());
    s.request_pairing(&req(9, Role::Node, &[]), T0 + 10 * MIN + RESOLVED_RETENTION_MS).unwrap();
    assert!(s.request(&id, T0 + 10 * MIN + RESOLVED_RETENTION_MS).unwrap().is_none());
}

fn open_requests_are_capped_per_ip_and_in_all(b: &dyn Backend) {
    let s = b.open();
    for n in 0..10 {
        s.request_pairing(&req(n, Role::Operator, &[]), T0).unwrap();
    }
    let err = s.request_pairing(&req(10, Role::Operator, &[]), T0).unwrap_err();
    assert_eq!(err.code(), "PAIRING_CAP");
    assert!(matches!(err, StoreError::TooManyPending(PendingCap::PerIp { limit: 10, .. })));
    // A retry of an existing request is not a new one: still fine.
    assert!(matches!(s.request_pairing(&req(3, Role::Operator, &[]), T0).unwrap(), RequestOutcome::Refreshed { .. }));
    // And neither is a broader one (supersession replaces, it does not add).
    assert!(matches!(
        s.request_pairing(&req(3, Role::Operator, &["operator.admin"]), T0).unwrap(),
        RequestOutcome::Superseded { .. }
    ));

    // Other IPs fill the total.
    let mut n: u8 = 10;
    for ip in 0..9 {
        for _ in 0..10 {
            let mut r = req(n, Role::Operator, &[]);
            r.remote_ip = Some(format!("198.51.100.{ip}"));
            s.request_pairing(&r, T0).unwrap();
            n += 1;
        }
    }
    assert_eq!(s.open_requests(T0).unwrap().len(), 100);
    let mut r = req(n, Role::Operator, &[]);
    r.remote_ip = Some("192.0.2.1".to_owned());
    let err = s.request_pairing(&r, T0).unwrap_err();
    assert!(matches!(err, StoreError::TooManyPending(PendingCap::Total { limit: 100 })));
    assert_eq!(err.code(), "PAIRING_CAP");

    // Expiry frees the caps.
    assert!(matches!(s.request_pairing(&r, T0 + 5 * MIN).unwrap(), RequestOutcome::Created { .. }));
}

fn rejection_starts_a_ten_minute_cooldown(b: &dyn Backend) {
    let s = b.open();
    let asked = req(1, Role::Operator, &["operator.read"]);
    let id = created(s.request_pairing(&asked, T0).unwrap());
    let rejection = s.reject(&id, T0 + MIN).unwrap();
    assert_eq!(rejection.cooldown_until_ms, T0 + 11 * MIN);
    assert_eq!(rejection.request.state, RequestState::Rejected);
    assert_eq!(s.request(&id, T0 + MIN).unwrap().unwrap().state, RequestState::Rejected);

    let err = s.request_pairing(&asked, T0 + 2 * MIN).unwrap_err();
    assert_eq!(err.code(), "PAIRING_REJECTED");
    assert!(matches!(
        err,
        StoreError::PairingRejected { until_ms, .. } if until_ms == T0 + 11 * MIN
    ));
    assert!(s.open_requests(T0 + 2 * MIN).unwrap().is_empty());
    // Only that (device, role): the node role may still ask.
    s.request_pairing(&req(1, Role::Node, &[]), T0 + 2 * MIN).unwrap();
    // Approving or rejecting again says it is resolved.
    assert_eq!(s.approve(&id, ApprovedVia::Owner, T0 + 2 * MIN).unwrap_err().code(), "PAIRING_RESOLVED");
    assert_eq!(s.reject(&id, T0 + 2 * MIN).unwrap_err().code(), "PAIRING_RESOLVED");

    assert_eq!(s.request_pairing(&asked, T0 + 11 * MIN - 1).unwrap_err().code(), "PAIRING_REJECTED");
    assert!(matches!(s.request_pairing(&asked, T0 + 11 * MIN).unwrap(), RequestOutcome::Created { .. }));
}

fn approval_merges_roles_and_scopes(b: &dyn Backend) {
    let s = b.open();
    let (id, key) = dev(1);
    let mut first = req(1, Role::Operator, &["operator.read", " operator.read"]);
    first.platform = Some("linux".to_owned());
    let r1 = created(s.request_pairing(&first, T0).unwrap());
    let a = s.approve(&r1, ApprovedVia::Owner, T0 + 1).unwrap();
    assert_eq!(a.request.request_id, r1);
    assert_eq!(a.request.state, RequestState::Approved);
    let d = a.device;
    assert_eq!(d.device_id, id);
    assert_eq!(d.public_key, key);
    assert_eq!(d.roles, [Role::Operator]);
    assert_eq!(d.approved_scopes, ["operator.read"]);
    assert_eq!(d.approved_via, ApprovedVia::Owner);
    assert_eq!(d.created_at_ms, T0 + 1);
    assert_eq!(d.platform.as_deref(), Some("linux"));
    assert_eq!(d.remote_ip.as_deref(), Some("203.0.113.7"));

    let r2 =
        created(s.request_pairing(&req(1, Role::Operator, &["operator.write", "operator.pairing"]), T0 + 2).unwrap());
    let d = s.approve(&r2, ApprovedVia::Cli, T0 + 3).unwrap().device;
    assert_eq!(d.approved_scopes, ["operator.pairing", "operator.read", "operator.write"]);
    assert_eq!(d.approved_via, ApprovedVia::Cli);
    assert_eq!(d.created_at_ms, T0 + 1);
    assert_eq!(d.approved_at_ms, T0 + 3);
    assert_eq!(d.platform.as_deref(), Some("linux"), "kept when not re-sent");

    let r3 = created(s.request_pairing(&req(1, Role::Node, &[]), T0 + 4).unwrap());
    let d = s.approve_device(&id, ApprovedVia::CliOffline, T0 + 5).unwrap().device;
    assert_eq!(d.roles, [Role::Operator, Role::Node]);
    assert_eq!(d.approved_via, ApprovedVia::CliOffline);
    assert_eq!(s.request(&r3, T0 + 5).unwrap().unwrap().state, RequestState::Approved);
    assert_eq!(s.list_devices().unwrap(), [d]);
}

fn approval_errors_are_specific(b: &dyn Backend) {
    let s = b.open();
    let err = s.approve("00000000-0000-4000-8000-000000000000", ApprovedVia::Owner, T0).unwrap_err();
    assert_eq!(err.code(), "PAIRING_UNKNOWN_REQUEST");
    let id = created(s.request_pairing(&req(1, Role::Operator, &[]), T0).unwrap());
    s.approve(&id, ApprovedVia::Owner, T0).unwrap();
    assert_eq!(s.approve(&id, ApprovedVia::Owner, T0).unwrap_err().code(), "PAIRING_RESOLVED");
    let (dev_id, _) = dev(1);
    assert_eq!(s.approve_device(&dev_id, ApprovedVia::Owner, T0).unwrap_err().code(), "PAIRING_NONE_PENDING");
}

fn approve_latest_refuses_when_ambiguous(b: &dyn Backend) {
    let s = b.open();
    assert_eq!(s.approve_latest(ApprovedVia::Cli, T0, LATEST_WINDOW_MS).unwrap_err().code(), "PAIRING_NONE_PENDING");
    let a = created(s.request_pairing(&req(1, Role::Operator, &[]), T0).unwrap());
    let b = created(s.request_pairing(&req(2, Role::Operator, &[]), T0 + MIN).unwrap());
    let err = s.approve_latest(ApprovedVia::Cli, T0 + 2 * MIN, LATEST_WINDOW_MS).unwrap_err();
    assert_eq!(err.code(), "PAIRING_AMBIGUOUS");
    match &err {
        StoreError::AmbiguousLatest { ids } => assert_eq!(ids, &[a.clone(), b.clone()]),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(&a) && err.to_string().contains(&b));
    // Nothing was approved.
    assert!(s.list_devices().unwrap().is_empty());

    // With a window that holds only the newer one, it is approved.
    let approval = s.approve_latest(ApprovedVia::Cli, T0 + 2 * MIN, MIN).unwrap();
    assert_eq!(approval.request.request_id, b);
    assert_eq!(approval.device.device_id, dev(2).0);
}

fn approve_device_refuses_several_roles(b: &dyn Backend) {
    let s = b.open();
    let (id, _) = dev(1);
    let a = created(s.request_pairing(&req(1, Role::Operator, &[]), T0).unwrap());
    let b = created(s.request_pairing(&req(1, Role::Node, &[]), T0).unwrap());
    let err = s.approve_device(&id, ApprovedVia::Cli, T0).unwrap_err();
    assert_eq!(err.code(), "PAIRING_AMBIGUOUS");
    let msg = err.to_string();
    assert!(msg.contains(&a) && msg.contains(&b), "{msg}");
}

fn approving_never_creates_a_request(b: &dyn Backend) {
    let s = b.open();
    let id = created(s.request_pairing(&req(1, Role::Operator, &["operator.read"]), T0).unwrap());
    let other = created(s.request_pairing(&req(2, Role::Node, &[]), T0).unwrap());
    let count = || -> i64 { b.count_rows("pending_requests") };
    assert_eq!(count(), 2);
    s.approve(&id, ApprovedVia::Owner, T0 + 1).unwrap();
    s.approve_device(&dev(2).0, ApprovedVia::Owner, T0 + 1).unwrap();
    let _ = s.approve_latest(ApprovedVia::Owner, T0 + 2, LATEST_WINDOW_MS);
    let _ = s.approve(&other, ApprovedVia::Owner, T0 + 2);
    assert_eq!(count(), 2);
    assert!(s.open_requests(T0 + 2).unwrap().is_empty());
}

fn silent_pairing_closes_what_it_covers(b: &dyn Backend) {
    let s = b.open();
    let (id, _) = dev(1);
    let narrow = created(s.request_pairing(&req(1, Role::Operator, &["operator.read"]), T0).unwrap());
    let d = s.pair_silently(&req(1, Role::Operator, &["operator.write"]), T0 + 1).unwrap();
    assert_eq!(d.approved_via, ApprovedVia::Silent);
    assert_eq!(d.approved_scopes, ["operator.write"]);
    assert_eq!(s.request(&narrow, T0 + 1).unwrap().unwrap().state, RequestState::Approved);

    // An open request for more than the silent grant stays for the owner.
    let broad = created(s.request_pairing(&req(1, Role::Node, &[]), T0 + 2).unwrap());
    let admin = created(s.request_pairing(&req(1, Role::Operator, &["operator.admin"]), T0 + 2).unwrap());
    s.pair_silently(&req(1, Role::Operator, &["operator.read"]), T0 + 3).unwrap();
    assert!(s.request(&admin, T0 + 3).unwrap().unwrap().is_open());
    assert!(s.request(&broad, T0 + 3).unwrap().unwrap().is_open());
    assert_eq!(s.device(&id).unwrap().unwrap().roles, [Role::Operator]);
}
