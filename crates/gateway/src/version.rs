//! The version clawgate reports (hello-ok, `/healthz`, its client info upstream).

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
