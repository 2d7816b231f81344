//! Several instances on one PostgreSQL database and one NATS server
//! (common/cluster.rs): what crosses instances, and what each instance does
//! when the bus or the database is gone. One file per concern.

mod bus;
mod presence;
