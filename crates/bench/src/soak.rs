//! The soak: many authenticated idle connections held for minutes while
//! some come and go (churn), a `health` load runs, and a `presence`
//! broadcast reaches everyone every few seconds; the gateway's RSS, open
//! files and CPU are sampled every 10 s. Run by `scripts/soak`; the verdict
//! rules are in docs/reliability.md ("Soak").
//!
//! Pass: no unexpected error (a failed connect or `health`, an idle
//! connection closed by the gateway, a broadcast that did not reach every
//! witness), no growth after warm-up (RSS and open files of the last third
//! of the run within a slack of the warm-up's highest), and everything
//! returned once the clients leave (open files back to the baseline, no
//! session left when the admin listener is given).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clawgate_client::Client;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::load::open_many;
use crate::procfs;
use crate::target::Target;

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    pub connections: usize,
    /// Connections closed and as many opened, per second.
    pub churn_per_sec: usize,
    /// `health` requests per second, over `health_connections`.
    pub health_per_sec: usize,
    pub health_connections: usize,
    pub broadcast_every: Duration,
    /// How long each witness has to get a broadcast.
    pub broadcast_deadline: Duration,
    pub duration: Duration,
    /// The first part of the run whose highs the rest is held to.
    pub warmup: Duration,
    pub sample_every: Duration,
    /// Idle connections never churned, which must each get every broadcast.
    pub witnesses: usize,
    /// The gateway's admin listener, for the session count at the end.
    pub admin: Option<SocketAddr>,
    /// RSS growth allowed after warm-up: the larger of this share and `rss_slack_kib`.
    pub rss_slack_share: f64,
    pub rss_slack_kib: u64,
}

impl Default for SoakPlan {
    fn default() -> Self {
        SoakPlan {
            connections: 10_000,
            churn_per_sec: 20,
            health_per_sec: 200,
            health_connections: 8,
            broadcast_every: Duration::from_secs(5),
            broadcast_deadline: Duration::from_secs(15),
            duration: Duration::from_secs(600),
            warmup: Duration::from_secs(120),
            sample_every: Duration::from_secs(10),
            witnesses: 64,
            admin: None,
            rss_slack_share: 0.05,
            rss_slack_kib: 16 * 1024,
        }
    }
}

/// One reading of the gateway process.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Sample {
    pub at_s: f64,
    pub rss_kib: u64,
    pub open_files: usize,
    /// CPU used since the previous sample, % of one core.
    pub cpu_pct: f64,
    pub connections: usize,
    pub health_ok: usize,
    pub churned: usize,
    pub broadcasts: usize,
    pub errors: usize,
}

/// The figures and the verdict.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SoakReport {
    pub baseline_rss_kib: u64,
    pub baseline_open_files: usize,
    pub ramp_s: f64,
    pub samples: Vec<Sample>,
    pub warmup_rss_kib: u64,
    pub late_rss_kib: u64,
    pub warmup_open_files: usize,
    pub late_open_files: usize,
    pub after_rss_kib: u64,
    pub after_open_files: usize,
    /// Sessions the admin listener still counted after the clients left.
    pub after_sessions: Option<f64>,
    pub health_ok: usize,
    pub churned: usize,
    pub broadcasts: usize,
    pub errors: Vec<String>,
    pub error_count: usize,
    pub failures: Vec<String>,
    pub pass: bool,
}

/// Shared counters of the running soak.
#[derive(Default)]
struct Tally {
    errors: AtomicUsize,
    first_errors: Mutex<Vec<String>>,
    health_ok: AtomicUsize,
    /// Broadcast number → witnesses that got it.
    witnessed: Mutex<HashMap<usize, usize>>,
}

impl Tally {
    fn error(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap_or_else(|p| p.into_inner());
        if first.len() < 20 {
            first.push(e);
        }
    }
}

