#![no_main]
//! See `targets::sdp_offer` in ../targets.rs.

include!("../targets.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::sdp_offer(data));
