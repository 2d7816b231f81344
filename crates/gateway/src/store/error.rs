//! Store errors: each has a stable code and a message that says what to do.

use thiserror::Error;

use super::types::Role;

/// Which pending-request cap was hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingCap {
    /// Open requests from one client IP.
    PerIp { ip: String, limit: u32 },
    /// Open requests in all.
    Total { limit: u32 },
}

#[derive(Debug, Error)]
pub enum StoreError {
    // ---- the store file -------------------------------------------------
    #[error(
        "cannot open the pairing store {path}: {reason}; check that the path is right, \
         that its directory exists and that the file belongs to this user"
    )]
    Unreadable { path: String, reason: String },

    #[error(
        "the pairing store {path} is unsafe: {reason}; pairings would be exposed to, or \
         changed by, another user"
    )]
    Unsafe { path: String, reason: String },

    #[error(
        "the pairing store {path} is corrupt ({detail}); it was left untouched. Move it \
         aside and restore a backup, or remove it (and its -wal and -shm files) to start \
         over: every device will have to pair again"
    )]
    Corrupt { path: String, detail: String },

    #[error(
        "{path} is a SQLite database of another program ({detail}), not a clawgate \
         pairing store; point clawgate at its own store file"
    )]
    Foreign { path: String, detail: String },

    #[error(
        "the pairing store {path} has schema version {found}, written by a newer clawgate \
         (this one supports up to {supported}); upgrade clawgate, or restore a backup made \
         by this version"
    )]
    TooNew { path: String, found: u32, supported: u32 },

    #[error(
        "the pairing store {path} stayed locked by another process for more than 5 s; \
         retry, and check for a stuck `clawgate` process"
    )]
    Busy { path: String },

    #[error(
        "the disk holding the pairing store {path} is full; changes are refused until space \
         is freed (nothing was lost: the store is unchanged)"
    )]
    Full { path: String },

    #[error(
        "the pairing store {path} was {what} while the gateway was running; changes are \
         refused until a restart. Put the right store file at that path (restore a backup if \
         it is gone) and restart the gateway"
    )]
    Replaced { path: String, what: &'static str },

    /// The store changed since the decision read it (at `expected`; now
    /// `found`): decide again.
    #[error("the pairing store changed while the connection was being admitted (generation {expected}, now {found})")]
    Stale { expected: u64, found: u64 },

    #[error("the pairing store {path} failed: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },

    /// A database server (the PostgreSQL store) cannot be reached or lost
    /// the connection; the next operation connects again.
    #[error(
        "the pairing store {location} is unavailable: {reason}; check that the database server \
         is running and reachable (clawgate reconnects on its own)"
    )]
    Unavailable { location: String, reason: String },

    /// The database server refused or failed an operation (the PostgreSQL
    /// store's counterpart of [`StoreError::Sqlite`]).
    #[error("the pairing store {location} failed: {detail}")]
    Database { location: String, detail: String },

    #[error("invalid input to the pairing store: {0}")]
    InvalidInput(String),

    // ---- pending requests ----------------------------------------------
    #[error("{}", cap_message(.0))]
    TooManyPending(PendingCap),

    #[error(
        "a pairing request of this device for role {} was rejected; it may ask again \
         at {until_ms} (ms since the epoch), 10 minutes after the rejection",
        .role.as_str()
    )]
    PairingRejected { role: Role, until_ms: u64 },

    #[error(
        "no pairing request {request_id}; it may have been resolved more than a day ago. \
         List open requests with `clawgate devices list`"
    )]
    UnknownRequest { request_id: String },

    #[error(
        "pairing request {request_id} was superseded by {by} (the device asked for more); \
         review and approve {by} instead"
    )]
    Superseded { request_id: String, by: String },

    #[error(
        "pairing request {request_id} expired (5 minutes after its last retry); the device \
         must connect again to ask anew"
    )]
    RequestExpired { request_id: String },

    #[error("pairing request {request_id} was already {state}; nothing to do")]
    RequestResolved { request_id: String, state: &'static str },

    #[error("{}", none_pending_message(.device_id.as_deref()))]
    NoPendingRequest { device_id: Option<String> },

    #[error(
        "more than one pairing request arrived recently ({}); approve one by its id",
        .ids.join(", ")
    )]
    AmbiguousLatest { ids: Vec<String> },

    #[error(
        "device {device_id} has open pairing requests for several roles ({}); approve one \
         by its id",
        .ids.join(", ")
    )]
    AmbiguousDevice { device_id: String, ids: Vec<String> },

    // ---- devices and tokens --------------------------------------------
    #[error("device {device_id} is not paired; see `clawgate devices list`")]
    UnknownDevice { device_id: String },

    #[error(
        "device {device_id} is not approved for role {}; it must ask for that role and \
         be approved first",
        .role.as_str()
    )]
    RoleNotApproved { device_id: String, role: Role },

    #[error(
        "device {device_id} is not approved for {}; it must ask for those scopes and be \
         approved first",
        .missing.join(", ")
    )]
    ScopesNotApproved { device_id: String, missing: Vec<String> },

    #[error(
        "device {device_id} holds no {} token; one is issued when it next connects, or \
         with `clawgate devices rotate`",
        .role.as_str()
    )]
    NoToken { device_id: String, role: Role },

    // ---- service principals ---------------------------------------------
    #[error(
        "a service principal named {name:?} already exists; pick another name, or rotate its \
         token with `clawgate services rotate {name}`"
    )]
    ServiceExists { name: String },

    #[error("no live service principal named {name:?}; see `clawgate services list`")]
    UnknownService { name: String },
}

