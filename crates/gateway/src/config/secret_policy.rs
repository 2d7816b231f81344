//! Whether the gateway's shared secret is worth having: `gateway run`
//! refuses placeholders (`…`, `changeme`, `<token>`, `${VAR}` left
//! unexpanded) and anything under 16 characters, naming where the secret
//! came from, and warns under 24 characters (as OpenClaw's audit does).
//! Clients loading the config are not held to this: the check belongs to the
//! server that would accept the secret.

use super::{AuthMode, Config, ConfigError, ResolvedSecret, SecretSource};

/// Shorter is refused at start.
pub const MIN_SECRET_CHARS: usize = 16;
/// Shorter is accepted with a warning.
pub const RECOMMENDED_SECRET_CHARS: usize = 24;

/// Words people put where a secret goes before they have one.
const PLACEHOLDER_WORDS: &[&str] = &[
    "changeme",
    "change-me",
    "change_me",
    "replaceme",
    "replace-me",
    "replace_me",
    "your-token",
    "your_token",
    "yourtoken",
    "your-token-here",
    "your_token_here",
    "your-password",
    "your_password",
    "your-password-here",
    "token",
    "password",
    "secret",
    "example",
    "placeholder",
    "todo",
    "undefined",
    "null",
    "none",
    "test",
    "dummy",
];

/// Why a value cannot be a secret, if it cannot.
pub fn placeholder_reason(value: &str) -> Option<&'static str> {
    let t = value.trim();
    if t.is_empty() {
        return Some("it is blank");
    }
    if t.starts_with("${") || (t.starts_with('$') && t[1..].chars().all(|c| c.is_ascii_uppercase() || c == '_')) {
        return Some("it is an unexpanded variable reference");
    }
    if (t.starts_with('<') && t.ends_with('>')) || (t.starts_with('{') && t.ends_with('}')) {
        return Some("it is a placeholder in brackets");
    }
    if t.chars().all(|c| !c.is_alphanumeric()) {
        return Some("it has no letters or digits (an ellipsis?)");
    }
    let lower = t.to_ascii_lowercase();
    let word = lower.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if PLACEHOLDER_WORDS.contains(&word)
        || lower.contains("your-")
        || lower.contains("your_")
        || lower.contains("here>")
    {
        return Some("it is a placeholder");
    }
    let mut chars = t.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Some("it is one character repeated");
    }
    None
}

/// Where to fix a secret: the config key, variable, flag or file it came from.
fn key_of(source: &SecretSource, what: &str) -> String {
    match source {
        SecretSource::ConfigKey(k) => (*k).to_owned(),
        SecretSource::Env(v) => (*v).to_owned(),
        SecretSource::Flag => format!("--{what}"),
        SecretSource::File(p) | SecretSource::Generated(p) => p.display().to_string(),
    }
}

/// Refuse a placeholder or short secret in use; return warnings for one
/// that is merely short. Only the secret of the active mode counts.
pub fn check_secret_strength(config: &Config) -> Result<Vec<String>, ConfigError> {
    let in_use: Option<(&ResolvedSecret, &str)> = match config.auth_mode {
        AuthMode::Token => config.token.as_ref().map(|t| (t, "token")),
        AuthMode::Password | AuthMode::TrustedProxy => config.password.as_ref().map(|p| (p, "password")),
        AuthMode::None => None,
    };
    let Some((secret, what)) = in_use else { return Ok(Vec::new()) };
    let key = key_of(&secret.source, what);
    let value = secret.reveal();
    if value.trim().starts_with("cgs_") {
        return Err(ConfigError::Unsafe {
            key,
            message: format!(
                "this is a service token (clawgate services add), not a gateway {what}; unset it for `gateway run`"
            ),
        });
    }
    if let Some(why) = placeholder_reason(value) {
        return Err(ConfigError::Unsafe {
            key,
            message: format!("the gateway {what} is not a real secret ({why}); set a long random string, e.g. the output of `openssl rand -base64 32`"),
        });
    }
    let len = value.trim().chars().count();
    if len < MIN_SECRET_CHARS {
        return Err(ConfigError::Unsafe {
            key,
            message: format!(
                "the gateway {what} has {len} characters; use at least {MIN_SECRET_CHARS} (a long random string, \
                 e.g. the output of `openssl rand -base64 32`)"
            ),
        });
    }
    if len < RECOMMENDED_SECRET_CHARS {
        return Ok(vec![format!(
            "the gateway {what} from {} has {len} characters; {RECOMMENDED_SECRET_CHARS} or more are recommended",
            secret.source
        )]);
    }
    Ok(Vec::new())
}

