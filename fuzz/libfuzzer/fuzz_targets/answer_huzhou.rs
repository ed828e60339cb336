//! Fuzz target `answer_huzhou` (the check: `hcgw_fuzz::targets`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hcgw_fuzz::enforce("answer_huzhou", data));
