//! The SQLite file: opening it safely, checking it, and migrating its schema.
//!
//! Migrations form a ladder on `PRAGMA user_version`: `MIGRATIONS[i]` takes
//! the schema from version `i` to `i + 1`. To change the schema, append a
//! step (never edit a released one) and the store migrates on next open, in
//! one transaction. A file from a newer clawgate is refused, not downgraded.

use std::fs;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::error::StoreError;

/// Marks the file as a clawgate store (`PRAGMA application_id`, "CLGW").
pub const APPLICATION_ID: i32 = 0x434C_4757;

/// How long a statement waits for another writer before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one step per version. Append only.
pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// v1: devices, their tokens (digests only), pending requests, rejection
/// cooldowns, and the generation counter.
pub(super) const V1: &str = r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('generation', 0);

CREATE TABLE devices (
    device_id       TEXT PRIMARY KEY
                    CHECK (length(device_id) = 64 AND device_id NOT GLOB '*[^0-9a-f]*'),
    public_key      TEXT NOT NULL,
    display_name    TEXT,
    label           TEXT,
    platform        TEXT,
    device_family   TEXT,
    client_id       TEXT,
    client_mode     TEXT,
    roles           TEXT NOT NULL,
    approved_scopes TEXT NOT NULL,
    approved_via    TEXT NOT NULL
                    CHECK (approved_via IN ('owner', 'silent', 'cli', 'cli-offline')),
    created_at_ms   INTEGER NOT NULL,
    approved_at_ms  INTEGER NOT NULL,
    last_seen_at_ms INTEGER,
    remote_ip       TEXT
) STRICT;

CREATE TABLE device_tokens (
    device_id       TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('operator', 'node')),
    token_sha256    BLOB NOT NULL CHECK (length(token_sha256) = 32),
    scopes          TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    rotated_at_ms   INTEGER,
    revoked_at_ms   INTEGER,
    last_used_at_ms INTEGER,
    PRIMARY KEY (device_id, role)
) STRICT;

CREATE TABLE pending_requests (
    request_id      TEXT PRIMARY KEY,
    device_id       TEXT NOT NULL,
    public_key      TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('operator', 'node')),
    scopes          TEXT NOT NULL,
    client_id       TEXT,
    client_mode     TEXT,
    display_name    TEXT,
    platform        TEXT,
    device_family   TEXT,
    remote_ip       TEXT,
    created_at_ms   INTEGER NOT NULL,
    refreshed_at_ms INTEGER NOT NULL,
    state           TEXT NOT NULL
                    CHECK (state IN ('open', 'superseded', 'approved', 'rejected', 'expired')),
    superseded_by   TEXT,
    resolved_at_ms  INTEGER,
    CHECK ((state = 'superseded') = (superseded_by IS NOT NULL)),
    CHECK ((state = 'open') = (resolved_at_ms IS NULL))
) STRICT;
CREATE UNIQUE INDEX pending_one_open_per_device_role
    ON pending_requests (device_id, role) WHERE state = 'open';
CREATE INDEX pending_open_by_ip
    ON pending_requests (remote_ip) WHERE state = 'open';
CREATE INDEX pending_resolved
    ON pending_requests (resolved_at_ms) WHERE state <> 'open';

CREATE TABLE pairing_rejections (
    device_id      TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('operator', 'node')),
    rejected_at_ms INTEGER NOT NULL,
    until_ms       INTEGER NOT NULL,
    PRIMARY KEY (device_id, role)
) STRICT, WITHOUT ROWID;
"#;

/// v2: service principals (`clawgate services add`). Only the SHA-256 of a
/// token's secret is kept. A name is unique among live principals; a revoked
/// row stays for the record and frees its name.
const V2: &str = r#"
CREATE TABLE service_principals (
    principal_id    TEXT PRIMARY KEY
                    CHECK (length(principal_id) = 16 AND principal_id NOT GLOB '*[^0-9a-f]*'),
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    role            TEXT NOT NULL CHECK (role IN ('operator', 'node')),
    scopes          TEXT NOT NULL,
    secret_sha256   BLOB NOT NULL CHECK (length(secret_sha256) = 32),
    created_at_ms   INTEGER NOT NULL,
    rotated_at_ms   INTEGER,
    revoked_at_ms   INTEGER,
    last_used_at_ms INTEGER
) STRICT;
CREATE UNIQUE INDEX service_principals_live_name
    ON service_principals (name) WHERE revoked_at_ms IS NULL;
