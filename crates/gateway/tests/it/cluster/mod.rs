//! Several instances on one PostgreSQL database and one NATS server
//! (common/cluster.rs): what crosses instances, and what each instance does
//! when the bus or the database is gone. One file per concern.

mod bus;
mod failures;
mod invoke;
mod pair_events;
mod presence;
mod processes;
mod revocation_latency;
pub mod store_changes;
