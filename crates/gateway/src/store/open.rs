//! Opening the store a configuration names: PostgreSQL when a store URL is
//! set (`gateway.store.url`, `CLAWGATE_STORE_URL`), else the SQLite file in
//! the state directory.

use std::path::Path;
use std::sync::Arc;

use super::{PairingStore, PgStore, SqliteStore, StoreError};
use crate::config::store::StoreUrl;

/// The configured store, ready to share between tasks.
pub fn open_configured(url: Option<&StoreUrl>, sqlite_path: &Path) -> Result<Arc<dyn PairingStore>, StoreError> {
    Ok(match url {
        Some(url) => Arc::new(PgStore::open(url.expose())?),
        None => Arc::new(SqliteStore::open(sqlite_path)?),
    })
}
