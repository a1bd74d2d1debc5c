//! # onair-bench: a load harness for WHIP/WHEP servers
//!
//! Operators size servers with it; we prove OnAir's speed with it. It
//! drives one publisher and hundreds of viewers, all real WebRTC peers
//! (webrtc-rs `rtc`, sans-I/O, one UDP socket each), against OnAir (which it
//! starts in a process of its own), any WHIP/WHEP server, or Janus's
//! VideoRoom.
//!
//! The data path of a run, module by module:
//! - [`media`]: encoded clips made once with FFmpeg (`benches/media/`),
//!   loaded and packetized up front, so publishing costs no encoding;
//! - [`publisher`]: replays them as RTP at their frame rate, stamping each
//!   payload's send time in [`measure::SendTimes`];
//! - [`target`]: how to publish and watch on the server under test
//!   (WHIP/WHEP over [`http`], or [`janus`]);
//! - [`viewer`]: counts packets, frames, loss, first frame, layer switches
//!   and added latency;
//! - [`scenario`]: the standard run, churn, a constrained link (in a
//!   network namespace, [`netns`]);
//! - [`room`]: a co-host room (hosts publishing into one room and watching
//!   each other, viewers with a slot per host);
//! - [`measure`]: server CPU and memory from `/proc`, percentiles;
//! - [`report`]: JSON, a table, an SVG plot;
//! - [`chat`]: chat fan-out to thousands of sockets, and chat ingest;
//! - [`money`]: gifts from a thousand concurrent senders to one creator;
//! - [`shop`]: a flash sale with a thousand buyers at the same moment.

pub mod abuse;
pub mod chat;
pub mod http;
pub mod janus;
pub mod measure;
pub mod money;
pub mod media;
pub mod netns;
pub mod peer;
pub mod publisher;
pub mod report;
pub mod room;
pub mod scenario;
pub mod serve;
pub mod shop;
pub mod target;
pub mod viewer;
