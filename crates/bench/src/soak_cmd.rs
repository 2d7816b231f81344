//! `clawgate-bench soak`: its arguments and the report it prints (scripts/soak).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clawgate_bench::Target;

#[derive(clap::Args)]
pub struct SoakArgs {
    /// Gateway URL, loopback only (ws://127.0.0.1:PORT).
    #[arg(long)]
    url: String,
    #[arg(long, env = "OPENCLAW_GATEWAY_TOKEN", hide_env_values = true)]
    token: String,
    /// The gateway's process id (sampled from /proc).
    #[arg(long)]
    pid: u32,
    /// The gateway's admin listener (host:port), to check no session is left.
    #[arg(long)]
    admin: Option<std::net::SocketAddr>,
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Connections closed and opened per second.
    #[arg(long, default_value_t = 20)]
    churn: usize,
    /// `health` requests per second.
    #[arg(long, default_value_t = 200)]
    health_rate: usize,
    #[arg(long, default_value_t = 5.0)]
    broadcast_every: f64,
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// The warm-up whose highs the last third of the run is held to.
    #[arg(long, default_value_t = 2.0)]
    warmup_minutes: f64,
    #[arg(long, default_value_t = 10.0)]
    sample_every: f64,
    /// Source addresses 127.0.0.10.. to spread sockets over.
    #[arg(long, default_value_t = 64)]
    sources: usize,
    /// Write the report (samples and verdict) here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub async fn soak(a: SoakArgs) -> ExitCode {
    use clawgate_bench::soak::{self, SoakPlan};
    let target = match Target::new(&a.url, &a.token, a.sources) {
        Ok(t) => t.with_pid(Some(a.pid)),
        Err(e) => {
            eprintln!("clawgate-bench: {e}");
            return ExitCode::from(64);
        }
    };
    let plan = SoakPlan {
        connections: a.connections,
        churn_per_sec: a.churn,
        health_per_sec: a.health_rate,
        broadcast_every: Duration::from_secs_f64(a.broadcast_every),
        duration: Duration::from_secs_f64(a.minutes * 60.0),
        warmup: Duration::from_secs_f64(a.warmup_minutes * 60.0),
        sample_every: Duration::from_secs_f64(a.sample_every),
        admin: a.admin,
        ..SoakPlan::default()
    };
    println!(
        "{:>7} {:>10} {:>7} {:>6} {:>7} {:>9} {:>8} {:>6} {:>6}",
        "t(s)", "rss(KiB)", "files", "cpu%", "conns", "health", "churned", "bcast", "errors"
    );
    let report = soak::run(&target, &plan, |s| {
        println!(
            "{:>7.0} {:>10} {:>7} {:>6.1} {:>7} {:>9} {:>8} {:>6} {:>6}",
            s.at_s, s.rss_kib, s.open_files, s.cpu_pct, s.connections, s.health_ok, s.churned, s.broadcasts, s.errors
        );
    })
    .await;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("clawgate-bench soak: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(p) = &a.out {
        if let Err(e) = std::fs::write(p, serde_json::to_string_pretty(&report).unwrap_or_default()) {
            eprintln!("clawgate-bench soak: {}: {e}", p.display());
        }
    }
    println!(
        "ramp {:.0} s; baseline rss {} KiB, files {}; warm-up high rss {} KiB, files {}; last third high rss {} KiB, files {}; \
         after leaving rss {} KiB, files {}, sessions {:?}; health ok {}, churned {}, broadcasts {}, errors {}",
        report.ramp_s,
        report.baseline_rss_kib,
        report.baseline_open_files,
        report.warmup_rss_kib,
        report.warmup_open_files,
        report.late_rss_kib,
        report.late_open_files,
        report.after_rss_kib,
        report.after_open_files,
        report.after_sessions,
        report.health_ok,
        report.churned,
        report.broadcasts,
        report.error_count
    );
    for e in &report.errors {
        println!("error: {e}");
    }
    if report.pass {
        println!("verdict: PASS");
        ExitCode::SUCCESS
    } else {
        for f in &report.failures {
            println!("verdict: FAIL: {f}");
        }
        ExitCode::from(2)
    }
}
