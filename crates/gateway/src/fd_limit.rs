//! The process's open-file limit (RLIMIT_NOFILE): read it, and raise the
//! soft limit to the hard one at start (docs/operations.md, "Resource
//! limits"). Many service managers start programs with a soft limit of
//! 1,024 and a far higher hard one; a gateway needs one descriptor per
//! connection.

/// An open-file limit; `u64::MAX` stands for unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

// rlim_t is u64 on Linux, not on every target.
#[allow(clippy::unnecessary_cast)]
fn from_raw(v: libc::rlim_t) -> u64 {
    if v == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        v as u64
    }
}

/// The limit now.
pub fn current() -> std::io::Result<FdLimit> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(FdLimit { soft: from_raw(r.rlim_cur), hard: from_raw(r.rlim_max) })
}

/// What raising did: the limit before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    pub before: FdLimit,
    pub after: FdLimit,
}

/// Raise the soft limit to the hard one. An unlimited hard limit is not
/// a valid soft one on every kernel: the soft limit is then raised to
/// `fs.nr_open` (the most one process may have), as far as it is known.
pub fn raise_soft_to_hard() -> std::io::Result<Raised> {
    let before = current()?;
    if before.soft >= before.hard {
        return Ok(Raised { before, after: before });
    }
    let target = if before.hard == u64::MAX { nr_open().unwrap_or(before.soft) } else { before.hard };
    if target <= before.soft {
        return Ok(Raised { before, after: before });
    }
    let r = libc::rlimit { rlim_cur: target as libc::rlim_t, rlim_max: before.hard as libc::rlim_t };
    let r = if before.hard == u64::MAX { libc::rlimit { rlim_max: libc::RLIM_INFINITY, ..r } } else { r };
    // SAFETY: setrlimit reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Raised { before, after: current()? })
}

/// `fs.nr_open` on Linux.
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open").ok()?.trim().parse().ok()
}

/// A limit for a log line: a number, or `unlimited`.
pub fn show(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".to_owned()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_readable_and_raising_never_lowers_it() {
        let before = current().unwrap();
        assert!(before.soft <= before.hard);
        let raised = raise_soft_to_hard().unwrap();
        assert!(raised.after.soft >= raised.before.soft);
        assert_eq!(raised.after.hard, raised.before.hard);
        assert_eq!(show(u64::MAX), "unlimited");
    }
}
