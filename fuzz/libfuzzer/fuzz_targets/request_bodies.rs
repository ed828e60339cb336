//! Fuzz target `request_bodies` (the check: `hcgw_fuzz::targets`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hcgw_fuzz::enforce("request_bodies", data));
