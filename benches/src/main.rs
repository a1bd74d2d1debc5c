//! `onair-bench`: a load harness for WHIP/WHEP servers (work in progress).
fn main() {}
