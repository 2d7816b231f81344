//! Noticing store changes, including those made by another process (the CLI
//! working on the store file): when SQLite's `data_version` or the store's
//! generation moves, every device and service-principal session is re-checked
//! and the ones whose pairing, token or principal is gone are closed with
//! 4001. A session admitted since the last tick is checked once as well, so a
//! revocation that landed between its credential check and its registration
//! cannot slip through.

use std::collections::HashSet;
use std::sync::Arc;

use super::apply::store_op;
use super::registry::SessionInfo;
use super::Gateway;

/// Closes sessions that a change made elsewhere invalidated.
const CLOSE_INVALIDATED: u16 = 4001;

pub async fn watch_store(gw: Arc<Gateway>) {
    let mut interval = tokio::time::interval(gw.options.store_poll_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = None;
    let mut checked: HashSet<String> = HashSet::new();
    loop {
        interval.tick().await;
        // `data_version` moves when another connection (process) commits;
        // the generation moves for this process's own changes too. Device
        // sessions follow changes made elsewhere (the gateway's own device
        // methods close what they invalidate, and keep the rotating caller);
        // service sessions follow every change.
        let (version, generation) = match store_op(&gw, |s| Ok((s.data_version()?, s.generation()?))).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, code = e.code(), "cannot read the store's data version");
                continue;
            }
        };
        let (elsewhere, anywhere) = match last {
            Some((v, g)) => (v != version, v != version || g != generation),
            None => (false, false),
        };
        last = Some((version, generation));
        let sessions = gw.registry.sessions();
        checked.retain(|c| sessions.iter().any(|s| &s.conn_id == c));
        for session in &sessions {
            let due = if session.device_id.is_some() {
                elsewhere
            } else if session.service.is_some() {
                anywhere
            } else {
                continue;
            };
            if due || !checked.contains(&session.conn_id) {
                recheck(&gw, session).await;
                checked.insert(session.conn_id.clone());
            }
        }
    }
}

async fn recheck(gw: &Arc<Gateway>, session: &SessionInfo) {
    let reason = match (&session.device_id, &session.service) {
        (Some(device_id), _) => device_reason(gw, session, device_id).await,
        (None, Some(service)) => {
            let id = service.principal_id.clone();
            match store_op(gw, move |s| s.service_by_id(&id)).await {
                Err(_) => None,
                Ok(None) => Some("client invalidated: service principal removed"),
                Ok(Some(p)) if p.is_revoked() => Some("client invalidated: service principal revoked"),
                Ok(Some(p)) if p.issued_at_ms() != service.issued_at_ms => {
                    Some("client invalidated: service token rotated")
                }
                Ok(Some(_)) => None,
            }
        }
        (None, None) => None,
    };
    if let Some(reason) = reason {
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

async fn device_reason(gw: &Arc<Gateway>, session: &SessionInfo, device_id: &str) -> Option<&'static str> {
    let id = device_id.to_owned();
    let view = store_op(gw, move |s| s.view(&id)).await.ok()?;
    match &view.device {
        None => Some("client invalidated: device removed"),
        Some(d) if !d.has_role(session.role) => Some("client invalidated: role no longer approved"),
        Some(_) => session.token_issued_at_ms.and_then(|issued| {
            let current = view.tokens.iter().find(|t| t.role == session.role && !t.is_revoked());
            match current {
                Some(t) if t.issued_at_ms() == issued => None,
                _ => Some("client invalidated: device token revoked"),
            }
        }),
    }
}
