//! Guards of the store file under a running process:
//!
//! - [`FileIdentity`]: the (device, inode) of the file the connection opened.
//!   When the path no longer names that file (removed, or replaced by a
//!   restored backup), writes would go to a file nobody will read again, so
//!   they are refused with [`StoreError::Replaced`] until a restart; the
//!   store never recreates an empty file under a running gateway
//!   (docs/operations.md, "The store file was removed or replaced").
//! - [`FaultLog`]: a full disk or a replaced file is logged once when it
//!   starts (and, for a full disk, once when writes work again), not once per
//!   refused write.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use super::error::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileIdentity {
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    pub(super) fn of(path: &Path) -> std::io::Result<FileIdentity> {
        let meta = std::fs::metadata(path)?;
        Ok(FileIdentity { dev: meta.dev(), ino: meta.ino() })
    }

    /// Is `path` still the file that was opened as `self`?
    pub(super) fn check(self, path: &Path, shown: &str) -> Result<(), StoreError> {
        let what = match FileIdentity::of(path) {
            Ok(now) if now == self => return Ok(()),
            Ok(_) => "replaced by another file",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "removed",
            Err(_) => "made unreadable",
        };
        Err(StoreError::Replaced { path: shown.to_owned(), what })
    }
}

/// The store fault in force, logged on its transitions only.
#[derive(Default)]
pub(super) struct FaultLog {
    current: Mutex<Option<&'static str>>,
}

impl FaultLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<&'static str>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A store operation failed with `e`.
    pub(super) fn failed(&self, e: &StoreError) {
        if !e.logged_by_store() {
            return;
        }
        let mut current = self.lock();
        if *current != Some(e.code()) {
            *current = Some(e.code());
            tracing::error!(code = e.code(), error = %e, "pairing store writes are refused");
        }
    }

    /// A write was committed: a full disk has room again. (A replaced
    /// file never gets here: its writes are refused before they start.)
    pub(super) fn write_succeeded(&self, location: &str) {
        let mut current = self.lock();
        if current.take().is_some() {
            tracing::info!(store = location, "pairing store writes work again: the disk has room");
        }
    }
}
