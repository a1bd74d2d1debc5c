//! Per-viewer forwarding decisions: which packets a viewer gets, and with
//! which header, so its decoder sees one continuous stream.
//!
//! This is the SFU's "downtrack" (LiveKit) or "consumer" (mediasoup). It holds
//! no WebRTC state: the worker asks it what to send and does the sending, so
//! the whole layer-switching logic is plain code with plain tests.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{vp8, Codec};
use crate::layer::{Layer, LayerCap, Quality};
use crate::ratemeter::RateMeter;
use crate::rewrite::StreamRewriter;
use crate::sfu::StreamShared;

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
    /// The stream it belongs to (`StreamShared::id`).
    pub stream: u64,
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
}

/// What travels between workers.
pub type Fanout = Arc<ForwardPacket>;

/// The header a viewer's copy of a packet gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutHeader {
    /// Outgoing sequence number.
    pub seq: u16,
    /// Outgoing timestamp.
    pub timestamp: u32,
    /// New VP8 picture id and TL0PICIDX, when the payload must be rewritten.
    pub vp8: Option<(u16, u8)>,
}

/// One outgoing track of a viewer.
#[derive(Debug)]
pub struct DownTrack {
    /// Our SSRC toward the viewer.
    pub ssrc: u32,
    /// Payload type the viewer negotiated.
    pub payload_type: u8,
    rewriter: StreamRewriter,
    /// Current source SSRC (publisher side).
    source: Option<u32>,
}

impl DownTrack {
    /// A track with this SSRC, payload type and clock rate.
    pub fn new(ssrc: u32, payload_type: u8, clock_rate: u32) -> Self {
        DownTrack { ssrc, payload_type, rewriter: StreamRewriter::new(clock_rate), source: None }
    }

    fn switch(&mut self, p: &ForwardPacket, now_us: u64) {
        // The VP8 ids re-anchor on the first packet rewritten after this.
        self.rewriter.switch_to(p.ssrc, p.seq, p.timestamp, now_us);
        self.source = Some(p.ssrc);
    }

    fn rewrite(&mut self, p: &ForwardPacket, now_us: u64) -> Option<OutHeader> {
        let (seq, timestamp) = self.rewriter.rewrite(p.ssrc, p.seq, p.timestamp, now_us)?;
        let mut vp8_ids = None;
        if p.codec == Codec::Vp8 {
            if let Some(d) = vp8::parse(&p.payload) {
                let (pid, tl0) = self.rewriter.rewrite_vp8_ids(d.picture_id, d.picture_id_15bit, d.tl0picidx);
                // Copying the payload to patch it is only needed when an id changes.
                if pid != d.picture_id || tl0 != d.tl0picidx {
                    vp8_ids = Some((pid.unwrap_or(0), tl0.unwrap_or(0)));
                }
            }
        }
        Some(OutHeader { seq, timestamp, vp8: vp8_ids })
    }
}

/// How long a viewer waits between two keyframe requests of its own.
const KEYFRAME_RETRY_US: u64 = 1_000_000;
/// After a downgrade, how long before probing a higher layer again.
const UPGRADE_HOLDOFF_US: u64 = 8_000_000;
/// Loss above which a viewer is moved down a layer.
const DOWNGRADE_LOSS: f64 = 0.10;
/// Loss under which a viewer may move up.
const UPGRADE_LOSS: f64 = 0.02;

/// The forwarding state of one viewer.
#[derive(Debug)]
pub struct Viewer {
    /// Video track, if the viewer receives video.
    pub video: Option<DownTrack>,
    /// Audio track, if the viewer receives audio.
    pub audio: Option<DownTrack>,
    /// The cap asked for.
    pub cap: LayerCap,
    /// Layer being forwarded.
    pub current: Option<Layer>,
    /// Layer to move to at its next keyframe.
    pub target: Option<Layer>,
    /// The layer the bandwidth logic allows (auto mode).
    allowed: Layer,
    last_downgrade_us: u64,
    last_upgrade_us: u64,
    last_keyframe_request_us: Option<u64>,
    /// Completed switches.
    pub switches: u64,
    /// Latest REMB from the viewer.
    pub estimate_bps: Option<u64>,
    /// Latest fraction lost (0..1) from receiver reports.
    pub loss: f64,
    /// Latest RTT.
    pub rtt_ms: Option<f64>,
    /// Latest jitter.
    pub jitter_ms: Option<f64>,
    /// Outgoing bitrate.
    pub rate: RateMeter,
    /// Packets sent.
    pub packets: u64,
}

impl Viewer {
    /// A viewer with these tracks and cap.
    pub fn new(video: Option<DownTrack>, audio: Option<DownTrack>, cap: LayerCap) -> Self {
        Viewer {
            video,
            audio,
            cap,
            current: None,
            target: None,
            allowed: Layer::F,
            last_downgrade_us: 0,
            last_upgrade_us: 0,
            last_keyframe_request_us: None,
            switches: 0,
            estimate_bps: None,
            loss: 0.0,
            rtt_ms: None,
            jitter_ms: None,
            rate: RateMeter::default(),
            packets: 0,
        }
    }

