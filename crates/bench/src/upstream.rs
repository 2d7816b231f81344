//! The upstream benchmark: one OpenClaw gateway measured alone and behind
//! clawgate in upstream mode, in the same run with the same load, using the
//! load kinds of this crate. Every figure is a [`Metric`] of one of two runs,
//! "alone" (OpenClaw's own port) and "behind" (clawgate's port, relaying to
//! that OpenClaw), so [`crate::metrics::table`] prints them side by side:
//!
//! - device handshakes: rate, latency, and the CPU per handshake of OpenClaw
//!   and (behind) of clawgate — behind clawgate, clawgate checks the device's
//!   signature and pairing and OpenClaw sees one backend client with a token;
//! - a credential flood: OpenClaw's (and clawgate's) CPU over it and the
//!   latency of a legitimate client's requests during it;
//! - the relay's added latency for `health` and `sessions.list`, measured
//!   interleaved ([`crate::relay_latency`]);
//! - memory per session: RSS growth of OpenClaw and of clawgate per open
//!   (relayed) session.

use std::time::Duration;

use serde_json::json;

use crate::flood::{self, FloodBounds};
use crate::load::{self, Bounds, Credential, Throughput};
use crate::metrics::{metric, Better, Metric};
use crate::relay_latency;
use crate::target::Target;

/// The labels of the two runs.
pub const ALONE: &str = "OpenClaw alone";
pub const BEHIND: &str = "behind clawgate";

/// The flood's source addresses start here (127.0.0.100..), apart from the
/// load's (127.0.0.10..) and from clawgate's own link to OpenClaw (127.0.0.1).
pub const FLOOD_FIRST_SOURCE: u8 = 100;

/// The two ways to the same OpenClaw gateway.
#[derive(Debug, Clone)]
pub struct Setups {
    /// OpenClaw's own URL and token; `pid` is OpenClaw's.
    pub alone: Target,
    /// clawgate's URL and token; `pid` is clawgate's, `upstream_pid` OpenClaw's.
    pub behind: Target,
}

#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub handshakes: Bounds,
    /// Handshakes in flight for the concurrent measurement.
    pub concurrency: usize,
    /// Request pairs (direct, relayed) per method for the added latency.
    pub requests: Bounds,
    /// Sessions opened for the memory figure, and the wait before each reading.
    pub sessions: usize,
    pub settle: Duration,
    pub flood: FloodBounds,
    /// Source addresses of the flood (127.0.0.100..).
    pub flood_sources: usize,
}

/// The figures of both runs, and what failed (each failure a line).
#[derive(Debug, Default)]
pub struct Figures {
    pub alone: Vec<Metric>,
    pub behind: Vec<Metric>,
    pub failures: Vec<String>,
}

impl Figures {
    fn both(&mut self, alone: Vec<Metric>, behind: Vec<Metric>) {
        self.alone.extend(alone);
        self.behind.extend(behind);
    }

    fn fail(&mut self, what: &str, e: impl std::fmt::Display) {
        self.failures.push(format!("{what}: {e}"));
    }

    fn check(&mut self, what: &str, t: &Throughput) {
        if t.errors > 0 {
            self.fail(what, format!("{} errors, first: {}", t.errors, t.first_error.as_deref().unwrap_or("?")));
        }
    }
}

fn m(key: &str, label: &str, unit: &str, value: f64, better: Better) -> Metric {
    metric(format!("upstream.{key}"), label.to_owned(), unit, value, better)
}

/// Rate and latency of a load, and the CPU per operation of OpenClaw and
/// (behind only) clawgate under the labels `cpu_what` ("handshake", "request").
fn throughput_rows(key: &str, title: &str, unit: &str, t: &Throughput, behind: bool, cpu_what: &str) -> Vec<Metric> {
    let mut rows = vec![
        m(&format!("{key}.rate"), title, unit, t.per_sec, Better::Higher),
        m(&format!("{key}.p50"), &format!("{title}: p50"), "ms", t.latency.p50_ms, Better::Lower),
        m(&format!("{key}.p99"), &format!("{title}: p99"), "ms", t.latency.p99_ms, Better::Lower),
    ];
    let (openclaw, clawgate) =
        if behind { (t.upstream_cpu_us_per_op, t.cpu_us_per_op) } else { (t.cpu_us_per_op, None) };
    if let Some(cpu) = openclaw {
        rows.push(m(
            &format!("{key}.cpu.openclaw"),
            &format!("{title}: OpenClaw CPU per {cpu_what}"),
            "µs",
            cpu,
            Better::Lower,
        ));
    }
    if let Some(cpu) = clawgate {
        rows.push(m(
            &format!("{key}.cpu.clawgate"),
            &format!("{title}: clawgate CPU per {cpu_what}"),
            "µs",
            cpu,
            Better::Lower,
        ));
    }
    rows
}

