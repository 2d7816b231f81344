//! The PostgreSQL store's connection: opening it, noticing it is gone and
//! opening it again on the next operation, and turning the client's errors
//! into [`StoreError`]s with stable codes.

use std::error::Error as _;
use std::str::FromStr;
use std::time::Duration;

use postgres::config::Host;
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};

use crate::store::error::StoreError;

/// How long connecting, and waiting for another writer's lock, may take
/// (the SQLite store's busy timeout is as long).
pub(super) const WAIT: Duration = Duration::from_secs(5);

/// An operation's error before the store's location is attached.
pub(super) enum PgOpError {
    Store(StoreError),
    Pg(postgres::Error),
    /// A column that does not hold what the schema says it holds.
    Decode(String),
}

impl From<StoreError> for PgOpError {
    fn from(e: StoreError) -> Self {
        PgOpError::Store(e)
    }
}

impl From<postgres::Error> for PgOpError {
    fn from(e: postgres::Error) -> Self {
        PgOpError::Pg(e)
    }
}

pub(super) type PgResult<T> = Result<T, PgOpError>;

/// Where the store lives and how to reach it.
#[derive(Clone)]
pub(super) struct Target {
    pub(super) config: Config,
    /// The URL without its password, as shown in errors and logs.
    pub(super) location: String,
}

impl Target {
    /// Parse a `postgres://` URL (or a `key=value` connection string).
    pub(super) fn parse(url: &str) -> Result<Target, StoreError> {
        let mut config = Config::from_str(url).map_err(|e| StoreError::Unreadable {
            path: "the PostgreSQL URL".to_owned(),
            reason: format!("it is not a valid connection string ({e})"),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(WAIT);
        }
        if config.get_application_name().is_none() {
            config.application_name("clawgate");
        }
        // A writer waits at most this long for another writer's lock, then
        // fails as busy (like SQLite's busy timeout).
        let wait = format!("-c lock_timeout={}", WAIT.as_millis());
        let options = match config.get_options() {
            Some(given) => format!("{given} {wait}"),
            None => wait,
        };
        config.options(&options);
        let location = shown(&config);
        Ok(Target { config, location })
    }

    pub(super) fn connect(&self) -> Result<Client, StoreError> {
        self.config.connect(NoTls).map_err(|e| self.classify(PgOpError::Pg(e)).0)
    }

    /// The store error for `e`, and whether the connection is lost (so it
    /// must be dropped and opened again).
    pub(super) fn classify(&self, e: PgOpError) -> (StoreError, bool) {
        let location = self.location.clone();
        match e {
            PgOpError::Store(e) => (e, false),
            PgOpError::Decode(detail) => (StoreError::Database { location, detail }, false),
            PgOpError::Pg(e) => match e.as_db_error() {
                Some(db) => {
                    let code = db.code();
                    let detail = format!("{} ({})", db.message(), code.code());
                    if *code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::T_R_DEADLOCK_DETECTED {
                        (StoreError::Busy { path: location }, false)
                    } else if code.code().starts_with("08")
                        || code.code().starts_with("57P")
                        || *code == SqlState::TOO_MANY_CONNECTIONS
                    {
                        (StoreError::Unavailable { location, reason: detail }, true)
                    } else if code.code().starts_with("22") {
                        // A value the database cannot hold (a NUL in a text).
                        (StoreError::InvalidInput(detail), false)
                    } else if *code == SqlState::INVALID_CATALOG_NAME
                        || *code == SqlState::INVALID_PASSWORD
                        || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                        || *code == SqlState::INSUFFICIENT_PRIVILEGE
                    {
                        (StoreError::Unreadable { path: location, reason: detail }, true)
                    } else {
                        (StoreError::Database { location, detail }, false)
                    }
                }
                // No answer from the server: the connection failed or is gone.
                None => {
                    let reason = match e.source() {
                        Some(cause) => format!("{e}: {cause}"),
                        None => e.to_string(),
                    };
                    (StoreError::Unavailable { location, reason }, true)
                }
            },
        }
    }
}

/// `postgres://user@host:port/db`, never the password.
fn shown(config: &Config) -> String {
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(dir) => dir.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let db = config.get_dbname().unwrap_or("");
    format!("postgres://{user}{}/{db}", hosts.join(","))
}

/// The decoded column `i` of a row.
pub(super) fn col<'a, T: postgres::types::FromSql<'a>>(row: &'a postgres::Row, i: usize) -> PgResult<T> {
    row.try_get(i).map_err(|e| PgOpError::Decode(format!("column {i}: {e}")))
}

/// What a broken column value says, for [`PgOpError::Decode`].
pub(super) fn bad(what: impl std::fmt::Display) -> PgOpError {
    PgOpError::Decode(what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        let t = Target::parse("postgres://gw:s3cret@db.internal:6543/clawgate").unwrap();
        assert_eq!(t.location, "postgres://gw@db.internal:6543/clawgate");
        let t = Target::parse("host=127.0.0.1 port=5432 user=u password=pw dbname=d").unwrap();
        assert!(!t.location.contains("pw"), "{}", t.location);
    }

    #[test]
    fn a_bad_url_is_an_error_with_a_code() {
        let err = Target::parse("postgres://host:notaport/db").err().unwrap();
        assert_eq!(err.code(), "STORE_UNREADABLE");
    }

    #[test]
    fn nobody_listening_is_unavailable() {
        // Port 1 on loopback: refused at once.
        let t = Target::parse("postgres://u@127.0.0.1:1/d").unwrap();
        let err = t.connect().err().unwrap();
        assert_eq!(err.code(), "STORE_UNAVAILABLE", "{err}");
        assert!(err.is_store_failure());
    }
}
