#![no_main]
//! See `targets::json_bodies` in ../targets.rs.

include!("../targets.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::json_bodies(data));
