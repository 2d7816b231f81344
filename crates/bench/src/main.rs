//! `clawgate-bench`: run loads against a gateway URL, and print two runs side by side.
//!
//!     clawgate-bench run --url ws://127.0.0.1:18789 --label clawgate --pid 1234 --out cg.jsonl
//!     clawgate-bench report clawgate=cg.jsonl OpenClaw=oc.jsonl
//!
//! The token comes from `--token` or `OPENCLAW_GATEWAY_TOKEN`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use clawgate_bench::load::{self, Bounds, Credential, Trigger};
use clawgate_bench::metrics::{self, Metric};
use clawgate_bench::Target;

mod soak_cmd;
use soak_cmd::{soak, SoakArgs};

#[derive(Parser)]
#[command(name = "clawgate-bench", about = "Load generator for OpenClaw-protocol gateways (loopback only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run loads against one gateway and write its figures as JSON lines.
    Run(Box<RunArgs>),
    /// Retry a token connect until the gateway admits one (start-up), or time out.
    Wait {
        #[arg(long)]
        url: String,
        #[arg(long, env = "OPENCLAW_GATEWAY_TOKEN", hide_env_values = true)]
        token: String,
        #[arg(long, default_value_t = 180.0)]
        seconds: f64,
    },
    /// Hold many idle connections for minutes with churn, health load and
    /// broadcasts; sample the gateway; exit 0 only on a pass (scripts/soak).
    Soak(Box<SoakArgs>),
    /// OpenClaw alone against the same OpenClaw behind clawgate in upstream
    /// mode: device handshakes, a credential flood, the relay's added
    /// latency, memory per session. Writes both runs' figures and prints the table.
    Upstream(Box<UpstreamArgs>),
    /// Print runs side by side: `report NAME=FILE NAME=FILE [NAME=FILE…]`
    /// (ratios of the first to each other run).
    Report {
        #[arg(num_args = 2.., value_name = "NAME=FILE")]
        runs: Vec<String>,
    },
    /// Serve the floor: a minimal server doing only the measured wire
    /// exchange (challenge, connect with the token, hello-ok, `health`).
    Floor {
        /// Loopback port to listen on.
        #[arg(long)]
        port: u16,
        #[arg(long, env = "OPENCLAW_GATEWAY_TOKEN", hide_env_values = true)]
        token: String,
        /// Run on a current-thread runtime instead of 2 worker threads.
        #[arg(long)]
        current_thread: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Gateway URL, loopback only (ws://127.0.0.1:PORT).
    #[arg(long)]
    url: String,
    #[arg(long, env = "OPENCLAW_GATEWAY_TOKEN", hide_env_values = true)]
    token: String,
    /// Name of the gateway in the output.
    #[arg(long, default_value = "gateway")]
    label: String,
    /// The gateway's process id: needed for `memory`, and adds the gateway's
    /// CPU time per operation (its helper processes included) to the other loads.
    #[arg(long)]
    pid: Option<u32>,
    /// Comma-separated: handshake-token, handshake-device, rpc, memory, fanout.
    #[arg(long, default_value = "memory,handshake-token,handshake-device,rpc,fanout", value_delimiter = ',')]
    kinds: Vec<String>,
    /// Append the figures here (JSON lines).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Handshakes per measurement (sequential, and again concurrent).
    #[arg(long, default_value_t = 2000)]
    handshakes: usize,
    /// Handshakes in flight for the concurrent measurement.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// `health` requests per measurement (over 1 connection, and again over --rpc-connections).
    #[arg(long, default_value_t = 20000)]
    requests: usize,
    #[arg(long, default_value_t = 50)]
    rpc_connections: usize,
    /// Wall-clock limit of each throughput measurement, seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Unmeasured operations before each measurement.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Idle authenticated connections for the memory figure.
    #[arg(long, default_value_t = 1000)]
    idle_connections: usize,
    /// Wait before each RSS reading, milliseconds.
    #[arg(long, default_value_t = 2000)]
    settle_ms: u64,
    /// Listening operator connections for fan-out.
    #[arg(long, default_value_t = 1000)]
    listeners: usize,
    #[arg(long, default_value_t = 5)]
    fanout_trials: usize,
    /// The client whose connecting triggers the presence broadcast: ID:MODE.
    #[arg(long, default_value = "openclaw-macos:ui")]
    trigger: String,
    /// The client as which the device for `handshake-device` is paired: ID:MODE.
    #[arg(long, default_value = "cli:cli")]
    pair_as: String,
    /// Source addresses 127.0.0.10.. to spread sockets over (0: kernel's choice).
    #[arg(long, default_value_t = 64)]
    sources: usize,
}

#[derive(clap::Args)]
struct UpstreamArgs {
    /// The OpenClaw gateway's URL (loopback only) and process id.
    #[arg(long)]
    openclaw_url: String,
    #[arg(long, env = "CLAWGATE_UPSTREAM_TOKEN", hide_env_values = true)]
    openclaw_token: String,
    #[arg(long)]
    openclaw_pid: u32,
    /// clawgate's URL, in upstream mode in front of that OpenClaw, and its process id.
    #[arg(long)]
    clawgate_url: String,
    #[arg(long, env = "OPENCLAW_GATEWAY_TOKEN", hide_env_values = true)]
    clawgate_token: String,
    #[arg(long)]
    clawgate_pid: u32,
    /// Write both runs' figures here (JSON lines, `gateway` = the run's label).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Device handshakes per measurement (sequential, and again concurrent).
    #[arg(long, default_value_t = 1000)]
    handshakes: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Request pairs (direct, relayed) per method for the relay's added latency.
    #[arg(long, default_value_t = 3000)]
    requests: usize,
    /// Wall-clock limit of each measurement, seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Sessions opened for the memory figure.
    #[arg(long, default_value_t = 500)]
    sessions: usize,
    #[arg(long, default_value_t = 3000)]
    settle_ms: u64,
    /// How long the legitimate client is measured under the credential flood.
    #[arg(long, default_value_t = 10.0)]
    flood_seconds: f64,
    /// Wrong-token connects in flight at once.
    #[arg(long, default_value_t = 256)]
    flood_in_flight: usize,
    /// Source addresses of the flood, 127.0.0.100.. (at most 155).
    #[arg(long, default_value_t = 64)]
    flood_sources: usize,
    /// How long an attacker waits for its refusal before closing, milliseconds.
    #[arg(long, default_value_t = 500)]
    flood_attempt_ms: u64,
    /// The legitimate client's pause before each request during the flood, milliseconds.
    #[arg(long, default_value_t = 10)]
    flood_legit_interval_ms: u64,
    /// Source addresses 127.0.0.10.. of the other loads.
    #[arg(long, default_value_t = 64)]
    sources: usize,
    /// Which parts to run, in their fixed order: memory, relay (the added
    /// latency), devices, flood.
    #[arg(long, default_value = "memory,relay,devices,flood", value_delimiter = ',')]
    parts: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Report { runs } = &cli.command {
        return report(runs);
    }
    let runtime = match &cli.command {
        Command::Floor { current_thread: true, .. } => {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        }
        Command::Floor { .. } => tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build(),
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("clawgate-bench: cannot start a runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(*args).await,
            Command::Report { .. } => ExitCode::SUCCESS,
            Command::Soak(args) => soak(*args).await,
            Command::Upstream(args) => upstream(*args).await,
            Command::Wait { url, token, seconds } => wait(&url, &token, Duration::from_secs_f64(seconds)).await,
            Command::Floor { port, token, .. } => floor(port, &token).await,
        }
    })
}

