#![no_main]
//! See `clawgate::fuzz_entry::forwarding`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| clawgate::fuzz_entry::forwarding(data));
