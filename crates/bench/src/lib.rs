//! Load generator for OpenClaw-protocol gateways (clawgate or OpenClaw's own
//! Node gateway), speaking the real protocol through `clawgate-client`.
//!
//! Every load is bounded in count and in time, and only ever targets a
//! loopback address ([`Target::new`] refuses anything else). Client sockets are
//! spread over source addresses in 127.0.0.0/8 so that per-address limits of
//! the gateway under test (32 unauthenticated sockets per address on both
//! gateways) never throttle the load.
//!
//! - [`load::handshakes`]: connect → hello-ok, with the shared token or with a
//!   paired device's proof and device token; connections/s, p50/p99.
//! - [`load::rpc`]: `health` round trips over 1 or more connections.
//! - [`load::memory`]: the gateway's RSS (by PID, from /proc) with 0 and with
//!   N idle authenticated connections.
//! - [`load::fanout`]: time for one `presence` broadcast to reach N listeners.
//! - [`soak`]: many idle connections held for minutes with churn, `health`
//!   load and broadcasts, the gateway sampled every 10 s (`scripts/soak`).
//!
//! - [`floor`]: a minimal server doing only the same wire exchange, the
//!   baseline every run compares against.
//!
//! - [`flood::flood`]: wrong-token connects from many loopback addresses,
//!   while a legitimate client's requests are timed.
//! - [`relay_latency::interleaved`]: the same request straight to a gateway
//!   and through a relay in front of it, alternately.
//! - [`upstream`]: OpenClaw alone against OpenClaw behind clawgate in
//!   upstream mode, built from the loads above.
//!
//! Results are [`metrics::Metric`]s, written as JSON lines; [`metrics::table`]
//! prints two runs side by side with their ratio.

pub mod flood;
pub mod floor;
pub mod load;
pub mod metrics;
pub mod procfs;
pub mod relay_latency;
pub mod soak;
pub mod stats;
pub mod target;
pub mod upstream;

pub use target::Target;