    /// The product's quality level for this viewer's link.
    pub fn quality(&self) -> Quality {
        Quality::classify(self.estimate_bps, self.rtt_ms, self.loss)
    }

    /// Recomputes the target layer from the cap, the bandwidth state and the
    /// layers the publisher actually sends.
    pub fn retarget(&mut self, stream: &StreamShared) {
        if self.video.is_none() {
            return;
        }
        let ceiling = self.cap.ceiling().min(self.allowed);
        self.target = stream.best_layer_up_to(ceiling).or_else(|| stream.lowest_layer());
    }

    /// Feeds a bandwidth/loss observation (once per receiver report or REMB)
    /// and moves `allowed` with hysteresis: down at once on heavy loss or a
    /// REMB below the current layer's bitrate, up one step only after a quiet
    /// hold-off.
    pub fn observe_link(&mut self, stream: &StreamShared, now_us: u64) {
        let Some(current) = self.current else { return };
        let layer_bps = stream.layer_bps[current.index()].load(std::sync::atomic::Ordering::Relaxed);
        let starving = matches!(self.estimate_bps, Some(e) if layer_bps > 0 && e < layer_bps * 9 / 10);
        if (self.loss > DOWNGRADE_LOSS || starving) && current > Layer::Q {
            if let Some(lower) = Layer::ALL.iter().rev().copied().find(|l| *l < current && stream.layers_seen.load(std::sync::atomic::Ordering::Relaxed) & (1 << l.index()) != 0) {
                self.allowed = lower;
                self.last_downgrade_us = now_us;
            }
        } else if self.loss < UPGRADE_LOSS
            && self.allowed < Layer::F
            && now_us.saturating_sub(self.last_downgrade_us) > UPGRADE_HOLDOFF_US
            && now_us.saturating_sub(self.last_upgrade_us) > UPGRADE_HOLDOFF_US
        {
            let next = Layer::ALL[(self.allowed.index() + 1).min(2)];
            let next_bps = stream.layer_bps[next.index()].load(std::sync::atomic::Ordering::Relaxed);
            let affordable = match self.estimate_bps {
                Some(e) => next_bps == 0 || e >= next_bps,
                None => true,
            };
            if affordable {
                self.allowed = next;
                self.last_upgrade_us = now_us;
            }
        }
        self.retarget(stream);
    }

    /// Decides whether and how this viewer gets `p`.
    pub fn route(&mut self, p: &ForwardPacket, now_us: u64) -> Option<(&DownTrack, OutHeader)> {
        match p.kind {
            Kind::Audio => {
                let t = self.audio.as_mut()?;
                if t.source != Some(p.ssrc) {
                    t.switch(p, now_us);
                }
                let h = t.rewrite(p, now_us)?;
                Some((&*t, h))
            }
            Kind::Video => {
                let t = self.video.as_mut()?;
                if p.keyframe && self.target == Some(p.layer) && self.current != Some(p.layer) {
                    if self.current.is_some() {
                        self.switches += 1;
                    }
                    t.switch(p, now_us);
                    self.current = Some(p.layer);
                    self.last_keyframe_request_us = None;
                }
                if self.current != Some(p.layer) {
                    return None;
                }
                let h = t.rewrite(p, now_us)?;
                Some((&*t, h))
            }
        }
    }

    /// The layer a keyframe should be asked for now, if any: the viewer waits
    /// for a switch (or its first frame) and has not asked within the last second.
    pub fn keyframe_wanted(&mut self, now_us: u64) -> Option<Layer> {
        let target = self.target?;
        if self.current == Some(target) {
            return None;
        }
        if let Some(last) = self.last_keyframe_request_us {
            if now_us.saturating_sub(last) < KEYFRAME_RETRY_US {
                return None;
            }
        }
        self.last_keyframe_request_us = Some(now_us);
        Some(target)
    }

