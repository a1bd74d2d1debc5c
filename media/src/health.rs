//! What the health API reports: per-peer and per-stream statistics.

use serde::Serialize;

use crate::layer::Layer;
use crate::session::{Role, SessionTag};

/// One simulcast layer of a stream, as a viewer may choose it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct LayerInfo {
    /// `q`, `h` or `f` (a stream without simulcast has `f` only).
    pub layer: Layer,
    /// Picture width of its last keyframe, when known.
    pub width: Option<u32>,
    /// Picture height of its last keyframe, when known.
    pub height: Option<u32>,
    /// The rate it arrives at.
    pub bitrate_bps: u64,
}

/// A viewer's layer state, as the layer API reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LayerState {
    /// The viewer's cap (`auto` or a layer).
    pub max_layer: String,
    /// The layer being forwarded now, if any.
    pub current_layer: Option<Layer>,
    /// The layer the viewer is moving to.
    pub target_layer: Option<Layer>,
}

/// Statistics of one peer, for the health API.
#[derive(Debug, Clone, Serialize)]
pub struct PeerHealth {
    /// The session's tag (never its id: see [`crate::session`]).
    pub session: SessionTag,
    /// Publisher or viewer.
    pub role: Role,
    /// `new`, `connecting`, `connected`, `closed`.
    pub state: String,
    /// Outgoing (viewer) or incoming (publisher) media bitrate.
    pub bitrate_bps: u64,
    /// RTP packets sent to (viewer) or received from (publisher) the peer.
    pub packets: u64,
    /// Fraction of packets lost, as the peer's receiver reports say (viewer).
    pub loss: f64,
    /// Round-trip time from receiver reports.
    pub rtt_ms: Option<f64>,
    /// Interarrival jitter the peer reports.
    pub jitter_ms: Option<f64>,
    /// Bandwidth the viewer's browser estimates (REMB).
    pub estimate_bps: Option<u64>,
    /// Forwarded layer (viewer).
    pub layer: Option<Layer>,
    /// Layer being switched to (viewer).
    pub target_layer: Option<Layer>,
    /// Cap asked for (viewer).
    pub max_layer: Option<String>,
    /// Layer switches so far (viewer).
    pub layer_switches: u64,
    /// The product's quality level (viewer).
    pub quality: Option<crate::layer::Quality>,
    /// Incoming tracks (publisher).
    pub tracks: Vec<TrackHealth>,
}

/// One incoming track of a publisher.
#[derive(Debug, Clone, Serialize)]
pub struct TrackHealth {
    /// `audio` or `video`.
    pub kind: &'static str,
    /// Mime type.
    pub codec: String,
    /// Simulcast rid, if any.
    pub rid: Option<String>,
    /// Bitrate.
    pub bitrate_bps: u64,
    /// Packets received.
    pub packets: u64,
    /// Packets missing by sequence number.
    pub lost: u64,
    /// Latest RFC 6464 audio level in -dBov (0 loudest, 127 silence), audio only.
    pub audio_level_dbov: Option<u8>,
    /// Latest voice-activity flag, audio only.
    pub voice: Option<bool>,
    /// Whether the publisher is speaking (see [`crate::audio_level`]), audio only.
    pub speaking: Option<bool>,
}

/// Health of one stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamHealth {
    /// Stream name.
    pub stream: String,
    /// True while a publisher is connected.
    pub live: bool,
    /// Viewer sessions.
    pub viewer_count: usize,
    /// The publisher.
    pub publisher: Option<PeerHealth>,
    /// Every viewer.
    pub viewers: Vec<PeerHealth>,
}
