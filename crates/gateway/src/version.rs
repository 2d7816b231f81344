//! The version clawgate reports (hello-ok, `/healthz`, its client info upstream).

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit built from (short hash), or "unknown" (build.rs).
pub const COMMIT: &str = env!("CLAWGATE_COMMIT");

/// `clawgate --version`: the version and the commit.
pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("CLAWGATE_COMMIT"), ")");
