//! The relay's added latency: the same request sent alternately straight to
//! a gateway and through a relay in front of that same gateway (clawgate in
//! upstream mode), one at a time, so both paths see the same machine at the
//! same moment and the difference is the relay's.

use std::time::{Duration, Instant};

use clawgate_client::{Client, ClientError};
use serde_json::Value;

use crate::load::{Bounds, Throughput};
use crate::procfs;
use crate::target::Target;

/// The two paths' round trips: `direct` to the gateway itself, `relayed`
/// through the relay. `relayed.cpu_us_per_op` is the relay's CPU per relayed
/// request (`relay.pid`); the gateway behind serves both paths, so its CPU is
/// not split between them.
#[derive(Debug, Clone, Default)]
pub struct Interleaved {
    pub direct: Throughput,
    pub relayed: Throughput,
}

async fn timed(client: &Client, method: &str, params: &Option<Value>) -> Result<Duration, String> {
    let start = Instant::now();
    client.request(method, params.clone()).await.map_err(|e| e.to_string())?;
    Ok(start.elapsed())
}

/// `bounds.count` pairs (at most `bounds.duration`), after `bounds.warmup`
/// unmeasured pairs; the path that goes first alternates pair by pair.
pub async fn interleaved(
    direct: &Target,
    relay: &Target,
    method: &str,
    params: Option<Value>,
    bounds: Bounds,
) -> Result<Interleaved, ClientError> {
    let direct_client = direct.connect_token().await?;
    let relayed_client = match relay.connect_token().await {
        Ok(c) => c,
        Err(e) => {
            direct_client.close().await;
            return Err(e);
        }
    };
    for _ in 0..bounds.warmup {
        let _ = timed(&direct_client, method, &params).await;
        let _ = timed(&relayed_client, method, &params).await;
    }
    let (mut direct_samples, mut relayed_samples) = (Vec::new(), Vec::new());
    let (mut direct_errors, mut relayed_errors) = (Vec::new(), Vec::new());
    let cpu_before = relay.pid.and_then(procfs::tree_cpu_ticks);
    let start = Instant::now();
    for pair in 0..bounds.count {
        if start.elapsed() >= bounds.duration || direct_errors.len() + relayed_errors.len() >= 20 {
            break;
        }
        let mut one = async |relayed: bool| {
            let (client, samples, errors) = if relayed {
                (&relayed_client, &mut relayed_samples, &mut relayed_errors)
            } else {
                (&direct_client, &mut direct_samples, &mut direct_errors)
            };
            match timed(client, method, &params).await {
                Ok(d) => samples.push(d),
                Err(e) => errors.push(e),
            }
        };
        let relayed_first = pair % 2 == 1;
        one(relayed_first).await;
        one(!relayed_first).await;
    }
    let elapsed = start.elapsed();
    let relayed_count = relayed_samples.len();
    let mut result = Interleaved {
        direct: Throughput::from_parts(direct_samples, direct_errors, elapsed),
        relayed: Throughput::from_parts(relayed_samples, relayed_errors, elapsed),
    };
    if let (Some(before), Some(after)) = (cpu_before, relay.pid.and_then(procfs::tree_cpu_ticks)) {
        if relayed_count > 0 {
            let seconds = after.saturating_sub(before) as f64 / procfs::TICKS_PER_SECOND;
            result.relayed.cpu_us_per_op = Some(seconds * 1e6 / relayed_count as f64);
        }
    }
    direct_client.close().await;
    relayed_client.close().await;
    Ok(result)
}
