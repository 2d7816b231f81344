//! The load kinds. Each is bounded by a count and a wall-clock limit, whichever
//! comes first, and closes every connection it opened before returning.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clawgate_client::{Client, ClientError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::procfs;
use crate::stats::{self, Summary};
use crate::target::{PairedDevice, Target};

/// How much of a load to run: at most `count` operations, for at most
/// `duration`, after `warmup` unmeasured ones (Node's JIT needs them too).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub count: usize,
    pub duration: Duration,
    pub warmup: usize,
}

/// A load stops early after this many failed operations.
const MAX_ERRORS: usize = 20;
/// Connections opened at once when setting up idle or listening connections:
/// well under the 32 unauthenticated sockets per address both gateways allow.
const SETUP_IN_FLIGHT: usize = 16;

/// Throughput and latency of a closed-loop load.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    pub completed: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub per_sec: f64,
    pub latency: Summary,
    /// The gateway's CPU time per completed operation, microseconds (when its
    /// pid is known): the load generator's own CPU left out.
    pub cpu_us_per_op: Option<f64>,
    /// The same for the process behind the gateway ([`Target::upstream_pid`]).
    pub upstream_cpu_us_per_op: Option<f64>,
}

impl Throughput {
    pub(crate) fn from_parts(mut samples: Vec<Duration>, errors: Vec<String>, elapsed: Duration) -> Throughput {
        let latency = stats::summarize(&mut samples);
        Throughput {
            completed: samples.len(),
            errors: errors.len(),
            first_error: errors.into_iter().next(),
            elapsed,
            per_sec: if elapsed.is_zero() { 0.0 } else { samples.len() as f64 / elapsed.as_secs_f64() },
            latency,
            cpu_us_per_op: None,
            upstream_cpu_us_per_op: None,
        }
    }
}

/// What a handshake presents.
#[derive(Debug, Clone)]
pub enum Credential {
    /// The shared token, no device.
    Token,
    /// A paired device: a fresh proof over each challenge plus its device token.
    Device(Box<PairedDevice>),
}

async fn one_handshake(target: &Target, credential: &Credential) -> Result<Duration, String> {
    let options = match credential {
        Credential::Token => target.token_options(),
        Credential::Device(d) => target.device_options(d),
    };
    let start = Instant::now();
    let client = Client::connect(options).await.map_err(|e| e.to_string())?;
    let took = start.elapsed();
    client.close().await;
    Ok(took)
}

