#![no_main]
//! See `targets::sdpfrag` in ../targets.rs.

include!("../targets.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::sdpfrag(data));
