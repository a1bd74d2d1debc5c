//! What travels from a publisher's worker to its viewers: one decrypted RTP
//! packet, shared (refcounted) by every viewer on every worker and by the
//! stream's packet cache.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::Codec;
use crate::layer::Layer;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// One RTP packet from a publisher, decrypted once and shared (refcounted)
/// by every viewer on every worker.
#[derive(Debug, Clone)]
pub struct ForwardPacket {
    /// The producer it comes from.
    pub producer: crate::producer::ProducerId,
    /// Audio or video.
    pub kind: Kind,
    /// Simulcast layer (audio: always `F`).
    pub layer: Layer,
    /// Codec of the payload.
    pub codec: Codec,
    /// Publisher's SSRC.
    pub ssrc: u32,
    /// Publisher's sequence number.
    pub seq: u16,
    /// Publisher's timestamp.
    pub timestamp: u32,
    /// RTP marker bit.
    pub marker: bool,
    /// The payload (shared, never copied unless a header field inside it must change).
    pub payload: Bytes,
    /// First packet of a keyframe.
    pub keyframe: bool,
    /// When the SFU received it, in microseconds of the worker clock.
    pub arrival_us: u64,
    /// How many padding-only packets of the source came right before this
    /// one (in order) and were not forwarded.
    pub padding_before: u16,
}

/// What travels between workers.
pub type Fanout = Arc<ForwardPacket>;

#[cfg(test)]
impl ForwardPacket {
    /// A VP8 packet of producer 1 for unit tests (no marker, no padding before).
    pub(crate) fn test_video(layer: Layer, ssrc: u32, seq: u16, timestamp: u32, keyframe: bool, payload: Bytes) -> Self {
        ForwardPacket {
            producer: 1,
            kind: Kind::Video,
            layer,
            codec: Codec::Vp8,
            ssrc,
            seq,
            timestamp,
            marker: false,
            payload,
            keyframe,
            arrival_us: 0,
            padding_before: 0,
        }
    }
}
