#![no_main]
//! See `clawgate::fuzz_entry::config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| clawgate::fuzz_entry::config(data));
