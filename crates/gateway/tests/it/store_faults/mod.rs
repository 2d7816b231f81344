//! The crash and fault matrix of the pairing store (docs/reliability.md,
//! "Crash and fault matrix"): the real binary killed with SIGKILL during
//! every store-writing path, its disk filled, its store file removed or
//! replaced under it.

mod crash_cli;
mod crash_matrix;
mod disk_full;
mod harness;
mod small_disk;
mod store_replaced;