/// Run `op` from `workers` concurrent closed loops until `bounds` is reached.
/// Each call gets the worker's index; it returns the latency to record.
/// `pids` are the gateway's and the process's behind it, each optional:
/// their CPU time per operation is measured.
pub(crate) async fn closed_loop<F, Fut>(workers: usize, bounds: Bounds, pids: [Option<u32>; 2], op: F) -> Throughput
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Duration, String>> + Send,
{
    // Warm-up, spread over the workers, unmeasured.
    let warm = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for w in 0..workers.max(1) {
        let (op, warm) = (op.clone(), warm.clone());
        set.spawn(async move {
            while warm.fetch_add(1, Ordering::Relaxed) < bounds.warmup {
                let _ = op(w).await;
            }
        });
    }
    while set.join_next().await.is_some() {}

    let claimed = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let cpu_before = pids.map(|p| p.and_then(procfs::tree_cpu_ticks));
    let start = Instant::now();
    let deadline = start + bounds.duration;
    let mut set = JoinSet::new();
    for w in 0..workers.max(1) {
        let (op, claimed, failed) = (op.clone(), claimed.clone(), failed.clone());
        set.spawn(async move {
            let mut samples = Vec::new();
            let mut errors = Vec::new();
            while Instant::now() < deadline
                && failed.load(Ordering::Relaxed) < MAX_ERRORS
                && claimed.fetch_add(1, Ordering::Relaxed) < bounds.count
            {
                match tokio::time::timeout_at(deadline.into(), op(w)).await {
                    Ok(Ok(d)) => samples.push(d),
                    Ok(Err(e)) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(e);
                    }
                    Err(_) => break, // the wall-clock limit struck mid-operation
                }
            }
            (samples, errors)
        });
    }
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((s, e)) => {
                samples.extend(s);
                errors.extend(e);
            }
            Err(e) => errors.push(format!("worker failed: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let mut result = Throughput::from_parts(samples, errors, elapsed);
    let per_op = |before: Option<u64>, pid: Option<u32>| {
        let (before, after) = (before?, pid.and_then(procfs::tree_cpu_ticks)?);
        let seconds = after.saturating_sub(before) as f64 / procfs::TICKS_PER_SECOND;
        (result.completed > 0).then(|| seconds * 1e6 / result.completed as f64)
    };
    let [gateway, upstream] = [per_op(cpu_before[0], pids[0]), per_op(cpu_before[1], pids[1])];
    result.cpu_us_per_op = gateway;
    result.upstream_cpu_us_per_op = upstream;
    result
}

/// Connect → hello-ok, `concurrency` in flight (1: sequential). The latency is
/// TCP connect to hello-ok; each connection is then closed (outside the timer,
/// inside the rate).
pub async fn handshakes(target: &Target, credential: &Credential, concurrency: usize, bounds: Bounds) -> Throughput {
    let (target, credential) = (Arc::new(target.clone()), Arc::new(credential.clone()));
    closed_loop(concurrency, bounds, [target.pid, target.upstream_pid], move |_| {
        let (target, credential) = (target.clone(), credential.clone());
        async move { one_handshake(&target, &credential).await }
    })
    .await
}

/// Open `n` token connections, at most [`SETUP_IN_FLIGHT`] at once.
pub async fn open_many(target: &Target, n: usize) -> Result<Vec<Client>, ClientError> {
    let mut clients = Vec::with_capacity(n);
    let mut set = JoinSet::new();
    let mut started = 0;
    while clients.len() < n {
        while started < n && set.len() < SETUP_IN_FLIGHT {
            let t = target.clone();
            set.spawn(async move { t.connect_token().await });
            started += 1;
        }
        match set.join_next().await {
            Some(Ok(Ok(c))) => clients.push(c),
            Some(Ok(Err(e))) => {
                close_all(clients).await;
                return Err(e);
            }
            Some(Err(e)) => {
                close_all(clients).await;
                return Err(ClientError::Protocol(format!("connect task failed: {e}")));
            }
            None => break,
        }
    }
    Ok(clients)
}

pub async fn close_all(clients: Vec<Client>) {
    let mut set = JoinSet::new();
    for c in clients {
        set.spawn(c.close());
    }
    while set.join_next().await.is_some() {}
}

/// `health` round trips over `connections` connections, one request in flight
/// on each (closed loop).
pub async fn rpc(target: &Target, connections: usize, bounds: Bounds) -> Result<Throughput, ClientError> {
    rpc_method(target, connections, "health", None, bounds).await
}

/// [`rpc`] with another method and its params (e.g. `sessions.list`, `{}`).
pub async fn rpc_method(
    target: &Target,
    connections: usize,
    method: &str,
    params: Option<serde_json::Value>,
    bounds: Bounds,
) -> Result<Throughput, ClientError> {
    let clients: Arc<Vec<Client>> = Arc::new(open_many(target, connections.max(1)).await?);
    let method: Arc<str> = Arc::from(method);
    let result = closed_loop(clients.len(), bounds, [target.pid, target.upstream_pid], {
        let clients = clients.clone();
        move |w| {
            let (clients, method, params) = (clients.clone(), method.clone(), params.clone());
            async move {
                let start = Instant::now();
                clients[w].request(&method, params).await.map_err(|e| e.to_string())?;
                Ok(start.elapsed())
            }
        }
    })
    .await;
    let clients = Arc::try_unwrap(clients).unwrap_or_default();
    close_all(clients).await;
    Ok(result)
}

/// The gateway's memory with no connection of ours and with `connections`
/// idle authenticated ones.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub connections: usize,
    /// VmRSS of the gateway process, KiB.
    pub idle_kib: u64,
    pub loaded_kib: u64,
    /// The same summed over the process and its descendants (OpenClaw runs helpers).
    pub idle_tree_kib: u64,
    pub loaded_tree_kib: u64,
}

