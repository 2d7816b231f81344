//! Named figures, written one JSON object per line, and the side-by-side table
//! with the ratio clawgate : OpenClaw and the goals.

use serde::{Deserialize, Serialize};

use crate::load::{Fanout, Memory, Throughput};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

/// One figure of one run against one gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Stable key, e.g. `handshake.token.c64.rate`.
    pub key: String,
    /// What a reader sees in the table.
    pub label: String,
    pub unit: String,
    pub value: f64,
    pub better: Better,
    /// Which gateway (the `--label` of the run).
    #[serde(default)]
    pub gateway: String,
}

pub fn metric(key: String, label: String, unit: &str, value: f64, better: Better) -> Metric {
    Metric { key, label, unit: unit.into(), value, better, gateway: String::new() }
}

/// `what` is e.g. `handshake.token.c64`, `title` e.g. "token handshakes, 64 in flight".
pub fn throughput(what: &str, title: &str, rate_unit: &str, t: &Throughput) -> Vec<Metric> {
    let mut m = vec![
        metric(format!("{what}.rate"), title.to_owned(), rate_unit, t.per_sec, Better::Higher),
        metric(format!("{what}.p50"), format!("{title}: p50"), "ms", t.latency.p50_ms, Better::Lower),
        metric(format!("{what}.p99"), format!("{title}: p99"), "ms", t.latency.p99_ms, Better::Lower),
    ];
    if let Some(cpu) = t.cpu_us_per_op {
        m.push(metric(format!("{what}.cpu"), format!("{title}: gateway CPU per op"), "µs", cpu, Better::Lower));
    }
    m
}

pub fn memory(m: &Memory) -> Vec<Metric> {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let n = m.connections;
    vec![
        metric("memory.rss.idle".into(), "RSS, 0 connections".into(), "MiB", mib(m.idle_kib), Better::Lower),
        metric(
            "memory.rss.loaded".into(),
            format!("RSS, {n} idle connections"),
            "MiB",
            mib(m.loaded_kib),
            Better::Lower,
        ),
        metric(
            "memory.rss.per_conn".into(),
            "RSS growth per idle connection".into(),
            "KiB",
            m.per_connection_bytes() / 1024.0,
            Better::Lower,
        ),
        metric(
            "memory.tree.loaded".into(),
            format!("RSS incl. child processes, {n} conns"),
            "MiB",
            mib(m.loaded_tree_kib),
            Better::Lower,
        ),
    ]
}

pub fn fanout(f: &Fanout) -> Vec<Metric> {
    let n = f.listeners;
    let cpu = f.cpu_ms_per_trial.map(|ms| {
        metric(
            "fanout.cpu".into(),
            "gateway CPU per trial (2 broadcasts + 1 handshake)".into(),
            "ms",
            ms,
            Better::Lower,
        )
    });
    let mut m = vec![
        metric(
            "fanout.last".into(),
            format!("presence to all {n} listeners"),
            "ms",
            f.median(|t| t.last_ms),
            Better::Lower,
        ),
        metric(
            "fanout.p50".into(),
            format!("presence to half of {n} listeners"),
            "ms",
            f.median(|t| t.p50_ms),
            Better::Lower,
        ),
        metric(
            "fanout.trigger".into(),
            "presence trigger's own handshake".into(),
            "ms",
            f.median(|t| t.trigger_handshake_ms),
            Better::Lower,
        ),
    ];
    m.extend(cpu);
    m
}

/// The goal for a key, as a bound on the ratio clawgate : OpenClaw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    AtLeast(f64),
    AtMost(f64),
}

impl Goal {
    pub fn met(self, ratio: f64) -> bool {
        match self {
            Goal::AtLeast(g) => ratio >= g,
            Goal::AtMost(g) => ratio <= g,
        }
    }

    fn describe(self) -> String {
        match self {
            Goal::AtLeast(g) => format!("≥ {g}×"),
            Goal::AtMost(g) => format!("≤ 1/{}", (1.0 / g).round()),
        }
    }
}

