#![no_main]
//! See `clawgate::fuzz_entry::device_key`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| clawgate::fuzz_entry::device_key(data));
