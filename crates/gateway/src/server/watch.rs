//! Noticing store changes, including those made by another process (the CLI
//! working on the store file): when SQLite's `data_version` or the store's
//! generation moves, every device and service-principal session is re-checked
//! and the ones whose pairing, token or principal is gone are closed with
//! 4001. The check is admission itself: the session's connect is evaluated
//! again against the store as it is now, and a session the same decision no
//! longer admits as it stands is closed. A session admitted since the last
//! tick is checked once as well, so a
//! revocation that landed between its credential check and its registration
//! cannot slip through. Asking the store for its data version and generation
//! also reloads its in-memory copy of devices when either moved
//! (store/device_memory.rs), before the sessions are re-checked against it:
//! a connect decided on the old copy meanwhile is among those checked.
//!
//! Besides the poll, the watch checks at once when nudged
//! ([`Gateway::store_nudge`]): by the PostgreSQL store's change
//! notifications, heard on a connection of their own ([`listen_for_changes`]),
//! and by other instances over NATS (cluster/store_changes.rs). The poll
//! stays as the fallback for both (docs/cluster.md).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::admission::decision::{AdmittedDevice, DeviceAction, PairingReason, Role};
use crate::admission::{Admission, AdmittedOn, Decision, Evaluated, Lookups, StoreLookups};
use crate::store::{DeviceView, ServiceTokenCheck, StoreError, TokenCheck};

use super::apply::store_op;
use super::registry::SessionInfo;
use super::wire::CLOSE_INVALIDATED;
use super::{now_ms, Gateway};

/// The first retry after a failed read of the store.
const FIRST_RETRY: Duration = Duration::from_millis(200);