"#;

/// v3: relay identities for upstream mode — clawgate's own key per
/// downstream browser or node, and the device token the upstream issued to
/// it. Both are credentials clawgate presents, so they are kept as they are.
const V3: &str = r#"
CREATE TABLE relay_identities (
    identity_key              TEXT PRIMARY KEY CHECK (length(identity_key) BETWEEN 1 AND 512),
    secret_key                BLOB NOT NULL CHECK (length(secret_key) = 32),
    device_id                 TEXT NOT NULL
                              CHECK (length(device_id) = 64 AND device_id NOT GLOB '*[^0-9a-f]*'),
    created_at_ms             INTEGER NOT NULL,
    device_token              TEXT,
    device_token_role         TEXT CHECK (device_token_role IN ('operator', 'node')),
    device_token_scopes       TEXT,
    device_token_issued_at_ms INTEGER,
    CHECK ((device_token IS NULL) = (device_token_role IS NULL)),
    CHECK ((device_token IS NULL) = (device_token_scopes IS NULL)),
    CHECK ((device_token IS NULL) = (device_token_issued_at_ms IS NULL))
) STRICT;
"#;

/// v4: device tokens found by their digest alone (upstream mode's HTTP relay
/// verifies a bearer device token without knowing the device).
const V4: &str = r#"
CREATE INDEX IF NOT EXISTS device_tokens_by_digest ON device_tokens (token_sha256);
"#;

/// v6: several live device tokens per (device, role), one row each. A
/// migrated token keeps its issue time (`created_at_ms` is now when this
/// token was issued); a digest is unique across all tokens.
const V6: &str = r#"
CREATE TABLE device_tokens_v6 (
    token_id        INTEGER PRIMARY KEY,
    device_id       TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('operator', 'node')),
    token_sha256    BLOB NOT NULL CHECK (length(token_sha256) = 32),
    scopes          TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    rotated_at_ms   INTEGER,
    revoked_at_ms   INTEGER,
    last_used_at_ms INTEGER
) STRICT;
INSERT INTO device_tokens_v6 (device_id, role, token_sha256, scopes, created_at_ms, rotated_at_ms,
                              revoked_at_ms, last_used_at_ms)
    SELECT device_id, role, token_sha256, scopes, COALESCE(rotated_at_ms, created_at_ms), rotated_at_ms,
           revoked_at_ms, last_used_at_ms
    FROM device_tokens;
DROP TABLE device_tokens;
ALTER TABLE device_tokens_v6 RENAME TO device_tokens;
CREATE UNIQUE INDEX device_tokens_by_digest ON device_tokens (token_sha256);
CREATE INDEX device_tokens_by_device_role ON device_tokens (device_id, role);
"#;

/// v5: devices of trusted-proxy users. A pairing and a pending request name
/// the proxy user they were made for (`proxy_user`, NULL for everyone
/// else), and an approval may be recorded as `proxy-auto`
/// (`trustedProxy.deviceAutoApprove`). SQLite cannot widen a CHECK in place,
/// so `devices` is rebuilt; migrations run with foreign keys off, so the
/// rebuild leaves `device_tokens` (which references it) untouched.
const V5: &str = r#"
CREATE TABLE devices_v5 (
    device_id       TEXT PRIMARY KEY
                    CHECK (length(device_id) = 64 AND device_id NOT GLOB '*[^0-9a-f]*'),
    public_key      TEXT NOT NULL,
    display_name    TEXT,
    label           TEXT,
    platform        TEXT,
    device_family   TEXT,
    client_id       TEXT,
    client_mode     TEXT,
    roles           TEXT NOT NULL,
    approved_scopes TEXT NOT NULL,
    approved_via    TEXT NOT NULL
                    CHECK (approved_via IN ('owner', 'silent', 'cli', 'cli-offline', 'proxy-auto')),
    created_at_ms   INTEGER NOT NULL,
    approved_at_ms  INTEGER NOT NULL,
    last_seen_at_ms INTEGER,
    remote_ip       TEXT,
    proxy_user      TEXT CHECK (proxy_user IS NULL OR length(proxy_user) BETWEEN 1 AND 1024)
) STRICT;
INSERT INTO devices_v5 (device_id, public_key, display_name, label, platform, device_family, client_id,
    client_mode, roles, approved_scopes, approved_via, created_at_ms, approved_at_ms, last_seen_at_ms, remote_ip)
