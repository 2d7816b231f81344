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
#[derive(Clone)]
pub struct StoreUrl {
    url: String,
    /// Where it was set: [`STORE_URL_ENV`] or `gateway.store.url`.
    key: &'static str,
}

/// The same database, wherever the URL was set (a reload compares these).
impl PartialEq for StoreUrl {
    fn eq(&self, other: &StoreUrl) -> bool {
        self.url == other.url
    }
}

impl Eq for StoreUrl {}

impl StoreUrl {
    /// The URL as given, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// Where it was set: `CLAWGATE_STORE_URL` or `gateway.store.url`.
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// It came from the config file (not the environment).
    pub fn in_config_file(&self) -> bool {
        self.key != STORE_URL_ENV
    }

    /// The URL holds a password (`user:password@` or `?password=`).
    pub fn has_password(&self) -> bool {
        let rest = self.url.split_once("://").map_or("", |(_, rest)| rest);
        let (base, query) = rest.split_once('?').map_or((rest, ""), |(b, q)| (b, q));
        base.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':'))
            || query.split('&').any(|p| p.starts_with("password="))
    }

    /// The URL with any password (`user:password@`, `?password=`) replaced by `***`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.url.split_once("://") else { return "***".to_owned() };
        let (base, query) = rest.split_once('?').map_or((rest, None), |(b, q)| (b, Some(q)));
        let mut shown = match base.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                let hidden = if userinfo.contains(':') { ":***" } else { "" };
                format!("{scheme}://{user}{hidden}@{host}")
            }
            None => format!("{scheme}://{base}"),
        };
        if let Some(query) = query {
            let params: Vec<&str> =
                query.split('&').map(|p| if p.starts_with("password=") { "password=***" } else { p }).collect();
            shown.push('?');
            shown.push_str(&params.join("&"));
        }
        shown
    }

    /// The database hosts it names, as the connection reads them (`host`
    /// parameters included): TCP host names or addresses, and Unix socket
    /// directories. None at all: the default Unix socket. `None` when the
    /// URL does not parse (then no connection is made at all).
    pub fn hosts(&self) -> Option<Vec<postgres::config::Host>> {
        let config = <postgres::Config as std::str::FromStr>::from_str(&self.url).ok()?;
        Some(config.get_hosts().to_vec())
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
    Ok(Some(StoreUrl { url, key }))
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
        assert!(url.has_password() && !url.in_config_file());
        let url =
            resolve(None, Some("postgres://gw@db/clawgate?sslmode=disable&password=s3cret".into())).unwrap().unwrap();
        assert_eq!(url.redacted(), "postgres://gw@db/clawgate?sslmode=disable&password=***");
        assert!(url.has_password());
    }

    #[test]
    fn where_it_was_set_and_its_hosts() {
        let section = StoreSection { url: Some("postgres://gw@db.internal:5432,[::1]:5433/clawgate".into()) };
        let url = resolve(Some(&section), None).unwrap().unwrap();
        assert!(url.in_config_file() && !url.has_password());
        assert_eq!(url.key(), "gateway.store.url");
        let tcp = |h: &str| postgres::config::Host::Tcp(h.to_owned());
        assert_eq!(url.hosts().unwrap(), [tcp("db.internal"), tcp("::1")]);
        let from_env = resolve(Some(&section), Some(section.url.clone().unwrap())).unwrap().unwrap();
        assert_eq!(from_env.key(), STORE_URL_ENV);
        assert_eq!(from_env, url, "the same database wherever it was set");
        let socket = resolve(None, Some("postgres:///clawgate?host=/run/postgresql".into())).unwrap().unwrap();
        assert_eq!(socket.hosts().unwrap(), [postgres::config::Host::Unix("/run/postgresql".into())]);
        let default = resolve(None, Some("postgresql://gw@/clawgate".into())).unwrap().unwrap();
        assert_eq!(default.hosts().unwrap(), []);
    }
}