fn cap_message(cap: &PendingCap) -> String {
    match cap {
        PendingCap::PerIp { ip, limit } => format!(
            "{ip} already has {limit} open pairing requests; approve or reject them \
             (`clawgate devices list`) or wait 5 minutes for them to expire"
        ),
        PendingCap::Total { limit } => format!(
            "the gateway already holds {limit} open pairing requests; approve or reject them \
             (`clawgate devices list`) or wait 5 minutes for them to expire"
        ),
    }
}

fn none_pending_message(device_id: Option<&str>) -> String {
    match device_id {
        Some(d) => format!(
            "device {d} has no open pairing request; it must connect again to ask \
             (requests expire after 5 minutes)"
        ),
        None => "no pairing request arrived recently; the device must connect again to ask \
                 (requests expire after 5 minutes)"
            .to_owned(),
    }
}

impl StoreError {
    /// A stable code for logs, error details and scripts. Never renamed.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Unreadable { .. } => "STORE_UNREADABLE",
            StoreError::Unsafe { .. } => "STORE_UNSAFE",
            StoreError::Corrupt { .. } => "STORE_CORRUPT",
            StoreError::Foreign { .. } => "STORE_FOREIGN",
            StoreError::TooNew { .. } => "STORE_TOO_NEW",
            StoreError::Busy { .. } => "STORE_BUSY",
            StoreError::Full { .. } => "STORE_FULL",
            StoreError::Replaced { .. } => "STORE_REPLACED",
            StoreError::Stale { .. } => "STORE_STALE",
            StoreError::Sqlite { .. } | StoreError::Database { .. } => "STORE_FAILED",
            StoreError::Unavailable { .. } => "STORE_UNAVAILABLE",
            StoreError::InvalidInput(_) => "STORE_INVALID_INPUT",
            StoreError::TooManyPending(_) => "PAIRING_CAP",
            StoreError::PairingRejected { .. } => "PAIRING_REJECTED",
            StoreError::UnknownRequest { .. } => "PAIRING_UNKNOWN_REQUEST",
            StoreError::Superseded { .. } => "PAIRING_SUPERSEDED",
            StoreError::RequestExpired { .. } => "PAIRING_EXPIRED",
            StoreError::RequestResolved { .. } => "PAIRING_RESOLVED",
            StoreError::NoPendingRequest { .. } => "PAIRING_NONE_PENDING",
            StoreError::AmbiguousLatest { .. } | StoreError::AmbiguousDevice { .. } => "PAIRING_AMBIGUOUS",
            StoreError::UnknownDevice { .. } => "DEVICE_UNKNOWN",
            StoreError::RoleNotApproved { .. } => "DEVICE_ROLE_NOT_APPROVED",
            StoreError::ScopesNotApproved { .. } => "DEVICE_SCOPES_NOT_APPROVED",
            StoreError::NoToken { .. } => "DEVICE_TOKEN_MISSING",
            StoreError::ServiceExists { .. } => "SERVICE_EXISTS",
            StoreError::UnknownService { .. } => "SERVICE_UNKNOWN",
        }
    }

    /// Is the store file itself the problem (as opposed to one request)?
    pub fn is_store_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Unreadable { .. }
                | StoreError::Unsafe { .. }
                | StoreError::Corrupt { .. }
                | StoreError::Foreign { .. }
                | StoreError::TooNew { .. }
                | StoreError::Busy { .. }
                | StoreError::Full { .. }
                | StoreError::Replaced { .. }
                | StoreError::Sqlite { .. }
                | StoreError::Unavailable { .. }
                | StoreError::Database { .. }
        )
    }

    /// A fault of the store's file or disk that the store logs itself, once
    /// when it starts ([`StoreError::Full`], [`StoreError::Replaced`]):
    /// callers need not log it again per refused operation.
    pub fn logged_by_store(&self) -> bool {
        matches!(self, StoreError::Full { .. } | StoreError::Replaced { .. })
    }

    /// Classify a SQLite error on the store at `path`.
    pub(crate) fn from_sqlite(path: &str, e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::NotADatabase) => {
                StoreError::Corrupt { path: path.to_owned(), detail: "not a SQLite database".to_owned() }
            }
            Some(C::DatabaseCorrupt) => StoreError::Corrupt { path: path.to_owned(), detail: e.to_string() },
            Some(C::DatabaseBusy | C::DatabaseLocked) => StoreError::Busy { path: path.to_owned() },
            Some(C::DiskFull) => StoreError::Full { path: path.to_owned() },
            Some(C::CannotOpen | C::PermissionDenied | C::ReadOnly | C::SystemIoFailure) => {
                StoreError::Unreadable { path: path.to_owned(), reason: e.to_string() }
            }
            _ => StoreError::Sqlite { path: path.to_owned(), source: e },
        }
    }
}