/// (a) Device handshakes, sequential and `concurrency` in flight, each setup
/// with a device paired through it (as `cli`/`cli`, which both pair silently
/// from loopback).
pub async fn device_handshakes(s: &Setups, c: &Counts, f: &mut Figures) {
    let mut devices = Vec::new();
    for (name, target) in [(ALONE, &s.alone), (BEHIND, &s.behind)] {
        match target.pair_device(("cli", "cli")).await {
            Ok(d) => devices.push(Credential::Device(Box::new(d))),
            Err(e) => return f.fail(&format!("{name}: pairing a device"), e),
        }
    }
    for in_flight in [1, c.concurrency] {
        let (key, title) = if in_flight == 1 {
            ("handshake.device.seq".to_owned(), "device handshakes, sequential".to_owned())
        } else {
            (format!("handshake.device.c{in_flight}"), format!("device handshakes, {in_flight} in flight"))
        };
        let alone = load::handshakes(&s.alone, &devices[0], in_flight, c.handshakes).await;
        let behind = load::handshakes(&s.behind, &devices[1], in_flight, c.handshakes).await;
        f.check(&format!("{ALONE}: {title}"), &alone);
        f.check(&format!("{BEHIND}: {title}"), &behind);
        f.both(
            throughput_rows(&key, &title, "conn/s", &alone, false, "handshake"),
            throughput_rows(&key, &title, "conn/s", &behind, true, "handshake"),
        );
    }
}

/// (b) A credential flood against each setup in turn, a legitimate client
/// sending `health` through the same setup during it (paced, so that its
/// requests cost OpenClaw the same in both setups).
pub async fn credential_flood(s: &Setups, c: &Counts, f: &mut Figures) {
    let seconds = c.flood.duration.as_secs_f64();
    for (name, target, behind) in [(ALONE, &s.alone, false), (BEHIND, &s.behind, true)] {
        let attackers = target.clone().with_sources_from(FLOOD_FIRST_SOURCE, c.flood_sources);
        let result = match flood::flood(&attackers, target, "health", None, c.flood).await {
            Ok(r) => r,
            Err(e) => {
                f.fail(&format!("{name}: flood"), e);
                continue;
            }
        };
        f.check(&format!("{name}: health during the flood"), &result.legit);
        if result.admitted > 0 {
            f.fail(&format!("{name}: flood"), format!("{} wrong-token connects were admitted", result.admitted));
        }
        if result.attempts == 0 || result.other * 2 > result.attempts {
            f.fail(
                &format!("{name}: flood"),
                format!(
                    "{} of {} attempts failed early, first: {:?}",
                    result.other, result.attempts, result.first_other
                ),
            );
        }
        let title = format!("credential flood ({seconds:.0} s, {} in flight)", c.flood.in_flight);
        let mut rows = vec![
            m(
                "flood.attempts",
                &format!("{title}: wrong-token connects"),
                "/s",
                result.attempts_per_sec(),
                Better::Higher,
            ),
            m(
                "flood.refused_at_upgrade",
                &format!("{title}: refused at the upgrade (HTTP)"),
                "%",
                100.0 * result.refused_at_upgrade as f64 / result.attempts.max(1) as f64,
                Better::Higher,
            ),
            m(
                "flood.refused",
                &format!("{title}: refused after connect, within {} ms", c.flood.attempt_timeout.as_millis()),
                "%",
                100.0 * result.refused as f64 / result.attempts.max(1) as f64,
                Better::Higher,
            ),
        ];
        let (openclaw, clawgate) =
            if behind { (result.cpu_share[1], result.cpu_share[0]) } else { (result.cpu_share[0], None) };
        if let Some(share) = openclaw {
            rows.push(m(
                "flood.cpu.openclaw",
                &format!("{title}: OpenClaw CPU"),
                "% core",
                share * 100.0,
                Better::Lower,
            ));
        }
        if let Some(share) = clawgate {
            rows.push(m(
                "flood.cpu.clawgate",
                &format!("{title}: clawgate CPU"),
                "% core",
                share * 100.0,
                Better::Lower,
            ));
        }
        let legit = &result.legit.latency;
        rows.push(m("flood.health.p50", &format!("{title}: health p50"), "ms", legit.p50_ms, Better::Lower));
        rows.push(m("flood.health.p99", &format!("{title}: health p99"), "ms", legit.p99_ms, Better::Lower));
        if behind {
            f.behind.extend(rows);
        } else {
            f.alone.extend(rows);
        }
    }
}

