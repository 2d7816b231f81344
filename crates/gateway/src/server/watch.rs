//! Noticing store changes made by another process (the CLI working with
//! `--offline`): when SQLite's `data_version` moves, every device session is
//! re-checked and the ones whose pairing or token is gone are closed.

use std::sync::Arc;

use super::apply::store_op;
use super::Gateway;

/// Closes sessions that a change made elsewhere invalidated.
const CLOSE_INVALIDATED: u16 = 4001;

pub async fn watch_store(gw: Arc<Gateway>) {
    let mut interval = tokio::time::interval(gw.options.store_poll_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = None;
    loop {
        interval.tick().await;
        let version = match store_op(&gw, |s| s.data_version()).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, code = e.code(), "cannot read the store's data version");
                continue;
            }
        };
        if last.is_some_and(|l| l != version) {
            recheck_device_sessions(&gw).await;
        }
        last = Some(version);
    }
}

async fn recheck_device_sessions(gw: &Arc<Gateway>) {
    for session in gw.registry.sessions() {
        let Some(device_id) = session.device_id.clone() else { continue };
        let id = device_id.clone();
        let view = match store_op(gw, move |s| s.view(&id)).await {
            Ok(v) => v,
            Err(_) => continue,
        };
        let reason = match &view.device {
            None => Some("client invalidated: device removed"),
            Some(d) if !d.has_role(session.role) => Some("client invalidated: role no longer approved"),
            Some(_) => session.token_issued_at_ms.and_then(|issued| {
                let current = view.tokens.iter().find(|t| t.role == session.role && !t.is_revoked());
                match current {
                    Some(t) if t.issued_at_ms() == issued => None,
                    _ => Some("client invalidated: device token revoked"),
                }
            }),
        };
        if let Some(reason) = reason {
            let conn = session.conn_id.clone();
            let closed = gw.registry.kill_where(|s| s.conn_id == conn, CLOSE_INVALIDATED, reason);
            if closed > 0 {
                tracing::info!(conn_id = %conn, device_id = %device_id, reason, "session closed after a store change");
            }
        }
    }
}
