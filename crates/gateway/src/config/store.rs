//! `gateway.store`: where the pairing store lives. Absent, the SQLite file
//! in the state directory, as always. `url` (or `CLAWGATE_STORE_URL`, which
//! wins) names a PostgreSQL database that several clawgate instances share
//! (docs/cluster.md).

use serde::Deserialize;

use super::ConfigError;

/// `gateway.store` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StoreSection {
    /// `postgres://user:password@host:port/database`.
    pub url: Option<String>,
}

/// The environment variable that sets (and overrides) `gateway.store.url`.
pub const STORE_URL_ENV: &str = "CLAWGATE_STORE_URL";

/// A PostgreSQL URL for the store. It may hold a password: its `Debug`
/// form, which logs and error reports may show, never does.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// The URL as given, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else { return "***".to_owned() };
        match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                let hidden = if userinfo.contains(':') { ":***" } else { "" };
                format!("{scheme}://{user}{hidden}@{host}")
            }
            None => self.0.clone(),
        }
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StoreUrl").field(&self.redacted()).finish()
    }
}

/// The store URL: `CLAWGATE_STORE_URL` over `gateway.store.url`; `None`:
/// the SQLite store. Only PostgreSQL URLs are taken.
pub fn resolve(section: Option<&StoreSection>, env: Option<String>) -> Result<Option<StoreUrl>, ConfigError> {
    let (key, url) = match (env, section.and_then(|s| s.url.clone())) {
        (Some(e), _) => (STORE_URL_ENV, e),
        (None, Some(u)) => ("gateway.store.url", u),
        (None, None) => return Ok(None),
    };
    let url = url.trim().to_owned();
    if !crate::store::is_postgres_url(&url) {
        return Err(ConfigError::Unsafe {
            key: key.to_owned(),
            message: "only a postgres:// (or postgresql://) URL is taken; leave it unset for the SQLite store \
                      in the state directory"
                .to_owned(),
        });
    }
    Ok(Some(StoreUrl(url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_and_only_postgres_is_taken() {
        let section = StoreSection { url: Some("postgres://gw@db/clawgate".into()) };
        assert_eq!(resolve(Some(&section), None).unwrap().unwrap().expose(), "postgres://gw@db/clawgate");
        let env = Some("postgresql://other@db/x".to_owned());
        assert_eq!(resolve(Some(&section), env).unwrap().unwrap().expose(), "postgresql://other@db/x");
        assert_eq!(resolve(None, None).unwrap(), None);
        let err = resolve(Some(&StoreSection { url: Some("sqlite:///tmp/x".into()) }), None).unwrap_err();
        assert!(err.to_string().starts_with("gateway.store.url:"), "{err}");
        let err = resolve(None, Some("mysql://x".into())).unwrap_err();
        assert!(err.to_string().starts_with("CLAWGATE_STORE_URL:"), "{err}");
    }

    #[test]
    fn the_file_key_is_read() {
        let text = r#"{ gateway: { store: { url: "postgres://gw@db/clawgate" } } }"#;
        let (file, notes) = crate::config::parse_file(std::path::Path::new("clawgate.json5"), text).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        let url = resolve(file.gateway.store.as_ref(), None).unwrap().unwrap();
        assert_eq!(url.expose(), "postgres://gw@db/clawgate");
        let text = r#"{ gateway: { store: { path: "x" } } }"#;
        assert!(crate::config::parse_file(std::path::Path::new("clawgate.json5"), text).is_err());
    }

    #[test]
    fn the_password_is_never_in_debug() {
        let url = resolve(None, Some("postgres://gw:s3cret@db:5432/clawgate".into())).unwrap().unwrap();
        let shown = format!("{url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("gw:***@db:5432/clawgate"), "{shown}");
    }
}