/// (c) `health` and `sessions.list`, direct and relayed, interleaved; the
/// relay's added p50 and p99 (relayed − direct) as rows of their own.
pub async fn relay_latency(s: &Setups, c: &Counts, f: &mut Figures) {
    for (key, method) in [("health", "health"), ("sessions_list", "sessions.list")] {
        let params = (method != "health").then(|| json!({}));
        let r = match relay_latency::interleaved(&s.alone, &s.behind, method, params, c.requests).await {
            Ok(r) => r,
            Err(e) => {
                f.fail(&format!("{method}, direct and relayed"), e);
                continue;
            }
        };
        f.check(&format!("{ALONE}: {method}"), &r.direct);
        f.check(&format!("{BEHIND}: {method}"), &r.relayed);
        let rows = |t: &Throughput| {
            vec![
                m(
                    &format!("rpc.{key}.p50"),
                    &format!("{method}, 1 connection: p50"),
                    "ms",
                    t.latency.p50_ms,
                    Better::Lower,
                ),
                m(
                    &format!("rpc.{key}.p99"),
                    &format!("{method}, 1 connection: p99"),
                    "ms",
                    t.latency.p99_ms,
                    Better::Lower,
                ),
            ]
        };
        let mut behind = rows(&r.relayed);
        let added = |q: fn(&Throughput) -> f64| q(&r.relayed) - q(&r.direct);
        behind.push(m(
            &format!("rpc.{key}.added_p50"),
            &format!("{method}: relay's added p50"),
            "ms",
            added(|t| t.latency.p50_ms),
            Better::Lower,
        ));
        behind.push(m(
            &format!("rpc.{key}.added_p99"),
            &format!("{method}: relay's added p99"),
            "ms",
            added(|t| t.latency.p99_ms),
            Better::Lower,
        ));
        if let Some(cpu) = r.relayed.cpu_us_per_op {
            behind.push(m(
                &format!("rpc.{key}.cpu.clawgate"),
                &format!("{method}: clawgate CPU per relayed request"),
                "µs",
                cpu,
                Better::Lower,
            ));
        }
        f.both(rows(&r.direct), behind);
    }
}

/// (d) RSS growth per open session: OpenClaw's for sessions straight to it;
/// clawgate's and OpenClaw's for sessions through clawgate (each one an
/// upstream link of its own).
pub async fn memory(s: &Setups, c: &Counts, f: &mut Figures) {
    let (Some(openclaw), Some(clawgate)) = (s.alone.pid, s.behind.pid) else {
        return f.fail("memory", "needs both pids");
    };
    let n = c.sessions;
    let per_session = |title: &str| format!("RSS growth per session ({n} sessions): {title}");
    match load::memory_of(&s.alone, &[openclaw], n, c.settle).await {
        Ok(mem) if mem[0].connections == n => f.alone.extend([m(
            "memory.openclaw",
            &per_session("OpenClaw"),
            "KiB",
            mem[0].per_connection_bytes() / 1024.0,
            Better::Lower,
        )]),
        Ok(mem) => f.fail(ALONE, format!("memory: only {} sessions opened", mem[0].connections)),
        Err(e) => f.fail(ALONE, format!("memory: {e}")),
    }
    match load::memory_of(&s.behind, &[openclaw, clawgate], n, c.settle).await {
        Ok(mem) if mem[0].connections == n => f.behind.extend([
            m(
                "memory.openclaw",
                &per_session("OpenClaw"),
                "KiB",
                mem[0].per_connection_bytes() / 1024.0,
                Better::Lower,
            ),
            m(
                "memory.clawgate",
                &per_session("clawgate"),
                "KiB",
                mem[1].per_connection_bytes() / 1024.0,
                Better::Lower,
            ),
            m(
                "memory.clawgate.rss",
                &format!("clawgate RSS with {n} sessions"),
                "MiB",
                mem[1].loaded_kib as f64 / 1024.0,
                Better::Lower,
            ),
        ]),
        Ok(mem) => f.fail(BEHIND, format!("memory: only {} sessions opened", mem[0].connections)),
        Err(e) => f.fail(BEHIND, format!("memory: {e}")),
    }
}

/// Which parts a run measures (`--parts`; all by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub memory: bool,
    pub relay: bool,
    pub devices: bool,
    pub flood: bool,
}

impl Default for Parts {
    fn default() -> Self {
        Parts { memory: true, relay: true, devices: true, flood: true }
    }
}

impl Parts {
    /// From names: `memory`, `relay`, `devices`, `flood`.
    pub fn parse(names: &[String]) -> Result<Parts, String> {
        let mut parts = Parts { memory: false, relay: false, devices: false, flood: false };
        for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            match name {
                "memory" => parts.memory = true,
                "relay" => parts.relay = true,
                "devices" => parts.devices = true,
                "flood" => parts.flood = true,
                other => return Err(format!("unknown part {other:?} (memory, relay, devices, flood)")),
            }
        }
        Ok(parts)
    }
}

/// The chosen parts, memory first (on the freshly started gateways) and
/// the flood last (the failures it leaves in both gateways' limiters touch
/// nothing measured after it).
pub async fn run_all(s: &Setups, c: &Counts, parts: Parts) -> Figures {
    let mut f = Figures::default();
    if parts.memory {
        memory(s, c, &mut f).await;
    }
    if parts.relay {
        relay_latency(s, c, &mut f).await;
    }
    if parts.devices {
        device_handshakes(s, c, &mut f).await;
    }
    if parts.flood {
        credential_flood(s, c, &mut f).await;
    }
    f
}
