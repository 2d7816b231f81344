//! A state directory on a small tmpfs, so the store's disk can be filled.
//! As root the tmpfs is mounted here and unmounted on drop; otherwise the
//! gateway runs in a user and mount namespace of its own (`unshare -rm`)
//! that mounts it, and the test reaches the directory through
//! `/proc/<pid>/root`. Either way the test runs; it never skips.
//! `CLAWGATE_FAULT_UNSHARE=1` takes the namespace way even as root.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::harness::{gateway_launch, prepare_state, start_gateway};
use crate::common::clawgate_process::ClawgateProcess;

const SIZE: &str = "size=4m";

pub struct SmallDisk {
    /// Where the tmpfs is mounted (in the gateway's view).
    dir: tempfile::TempDir,
    /// Mounted by this process (root): unmount on drop.
    mounted: bool,
    config: String,
    /// A store file to start from (see [`SmallDisk::seed_store`]).
    seed: Option<PathBuf>,
}

impl SmallDisk {
    /// A small tmpfs for a state directory with `config`.
    pub fn new(config: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let as_root = effective_uid() == 0 && std::env::var_os("CLAWGATE_FAULT_UNSHARE").is_none_or(|v| v != "1");
        let mut disk = SmallDisk { dir, mounted: false, config: config.to_owned(), seed: None };
        if !as_root {
            return disk;
        }
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("{SIZE},mode=0700"), "tmpfs"])
            .arg(disk.dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs as root: {status}");
        disk.mounted = true;
        prepare_state(disk.dir.path(), config);
        disk
    }

    /// Start the gateway on a copy of the (closed) store file `store`: for
    /// what only the offline CLI or the store itself can make, such as a
    /// service principal.
    pub fn seed_store(&mut self, store: &Path) {
        if self.mounted {
            std::fs::copy(store, super::harness::store_path(self.dir.path())).unwrap();
        }
        self.seed = Some(store.to_owned());
    }

    /// Start the gateway with its state directory on the tmpfs.
    pub async fn start_gateway(&self) -> ClawgateProcess {
        if self.mounted {
            return start_gateway(self.dir.path()).await;
        }
        // In the namespace: mount, write the config, then become the gateway.
        let seed = match &self.seed {
            Some(store) => format!("cp '{}' \"$0/clawgate.sqlite\" && ", store.display().to_string().replace('\'', "")),
            None => String::new(),
        };
        let script = format!(
            "mount -t tmpfs -o {SIZE},mode=0700 tmpfs \"$0\" && umask 077 && printf '%s' '{}' > \"$0/config.json5\" \
             && {seed}exec \"$@\"",
            self.config.replace('\'', "")
        );
        let wrapper: Vec<String> = ["unshare", "-rm", "sh", "-c", &script]
            .iter()
            .map(|s| s.to_string())
            .chain([self.dir.path().display().to_string()])
            .collect();
        gateway_launch(self.dir.path()).wrapped_in(wrapper).start().await
    }

    /// The state directory as this process sees it, while `gw` runs.
    pub fn state(&self, gw: &ClawgateProcess) -> PathBuf {
        if self.mounted {
            self.dir.path().to_owned()
        } else {
            gw.state_view()
        }
    }
}

/// The store file to check while the gateway runs, and the copy that holds it.
pub struct StoreToCheck {
    pub path: PathBuf,
    _copy: Option<tempfile::TempDir>,
}

impl SmallDisk {
    /// The store file, for [`super::harness::check_store_clean`]. In the
    /// namespace, SQLite resolves `/proc/<pid>/root` back to this process's
    /// own root, so the idle store and its WAL are copied out first.
    pub fn store_to_check(&self, gw: &ClawgateProcess) -> StoreToCheck {
        let store = super::harness::store_path(&self.state(gw));
        if self.mounted {
            return StoreToCheck { path: store, _copy: None };
        }
        let copy = tempfile::tempdir().unwrap();
        let path = copy.path().join("clawgate.sqlite");
        std::fs::copy(&store, &path).unwrap();
        let mut wal = store.into_os_string();
        wal.push("-wal");
        if Path::new(&wal).exists() {
            std::fs::copy(&wal, copy.path().join("clawgate.sqlite-wal")).unwrap();
        }
        StoreToCheck { path, _copy: Some(copy) }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

/// This process's effective uid.
fn effective_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

/// Fill the file system of `dir` with a junk file until it is full; returns it.
pub fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let junk = dir.join("junk");
    let mut f = std::fs::File::create(&junk).unwrap();
    let block = vec![0xA5u8; 64 * 1024];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // Small writes take the last partial block.
    while f.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
    let _ = f.sync_all();
    junk
}
