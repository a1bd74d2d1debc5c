#![no_main]
//! See `targets::codec_payloads` in ../targets.rs.

include!("../targets.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::codec_payloads(data));