async fn floor(port: u16, token: &str) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("clawgate-bench floor: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::from(1);
        }
    };
    match clawgate_bench::floor::serve(listener, clawgate_bench::floor::Floor::new(token)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clawgate-bench floor: {e}");
            ExitCode::from(1)
        }
    }
}

async fn wait(url: &str, token: &str, limit: Duration) -> ExitCode {
    let target = match Target::new(url, token, 0) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("clawgate-bench: {e}");
            return ExitCode::from(64);
        }
    };
    let deadline = std::time::Instant::now() + limit;
    loop {
        let last = match target.connect_token().await {
            Ok(c) => match c.request("health", None).await {
                Ok(_) => {
                    c.close().await;
                    return ExitCode::SUCCESS;
                }
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if std::time::Instant::now() >= deadline {
            eprintln!("clawgate-bench wait: {url} not ready after {limit:?}: {last}");
            return ExitCode::from(1);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn report(runs: &[String]) -> ExitCode {
    let mut loaded = Vec::new();
    for r in runs {
        let Some((name, file)) = r.split_once('=') else {
            eprintln!("clawgate-bench report: expected NAME=FILE, got {r:?}");
            return ExitCode::from(64);
        };
        let parsed = std::fs::read_to_string(file).map_err(|e| e.to_string()).and_then(|t| metrics::parse_lines(&t));
        match parsed {
            Ok(m) => loaded.push((name.to_owned(), m)),
            Err(e) => {
                eprintln!("clawgate-bench report: {file}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    print!("{}", metrics::table_many(&loaded));
    ExitCode::SUCCESS
}

async fn upstream(a: UpstreamArgs) -> ExitCode {
    use clawgate_bench::flood::FloodBounds;
    use clawgate_bench::upstream::{self, Counts, Setups};
    let targets = Target::new(&a.openclaw_url, &a.openclaw_token, a.sources).and_then(|alone| {
        let behind = Target::new(&a.clawgate_url, &a.clawgate_token, a.sources)?;
        Ok(Setups {
            alone: alone.with_pid(Some(a.openclaw_pid)),
            behind: behind.with_pid(Some(a.clawgate_pid)).with_upstream_pid(Some(a.openclaw_pid)),
        })
    });
    let setups = match targets {
        Ok(s) => s,
        Err(e) => {
            eprintln!("clawgate-bench: {e}");
            return ExitCode::from(64);
        }
    };
    let parts = match upstream::Parts::parse(&a.parts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("clawgate-bench: {e}");
            return ExitCode::from(64);
        }
    };
    let secs = Duration::from_secs_f64(a.seconds);
    let flood_secs = Duration::from_secs_f64(a.flood_seconds);
    let counts = Counts {
        handshakes: Bounds { count: a.handshakes, duration: secs, warmup: a.warmup },
        concurrency: a.concurrency,
        requests: Bounds { count: a.requests, duration: secs, warmup: a.warmup },
        sessions: a.sessions,
        settle: Duration::from_millis(a.settle_ms),
        flood: FloodBounds {
            duration: flood_secs,
            ramp: (flood_secs / 5).min(Duration::from_secs(1)),
            in_flight: a.flood_in_flight,
            attempt_timeout: Duration::from_millis(a.flood_attempt_ms),
            legit_interval: Duration::from_millis(a.flood_legit_interval_ms),
        },
        flood_sources: a.flood_sources,
    };
    let figures = upstream::run_all(&setups, &counts, parts).await;
    if let Some(path) = &a.out {
        let mut lines = String::new();
        for (label, metrics) in [(upstream::ALONE, &figures.alone), (upstream::BEHIND, &figures.behind)] {
            for m in metrics {
                let m = Metric { gateway: label.to_owned(), ..m.clone() };
                lines.push_str(&serde_json::to_string(&m).unwrap_or_default());
                lines.push('\n');
            }
        }
        if let Err(e) = std::fs::write(path, lines) {
            eprintln!("clawgate-bench: {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    print!("{}", metrics::table(upstream::BEHIND, &figures.behind, upstream::ALONE, &figures.alone));
    for failure in &figures.failures {
        eprintln!("FAILED: {failure}");
    }
    if figures.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

struct Output {
    label: String,
    file: Option<std::fs::File>,
    failures: usize,
}

impl Output {
    fn emit(&mut self, metrics: Vec<Metric>) {
        for mut m in metrics {
            m.gateway = self.label.clone();
            println!("  {:<44} {:>12.3} {}", m.label, m.value, m.unit);
            if let Some(f) = &mut self.file {
                let _ = writeln!(f, "{}", serde_json::to_string(&m).unwrap_or_default());
            }
        }
    }

    fn fail(&mut self, what: &str, e: impl std::fmt::Display) {
        self.failures += 1;
        eprintln!("[{}] {what} FAILED: {e}", self.label);
    }

    fn throughput(&mut self, key: &str, title: &str, unit: &str, t: &load::Throughput) {
        if t.errors > 0 {
            self.fail(title, format!("{} errors, first: {}", t.errors, t.first_error.as_deref().unwrap_or("?")));
        }
        if t.completed == 0 {
            return;
        }
        self.emit(metrics::throughput(key, title, unit, t));
    }
}

async fn run(a: RunArgs) -> ExitCode {
    let target = match Target::new(&a.url, &a.token, a.sources) {
        Ok(t) => t.with_pid(a.pid),
        Err(e) => {
            eprintln!("clawgate-bench: {e}");
            return ExitCode::from(64);
        }
    };
    let file = match &a.out {
        None => None,
        Some(p) => match std::fs::OpenOptions::new().create(true).append(true).open(p) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("clawgate-bench: {}: {e}", p.display());
                return ExitCode::from(1);
            }
        },
    };
    let mut out = Output { label: a.label.clone(), file, failures: 0 };
    let secs = Duration::from_secs_f64(a.seconds);
    let hs = Bounds { count: a.handshakes, duration: secs, warmup: a.warmup };
    let rq = Bounds { count: a.requests, duration: secs, warmup: a.warmup };
    let c = a.concurrency;

    for kind in &a.kinds {
        println!("[{}] {kind}", a.label);
        match kind.as_str() {
            "handshake-token" | "handshake-device" => {
                let (name, credential) = if kind == "handshake-token" {
                    ("token", Credential::Token)
                } else {
                    let pair_as = a.pair_as.split_once(':').unwrap_or(("cli", "cli"));
                    match target.pair_device(pair_as).await {
                        Ok(d) => ("device", Credential::Device(Box::new(d))),
                        Err(e) => {
                            out.fail("pairing a device", e);
                            continue;
                        }
                    }
                };
                let t = load::handshakes(&target, &credential, 1, hs).await;
                out.throughput(
                    &format!("handshake.{name}.seq"),
                    &format!("{name} handshakes, sequential"),
                    "conn/s",
                    &t,
                );
                let t = load::handshakes(&target, &credential, c, hs).await;
                out.throughput(
                    &format!("handshake.{name}.c{c}"),
                    &format!("{name} handshakes, {c} in flight"),
                    "conn/s",
                    &t,
                );
            }
            "rpc" => {
                for conns in [1, a.rpc_connections] {
                    let title = if conns == 1 {
                        "health, 1 connection".to_owned()
                    } else {
                        format!("health, {conns} connections")
                    };
                    match load::rpc(&target, conns, rq).await {
                        Ok(t) => out.throughput(&format!("rpc.health.c{conns}"), &title, "req/s", &t),
                        Err(e) => out.fail(&title, e),
                    }
                }
            }
            "memory" => {
                let Some(pid) = a.pid else {
                    out.fail("memory", "needs --pid");
                    continue;
                };
                match load::memory(&target, pid, a.idle_connections, Duration::from_millis(a.settle_ms)).await {
                    Ok(m) if m.connections == a.idle_connections => out.emit(metrics::memory(&m)),
                    Ok(m) => out.fail("memory", format!("only {} connections opened", m.connections)),
                    Err(e) => out.fail("memory", e),
                }
            }
            "fanout" => {
                let Some((id, mode)) = a.trigger.split_once(':') else {
                    out.fail("fanout", "--trigger must be ID:MODE");
                    continue;
                };
                let trigger = Trigger { client_id: id.into(), mode: mode.into() };
                match load::fanout(&target, a.listeners, a.fanout_trials, &trigger, Duration::from_secs(30)).await {
                    Ok(f) => out.emit(metrics::fanout(&f)),
                    Err(e) => out.fail("fanout", e),
                }
            }
            other => out.fail(other, "unknown load kind"),
        }
    }
    if out.failures > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
