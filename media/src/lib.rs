//! # onair-media: OnAir's selective forwarding unit
//!
//! A library with no HTTP in it. Signaling hands it SDP offers and gets
//! answers back; browsers and encoders then talk to it directly over UDP.
//!
//! Follow a packet through the modules:
//! - [`sfu`]: the handle (control plane). Admits each offer under the
//!   session caps ([`admission`]), builds its connection away from the
//!   workers ([`offer`], [`negotiate`], one DTLS [`certificate`]) and hands
//!   it to a worker; keeps the registry of live rooms ([`registry`]).
//! - The nouns: a [`room`] (one live stream) holds a [`producer`] per host
//!   (its tracks, layers, packet cache, mutes, keyframe requests); a
//!   viewer's connection is a [`subscriber`] with one slot per m-line pair,
//!   each slot a [`consumer`] of whichever producer the room puts there.
//! - `worker`: one thread per core, each with its own UDP socket and event
//!   loop: routes datagrams to peers (`worker::routes`, [`stun`]), drives
//!   each peer's sans-I/O `rtc` connection, takes publishers' packets in
//!   (`worker::ingest`) and sends them to viewers (`worker::egress`).
//! - [`packet`]: what travels from a publisher's worker to its viewers,
//!   stamped with its producer's id.
//! - [`consumer`]: per-slot decisions: which simulcast layer, and the
//!   rewritten sequence number, timestamp and VP8 ids ([`rewrite`], [`codec`]).
//! - [`cache`]: a producer's recent video packets, for NACKs and a joining
//!   viewer's first frame.
//! - [`sink`]: what else hangs off a producer's fan-out (recorders, relays).
//! - [`udp`]: a worker's outgoing datagrams, batched per wake-up (UDP GSO).
//! - [`layer`]: simulcast layers and quality levels; [`metrics`]: counters;
//!   [`events`] and [`health`]: what the platform is told.

pub mod admission;
pub mod audio_level;
pub mod cache;
pub mod certificate;
pub mod codec;
pub mod config;
pub mod consumer;
pub mod error;
pub mod events;
pub mod feedback;
pub mod harness;
pub mod health;
mod interfaces;
pub mod layer;
pub mod metrics;
pub mod nack;
pub mod negotiate;
pub(crate) mod offer;
pub mod packet;
pub mod producer;
pub mod ratemeter;
pub(crate) mod registry;
pub mod rewrite;
pub mod room;
pub mod session;
pub mod sfu;
pub mod sink;
pub mod stun;
pub mod subscriber;
pub mod udp;
mod worker;

pub use worker::Transmit;

pub use config::{IceServer, MediaConfig, TurnAuth};
pub use error::SfuError;
pub use events::SfuEvent;
pub use health::{LayerInfo, LayerState, PeerHealth, StreamHealth, TrackHealth};
pub use layer::{Layer, LayerCap, Quality};
pub use session::{Role, SessionId, SessionTag};
pub use room::{Layout, LayoutKind, MAX_HOSTS};
pub use sfu::{HostMedia, Requester, SessionAnswer, SessionSlot, Sfu};
pub use sink::{Sink, SinkId};