SELECT device_id, public_key, display_name, label, platform, device_family, client_id,
    client_mode, roles, approved_scopes, approved_via, created_at_ms, approved_at_ms, last_seen_at_ms, remote_ip
FROM devices;
DROP TABLE devices;
ALTER TABLE devices_v5 RENAME TO devices;
ALTER TABLE pending_requests ADD COLUMN proxy_user TEXT
    CHECK (proxy_user IS NULL OR length(proxy_user) BETWEEN 1 AND 1024);
"#;

/// A store file at an older schema version, for migration tests: the
/// ladder's first `version` steps, as that release would have written them.
#[cfg(test)]
pub(super) fn create_at_version(path: &Path, version: u32) {
    let conn = Connection::open(path).expect("open");
    conn.pragma_update(None, "application_id", APPLICATION_ID).expect("application id");
    for step in &MIGRATIONS[..version as usize] {
        conn.execute_batch(step).expect("migration step");
    }
    conn.pragma_update(None, "user_version", version).expect("user_version");
}

/// Open (creating 0600 if missing), check and migrate the store at `path`.
pub(super) fn open_file(path: &Path) -> Result<Connection, StoreError> {
    let shown = path.display().to_string();
    ensure_file(path, &shown)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::from_sqlite(&shown, e))?;
    prepare(&conn, &shown, true)?;
    Ok(conn)
}

/// A fresh in-memory store (tests, `auth explain` dry runs).
pub(super) fn open_memory() -> Result<Connection, StoreError> {
    let shown = ":memory:";
    let conn = Connection::open_in_memory().map_err(|e| StoreError::from_sqlite(shown, e))?;
    prepare(&conn, shown, false)?;
    Ok(conn)
}

/// Create the file 0600 if missing; refuse anything but a regular file owned
/// by this user and closed to others, and foreign-owned `-wal`/`-shm` files
/// (a `sudo` run leaves root-owned ones that would lock the gateway out).
fn ensure_file(path: &Path, shown: &str) -> Result<(), StoreError> {
    let unreadable = |reason: String| StoreError::Unreadable { path: shown.to_owned(), reason };
    match fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
                Ok(_) => {}
                // Another process created it in between: check what it made.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(unreadable(format!("cannot create it: {e}"))),
            }
        }
        Err(e) => return Err(unreadable(e.to_string())),
    }
    let meta = fs::symlink_metadata(path).map_err(|e| unreadable(e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(unreadable(if meta.file_type().is_symlink() {
            "it is a symbolic link; point clawgate at the file itself".to_owned()
        } else {
            "it is not a regular file".to_owned()
        }));
    }
    let uid = current_uid();
    let unsafe_file = |reason: String| StoreError::Unsafe { path: shown.to_owned(), reason };
    if meta.uid() != uid {
        return Err(unsafe_file(format!(
            "it is owned by uid {}, not by this user (uid {uid}); chown it back",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(unsafe_file(format!("mode {mode:o} opens it to other users; run chmod 600 on it")));
    }
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        if let Ok(m) = fs::symlink_metadata(Path::new(&side)) {
            if m.uid() != uid {
                return Err(unsafe_file(format!(
                    "its {suffix} file is owned by uid {}, not by this user (uid {uid}); \
                     a run under sudo leaves such files: chown it back",
                    m.uid()
                )));
            }
        }
    }
    Ok(())
}

fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { getuid() }
}

extern "C" {
    fn getuid() -> u32;
}

/// Pragmas, integrity and identity checks, then migrations.
fn prepare(conn: &Connection, shown: &str, on_disk: bool) -> Result<(), StoreError> {
    let sql = |e: rusqlite::Error| StoreError::from_sqlite(shown, e);
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
    // The first read parses the header: a file that is not SQLite fails here.
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql)?;
    quick_check(conn, shown)?;
    check_identity(conn, shown, version)?;
    if on_disk {
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unreadable {
                path: shown.to_owned(),
                reason: format!("cannot use write-ahead logging (journal mode stays {mode})"),
            });
        }
    }
    // Every acknowledged commit is on disk.
    conn.pragma_update(None, "synchronous", "FULL").map_err(sql)?;
    // Migrations run with foreign keys off (a step may rebuild a table that
    // others reference: dropping it must not cascade), and are checked after.
    conn.pragma_update(None, "foreign_keys", false).map_err(sql)?;
    migrate(conn, shown)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(sql)
}

