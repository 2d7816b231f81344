//! The filesystem facts the audit reads, and the check over them
//! (`state.permissions`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{FileFact, Finding, HostFacts, Severity};

pub const STATE_DIRECTORY: &str = "state directory";
pub const CONFIG_FILE: &str = "config file";

/// Stat the given files (missing ones are left out) and look around the host.
pub fn gather(files: &[(&'static str, &Path)], now_ms: u64) -> HostFacts {
    let mut facts = Vec::new();
    for (what, path) in files {
        if let Ok(meta) = std::fs::metadata(path) {
            facts.push(FileFact {
                what,
                path: path.display().to_string(),
                mode: meta.mode() & 0o7777,
                owner_uid: meta.uid(),
            });
        }
    }
    let in_container = Path::new("/.dockerenv").exists() || Path::new("/run/.containerenv").exists();
    // Run as root (sudo), the audit judges the files by the gateway's user:
    // the owner of the state directory.
    let mut uid = crate::state::current_uid();
    if uid == 0 {
        uid = facts.iter().find(|f| f.what == STATE_DIRECTORY).map_or(0, |f| f.owner_uid);
    }
    HostFacts { uid, files: facts, in_container, now_ms }
}

/// `state.permissions`: state, config or store readable by others, or owned
/// by another user.
pub(super) fn check_files(host: &HostFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    for f in &host.files {
        // A config file may belong to root (it cannot be changed by the gateway).
        let root_config = f.what == CONFIG_FILE && f.owner_uid == 0;
        if f.owner_uid != host.uid && !root_config {
            out.push(Finding::new(
                "state.permissions",
                Severity::Critical,
                f.path.clone(),
                format!("the {} is owned by uid {}, not by the gateway's user (uid {})", f.what, f.owner_uid, host.uid),
                format!("chown it to the gateway's user: chown {} {}", host.uid, f.path),
            ));
        } else if f.mode & 0o077 != 0 {
            let want = if f.what == STATE_DIRECTORY { "700" } else { "600" };
            out.push(Finding::new(
                "state.permissions",
                Severity::Critical,
                f.path.clone(),
                format!("the {} has mode {:o}: other users can read or change it", f.what, f.mode),
                format!("chmod {want} {}", f.path),
            ));
        }
    }
    out
}
