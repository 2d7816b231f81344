//! The PostgreSQL store's schema and its migration ladder.
//!
//! `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`; the version
//! is kept in `clawgate_schema`. Append a step to change the schema, never
//! edit a released one. Instances starting together migrate one at a time
//! (an advisory lock); a database from a newer clawgate is refused, not
//! downgraded; a database holding our table names without our version table
//! is another program's, and is refused too.
//!
//! The tables mirror the SQLite store's (same names, same checks) with
//! PostgreSQL types: `BIGINT` milliseconds, `BYTEA` digests, and ids
//! compared bytewise (`COLLATE "C"`) so listings sort as they do in SQLite.

use postgres::Client;

use super::session::{col, PgResult};
use crate::store::error::StoreError;

/// The schema, one step per version. Append only.
const MIGRATIONS: &[&str] = &[V1];

/// The schema version this build writes and reads.
pub const PG_SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Taken while migrating: "CLGW", as the SQLite store's application id.
const MIGRATION_LOCK: i64 = 0x434C_4757;

/// Tables a clawgate schema has: one of them without `clawgate_schema`
/// means the database belongs to something else.
const OUR_TABLES: &[&str] =
    &["meta", "devices", "device_tokens", "pending_requests", "pairing_rejections", "service_principals"];

/// v1: the whole store as the SQLite store's schema version 6 has it.
const V1: &str = r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('generation', 0);

CREATE TABLE devices (
    device_id       TEXT COLLATE "C" PRIMARY KEY CHECK (device_id ~ '^[0-9a-f]{64}$'),
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
    created_at_ms   BIGINT NOT NULL,
    approved_at_ms  BIGINT NOT NULL,
    last_seen_at_ms BIGINT,
    remote_ip       TEXT,
    proxy_user      TEXT CHECK (proxy_user IS NULL OR length(proxy_user) BETWEEN 1 AND 1024)
);

CREATE TABLE device_tokens (
    token_id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id       TEXT COLLATE "C" NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('operator', 'node')),
    token_sha256    BYTEA NOT NULL CHECK (octet_length(token_sha256) = 32),
    scopes          TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    rotated_at_ms   BIGINT,
    revoked_at_ms   BIGINT,
    last_used_at_ms BIGINT
);
CREATE UNIQUE INDEX device_tokens_by_digest ON device_tokens (token_sha256);
CREATE INDEX device_tokens_by_device_role ON device_tokens (device_id, role);

CREATE TABLE pending_requests (
    request_id      TEXT COLLATE "C" PRIMARY KEY,
    device_id       TEXT COLLATE "C" NOT NULL,
    public_key      TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('operator', 'node')),
    scopes          TEXT NOT NULL,
    client_id       TEXT,
    client_mode     TEXT,
    display_name    TEXT,
    platform        TEXT,
    device_family   TEXT,
    remote_ip       TEXT,
    created_at_ms   BIGINT NOT NULL,
    refreshed_at_ms BIGINT NOT NULL,
    state           TEXT NOT NULL
                    CHECK (state IN ('open', 'superseded', 'approved', 'rejected', 'expired')),
    superseded_by   TEXT,
    resolved_at_ms  BIGINT,
    proxy_user      TEXT CHECK (proxy_user IS NULL OR length(proxy_user) BETWEEN 1 AND 1024),
    CHECK ((state = 'superseded') = (superseded_by IS NOT NULL)),
    CHECK ((state = 'open') = (resolved_at_ms IS NULL))
);
CREATE UNIQUE INDEX pending_one_open_per_device_role
    ON pending_requests (device_id, role) WHERE state = 'open';
CREATE INDEX pending_open_by_ip ON pending_requests (remote_ip) WHERE state = 'open';
CREATE INDEX pending_resolved ON pending_requests (resolved_at_ms) WHERE state <> 'open';

CREATE TABLE pairing_rejections (
    device_id      TEXT COLLATE "C" NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('operator', 'node')),
    rejected_at_ms BIGINT NOT NULL,
    until_ms       BIGINT NOT NULL,
    PRIMARY KEY (device_id, role)
);

CREATE TABLE service_principals (
    principal_id    TEXT COLLATE "C" PRIMARY KEY CHECK (principal_id ~ '^[0-9a-f]{16}$'),
    name            TEXT COLLATE "C" NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    role            TEXT NOT NULL CHECK (role IN ('operator', 'node')),
    scopes          TEXT NOT NULL,
    secret_sha256   BYTEA NOT NULL CHECK (octet_length(secret_sha256) = 32),
    created_at_ms   BIGINT NOT NULL,
    rotated_at_ms   BIGINT,
    revoked_at_ms   BIGINT,
    last_used_at_ms BIGINT
);
CREATE UNIQUE INDEX service_principals_live_name
    ON service_principals (name) WHERE revoked_at_ms IS NULL;

CREATE TABLE relay_identities (
    identity_key              TEXT COLLATE "C" PRIMARY KEY
                              CHECK (length(identity_key) BETWEEN 1 AND 512),
    secret_key                BYTEA NOT NULL CHECK (octet_length(secret_key) = 32),
    device_id                 TEXT NOT NULL CHECK (device_id ~ '^[0-9a-f]{64}$'),
    created_at_ms             BIGINT NOT NULL,
    device_token              TEXT,
    device_token_role         TEXT CHECK (device_token_role IN ('operator', 'node')),
    device_token_scopes       TEXT,
    device_token_issued_at_ms BIGINT,
    CHECK ((device_token IS NULL) = (device_token_role IS NULL)),
    CHECK ((device_token IS NULL) = (device_token_scopes IS NULL)),
    CHECK ((device_token IS NULL) = (device_token_issued_at_ms IS NULL))
);
"#;

/// Check the database and climb the ladder to [`PG_SCHEMA_VERSION`], in one
/// transaction under the migration lock.
pub(super) fn migrate(client: &mut Client, location: &str) -> PgResult<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    let has_version: bool = col(&tx.query_one("SELECT to_regclass('clawgate_schema') IS NOT NULL", &[])?, 0)?;
    let from = if has_version {
        let version: i32 = col(&tx.query_one("SELECT version FROM clawgate_schema", &[])?, 0)?;
        u32::try_from(version).map_err(|_| StoreError::Corrupt {
            path: location.to_owned(),
            detail: format!("schema version {version}"),
        })?
    } else {
        for table in OUR_TABLES {
            let found: bool = col(&tx.query_one("SELECT to_regclass($1) IS NOT NULL", &[table])?, 0)?;
            if found {
                return Err(StoreError::Foreign {
                    path: location.to_owned(),
                    detail: format!("it has a table {table:?} but no clawgate schema version"),
                }
                .into());
            }
        }
        tx.batch_execute(
            "CREATE TABLE clawgate_schema (
                 singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
                 version   INTEGER NOT NULL
             );
             INSERT INTO clawgate_schema (version) VALUES (0);",
        )?;
        0
    };
    if from > PG_SCHEMA_VERSION {
        return Err(StoreError::TooNew { path: location.to_owned(), found: from, supported: PG_SCHEMA_VERSION }.into());
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        tx.batch_execute(step)?;
        tx.execute("UPDATE clawgate_schema SET version = $1", &[&(i as i32 + 1)])?;
    }
    tx.commit()?;
    Ok(())
}
