//! The state directory (`~/.clawgate`, or `CLAWGATE_STATE_DIR`): 0700, owned
//! by the gateway's user, files inside 0600. The gateway refuses to start on a
//! directory or file others could read or that another user owns.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::ConfigError;
use crate::secrets::random_token;

pub const TOKEN_FILE: &str = "gateway.token";
pub const CONFIG_FILE: &str = "config.json5";
pub const STORE_FILE: &str = "clawgate.sqlite";

#[derive(Debug, Clone)]
pub struct StateDir {
    pub path: PathBuf,
}

pub(crate) fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc_getuid() }
}

extern "C" {
    #[link_name = "getuid"]
    fn libc_getuid() -> u32;
}

impl StateDir {
    /// `CLAWGATE_STATE_DIR`, else `$HOME/.clawgate`.
    pub fn locate(env: &std::collections::BTreeMap<String, String>) -> Result<StateDir, ConfigError> {
        if let Some(dir) = env.get("CLAWGATE_STATE_DIR").filter(|d| !d.is_empty()) {
            return Ok(StateDir { path: PathBuf::from(dir) });
        }
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or_else(|| {
            ConfigError::Other("HOME is not set; set CLAWGATE_STATE_DIR to choose the state directory".into())
        })?;
        Ok(StateDir { path: PathBuf::from(home).join(".clawgate") })
    }

    /// Create the directory (0700) if missing, and check its ownership and mode.
    pub fn ensure(&self) -> Result<(), ConfigError> {
        if !self.path.exists() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.path).map_err(|e| {
                ConfigError::Other(format!("cannot create state directory {}: {e}", self.path.display()))
            })?;
        }
        check_private(&self.path, true)
    }

    pub fn token_path(&self) -> PathBuf {
        self.path.join(TOKEN_FILE)
    }

    /// The pairing store (SQLite).
    pub fn store_path(&self) -> PathBuf {
        self.path.join(STORE_FILE)
    }

    pub fn default_config_path(&self) -> PathBuf {
        self.path.join(CONFIG_FILE)
    }

    /// The generated gateway token, if one was generated before.
    pub fn read_token(&self) -> Result<Option<String>, ConfigError> {
        let path = self.token_path();
        if !path.exists() {
            return Ok(None);
        }
        check_private(&path, false)?;
        let text = fs::read_to_string(&path)
            .map_err(|e| ConfigError::Other(format!("cannot read {}: {e}", path.display())))?;
        let token = text.trim().to_owned();
        if token.is_empty() {
            return Err(ConfigError::Other(format!("{} is empty; delete it to generate a new token", path.display())));
        }
        Ok(Some(token))
    }

    /// The generated token, creating (0600, written atomically) it on first use.
    pub fn token_or_generate(&self) -> Result<(String, PathBuf), ConfigError> {
        self.ensure()?;
        let (token, fresh) = self.token_or_new()?;
        if fresh {
            self.persist_token(&token)?;
        }
        Ok((token, self.token_path()))
    }

    /// The generated token, or a new one not yet written (`true`): the
    /// gateway writes nothing before its listener is bound, then calls
    /// [`StateDir::persist_token`].
    pub fn token_or_new(&self) -> Result<(String, bool), ConfigError> {
        match self.read_token()? {
            Some(t) => Ok((t, false)),
            None => Ok((random_token(), true)),
        }
    }

    /// Write a generated token (0600, atomically).
    pub fn persist_token(&self, token: &str) -> Result<(), ConfigError> {
        let path = self.token_path();
        let tmp = self.path.join(format!(".{TOKEN_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            let _ = fs::remove_file(&tmp);
            let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(token.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&self.path)?.sync_all()
        };
        write().map_err(|e| ConfigError::Other(format!("cannot write {}: {e}", path.display())))
    }

    /// Refuse a state directory, or a store file in it, that the gateway
    /// cannot write: found at start, not at the first pairing. The mode bits
    /// are checked too, since a superuser would write through them.
    pub fn check_writable(&self) -> Result<(), ConfigError> {
        let unwritable = |path: &Path, why: String| ConfigError::Unsafe {
            key: path.display().to_string(),
            message: format!("the gateway cannot write it ({why}); the state directory is {}", self.path.display()),
        };
        let dir_mode = fs::metadata(&self.path).map(|m| m.permissions().mode()).unwrap_or(0);
        if dir_mode & 0o200 == 0 {
            return Err(unwritable(&self.path, format!("mode {:o}; run chmod 700 on it", dir_mode & 0o777)));
        }
        let probe = self.path.join(format!(".write-probe-{}", std::process::id()));
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&probe)
            .map_err(|e| unwritable(&self.path, e.to_string()))?;
        let _ = fs::remove_file(&probe);
        let store = self.store_path();
        if let Ok(meta) = fs::metadata(&store) {
            let mode = meta.permissions().mode();
            if mode & 0o200 == 0 {
                return Err(unwritable(&store, format!("mode {:o}; run chmod 600 on it", mode & 0o777)));
            }
            fs::OpenOptions::new().write(true).open(&store).map_err(|e| unwritable(&store, e.to_string()))?;
        }
        Ok(())
    }
}

