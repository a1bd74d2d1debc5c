#![no_main]
//! See `targets::audio_levels` in ../targets.rs.

include!("../targets.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::audio_levels(data));
