#![no_main]
//! See `targets::datagrams` in ../targets.rs.

include!("../targets.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::datagrams(data));
