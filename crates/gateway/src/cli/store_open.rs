//! The store the offline commands (`devices … --offline`, `services …`)
//! open: the PostgreSQL database of `CLAWGATE_STORE_URL`, else of
//! `gateway.store.url` in the config file (`$CLAWGATE_CONFIG`, else the
//! state directory's `config.json5`), else the SQLite file in the state
//! directory, exactly as the gateway would.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clawgate::config::store::{resolve, StoreUrl, STORE_URL_ENV};
use clawgate::config::{parse_file, ConfigError};
use clawgate::state::StateDir;

use super::error::CliError;

/// The configured store URL; `None`: the SQLite store.
pub(crate) fn configured_store_url(
    env: &BTreeMap<String, String>,
    state: &StateDir,
) -> Result<Option<StoreUrl>, CliError> {
    let from_env = env.get(STORE_URL_ENV).filter(|v| !v.is_empty()).cloned();
    if from_env.is_some() {
        return Ok(resolve(None, from_env)?);
    }
    let file = env
        .get("CLAWGATE_CONFIG")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| Some(state.default_config_path()).filter(|p| p.exists()));
    let Some(path) = file else { return Ok(None) };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
    let (parsed, _) = parse_file(&path, &text)?;
    Ok(resolve(parsed.gateway.store.as_ref(), None)?)
}
