//! The runtime file (`gateway.json` in the state directory): where the
//! running gateway listens, its pid, the config file in use, and where its
//! secret came from (never the secret: a short fingerprint of it only, so a
//! client can tell "this is not the secret the gateway uses" before trying).
//!
//! `gateway run` writes it once the listener is bound and removes it on a
//! clean shutdown; a gateway killed outright leaves it behind, which readers
//! detect (its pid is gone) and report as stale.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{ResolvedSecret, SecretSource};
use crate::secrets::SecretDigest;

pub const RUNTIME_FILE: &str = "gateway.json";

/// What a running gateway tells its clients about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeInfo {
    /// The URL a local client connects to (loopback when bound to all addresses).
    pub url: String,
    pub bind: String,
    pub port: u16,
    pub pid: u32,
    pub started_at_ms: u64,
    pub version: String,
    pub config_file: Option<PathBuf>,
    pub auth_mode: String,
    /// The shared secret in use (token or password mode).
    pub secret: Option<SecretOrigin>,
}

/// Where the gateway's shared secret came from, and a fingerprint of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretOrigin {
    /// `token` or `password`.
    pub kind: String,
    /// `generated`, `config`, `env`, `flag` or `file`.
    pub source: String,
    /// The config key, environment variable or file path, as applicable.
    pub name: Option<String>,
    /// As people read it: "environment variable OPENCLAW_GATEWAY_TOKEN".
    pub described: String,
    pub fingerprint: String,
}

impl SecretOrigin {
    pub fn of(kind: &str, secret: &ResolvedSecret) -> SecretOrigin {
        let (source, name) = match &secret.source {
            SecretSource::Generated(p) => ("generated", Some(p.display().to_string())),
            SecretSource::ConfigKey(k) => ("config", Some((*k).to_owned())),
            SecretSource::Env(v) => ("env", Some((*v).to_owned())),
            SecretSource::Flag => ("flag", None),
            SecretSource::File(p) => ("file", Some(p.display().to_string())),
        };
        SecretOrigin {
            kind: kind.to_owned(),
            source: source.to_owned(),
            name,
            described: secret.source.to_string(),
            fingerprint: fingerprint(secret.reveal()),
        }
    }

    /// Could another process on this host read the secret where it came
    /// from? (A flag or the gateway's environment: no.)
    pub fn readable_elsewhere(&self) -> bool {
        matches!(self.source.as_str(), "generated" | "config" | "file")
    }
}

/// A short, non-reversible tag of a secret: the first 12 hex digits of its
/// SHA-256. Enough to tell two secrets apart, useless to guess one of the
/// long secrets the gateway accepts.
pub fn fingerprint(secret: &str) -> String {
    let d = SecretDigest::of(secret.as_bytes());
    d.as_bytes()[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// A runtime file as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Live(RuntimeInfo),
    /// Its process is gone: the gateway was killed or crashed.
    Stale(RuntimeInfo),
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(RUNTIME_FILE)
}

/// Write it (0600, atomically).
pub fn write(state_dir: &Path, info: &RuntimeInfo) -> std::io::Result<()> {
    let target = path(state_dir);
    let tmp = state_dir.join(format!(".{RUNTIME_FILE}.{}.tmp", info.pid));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    let text = serde_json::to_string_pretty(info).map_err(std::io::Error::other)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    fs::rename(&tmp, &target)
}

/// Remove it if it is this process's (a later gateway may have replaced it).
pub fn remove_own(state_dir: &Path) {
    if let Ok(Some(Found::Live(info) | Found::Stale(info))) = read(state_dir) {
        if info.pid == std::process::id() {
            let _ = fs::remove_file(path(state_dir));
        }
    }
}

/// Read it. `Ok(None)`: there is none; an unreadable or garbled file is an
/// error naming it.
pub fn read(state_dir: &Path) -> Result<Option<Found>, String> {
    let p = path(state_dir);
    let text = match fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
    };
    let info: RuntimeInfo =
        serde_json::from_str(&text).map_err(|e| format!("{} is not a clawgate runtime file: {e}", p.display()))?;
    Ok(Some(if process_alive(info.pid) { Found::Live(info) } else { Found::Stale(info) }))
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Does a process with this pid exist? (Signal 0 checks without sending;
/// EPERM means it exists but belongs to someone else.)
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks the pid.
    let rc = unsafe { kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: u32) -> RuntimeInfo {
        RuntimeInfo {
            url: "ws://127.0.0.1:19871".into(),
            bind: "127.0.0.1".into(),
            port: 19871,
            pid,
            started_at_ms: 1,
            version: "0".into(),
            config_file: None,
            auth_mode: "token".into(),
            secret: Some(SecretOrigin::of(
                "token",
                &ResolvedSecret::new("a-long-secret-value-0123".into(), SecretSource::Env("OPENCLAW_GATEWAY_TOKEN")),
            )),
        }
    }

    #[test]
    fn written_read_back_and_stale_when_the_process_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let mine = info(std::process::id());
        write(dir.path(), &mine).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(Found::Live(mine.clone())));
        let text = fs::read_to_string(path(dir.path())).unwrap();
        assert!(!text.contains("a-long-secret-value-0123"), "never the secret itself");
        remove_own(dir.path());
        assert_eq!(read(dir.path()).unwrap(), None);
        // A pid far above any pid_max is never alive.
        let gone = info(i32::MAX as u32 - 1);
        write(dir.path(), &gone).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(Found::Stale(gone)));
        remove_own(dir.path());
        assert!(path(dir.path()).exists(), "someone else's file stays");
        fs::write(path(dir.path()), "{").unwrap();
        assert!(read(dir.path()).unwrap_err().contains("gateway.json"));
    }

    #[test]
    fn fingerprints_tell_secrets_apart_without_showing_them() {
        assert_eq!(fingerprint("abc").len(), 12);
        assert_eq!(fingerprint("abc"), fingerprint("abc"));
        assert_ne!(fingerprint("abc"), fingerprint("abd"));
    }
}