/// Refuse paths readable or writable by others, or owned by another user.
pub(crate) fn check_private(path: &Path, is_dir: bool) -> Result<(), ConfigError> {
    let meta = fs::metadata(path).map_err(|e| ConfigError::Other(format!("cannot inspect {}: {e}", path.display())))?;
    if meta.is_dir() != is_dir {
        return Err(ConfigError::Other(format!(
            "{} should be a {}",
            path.display(),
            if is_dir { "directory" } else { "file" }
        )));
    }
    let uid = current_uid();
    if meta.uid() != uid {
        return Err(ConfigError::Unsafe {
            key: path.display().to_string(),
            message: format!("owned by uid {}, not by this user (uid {uid}); fix the ownership", meta.uid()),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        let want = if is_dir { "700" } else { "600" };
        return Err(ConfigError::Unsafe {
            key: path.display().to_string(),
            message: format!("mode {mode:o} lets other users read it; run chmod {want} {}", path.display()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("clawgate-state-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn generates_once_and_keeps_it_private() {
        let dir = StateDir { path: temp_dir("gen").join("state") };
        let (a, path) = dir.token_or_generate().unwrap();
        let (b, _) = dir.token_or_generate().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&dir.path).unwrap().permissions().mode() & 0o777, 0o700);
        fs::remove_dir_all(dir.path.parent().unwrap()).unwrap();
    }

    #[test]
    fn refuses_an_unwritable_directory_or_store_naming_it() {
        let dir = StateDir { path: temp_dir("ro") };
        dir.ensure().unwrap();
        dir.check_writable().unwrap();
        fs::write(dir.store_path(), b"").unwrap();
        fs::set_permissions(dir.store_path(), fs::Permissions::from_mode(0o400)).unwrap();
        let e = dir.check_writable().unwrap_err().to_string();
        assert!(e.contains("clawgate.sqlite") && e.contains("chmod 600"), "{e}");
        fs::remove_file(dir.store_path()).unwrap();
        fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o500)).unwrap();
        let e = dir.check_writable().unwrap_err().to_string();
        assert!(e.contains(&dir.path.display().to_string()) && e.contains("chmod 700"), "{e}");
        fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o700)).unwrap();
        fs::remove_dir_all(&dir.path).unwrap();
    }

    #[test]
    fn refuses_readable_state() {
        let dir = StateDir { path: temp_dir("open") };
        dir.ensure().unwrap();
        fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o755)).unwrap();
        let err = dir.ensure().unwrap_err();
        assert!(err.to_string().contains("chmod 700"), "{err}");
        fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o700)).unwrap();
        dir.token_or_generate().unwrap();
        fs::set_permissions(dir.token_path(), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(dir.read_token().unwrap_err().to_string().contains("chmod 600"));
        fs::remove_dir_all(&dir.path).unwrap();
    }
}