    /// Records a packet sent.
    pub fn sent(&mut self, bytes: usize, now_us: u64) {
        self.packets += 1;
        self.rate.add(bytes, now_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfu::SessionId;

    fn stream(layers: u64) -> StreamShared {
        let s = StreamShared::new(1, "s", SessionId(1), 0);
        for (slot, bps) in s.layer_bps.iter().zip([150_000, 500_000, 2_000_000]) {
            slot.store(bps, std::sync::atomic::Ordering::Relaxed);
        }
        s.layers_seen.store(layers, std::sync::atomic::Ordering::Relaxed);
        s
    }

    /// A VP8 payload with a 15-bit picture id and TL0PICIDX.
    fn vp8_payload(pid: u16, tl0: u8, key: bool) -> Bytes {
        let mut v = vec![0x90, 0xC0, 0x80 | (pid >> 8) as u8, pid as u8, tl0];
        v.push(if key { 0x10 } else { 0x11 }); // VP8 frame header: P bit 0 = keyframe
        v.extend_from_slice(&[0u8; 20]);
        Bytes::from(v)
    }

    fn video(layer: Layer, ssrc: u32, seq: u16, ts: u32, pid: u16, key: bool) -> ForwardPacket {
        ForwardPacket {
            stream: 1,
            kind: Kind::Video,
            layer,
            codec: Codec::Vp8,
            ssrc,
            seq,
            timestamp: ts,
            marker: true,
            payload: vp8_payload(pid, pid as u8, key),
            keyframe: key,
            arrival_us: 0,
        }
    }

    #[test]
    fn first_frame_waits_for_a_keyframe_of_the_target_layer() {
        let s = stream(0b111);
        let mut v = Viewer::new(Some(DownTrack::new(7, 96, 90_000)), None, LayerCap::Auto);
        v.retarget(&s);
        assert_eq!(v.target, Some(Layer::F));
        assert_eq!(v.keyframe_wanted(0), Some(Layer::F));
        assert_eq!(v.keyframe_wanted(10), None, "rate limited");
        assert!(v.route(&video(Layer::F, 3, 100, 1000, 5, false), 0).is_none(), "delta frame before keyframe");
        assert!(v.route(&video(Layer::H, 2, 100, 1000, 5, true), 0).is_none(), "other layer");
        assert!(v.route(&video(Layer::F, 3, 101, 1000, 6, true), 0).is_some());
        assert_eq!(v.current, Some(Layer::F));
        assert_eq!(v.switches, 0, "the first layer is not a switch");
    }

    #[test]
    fn capping_switches_at_the_next_keyframe_with_continuous_numbers() {
        let s = stream(0b111);
        let mut v = Viewer::new(Some(DownTrack::new(7, 96, 90_000)), None, LayerCap::Auto);
        v.retarget(&s);
        let (_, h1) = v.route(&video(Layer::F, 3, 500, 90_000, 40, true), 0).map(|(t, h)| (t.ssrc, h)).unwrap();
        let (_, h2) = v.route(&video(Layer::F, 3, 501, 93_000, 41, false), 33_000).map(|(t, h)| (t.ssrc, h)).unwrap();
        assert_eq!(h2.seq, h1.seq.wrapping_add(1));
        v.cap = LayerCap::Max(Layer::Q);
        v.retarget(&s);
        assert_eq!(v.target, Some(Layer::Q));
        assert_eq!(v.keyframe_wanted(40_000), Some(Layer::Q));
        // Until the keyframe on q arrives, f keeps flowing and q is dropped.
        assert!(v.route(&video(Layer::Q, 1, 7000, 5_000_000, 900, false), 50_000).is_none());
        let h3 = v.route(&video(Layer::F, 3, 502, 96_000, 42, false), 66_000).map(|(_, h)| h).unwrap();
        assert_eq!(h3.seq, h2.seq.wrapping_add(1));
        // Keyframe on q: switch.
        let h4 = v.route(&video(Layer::Q, 1, 7001, 5_003_000, 901, true), 100_000).map(|(_, h)| h).unwrap();
        assert_eq!(h4.seq, h3.seq.wrapping_add(1), "sequence continues across the switch");
        assert!(h4.timestamp.wrapping_sub(h3.timestamp) as i32 > 0, "timestamp moves forward");
        let (pid3, pid4) = (h3.vp8.map(|v| v.0).unwrap_or(42), h4.vp8.map(|v| v.0).unwrap());
        assert_eq!(pid4, pid3.wrapping_add(1) & 0x7fff, "picture id continues");
        assert_eq!(v.current, Some(Layer::Q));
        assert_eq!(v.switches, 1);
        // The old layer is now dropped.
        assert!(v.route(&video(Layer::F, 3, 503, 99_000, 43, false), 110_000).is_none());
    }

    #[test]
    fn heavy_loss_moves_down_and_quiet_moves_back_up() {
        let s = stream(0b111);
        let mut v = Viewer::new(Some(DownTrack::new(7, 96, 90_000)), None, LayerCap::Auto);
        v.retarget(&s);
        v.route(&video(Layer::F, 3, 1, 0, 1, true), 0);
        v.loss = 0.2;
        v.observe_link(&s, 1_000_000);
        assert_eq!(v.target, Some(Layer::H));
        v.route(&video(Layer::H, 2, 1, 0, 1, true), 1_100_000);
        assert_eq!(v.current, Some(Layer::H));
        v.loss = 0.0;
        v.observe_link(&s, 2_000_000);
        assert_eq!(v.target, Some(Layer::H), "hold-off after a downgrade");
        v.observe_link(&s, 1_000_000 + UPGRADE_HOLDOFF_US + 1);
        assert_eq!(v.target, Some(Layer::F));
    }

    #[test]
    fn single_layer_streams_always_forward_their_one_layer() {
        let s = stream(0b100); // only f (no simulcast)
        let mut v = Viewer::new(Some(DownTrack::new(7, 96, 90_000)), None, LayerCap::Max(Layer::Q));
        v.retarget(&s);
        assert_eq!(v.target, Some(Layer::F), "falls back to the only layer there is");
    }
}
