//! The config file: JSON5, possibly a whole `openclaw.json`, parsed and
//! resolved as at start and on reload; and the upstream's `openclaw.json`
//! as upstream mode reads it.

use std::path::{Path, PathBuf};

use crate::config::{parse_file, resolve, ConfigSources};

/// The same text as clawgate's own config file and as the upstream's
/// `openclaw.json`. Resolving sees no environment; a `~` in a path names a
/// home directory that does not exist, so no real file is read through it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("openclaw.json");

    let first = resolved(path, text);
    assert_eq!(first, resolved(path, text), "loading a config is not deterministic");

    let upstream = crate::upstream::config::parse_openclaw_config(path, text).map(|f| format!("{f:?}"));
    let again = crate::upstream::config::parse_openclaw_config(path, text).map(|f| format!("{f:?}"));
    assert_eq!(upstream.map_err(|e| e.to_string()), again.map_err(|e| e.to_string()));
}

/// The outcome of loading `text`, printed (secrets are redacted by Debug).
fn resolved(path: &Path, text: &str) -> String {
    let loaded = parse_file(path, text).and_then(|(file, notes)| {
        let mut sources = ConfigSources::default();
        sources.env.insert("HOME".into(), "/nonexistent-fuzz-home".into());
        let mut generated = || Ok(("generated-fuzz-token-generated".to_owned(), PathBuf::from("state/gateway.token")));
        resolve(file, notes, &sources, &mut generated)
    });
    match loaded {
        Ok(config) => format!("{config:?}"),
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty(), "a config error without a message");
            assert!(!e.code().is_empty(), "a config error without a code");
            message
        }
    }
}
