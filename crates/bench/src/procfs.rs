//! Resident set size of a process (and of its descendants) from /proc.

use std::fs;

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The parent of `pid`, from /proc/PID/stat (the field after the parenthesised name).
fn parent(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Every live descendant of `pid` (children, grandchildren, …).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut all: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            if let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                if let Some(pp) = parent(p) {
                    all.push((p, pp));
                }
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, _) in all.iter().filter(|(_, pp)| *pp == p) {
            found.push(child);
            frontier.push(child);
        }
    }
    found
}

/// CPU time (user + system) `pid` has used, in clock ticks of 1/100 s
/// (USER_HZ, which /proc reports in on every Linux architecture we run on).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    // After the name: state(3) ppid(4) … utime(14) stime(15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

pub const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks of `pid` plus its live descendants (OpenClaw's helpers work too).
pub fn tree_cpu_ticks(pid: u32) -> Option<u64> {
    let own = cpu_ticks(pid)?;
    Some(own + descendants(pid).into_iter().filter_map(cpu_ticks).sum::<u64>())
}

/// RSS of `pid` plus all its descendants, in KiB (shared pages counted per process).
pub fn tree_rss_kib(pid: u32) -> Option<u64> {
    let own = rss_kib(pid)?;
    Some(own + descendants(pid).into_iter().filter_map(rss_kib).sum::<u64>())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_rss() {
        let me = std::process::id();
        assert!(super::rss_kib(me).unwrap() > 0);
        assert!(super::tree_rss_kib(me).unwrap() >= super::rss_kib(me).unwrap() / 2);
        assert!(super::rss_kib(u32::MAX).is_none());
        // Burn CPU until the kernel has charged at least one tick: on a
        // loaded machine a fixed wall-clock spin may get no CPU at all.
        let spin = std::time::Instant::now();
        while super::cpu_ticks(me).unwrap() < 1 {
            assert!(spin.elapsed() < std::time::Duration::from_secs(60), "no CPU tick charged in 60 s");
            for i in 0..100_000u64 {
                std::hint::black_box(i.wrapping_mul(31));
            }
        }
        // Own ticks first: the counters only grow, so the tree read after them
        // can never be smaller.
        let own = super::cpu_ticks(me).unwrap();
        assert!(super::tree_cpu_ticks(me).unwrap() >= own);
    }
}
