#![no_main]
//! See `clawgate::fuzz_entry::http_head`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| clawgate::fuzz_entry::http_head(data));
