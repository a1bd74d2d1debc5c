//! # onair-media: OnAir's selective forwarding unit
//!
//! A library with no HTTP in it. Signaling hands it SDP offers and gets
//! answers back; browsers and encoders then talk to it directly over UDP.
//!
//! Follow a packet through the modules:
//! - [`sfu`]: the handle. Picks a worker for each session and keeps the
//!   registry of live streams.
//! - `worker`: one thread per core, each with its own UDP socket and event
//!   loop. Routes datagrams to peers ([`stun`] for first contact), drives each
//!   peer's sans-I/O `rtc` connection, fans publisher packets out.
//! - [`negotiate`]: offer in, `RTCPeerConnection` and answer out.
//! - [`forward`]: per-viewer decisions: which simulcast layer, and the
//!   rewritten sequence number, timestamp and VP8 ids ([`rewrite`], [`codec`]).
//! - [`cache`]: the stream's recent video packets, for NACKs and a joining
//!   viewer's first frame.
//! - [`udp`]: a worker's outgoing datagrams, batched per wake-up (UDP GSO).
//! - [`layer`]: simulcast layers and quality levels; [`metrics`]: counters.

pub mod audio_level;
pub mod cache;
pub mod codec;
pub mod config;
pub mod error;
pub mod feedback;
pub mod forward;
pub mod harness;
mod interfaces;
pub mod layer;
pub mod metrics;
pub mod nack;
pub mod negotiate;
pub mod ratemeter;
pub mod rewrite;
pub mod sfu;
pub mod stun;
pub mod udp;
mod worker;

pub use worker::Transmit;

pub use config::{IceServer, MediaConfig};
pub use error::SfuError;
pub use layer::{Layer, LayerCap, Quality};
pub use sfu::{LayerInfo, LayerState, PeerHealth, Role, SessionAnswer, SessionId, Sfu, SfuEvent, StreamHealth};
