//! Fuzz target `peer_answer` (the check: `hcgw_fuzz::targets`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hcgw_fuzz::enforce("peer_answer", data));
