#![no_main]
//! See `clawgate::fuzz_entry::ws_frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| clawgate::fuzz_entry::ws_frame(data));
