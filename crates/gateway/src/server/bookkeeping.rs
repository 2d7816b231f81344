//! The store's batched bookkeeping (last-seen and last-used times of
//! devices admitted from memory): written every few seconds and at shutdown,
//! never more than one transaction per batch (docs/benchmarks.md).

use std::sync::Arc;
use std::time::Duration;

use super::apply::store_op;
use super::Gateway;

/// How often the batch is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(3);

pub async fn flush_loop(gw: Arc<Gateway>) {
    if !gw.devices_in_memory {
        return;
    }
    let mut interval = tokio::time::interval(FLUSH_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        flush(&gw).await;
    }
}

/// Write what is pending now; a failure is logged and the batch kept.
pub async fn flush(gw: &Arc<Gateway>) {
    if let Err(e) = store_op(gw, |s| s.flush_bookkeeping()).await {
        tracing::warn!(error = %e, code = e.code(), "last-seen times not written yet; kept for the next attempt");
    }
}