/// The goals of the benchmark issue: token handshakes ≥ 20×, device
/// handshakes ≥ 10×, health p50 ≤ 1/5, throughput over 50 connections ≥ 10×,
/// RSS with 1,000 idle connections ≤ 1/10, fan-out ≤ 1/10.
pub fn goal(key: &str) -> Option<Goal> {
    let parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["handshake", "token", _, "rate"] => Some(Goal::AtLeast(20.0)),
        ["handshake", "device", _, "rate"] => Some(Goal::AtLeast(10.0)),
        ["rpc", "health", "c1", "p50"] => Some(Goal::AtMost(0.2)),
        ["rpc", "health", c, "rate"] if *c != "c1" => Some(Goal::AtLeast(10.0)),
        ["memory", "rss", "loaded"] => Some(Goal::AtMost(0.1)),
        ["fanout", "last"] => Some(Goal::AtMost(0.1)),
        _ => None,
    }
}

/// Parse JSON lines of metrics (blank lines and `#` comments skipped).
pub fn parse_lines(text: &str) -> Result<Vec<Metric>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{e}: {l}")))
        .collect()
}

/// One value per key: the median over repeated runs, keys in first-seen order.
pub fn combine(metrics: &[Metric]) -> Vec<(Metric, usize)> {
    let mut keys: Vec<&str> = Vec::new();
    for m in metrics {
        if !keys.contains(&m.key.as_str()) {
            keys.push(&m.key);
        }
    }
    keys.into_iter()
        .map(|k| {
            let same: Vec<&Metric> = metrics.iter().filter(|m| m.key == k).collect();
            let values: Vec<f64> = same.iter().map(|m| m.value).collect();
            let mut m = same[0].clone();
            m.value = crate::stats::median(&values);
            (m, same.len())
        })
        .collect()
}

