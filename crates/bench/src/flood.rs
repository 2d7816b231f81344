//! A credential flood: connects with wrong tokens from many loopback source
//! addresses for a bounded time, while a legitimate client, connected before
//! the flood, keeps sending requests, one at a time at a steady pace. What it costs the
//! gateway (and the process behind it), and what the legitimate client sees.
//!
//! Each attempt is a full handshake up to the `connect` frame (TCP connect,
//! WebSocket upgrade, challenge, `connect` with a fresh wrong token); the
//! attacker then waits at most `attempt_timeout` for the answer and closes,
//! so a gateway that delays its refusals (both do, for loopback failures)
//! does not slow the flood down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clawgate_client::{Client, ClientError};
use serde_json::Value;
use tokio::task::JoinSet;

use crate::load::{closed_loop, Bounds, Throughput};
use crate::procfs;
use crate::target::Target;

#[derive(Debug, Clone, Copy)]
pub struct FloodBounds {
    /// How long the legitimate client is measured under the flood (the flood
    /// itself starts `ramp` earlier).
    pub duration: Duration,
    pub ramp: Duration,
    /// Wrong-token connects in flight at once.
    pub in_flight: usize,
    /// How long an attacker waits for the refusal before closing.
    pub attempt_timeout: Duration,
    /// The legitimate client's pause before each request: its requests cost
    /// the gateway the same in every setup, however fast they are answered.
    pub legit_interval: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct Flood {
    /// Attempts that ended within the flood (all outcomes below).
    pub attempts: usize,
    /// Answered with a refusal (an error response, or a close).
    pub refused: usize,
    /// Refused already at the WebSocket upgrade (an HTTP error status, e.g.
    /// 503 when the address has too many unauthenticated connections).
    pub refused_at_upgrade: usize,
    /// No answer within the attempt timeout (then closed by the attacker).
    pub unanswered: usize,
    /// Admitted with a wrong token: never expected.
    pub admitted: usize,
    /// Failed before a refusal (TCP connect, upgrade, …).
    pub other: usize,
    pub first_other: Option<String>,
    /// The flood's wall time (ramp included).
    pub elapsed: Duration,
    /// The legitimate client's requests during the flood (after the ramp).
    pub legit: Throughput,
    /// CPU time of the gateway and of the process behind it over the flood,
    /// as a share of one core (1.0 = one core busy), when their pids are known.
    pub cpu_share: [Option<f64>; 2],
}

impl Flood {
    pub fn attempts_per_sec(&self) -> f64 {
        if self.elapsed.is_zero() {
            0.0
        } else {
            self.attempts as f64 / self.elapsed.as_secs_f64()
        }
    }
}

enum Outcome {
    Refused,
    RefusedAtUpgrade,
    Unanswered,
    Admitted,
    Other(String),
}

async fn one_attempt(attackers: &Target, wrong_token: String, timeout: Duration) -> Outcome {
    let mut options = attackers.options().token(wrong_token);
    options.timeout = timeout;
    match tokio::time::timeout(timeout, Client::connect(options)).await {
        Err(_) | Ok(Err(ClientError::Timeout(_))) => Outcome::Unanswered,
        Ok(Err(ClientError::Refused(_) | ClientError::Closed(_))) => Outcome::Refused,
        Ok(Err(ClientError::Connect { message, .. })) if message.starts_with("HTTP ") => Outcome::RefusedAtUpgrade,
        Ok(Err(e)) => Outcome::Other(e.to_string()),
        Ok(Ok(client)) => {
            client.close().await;
            Outcome::Admitted
        }
    }
}

/// The legitimate client, on a thread and runtime of its own so that the
/// attackers' tasks in this process do not delay it: connects through
/// `target`, waits for `go`, then sends `method` paced for `bounds.duration`.
fn legit_client(
    target: Target,
    method: String,
    params: Option<Value>,
    bounds: FloodBounds,
    go: std::sync::mpsc::Receiver<()>,
    connected: tokio::sync::oneshot::Sender<Result<(), String>>,
) -> std::thread::JoinHandle<Throughput> {
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                let _ = connected.send(Err(format!("legitimate client's runtime: {e}")));
                return Throughput::default();
            }
        };
        runtime.block_on(async move {
            let client = match target.connect_token().await {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    let _ = connected.send(Err(format!("legitimate client: {e}")));
                    return Throughput::default();
                }
            };
            let _ = connected.send(Ok(()));
            if go.recv().is_err() {
                return Throughput::default();
            }
            let method: Arc<str> = Arc::from(method);
            let legit_bounds = Bounds { count: usize::MAX / 2, duration: bounds.duration, warmup: 0 };
            let pause = bounds.legit_interval;
            let result = closed_loop(1, legit_bounds, [None, None], {
                let client = client.clone();
                move |_| {
                    let (client, method, params) = (client.clone(), method.clone(), params.clone());
                    async move {
                        tokio::time::sleep(pause).await;
                        let start = Instant::now();
                        client.request(&method, params).await.map_err(|e| e.to_string())?;
                        Ok(start.elapsed())
                    }
                }
            })
            .await;
            if let Ok(client) = Arc::try_unwrap(client) {
                client.close().await;
            }
            result
        })
    })
}