fn quick_check(conn: &Connection, shown: &str) -> Result<(), StoreError> {
    let sql = |e: rusqlite::Error| StoreError::from_sqlite(shown, e);
    let mut stmt = conn.prepare("PRAGMA quick_check(5)").map_err(sql)?;
    let lines: Vec<String> =
        stmt.query_map([], |r| r.get::<_, String>(0)).map_err(sql)?.collect::<Result<_, _>>().map_err(sql)?;
    if lines.len() == 1 && lines[0] == "ok" {
        Ok(())
    } else {
        Err(StoreError::Corrupt { path: shown.to_owned(), detail: format!("integrity check: {}", lines.join("; ")) })
    }
}

/// A clawgate store, or an empty file; anything else is refused.
fn check_identity(conn: &Connection, shown: &str, version: i64) -> Result<(), StoreError> {
    let sql = |e: rusqlite::Error| StoreError::from_sqlite(shown, e);
    let app_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).map_err(sql)?;
    let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0)).map_err(sql)?;
    let foreign = |detail: String| StoreError::Foreign { path: shown.to_owned(), detail };
    if app_id != APPLICATION_ID {
        if app_id != 0 {
            return Err(foreign(format!("application id {app_id:#x}")));
        }
        if version != 0 || objects != 0 {
            return Err(foreign(format!("{objects} schema objects, user_version {version}")));
        }
        return Ok(()); // empty: v1 is created below
    }
    let found = u32::try_from(version)
        .map_err(|_| StoreError::Corrupt { path: shown.to_owned(), detail: format!("schema version {version}") })?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew { path: shown.to_owned(), found, supported: SCHEMA_VERSION });
    }
    if found == 0 {
        return Err(StoreError::Corrupt {
            path: shown.to_owned(),
            detail: "marked as a clawgate store but has no schema version".to_owned(),
        });
    }
    Ok(())
}

/// Climb the ladder from the file's version to [`SCHEMA_VERSION`], in one
/// write transaction (another process may be migrating at the same time).
fn migrate(conn: &Connection, shown: &str) -> Result<(), StoreError> {
    let sql = |e: rusqlite::Error| StoreError::from_sqlite(shown, e);
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(sql)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql)?;
    let from = u32::try_from(version).unwrap_or(u32::MAX);
    if from > SCHEMA_VERSION {
        return Err(StoreError::TooNew { path: shown.to_owned(), found: from, supported: SCHEMA_VERSION });
    }
    if from == SCHEMA_VERSION {
        return tx.commit().map_err(sql);
    }
    if from == 0 {
        tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(sql)?;
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        tx.execute_batch(step).map_err(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1).map_err(sql)?;
    }
    let dangling: i64 = tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).map_err(sql)?;
    if dangling != 0 {
        return Err(StoreError::Corrupt {
            path: shown.to_owned(),
            detail: format!("{dangling} rows reference missing rows after migrating"),
        });
    }
    tx.commit().map_err(sql)
}
