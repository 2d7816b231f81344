//! Shared by the SQLite modules: the internal error type, how values are
//! written to and read from columns, scope coverage, input validation.

use clawgate_protocol::scopes::normalize;
use rusqlite::types::Type;

use super::error::StoreError;
use super::types::{ApprovedVia, Role};

/// An operation's error before the store's path is attached.
pub(super) enum OpError {
    Store(StoreError),
    Sql(rusqlite::Error),
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Store(e)
    }
}

impl From<rusqlite::Error> for OpError {
    fn from(e: rusqlite::Error) -> Self {
        OpError::Sql(e)
    }
}

impl OpError {
    pub(super) fn at(self, path: &str) -> StoreError {
        match self {
            OpError::Store(e) => e,
            OpError::Sql(e) => StoreError::from_sqlite(path, e),
        }
    }
}

pub(super) type OpResult<T> = Result<T, OpError>;

/// A caller's millisecond timestamp as a column value.
pub(super) fn ms(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::InvalidInput(format!("timestamp {v} out of range")))
}

/// A column timestamp as milliseconds (negative values cannot be written).
pub(super) fn from_ms(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The store's generation: bumped by every change admission relies on.
pub(super) fn read_generation(conn: &rusqlite::Connection) -> rusqlite::Result<u64> {
    let v: i64 = conn.query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| r.get(0))?;
    Ok(from_ms(v))
}

pub(super) fn from_opt_ms(v: Option<i64>) -> Option<u64> {
    v.map(from_ms)
}

fn bad_column(idx: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, what.into())
}

/// A list of strings as a JSON array column.
pub(super) fn list_to_sql(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

pub(super) fn list_from_sql(idx: usize, text: &str) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| bad_column(idx, format!("bad JSON list: {e}")))
}

pub(super) fn roles_to_sql(roles: &[Role]) -> String {
    let names: Vec<String> = roles.iter().map(|r| r.as_str().to_owned()).collect();
    list_to_sql(&names)
}

pub(super) fn roles_from_sql(idx: usize, text: &str) -> rusqlite::Result<Vec<Role>> {
    list_from_sql(idx, text)?.iter().map(|r| role_from_sql(idx, r)).collect()
}

pub(super) fn role_from_sql(idx: usize, s: &str) -> rusqlite::Result<Role> {
    Role::parse(s).ok_or_else(|| bad_column(idx, format!("unknown role {s:?}")))
}

pub(super) fn via_from_sql(idx: usize, s: &str) -> rusqlite::Result<ApprovedVia> {
    ApprovedVia::parse(s).ok_or_else(|| bad_column(idx, format!("unknown approved_via {s:?}")))
}

/// Roles in their canonical order (operator, node), each once.
pub(super) fn merge_roles(roles: &[Role], add: Role) -> Vec<Role> {
    [Role::Operator, Role::Node].into_iter().filter(|r| *r == add || roles.contains(r)).collect()
}

const MAX_FIELD_BYTES: usize = 1024;
const MAX_SCOPES: usize = 64;

/// A 64-character lowercase hex device id.
pub(super) fn check_device_id(id: &str) -> Result<(), StoreError> {
    if id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!("device id {:?} is not 64 lowercase hex characters", truncate(id))))
    }
}

pub(super) fn check_text(what: &str, value: &str) -> Result<(), StoreError> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(StoreError::InvalidInput(format!("{what} is longer than {MAX_FIELD_BYTES} bytes")));
    }
    // Shown to approvers on a terminal: nothing that does not print as itself.
    if clawgate_protocol::text::first_non_printing(value).is_some() {
        return Err(StoreError::InvalidInput(format!("{what} holds a control or invisible character")));
    }
    Ok(())
}

pub(super) fn check_opt_text(what: &str, value: &Option<String>) -> Result<(), StoreError> {
    value.as_deref().map_or(Ok(()), |v| check_text(what, v))
}

/// Normalized scopes, bounded in number and length.
pub(super) fn checked_scopes(scopes: &[String]) -> Result<Vec<String>, StoreError> {
    let scopes = normalize(scopes);
    if scopes.len() > MAX_SCOPES {
        return Err(StoreError::InvalidInput(format!("more than {MAX_SCOPES} scopes")));
    }
    for s in &scopes {
        check_text("a scope", s)?;
    }
    Ok(scopes)
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}
