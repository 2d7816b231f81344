//! `--config` and how every subcommand resolves its configuration: the
//! file (flag, `$CLAWGATE_CONFIG`, or the state directory's), the
//! environment, and the token file in token mode.

use std::path::PathBuf;

use clap::Args;

use clawgate::config::{self, Config, ConfigError, ConfigSources};
use clawgate::state::StateDir;

#[derive(Args, Clone)]
pub struct ConfigArgs {
    /// Config file (JSON5). Default: $CLAWGATE_CONFIG, else config.json5 in the state directory if present.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub(crate) struct Loaded {
    pub(crate) config: Config,
    pub(crate) state: StateDir,
    /// The config file read, if any.
    pub(crate) config_file: Option<PathBuf>,
}

/// Finds the token in token mode when none is configured: reads (or
/// generates) the state directory's token file.
pub(crate) type TokenFinder<'a> = &'a mut dyn FnMut(&StateDir) -> Result<(String, PathBuf), ConfigError>;

/// Resolve config the same way for every subcommand; `token` is asked for
/// the token only in token mode when none is configured anywhere.
pub(crate) fn load_config_with(
    args: &ConfigArgs,
    mut sources: ConfigSources,
    token: TokenFinder<'_>,
) -> Result<Loaded, ConfigError> {
    sources.env = ConfigSources::from_process_env();
    let state = StateDir::locate(&sources.env)?;
    sources.file = args
        .config
        .clone()
        .or_else(|| sources.env.get("CLAWGATE_CONFIG").filter(|p| !p.is_empty()).map(PathBuf::from))
        .or_else(|| Some(state.default_config_path()).filter(|p| p.exists()));
    let config = config::load(&sources, &mut || token(&state))?;
    Ok(Loaded { config, config_file: sources.file, state })
}

/// [`load_config_with`] requiring an existing token (never generating one).
pub(crate) fn load_config(args: &ConfigArgs, sources: ConfigSources) -> Result<Loaded, ConfigError> {
    load_config_with(args, sources, &mut |state: &StateDir| {
        match state.read_token()? {
        Some(t) => Ok((t, state.token_path())),
        None => Err(ConfigError::Other(format!(
            "no gateway token yet: start the gateway once (clawgate gateway run) to generate {}, or set OPENCLAW_GATEWAY_TOKEN",
            state.token_path().display()
        ))),
    }
    })
}
