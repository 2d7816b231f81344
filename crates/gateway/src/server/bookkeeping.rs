//! The store's batched bookkeeping (last-seen and last-used times of
//! devices admitted from memory, last-used times of service tokens): written
//! every few seconds and at shutdown, never more than one transaction per
//! batch (docs/benchmarks.md). A batch that cannot be written (a full disk)
//! is kept and tried again with the next; the failure is logged once, with
//! its code, until a batch lands again.

use std::sync::Arc;
use std::time::Duration;

use super::apply::store_op;
use super::Gateway;
use crate::store::StoreError;

/// How often the batch is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(3);

pub async fn flush_loop(gw: Arc<Gateway>) {
    if !gw.devices_in_memory {
        return;
    }
    let mut interval = tokio::time::interval(FLUSH_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    let mut failing = false;
    loop {
        interval.tick().await;
        match write_pending(&gw).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("last-seen and last-used times written again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                log_kept(&e);
            }
            Err(_) => {}
        }
    }
}

/// Write what is pending now (at shutdown); a failure is logged.
pub async fn flush(gw: &Arc<Gateway>) {
    if let Err(e) = write_pending(gw).await {
        log_kept(&e);
    }
}

async fn write_pending(gw: &Arc<Gateway>) -> Result<(), StoreError> {
    store_op(gw, |s| s.flush_bookkeeping()).await
}

fn log_kept(e: &StoreError) {
    tracing::warn!(
        error = %e,
        code = e.code(),
        "last-seen times not written yet; kept for the next attempt (logged once until they are written)"
    );
}