impl Memory {
    /// Bytes per idle connection (the RSS growth over the connections).
    pub fn per_connection_bytes(&self) -> f64 {
        if self.connections == 0 {
            return 0.0;
        }
        (self.loaded_kib as f64 - self.idle_kib as f64) * 1024.0 / self.connections as f64
    }
}

pub async fn memory(target: &Target, pid: u32, connections: usize, settle: Duration) -> Result<Memory, String> {
    let mut each = memory_of(target, &[pid], connections, settle).await?;
    Ok(each.remove(0))
}

/// [`memory`] read for several processes around the same connections (the
/// gateway and the upstream behind it), one [`Memory`] per pid, in order.
pub async fn memory_of(
    target: &Target,
    pids: &[u32],
    connections: usize,
    settle: Duration,
) -> Result<Vec<Memory>, String> {
    let read = |what: &str| -> Result<Vec<(u64, u64)>, String> {
        pids.iter()
            .map(|&pid| {
                let own = procfs::rss_kib(pid).ok_or_else(|| format!("cannot read /proc/{pid}/status ({what})"))?;
                Ok((own, procfs::tree_rss_kib(pid).unwrap_or(own)))
            })
            .collect()
    };
    tokio::time::sleep(settle).await;
    let idle = read("idle")?;
    let clients = open_many(target, connections).await.map_err(|e| format!("opening idle connections: {e}"))?;
    tokio::time::sleep(settle).await;
    let loaded = read("loaded");
    let opened = clients.len();
    close_all(clients).await;
    let loaded = loaded?;
    Ok(idle
        .into_iter()
        .zip(loaded)
        .map(|((idle_kib, idle_tree_kib), (loaded_kib, loaded_tree_kib))| Memory {
            connections: opened,
            idle_kib,
            loaded_kib,
            idle_tree_kib,
            loaded_tree_kib,
        })
        .collect())
}

/// The client whose connecting makes both gateways broadcast `presence`: any
/// non-ephemeral mode (not cli, backend or probe) gets a presence row. The
/// default, the macOS app's operator UI (`openclaw-macos`/`ui`) with the
/// shared token, is admitted by both without a device; OpenClaw refuses
/// `openclaw-tui` without one (CONTROL_UI_DEVICE_IDENTITY_REQUIRED).
#[derive(Debug, Clone)]
pub struct Trigger {
    pub client_id: String,
    pub mode: String,
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger { client_id: "openclaw-macos".into(), mode: "ui".into() }
    }
}

/// One broadcast: when the listeners got it, counted from the moment the
/// trigger started connecting.
#[derive(Debug, Clone, Default)]
pub struct FanoutTrial {
    pub received: usize,
    pub trigger_handshake_ms: f64,
    pub first_ms: f64,
    pub p50_ms: f64,
    pub last_ms: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Fanout {
    pub listeners: usize,
    pub trials: Vec<FanoutTrial>,
    /// The gateway's CPU time per measured trial, milliseconds (when its pid
    /// is known): the trigger's handshake, its two presence broadcasts
    /// (connect and disconnect) to every listener, and the trigger's close.
    pub cpu_ms_per_trial: Option<f64>,
}

impl Fanout {
    /// Median over the trials of one field.
    pub fn median(&self, f: impl Fn(&FanoutTrial) -> f64) -> f64 {
        stats::median(&self.trials.iter().map(f).collect::<Vec<_>>())
    }
}

/// The trial numbers of the string values in `v` (at any depth) that start
/// with `prefix<trial>.` (the trigger's `instanceId`, wherever a gateway puts it).
fn trials_in_value(v: &serde_json::Value, prefix: &str, out: &mut Vec<usize>) {
    match v {
        serde_json::Value::String(s) => {
            if let Some(rest) = s.strip_prefix(prefix) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(n) = digits.parse() {
                    out.push(n);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| trials_in_value(i, prefix, out)),
        serde_json::Value::Object(map) => map.values().for_each(|i| trials_in_value(i, prefix, out)),
        _ => {}
    }
}

/// Open `listeners` operator connections, then `trials` times: connect a
/// trigger client (a non-ephemeral mode, with a unique `instanceId`), and
/// time the `presence` event that lists it until every listener has it.
/// One extra, unmeasured trial warms up first.
pub async fn fanout(
    target: &Target,
    listeners: usize,
    trials: usize,
    trigger: &Trigger,
    per_trial: Duration,
) -> Result<Fanout, String> {
    let clients = open_many(target, listeners).await.map_err(|e| format!("opening listeners: {e}"))?;
    let opened = clients.len();
    let mut nonce = [0u8; 4];
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    nonce.copy_from_slice(&now.subsec_nanos().to_le_bytes());
    let prefix: Arc<str> = Arc::from(format!("benchfanout-{:08x}-", u32::from_le_bytes(nonce)));

    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut set = JoinSet::new();
    for mut client in clients {
        let (tx, prefix, mut stop) = (tx.clone(), prefix.clone(), stop_rx.clone());
        set.spawn(async move {
            let mut seen = HashSet::new();
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    event = client.next_event() => {
                        let Some(event) = event else { break };
                        if event.event != "presence" {
                            continue;
                        }
                        let at = Instant::now();
                        let mut marked = Vec::new();
                        if let Some(payload) = &event.payload {
                            trials_in_value(payload, &prefix, &mut marked);
                        }
                        for trial in marked {
                            if seen.insert(trial) {
                                let _ = tx.send((trial, at));
                            }
                        }
                    }
                }
            }
            client.close().await;
        });
    }
    drop(tx);