/// Warnings for files holding a secret that other users may read: the
/// config file when a secret is written in it, and a secret file. Not an
/// error (the owner may share a group on purpose), but worth saying at start.
pub fn readable_secret_files(config: &Config, config_file: Option<&std::path::Path>) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut files: Vec<(std::path::PathBuf, String)> = Vec::new();
    for secret in [&config.token, &config.password].into_iter().flatten() {
        match &secret.source {
            SecretSource::ConfigKey(key) => {
                if let Some(path) = config_file {
                    files.push((path.to_owned(), format!("the config file (it holds {key})")));
                }
            }
            SecretSource::File(path) => files.push((path.clone(), "the secret file".to_owned())),
            _ => {}
        }
    }
    files.dedup_by(|a, b| a.0 == b.0);
    files
        .into_iter()
        .filter_map(|(path, what)| {
            let mode = std::fs::metadata(&path).ok()?.permissions().mode() & 0o777;
            (mode & 0o077 != 0).then(|| {
                format!(
                    "{what} {} has mode {mode:04o}: other users on this host can read the secret; chmod 600 it",
                    path.display()
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token(v: &str) -> Config {
        let mut c = Config::new(AuthMode::Token, None, None);
        c.token = Some(ResolvedSecret::new(v.into(), SecretSource::ConfigKey("gateway.auth.token")));
        c
    }

    #[test]
    fn placeholders_and_short_secrets_are_refused_naming_the_key() {
        for bad in [
            "…",
            "...",
            "changeme",
            "your-token-here",
            "<token>",
            "abc",
            "${TOKEN}",
            "$OPENCLAW_TOKEN",
            "xxxxxxxxxxxxxxxxxxxxxxxx",
            "  ",
            "Password",
        ] {
            let e = check_secret_strength(&with_token(bad)).unwrap_err();
            assert_eq!(e.code(), "CONFIG_UNSAFE");
            assert!(e.to_string().starts_with("gateway.auth.token: "), "{bad:?}: {e}");
        }
        let warn = check_secret_strength(&with_token("k3J9-q2Lm-Zx81-pP0w")).unwrap();
        assert_eq!(warn.len(), 1, "under 24 characters: a warning");
        assert!(!warn[0].contains("k3J9"), "never the secret in a warning");
        assert!(check_secret_strength(&with_token("k3J9-q2Lm-Zx81-pP0w-77aQ-Bn")).unwrap().is_empty());
    }

    #[test]
    fn only_the_secret_of_the_active_mode_counts() {
        let c = Config::new(AuthMode::None, Some("abc"), None);
        assert!(check_secret_strength(&c).unwrap().is_empty());
        let c = Config::new(AuthMode::Password, Some("a-long-enough-token-value-01"), Some("short"));
        assert!(check_secret_strength(&c).unwrap_err().to_string().starts_with("--password"));
    }

    #[test]
    fn a_secret_in_a_file_others_can_read_is_reported() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json5");
        std::fs::write(&path, "{}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = with_token("a-long-enough-token-0123456789abcdef");
        let warnings = readable_secret_files(&c, Some(&path));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("0644") && warnings[0].contains("gateway.auth.token"), "{warnings:?}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(readable_secret_files(&c, Some(&path)).is_empty());
        let mut from_env = c.clone();
        from_env.token = Some(ResolvedSecret::new("x".into(), SecretSource::Env("OPENCLAW_GATEWAY_TOKEN")));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(readable_secret_files(&from_env, Some(&path)).is_empty(), "no secret in the file");
    }
}
