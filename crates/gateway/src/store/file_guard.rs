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

#[cfg(test)]
mod tests {
    use crate::store::{PairingStore, Role, SqliteStore, StoreError};

    fn private_dir() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn a_removed_file_refuses_writes_and_is_not_recreated() {
        let dir = private_dir();
        let path = dir.path().join("clawgate.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        store.add_service("before", Role::Node, &[], 1).unwrap();
        std::fs::remove_file(&path).unwrap();
        let e = store.add_service("after", Role::Node, &[], 2).unwrap_err();
        assert!(matches!(e, StoreError::Replaced { what: "removed", .. }), "{e:?}");
        assert_eq!(e.code(), "STORE_REPLACED");
        assert!(e.is_store_failure() && e.logged_by_store());
        assert_eq!(store.data_version().unwrap_err().code(), "STORE_REPLACED");
        assert!(!path.exists(), "an empty store was created");
        // Reads still see the file that is open.
        assert_eq!(store.list_services().unwrap().len(), 1);
    }

    #[test]
    fn a_replaced_file_refuses_writes_and_stays_untouched() {
        let dir = private_dir();
        let path = dir.path().join("clawgate.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        let other = dir.path().join("other.sqlite");
        drop(SqliteStore::open(&other).unwrap());
        std::fs::rename(&other, &path).unwrap();
        let before = std::fs::read(&path).unwrap();
        let e = store.add_service("after", Role::Node, &[], 2).unwrap_err();
        assert!(matches!(e, StoreError::Replaced { what: "replaced by another file", .. }), "{e:?}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_full_disk_has_its_own_code() {
        let full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        let e = StoreError::from_sqlite("store", full);
        assert_eq!(e.code(), "STORE_FULL");
        assert!(e.is_store_failure() && e.logged_by_store());
    }

    #[test]
    fn an_in_memory_store_has_no_file_to_check() {
        let store = SqliteStore::open_in_memory().unwrap();
        store.data_version().unwrap();
        store.add_service("svc", Role::Node, &[], 1).unwrap();
    }
}
