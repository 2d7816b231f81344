#![no_main]
//! See `clawgate::fuzz_entry::connect_params`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| clawgate::fuzz_entry::connect_params(data));