fn fmt_value(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 {
        // Thousands separated for readability.
        let s = format!("{:.0}", v);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_ratio(r: f64, better: Better) -> String {
    if !r.is_finite() {
        return "n/a".into();
    }
    match better {
        Better::Higher => format!("{}×", fmt_value(r)),
        Better::Lower if r > 0.0 && r < 1.0 => format!("1/{}", fmt_value(1.0 / r)),
        Better::Lower => format!("{}×", fmt_value(r)),
    }
}

/// A Markdown table: each figure for both gateways, the ratio a : b, the goal
/// and whether it is met.
pub fn table(a_name: &str, a: &[Metric], b_name: &str, b: &[Metric]) -> String {
    table_many(&[(a_name.to_owned(), a.to_vec()), (b_name.to_owned(), b.to_vec())])
}

/// A Markdown table of several runs: each figure for every run, the ratio of
/// the first run to each other one, and the goal (a bound on the ratio of the
/// first run to the one named "OpenClaw"; none without it) and whether it is
/// met. Figures a later run lacks (the floor has no devices) show "—".
pub fn table_many(runs: &[(String, Vec<Metric>)]) -> String {
    let Some(((first_name, first), others)) = runs.split_first() else { return String::new() };
    let subject = combine(first);
    let others: Vec<(&String, Vec<(Metric, usize)>)> = others.iter().map(|(n, m)| (n, combine(m))).collect();
    let judged_against = others.iter().position(|(n, _)| n.eq_ignore_ascii_case("openclaw"));
    let mut header = vec!["figure".to_owned(), "unit".to_owned(), first_name.clone()];
    header.extend(others.iter().map(|(n, _)| (*n).clone()));
    header.extend(others.iter().map(|(n, _)| format!("{first_name} : {n}")));
    header.extend(["goal".to_owned(), "met".to_owned()]);
    let mut rows = vec![header];
    for (m, _) in &subject {
        let values: Vec<Option<f64>> =
            others.iter().map(|(_, o)| o.iter().find(|(x, _)| x.key == m.key).map(|(x, _)| x.value)).collect();
        let ratios: Vec<Option<f64>> =
            values.iter().map(|v| v.map(|o| if o == 0.0 { f64::NAN } else { m.value / o })).collect();
        let goal = judged_against.and_then(|_| goal(&m.key));
        let mut row = vec![m.label.clone(), m.unit.clone(), fmt_value(m.value)];
        row.extend(values.iter().map(|v| v.map_or("—".into(), fmt_value)));
        row.extend(ratios.iter().map(|r| r.map_or("—".into(), |r| fmt_ratio(r, m.better))));
        row.push(goal.map_or(String::new(), Goal::describe));
        row.push(match (goal, judged_against.and_then(|i| ratios[i])) {
            (Some(g), Some(r)) if r.is_finite() => (if g.met(r) { "yes" } else { "NO" }).into(),
            (Some(_), _) => "?".into(),
            _ => String::new(),
        });
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> =
        (0..columns).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i] - c.chars().count();
                if i >= 2 {
                    format!("{}{c}", " ".repeat(pad))
                } else {
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
        if n == 0 {
            let rules: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(i, w)| if i >= 2 { format!("{}:", "-".repeat(w - 1)) } else { "-".repeat(*w) })
                .collect();
            out.push_str(&format!("| {} |\n", rules.join(" | ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(key: &str, value: f64, better: Better) -> Metric {
        metric(key.into(), key.into(), "x", value, better)
    }

    #[test]
    fn goals_and_ratios() {
        assert_eq!(goal("handshake.token.seq.rate"), Some(Goal::AtLeast(20.0)));
        assert_eq!(goal("handshake.device.c64.rate"), Some(Goal::AtLeast(10.0)));
        assert_eq!(goal("rpc.health.c50.rate"), Some(Goal::AtLeast(10.0)));
        assert_eq!(goal("rpc.health.c1.rate"), None);
        assert_eq!(goal("rpc.health.c1.p50"), Some(Goal::AtMost(0.2)));
        let a = vec![m("handshake.token.seq.rate", 3000.0, Better::Higher), m("fanout.last", 2.0, Better::Lower)];
        let b = vec![m("handshake.token.seq.rate", 100.0, Better::Higher), m("fanout.last", 40.0, Better::Lower)];
        let t = table("clawgate", &a, "OpenClaw", &b);
        assert!(t.contains("30.0×"), "{t}");
        assert!(t.contains("1/20.0"), "{t}");
        assert_eq!(t.matches("yes").count(), 2, "{t}");
    }

    #[test]
    fn three_way_table_compares_the_first_with_each() {
        let cg = vec![m("handshake.token.seq.rate", 3000.0, Better::Higher), m("fanout.last", 2.0, Better::Lower)];
        let oc = vec![m("handshake.token.seq.rate", 100.0, Better::Higher), m("fanout.last", 40.0, Better::Lower)];
        let floor = vec![m("handshake.token.seq.rate", 4000.0, Better::Higher)];
        let t = table_many(&[("clawgate".into(), cg), ("floor".into(), floor), ("OpenClaw".into(), oc)]);
        assert!(t.contains("clawgate : OpenClaw") && t.contains("clawgate : floor"), "{t}");
        assert!(t.contains("30.0×") && t.contains("0.750×"), "{t}");
        // The floor has no fan-out: its cells say so; the goal still judges against OpenClaw.
        assert!(t.lines().any(|l| l.starts_with("| fanout.last") && l.contains("—") && l.contains("yes")), "{t}");
        // Without OpenClaw in the run, no goal is judged.
        let t =
            table_many(&[("clawgate".into(), vec![m("fanout.last", 2.0, Better::Lower)]), ("floor".into(), vec![])]);
        assert!(!t.contains("yes") && !t.contains("NO") && !t.contains("≤"), "{t}");
    }

    #[test]
    fn repeated_runs_take_the_median() {
        let ms = vec![m("k", 1.0, Better::Lower), m("k", 5.0, Better::Lower), m("k", 3.0, Better::Lower)];
        let c = combine(&ms);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0.value, 3.0);
        assert_eq!(c[0].1, 3);
        let line = serde_json::to_string(&ms[0]).unwrap();
        assert_eq!(parse_lines(&format!("# c\n{line}\n\n")).unwrap(), vec![ms[0].clone()]);
    }
}
