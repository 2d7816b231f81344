//! Entry points for the fuzz targets (`fuzz/`) and for the test that
//! replays their corpus on every CI run (`tests/it/fuzz_corpus.rs`).
//!
//! Each function takes the raw bytes an attacker controls and feeds them
//! through the very functions the gateway runs on them, then checks the
//! properties that are cheap to check: nothing panics (always), a parse is
//! deterministic, and a codec with an encoder round-trips. A violated
//! property panics, which is what a fuzzer and a test both report.
//! Not an API: the module exists for `fuzz/` and the corpus replay only.

mod config;
mod device;
mod edge;
mod frames;
mod json_eq;

pub use config::config;
pub use device::{device_key, device_proof};
pub use edge::{forwarding, http_head};
pub use frames::{connect_params, request_frame, ws_frame};

/// A fuzz target's entry: the bytes an attacker controls.
pub type Entry = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and the corpus
/// directories `fuzz/corpus/<name>/` are named.
pub const TARGETS: &[(&str, Entry)] = &[
    ("ws_frame", ws_frame),
    ("request_frame", request_frame),
    ("connect_params", connect_params),
    ("http_head", http_head),
    ("forwarding", forwarding),
    ("device_proof", device_proof),
    ("device_key", device_key),
    ("config", config),
];