    let mut result = Fanout { listeners: opened, trials: Vec::new(), cpu_ms_per_trial: None };
    let mut failure = None;
    let mut cpu_from = None;
    for trial in 0..=trials {
        if trial == 1 {
            cpu_from = target.pid.and_then(procfs::tree_cpu_ticks);
        }
        let mut options = target.token_options().client(&trigger.client_id, &trigger.mode);
        options.instance_id = Some(format!("{prefix}{trial}."));
        let t0 = Instant::now();
        let trigger_client = match Client::connect(options).await {
            Ok(c) => c,
            Err(e) => {
                failure = Some(format!("trigger connect ({}/{}): {e}", trigger.client_id, trigger.mode));
                break;
            }
        };
        let handshake = t0.elapsed();
        let deadline = tokio::time::Instant::from_std(t0 + per_trial);
        let mut times = Vec::with_capacity(opened);
        while times.len() < opened {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((t, at))) if t == trial => times.push(at.saturating_duration_since(t0)),
                Ok(Some(_)) => {} // a late copy of an earlier trial's broadcast
                Ok(None) | Err(_) => break,
            }
        }
        trigger_client.close().await;
        if times.len() < opened {
            failure = Some(format!(
                "trial {trial}: {} of {opened} listeners got the presence event within {per_trial:?}",
                times.len()
            ));
            break;
        }
        let summary = stats::summarize(&mut times);
        if trial > 0 {
            result.trials.push(FanoutTrial {
                received: times.len(),
                trigger_handshake_ms: handshake.as_secs_f64() * 1e3,
                first_ms: times.first().map_or(0.0, |d| d.as_secs_f64() * 1e3),
                p50_ms: summary.p50_ms,
                last_ms: summary.max_ms,
            });
        }
        // Let the disconnect's own presence broadcast pass before the next trial.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if let (Some(from), Some(to)) = (cpu_from, target.pid.and_then(procfs::tree_cpu_ticks)) {
        if !result.trials.is_empty() {
            let ms = to.saturating_sub(from) as f64 * 1e3 / procfs::TICKS_PER_SECOND;
            result.cpu_ms_per_trial = Some(ms / result.trials.len() as f64);
        }
    }
    let _ = stop_tx.send(true);
    while set.join_next().await.is_some() {}
    match failure {
        Some(f) => Err(f),
        None => Ok(result),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_trial_markers() {
        let text = r#"{"presence":[{"instanceId":"bf-1-3."},{"instanceId":"bf-1-12."},{"x":"bf-2-4."},{"y":"bf-1-"}]}"#;
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut found = Vec::new();
        super::trials_in_value(&v, "bf-1-", &mut found);
        assert_eq!(found, vec![3, 12]);
    }
}