/// An idle connection's task: reads its events until told to leave; a
/// witness counts the broadcasts it sees. An end not asked for is an error.
struct Idle {
    leave: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

fn spawn_idle(mut client: Client, witness: bool, prefix: Arc<str>, tally: Arc<Tally>) -> Idle {
    let (leave, mut told) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut seen = HashSet::new();
        loop {
            tokio::select! {
                _ = &mut told => break,
                event = client.next_event() => match event {
                    None => {
                        tally.error(format!("an idle connection ended: {:?}", client.close_info()));
                        return;
                    }
                    Some(e) if witness && e.event == "presence" => {
                        let text = e.payload.map(|p| p.to_string()).unwrap_or_default();
                        for part in text.split(&*prefix).skip(1) {
                            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
                            if let Ok(n) = digits.parse::<usize>() {
                                if seen.insert(n) {
                                    *tally.witnessed.lock().unwrap_or_else(|p| p.into_inner()).entry(n).or_default() += 1;
                                }
                            }
                        }
                    }
                    Some(_) => {}
                },
            }
        }
        client.close().await;
    });
    Idle { leave, task }
}

async fn leave_all(idle: impl IntoIterator<Item = Idle>) {
    let mut tasks = Vec::new();
    for i in idle {
        let _ = i.leave.send(());
        tasks.push(i.task);
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Open descriptors of `pid`.
pub fn open_files(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The sum of `name`'s samples on the admin listener's `/metrics`.
async fn admin_metric(admin: SocketAddr, name: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await.ok()?;
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).await.ok()?;
    let found = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Some(found)
}

/// Run the soak against `target` (whose `pid` must be set).
pub async fn run(target: &Target, plan: &SoakPlan, mut on_sample: impl FnMut(&Sample)) -> Result<SoakReport, String> {
    let pid = target.pid.ok_or("the soak needs the gateway's pid")?;
    let read_rss = || procfs::rss_kib(pid).ok_or_else(|| format!("cannot read /proc/{pid}/status"));
    let tally = Arc::new(Tally::default());
    let prefix: Arc<str> = Arc::from(format!("soak-{}-", std::process::id()));
    let mut report = SoakReport {
        baseline_rss_kib: read_rss()?,
        baseline_open_files: open_files(pid).unwrap_or(0),
        ..SoakReport::default()
    };

    // Ramp up: witnesses first, then the churnable rest.
    let ramp = Instant::now();
    let mut witnesses = Vec::new();
    let mut churnable = VecDeque::new();
    let first = open_many(target, plan.connections).await.map_err(|e| format!("opening the idle connections: {e}"))?;
    for (i, c) in first.into_iter().enumerate() {
        let witness = i < plan.witnesses;
        let idle = spawn_idle(c, witness, prefix.clone(), tally.clone());
        if witness {
            witnesses.push(idle);
        } else {
            churnable.push_back(idle);
        }
    }
    report.ramp_s = ramp.elapsed().as_secs_f64();

    // health load.
    let health_clients =
        open_many(target, plan.health_connections.max(1)).await.map_err(|e| format!("health connections: {e}"))?;
    // A watch, not a Notify: a worker busy in a request when the stop is
    // sent still sees it at its next turn.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = JoinSet::new();
    let per_client = Duration::from_secs_f64(plan.health_connections.max(1) as f64 / plan.health_per_sec.max(1) as f64);
    for client in health_clients {
        let (tally, mut stopped) = (tally.clone(), stopped.clone());
        workers.spawn(async move {
            let mut every = tokio::time::interval(per_client);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = every.tick() => match client.request_with_timeout("health", None, Duration::from_secs(30)).await {
                        Ok(_) => { tally.health_ok.fetch_add(1, Ordering::Relaxed); }
                        Err(e) => tally.error(format!("health: {e}")),
                    },
                }
            }
            client.close().await;
        });
    }

    let start = Instant::now();
    let end = start + plan.duration;
    let mut churned = 0usize;
    let mut broadcasts = 0usize;
    let mut next_broadcast = start;
    let mut next_sample = start + plan.sample_every;
    let mut cpu_at = (Instant::now(), procfs::cpu_ticks(pid).unwrap_or(0));
    let mut pending_checks: VecDeque<(usize, Instant)> = VecDeque::new();
    let mut second = tokio::time::interval(Duration::from_secs(1));
    let mut trigger: Option<Client> = None;
    while Instant::now() < end {
        second.tick().await;
        // Churn: the oldest leave, as many new ones come.
        let leaving: Vec<Idle> =
            (0..plan.churn_per_sec.min(churnable.len())).filter_map(|_| churnable.pop_front()).collect();
        let n = leaving.len();
        leave_all(leaving).await;
        match open_many(target, n).await {
            Ok(new) => {
                churned += new.len();
                for c in new {
                    churnable.push_back(spawn_idle(c, false, prefix.clone(), tally.clone()));
                }
            }
            Err(e) => tally.error(format!("churn connect: {e}")),
        }
        // A broadcast to everyone: a client with a presence row connects,
        // and the previous one leaves. Each stays until the next: gateways
        // coalesce presence broadcasts, and a row that came and went
        // within one interval would never be broadcast.
        if Instant::now() >= next_broadcast {
            next_broadcast += plan.broadcast_every;
            let mut o = target.token_options().client("openclaw-macos", "ui");
            o.instance_id = Some(format!("{prefix}{broadcasts}."));
            match Client::connect(o).await {
                Ok(c) => {
                    pending_checks.push_back((broadcasts, Instant::now()));
                    broadcasts += 1;
                    if let Some(previous) = trigger.replace(c) {
                        previous.close().await;
                    }
                }
                Err(e) => tally.error(format!("broadcast trigger: {e}")),
            }
        }
        // Every witness must have had each broadcast by its deadline.
        while let Some(&(k, at)) = pending_checks.front() {
            if at.elapsed() <= plan.broadcast_deadline {
                break;
            }
            pending_checks.pop_front();
            let got = tally.witnessed.lock().unwrap_or_else(|p| p.into_inner()).remove(&k).unwrap_or(0);
            if got < witnesses.len() {
                tally.error(format!("broadcast {k} reached {got} of {} witnesses", witnesses.len()));
            }
        }
        if Instant::now() >= next_sample {
            next_sample += plan.sample_every;
            let now = (Instant::now(), procfs::cpu_ticks(pid).unwrap_or(0));
            let secs = now.0.duration_since(cpu_at.0).as_secs_f64().max(0.001);
            let cpu_pct = now.1.saturating_sub(cpu_at.1) as f64 / procfs::TICKS_PER_SECOND / secs * 100.0;
            cpu_at = now;
            let s = Sample {
                at_s: start.elapsed().as_secs_f64(),
                rss_kib: read_rss()?,
                open_files: open_files(pid).unwrap_or(0),
                cpu_pct,
                connections: witnesses.len() + churnable.len() + plan.health_connections,
                health_ok: tally.health_ok.load(Ordering::Relaxed),
                churned,
                broadcasts,
                errors: tally.errors.load(Ordering::Relaxed),
            };
            on_sample(&s);
            report.samples.push(s);
        }
    }

    // The last broadcasts get their time too.
    if let Some(&(_, last)) = pending_checks.back() {
        tokio::time::sleep(plan.broadcast_deadline.saturating_sub(last.elapsed())).await;
    }
    for (k, _) in pending_checks {
        let got = tally.witnessed.lock().unwrap_or_else(|p| p.into_inner()).remove(&k).unwrap_or(0);
        if got < witnesses.len() {
            tally.error(format!("broadcast {k} reached {got} of {} witnesses", witnesses.len()));
        }
    }
    // Leave, and see everything returned.
    if let Some(t) = trigger.take() {
        t.close().await;
    }
    let _ = stop.send(true);
    while workers.join_next().await.is_some() {}
    leave_all(witnesses).await;
    leave_all(churnable).await;
    let back = Instant::now() + Duration::from_secs(60);
    loop {
        report.after_open_files = open_files(pid).unwrap_or(usize::MAX);
        report.after_sessions = match plan.admin {
            Some(a) => admin_metric(a, "clawgate_sessions").await,
            None => None,
        };
        let files_back = report.after_open_files <= report.baseline_open_files + 8;
        if (files_back && report.after_sessions.is_none_or(|s| s == 0.0)) || Instant::now() > back {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report.after_rss_kib = read_rss()?;
    report.health_ok = tally.health_ok.load(Ordering::Relaxed);
    report.churned = churned;
    report.broadcasts = broadcasts;
    report.error_count = tally.errors.load(Ordering::Relaxed);
    report.errors = tally.first_errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    judge(&mut report, plan);
    Ok(report)
}

/// The verdict: the rules in the module documentation.
pub fn judge(report: &mut SoakReport, plan: &SoakPlan) {
    let warm = plan.warmup.as_secs_f64();
    let total = plan.duration.as_secs_f64();
    let late_from = total - (total - warm) / 3.0;
    let in_warmup = report.samples.iter().filter(|s| s.at_s <= warm);
    report.warmup_rss_kib = in_warmup.clone().map(|s| s.rss_kib).max().unwrap_or(0);
    report.warmup_open_files = in_warmup.map(|s| s.open_files).max().unwrap_or(0);
    let late = report.samples.iter().filter(|s| s.at_s >= late_from);
    report.late_rss_kib = late.clone().map(|s| s.rss_kib).max().unwrap_or(0);
    report.late_open_files = late.map(|s| s.open_files).max().unwrap_or(0);
    let mut failures = Vec::new();
    if report.error_count > 0 {
        failures.push(format!("{} unexpected errors", report.error_count));
    }
    if report.samples.iter().filter(|s| s.at_s <= warm).count() == 0 || report.late_rss_kib == 0 {
        failures.push("too few samples to judge growth (run longer than the warm-up)".into());
    }
    let slack = ((report.warmup_rss_kib as f64 * plan.rss_slack_share) as u64).max(plan.rss_slack_kib);
    if report.late_rss_kib > report.warmup_rss_kib + slack {
        failures.push(format!(
            "RSS grew after warm-up: {} KiB late vs {} KiB (+{slack} KiB slack)",
            report.late_rss_kib, report.warmup_rss_kib
        ));
    }
    let file_slack = 2 * plan.churn_per_sec + 16;
    if report.late_open_files > report.warmup_open_files + file_slack {
        failures.push(format!(
            "open files grew after warm-up: {} late vs {} (+{file_slack} slack)",
            report.late_open_files, report.warmup_open_files
        ));
    }
    if report.after_open_files > report.baseline_open_files + 8 {
        failures.push(format!(
            "open files not returned: {} after the clients left vs {} before",
            report.after_open_files, report.baseline_open_files
        ));
    }
    if report.after_sessions.is_some_and(|s| s != 0.0) {
        failures.push(format!("{:?} sessions left after the clients left", report.after_sessions));
    }
    report.pass = failures.is_empty();
    report.failures = failures;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_s: f64, rss_kib: u64, open_files: usize) -> Sample {
        Sample { at_s, rss_kib, open_files, ..Sample::default() }
    }

    #[test]
    fn growth_after_warmup_fails_and_a_flat_run_passes() {
        let plan = SoakPlan {
            duration: Duration::from_secs(90),
            warmup: Duration::from_secs(30),
            rss_slack_kib: 1024,
            ..SoakPlan::default()
        };
        let flat = (1..=9).map(|i| sample(i as f64 * 10.0, 100_000, 500)).collect();
        let mut r = SoakReport { samples: flat, baseline_open_files: 20, after_open_files: 22, ..Default::default() };
        judge(&mut r, &plan);
        assert!(r.pass, "{:?}", r.failures);
        let growing = (1..=9).map(|i| sample(i as f64 * 10.0, 100_000 + i * 2_000, 500)).collect();
        let mut r =
            SoakReport { samples: growing, baseline_open_files: 20, after_open_files: 22, ..Default::default() };
        judge(&mut r, &plan);
        assert!(!r.pass);
        assert!(r.failures[0].contains("RSS grew"), "{:?}", r.failures);
    }
}