pub async fn watch_store(gw: Arc<Gateway>) {
    // Stops the listening thread when this watch ends (aborted at shutdown).
    let _listening = listen_for_changes(&gw);
    let mut interval = tokio::time::interval(gw.options.store_poll_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = None;
    let mut checked: HashSet<String> = HashSet::new();
    // The failure last logged: a store that stays unreadable (or replaced)
    // is logged once, not once per tick.
    let mut failing: Option<&'static str> = None;
    // After a failed read, ask again soon (backing off to the poll): a
    // nudge that met a connection cut by an outage is not lost until the
    // next poll (the first use of a cut PostgreSQL connection fails).
    let mut retry: Option<Duration> = None;
    loop {
        let retry_after = retry.unwrap_or(Duration::MAX);
        tokio::select! {
            _ = interval.tick() => {}
            _ = gw.store_nudge.notified() => {}
            _ = tokio::time::sleep(retry_after), if retry.is_some() => {}
        }
        // `data_version` moves when another connection (process) commits;
        // the generation moves for this process's own changes too. Device
        // sessions follow changes made elsewhere (the gateway's own device
        // methods close what they invalidate, and keep the rotating caller);
        // service sessions follow every change.
        let (version, generation) = match store_op(&gw, |s| Ok((s.data_version()?, s.generation()?))).await {
            Ok(v) => {
                if failing.take().is_some() {
                    tracing::info!("the store's data version can be read again");
                }
                retry = None;
                v
            }
            Err(e) => {
                // A replaced file was logged by the store itself.
                if failing != Some(e.code()) && !e.logged_by_store() {
                    tracing::warn!(error = %e, code = e.code(), "cannot read the store's data version");
                }
                failing = Some(e.code());
                let poll = gw.options.store_poll_interval;
                retry = Some(retry.map_or(FIRST_RETRY, |r| r * 2).min(poll));
                continue;
            }
        };
        let (elsewhere, anywhere) = match last {
            Some((v, g)) => (v != version, v != version || g != generation),
            None => (false, false),
        };
        last = Some((version, generation));
        let sessions = gw.registry.sessions_with_admission();
        checked.retain(|c| sessions.iter().any(|(s, _)| &s.conn_id == c));
        for (session, admitted_on) in sessions {
            let due = if session.device_id.is_some() {
                elsewhere
            } else if session.service.is_some() {
                anywhere
            } else {
                continue;
            };
            if due || !checked.contains(&session.conn_id) {
                recheck(&gw, &session, admitted_on).await;
                checked.insert(session.conn_id.clone());
            }
        }
    }
}

/// Set when the watch ends; the listening thread then stops.
struct StopListening(Arc<AtomicBool>);

impl Drop for StopListening {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Start the thread that listens for the store's change notifications and
/// nudges the watch, when the store has them (PostgreSQL).
fn listen_for_changes(gw: &Arc<Gateway>) -> Option<StopListening> {
    if !gw.options.listen_store_changes {
        return None;
    }
    let listener = gw.store.change_listener()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (stopped, weak): (Arc<AtomicBool>, Weak<Gateway>) = (stop.clone(), Arc::downgrade(gw));
    let spawned = std::thread::Builder::new().name("clawgate-store-listen".into()).spawn(move || {
        tracing::debug!(store = %listener.location(), "listening for store changes");
        let nudge = || {
            if let Some(gw) = weak.upgrade() {
                gw.metrics.store_notified();
                gw.store_nudge.notify_one();
            }
        };
        listener.run(&nudge, &|| stopped.load(Ordering::Relaxed) || weak.strong_count() == 0);
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the thread listening for store changes; polling only");
        return None;
    }
    Some(StopListening(stop))
}

async fn recheck(gw: &Arc<Gateway>, session: &SessionInfo, admitted_on: Arc<AdmittedOn>) {
    let config = gw.clone();
    let now = now_ms();
    let rechecked = store_op(gw, move |store| {
        let mut lookups = Recording { inner: StoreLookups { store, now_ms: now }, service: None };
        let evaluated = admitted_on.reevaluate(&config.config(), now, &mut lookups)?;
        Ok((evaluated, lookups.service))
    })
    .await;
    // A store that cannot be read says nothing about the session: keep it.
    let Ok((evaluated, service)) = rechecked else { return };
    if let Some(reason) = invalidation(session, &evaluated, service.as_ref()) {
        let conn = session.conn_id.clone();
        let closed = gw.registry.kill_where(|s| s.conn_id == conn, CLOSE_INVALIDATED, reason);
        if closed > 0 {
            tracing::info!(
                conn_id = %conn,
                device_id = ?session.device_id,
                service = ?session.service.as_ref().map(|s| &s.name),
                reason,
                "session closed after a store change"
            );
        }
    }
}

/// The store lookups, remembering the service token check so the close
/// reason can say whether the principal was removed, revoked or rotated.
struct Recording<'a> {
    inner: StoreLookups<'a>,
    service: Option<ServiceTokenCheck>,
}

impl Lookups for Recording<'_> {
    fn device_token(&mut self, device_id: &str, role: Role, presented: &str) -> Result<TokenCheck, StoreError> {
        self.inner.device_token(device_id, role, presented)
    }

    fn service_token(&mut self, presented: &str) -> Result<ServiceTokenCheck, StoreError> {
        let check = self.inner.service_token(presented)?;
        self.service = Some(check.clone());
        Ok(check)
    }

    fn device_view(&mut self, device_id: &str) -> Result<DeviceView, StoreError> {
        self.inner.device_view(device_id)
    }
}

/// Does the same decision, made again, still admit the session as it is
/// (same role, nothing to pair)? If not, why it closes, in words that say
/// what changed in the store.
fn invalidation(
    session: &SessionInfo,
    evaluated: &Evaluated,
    service: Option<&ServiceTokenCheck>,
) -> Option<&'static str> {
    let decision = &evaluated.decided.decision;
    let still_admitted = matches!(decision, Decision::Admit(a)
        if a.role == session.role
            && a.device.as_ref().is_none_or(|d| matches!(d.action, DeviceAction::Paired { .. })));
    if still_admitted {
        return None;
    }
    if session.service.is_some() {
        return Some(match service {
            Some(ServiceTokenCheck::Revoked) => "client invalidated: service principal revoked",
            Some(ServiceTokenCheck::Mismatch) => "client invalidated: service token rotated",
            _ => "client invalidated: service principal removed",
        });
    }
    let paired = evaluated.view.as_ref().and_then(|v| v.device.as_ref());
    let pairing_reason = match decision {
        Decision::PairingRequired(need) => Some(need.reason),
        Decision::Admit(Admission {
            device: Some(AdmittedDevice { action: DeviceAction::PairSilently { reason }, .. }),
            ..
        }) => Some(*reason),
        _ => None,
    };
    Some(match (paired, pairing_reason) {
        (None, _) => "client invalidated: device removed",
        (Some(d), _) if !d.has_role(session.role) => "client invalidated: role no longer approved",
        (Some(_), Some(PairingReason::ScopeUpgrade)) => "client invalidated: scopes no longer approved",
        (Some(_), Some(PairingReason::MetadataUpgrade)) => "client invalidated: device identity changed",
        (Some(_), Some(PairingReason::UserMismatch)) => "client invalidated: device paired to another user",
        (Some(_), _) => "client invalidated: device token revoked",
    })
}