/// Flood `attackers` (a [`Target`] whose source addresses are the flood's)
/// with wrong tokens while a legitimate client, connected through `legit`
/// before the flood, sends `method` with `params`. CPU is read for
/// `attackers.pid` and `attackers.upstream_pid`.
pub async fn flood(
    attackers: &Target,
    legit: &Target,
    method: &str,
    params: Option<Value>,
    bounds: FloodBounds,
) -> Result<Flood, String> {
    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
    let legit_thread = legit_client(legit.clone(), method.to_owned(), params, bounds, go_rx, connected_tx);
    connected_rx.await.map_err(|_| "the legitimate client's thread ended".to_owned())??;

    let pids = [attackers.pid, attackers.upstream_pid];
    let cpu_before = pids.map(|p| p.and_then(procfs::tree_cpu_ticks));
    let start = Instant::now();
    let deadline = start + bounds.ramp + bounds.duration;
    // A nonce per run: every attempt presents a token nobody was ever given.
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let counter = Arc::new(AtomicU64::new(0));

    let mut attackers_set = JoinSet::new();
    for _ in 0..bounds.in_flight.max(1) {
        let (target, counter) = (attackers.clone(), counter.clone());
        attackers_set.spawn(async move {
            let mut tally = Flood::default();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let wrong = format!("wrong-{nonce:x}-{n}");
                let left = deadline.saturating_duration_since(Instant::now());
                tally.attempts += 1;
                match one_attempt(&target, wrong, bounds.attempt_timeout.min(left)).await {
                    Outcome::Refused => tally.refused += 1,
                    Outcome::RefusedAtUpgrade => tally.refused_at_upgrade += 1,
                    Outcome::Unanswered => tally.unanswered += 1,
                    Outcome::Admitted => tally.admitted += 1,
                    Outcome::Other(e) => {
                        tally.other += 1;
                        tally.first_other.get_or_insert(e);
                        // Do not spin on an immediate failure (no port, no listener).
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            tally
        });
    }

    tokio::time::sleep(bounds.ramp).await;
    let _ = go_tx.send(());
    let legit_result = tokio::task::spawn_blocking(move || legit_thread.join())
        .await
        .map_err(|e| format!("joining the legitimate client: {e}"))?
        .map_err(|_| "the legitimate client's thread panicked".to_owned())?;

    let mut total = Flood { legit: legit_result, ..Flood::default() };
    while let Some(joined) = attackers_set.join_next().await {
        let Ok(t) = joined else { continue };
        total.attempts += t.attempts;
        total.refused += t.refused;
        total.refused_at_upgrade += t.refused_at_upgrade;
        total.unanswered += t.unanswered;
        total.admitted += t.admitted;
        total.other += t.other;
        if total.first_other.is_none() {
            total.first_other = t.first_other;
        }
    }
    total.elapsed = start.elapsed();
    let seconds = total.elapsed.as_secs_f64();
    for (i, pid) in pids.iter().enumerate() {
        if let (Some(before), Some(after)) = (cpu_before[i], pid.and_then(procfs::tree_cpu_ticks)) {
            total.cpu_share[i] = Some(after.saturating_sub(before) as f64 / procfs::TICKS_PER_SECOND / seconds);
        }
    }
    Ok(total)
}
