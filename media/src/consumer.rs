//! A consumer: one subscriber's view of one producer (a slot of it), and
//! its forwarding decisions: which packets it gets, and with which header,
//! so that the subscriber's decoder sees one continuous stream.
//!
//! This is the SFU's "downtrack" (LiveKit) or "consumer" (mediasoup). It holds
//! no WebRTC state: the worker asks it what to send and does the sending, so
//! the whole layer-switching logic is plain code with plain tests.

use rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters;

use crate::codec::{vp8, Codec};
use crate::negotiate::same_codec;
use crate::layer::{Layer, LayerCap, Quality};
use crate::ratemeter::RateMeter;
use crate::packet::{ForwardPacket, Kind};
use crate::rewrite::StreamRewriter;
use crate::producer::Producer;

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

/// How many packets a down track remembers for retransmission (what the
/// rewriter still accepts, see [`crate::rewrite`]).
pub const SENT_LOG: usize = 512;
/// A packet is retransmitted at most this many times.
const MAX_RESENDS: u8 = 2;

/// One remembered outgoing packet: where it came from and the header it got.
#[derive(Debug, Clone, Copy, Default)]
struct SentEntry {
    valid: bool,
    resends: u8,
    out_seq: u16,
    out_ts: u32,
    source: u32,
    source_seq: u16,
    vp8: Option<(u16, u8)>,
}

/// What a down track sent lately, by outgoing sequence number: enough to
/// rebuild any of those packets from the stream's [`crate::cache`] when the
/// viewer NACKs it, without keeping a copy per viewer (LiveKit calls this
/// the sequencer).
#[derive(Debug)]
pub struct SentLog {
    entries: Box<[SentEntry]>,
}

/// A packet to retransmit: the cached source packet to take the payload
/// from, and the header it was first sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resend {
    /// Publisher SSRC of the original.
    pub source: u32,
    /// Publisher sequence number of the original.
    pub source_seq: u16,
    /// The header the viewer saw.
    pub header: OutHeader,
}

impl Default for SentLog {
    fn default() -> Self {
        SentLog { entries: vec![SentEntry::default(); SENT_LOG].into_boxed_slice() }
    }
}

impl SentLog {
    fn record(&mut self, p: &ForwardPacket, h: &OutHeader) {
        self.entries[usize::from(h.seq) % SENT_LOG] = SentEntry {
            valid: true,
            resends: 0,
            out_seq: h.seq,
            out_ts: h.timestamp,
            source: p.ssrc,
            source_seq: p.seq,
            vp8: h.vp8,
        };
    }

    /// The packet sent as `out_seq`, if remembered and not resent too often.
    pub fn resend(&mut self, out_seq: u16) -> Option<Resend> {
        let e = &mut self.entries[usize::from(out_seq) % SENT_LOG];
        if !e.valid || e.out_seq != out_seq || e.resends >= MAX_RESENDS {
            return None;
        }
        e.resends += 1;
        Some(Resend { source: e.source, source_seq: e.source_seq, header: OutHeader { seq: e.out_seq, timestamp: e.out_ts, vp8: e.vp8 } })
    }
}

/// RFC 4588 retransmission stream of a down track, when the viewer negotiated it.
#[derive(Debug, Clone, Copy)]
pub struct Rtx {
    /// Its SSRC.
    pub ssrc: u32,
    /// Its payload type.
    pub payload_type: u8,
    /// Its own sequence numbers.
    pub seq: u16,
}

/// One outgoing track of a viewer.
#[derive(Debug)]
pub struct DownTrack {
    /// Our SSRC toward the viewer.
    pub ssrc: u32,
    /// Payload type the viewer negotiated.
    pub payload_type: u8,
    /// Retransmission stream, if negotiated (else resends go on `ssrc`).
    pub rtx: Option<Rtx>,
    /// What was sent, for NACKs (video only).
    pub sent: Option<SentLog>,
    rewriter: StreamRewriter,
    /// Current source SSRC (publisher side).
    source: Option<u32>,
    /// Every codec the viewer negotiated for this track, with the payload
    /// type of its RTX stream: a slot moving to a host of another codec
    /// switches to that codec's payload types.
    pub codecs: Vec<(RTCRtpCodecParameters, Option<u8>)>,
}

impl DownTrack {
    /// A track with this SSRC, payload type and clock rate.
    pub fn new(ssrc: u32, payload_type: u8, clock_rate: u32) -> Self {
        DownTrack { ssrc, payload_type, rtx: None, sent: None, rewriter: StreamRewriter::new(clock_rate), source: None, codecs: Vec::new() }
    }

    /// The codecs the viewer negotiated (see [`DownTrack::codecs`]).
    pub fn with_codecs(mut self, codecs: Vec<(RTCRtpCodecParameters, Option<u8>)>) -> Self {
        self.codecs = codecs;
        self
    }

    /// Whether this track can carry a producer sending `codec`.
    pub fn can_carry(&self, codec: &RTCRtpCodecParameters) -> bool {
        self.codecs.is_empty() || self.codecs.iter().any(|(c, _)| same_codec(codec, c))
    }

    /// Sends from now on with the payload types the viewer negotiated for
    /// `codec` (its producer's). False if it negotiated none.
    pub fn use_codec(&mut self, codec: &RTCRtpCodecParameters) -> bool {
        let Some((c, rtx_pt)) = self.codecs.iter().find(|(c, _)| same_codec(codec, c)) else { return self.codecs.is_empty() };
        self.payload_type = c.payload_type;
        if let (Some(rtx), Some(pt)) = (&mut self.rtx, rtx_pt) {
            rtx.payload_type = *pt;
        }
        true
    }

    /// Remembers what is sent so that NACKed packets can be sent again, on
    /// `rtx` when given.
    pub fn with_retransmission(mut self, rtx: Option<Rtx>) -> Self {
        self.sent = Some(SentLog::default());
        self.rtx = rtx;
        self
    }

    fn switch(&mut self, p: &ForwardPacket, now_us: u64) {
        // The VP8 ids re-anchor on the first packet rewritten after this.
        self.rewriter.switch_to(p.ssrc, p.seq, p.timestamp, now_us);
        self.source = Some(p.ssrc);
    }

    fn rewrite(&mut self, p: &ForwardPacket, now_us: u64) -> Option<OutHeader> {
        self.rewriter.skip_padding(p.ssrc, p.seq, p.padding_before);
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
        let h = OutHeader { seq, timestamp, vp8: vp8_ids };
        if let Some(log) = &mut self.sent {
            log.record(p, &h);
        }
        Some(h)
    }

    /// Forgets the current source, so that forwarding resumes (with
    /// continuous numbering) only at the next keyframe.
    fn pause(&mut self) {
        self.rewriter.reset();
        self.source = None;
    }

    /// The stream's publisher was replaced: forget the old one's packets
    /// too (its SSRCs and sequence numbers may come back meaning others).
    fn new_publisher(&mut self) {
        self.pause();
        if let Some(log) = &mut self.sent {
            *log = SentLog::default();
        }
    }
}

/// How long a viewer waits between two keyframe requests of its own.
const KEYFRAME_RETRY_US: u64 = 1_000_000;

// Automatic layer choice. Inputs: the viewer's REMB (its receive-side
// bandwidth estimate) and the loss in its receiver reports.
//
// Three facts about Chrome's REMB shape the rules. It is meaningless for the
// first seconds (the estimator starts from a fixed guess and initialises
// from measured throughput after about five seconds). It never exceeds
// about 1.5 times the rate actually received, so a viewer on a low layer
// can never "prove" it could take the next one. And after a step up it lags
// below the new rate for seconds while climbing about 8% a second, whereas
// congestion makes it fall to about 0.85 times the throughput and stay.
// Hence: REMB is ignored for a grace period; it moves a viewer down only
// when it is below what we send and not rising, twice in a row; and an
// estimate at its ceiling (saturated: limited by what we send, not by the
// link) is a go-ahead to try the next layer. A try that fails (a downgrade
// soon after) doubles the wait before the next.

/// REMB is not acted on for this long after the viewer's first video.
const STARTUP_GRACE_US: u64 = 5_000_000;
/// Wait at least this long after any change before moving up.
const BASE_HOLDOFF_US: u64 = 4_000_000;
/// The wait grows up to this after failed upgrades.
const MAX_HOLDOFF_US: u64 = 32_000_000;
/// A downgrade this soon after an upgrade means the upgrade failed.
const FAILED_UPGRADE_US: u64 = 10_000_000;
/// Loss above which a viewer is moved down a layer.
const DOWNGRADE_LOSS: f64 = 0.10;
/// Loss under which a viewer may move up.
const UPGRADE_LOSS: f64 = 0.02;
/// An estimate below this share of the rate sent, and not rising, is starving...
const STARVING: f64 = 0.9;
/// ...and two starving reports in a row move the viewer down.
const STARVING_REPORTS: u8 = 2;
/// An estimate at least this multiple of the rate sent is saturated.
const SATURATED: f64 = 1.3;

/// The forwarding state of one viewer.
#[derive(Debug)]
pub struct Consumer {
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
    /// When the first video packet was sent.
    first_video_us: Option<u64>,
    /// When `allowed` last changed.
    last_change_us: u64,
    /// When `allowed` last went up.
    last_upgrade_us: Option<u64>,
    /// Current wait before an upgrade.
    holdoff_us: u64,
    /// Consecutive starving estimates.
    starving_reports: u8,
    /// The estimate when the link was last observed.
    last_estimate_bps: Option<u64>,
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

impl Consumer {
    /// A viewer with these tracks and cap.
    pub fn new(video: Option<DownTrack>, audio: Option<DownTrack>, cap: LayerCap) -> Self {
        Consumer {
            video,
            audio,
            cap,
            current: None,
            target: None,
            allowed: Layer::F,
            first_video_us: None,
            last_change_us: 0,
            last_upgrade_us: None,
            holdoff_us: BASE_HOLDOFF_US,
            starving_reports: 0,
            last_estimate_bps: None,
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
    pub fn quality(&mut self, now_us: u64) -> Quality {
        // A saturated estimate only says "at least this much": no evidence of a limit.
        let bandwidth = if self.estimate_saturated(now_us) { None } else { self.estimate_bps };
        Quality::classify(bandwidth, self.rtt_ms, self.loss)
    }

    /// Recomputes the target layer from the cap, the bandwidth state and the
    /// layers the publisher actually sends.
    pub fn retarget(&mut self, stream: &Producer) {
        if self.video.is_none() {
            return;
        }
        let ceiling = self.cap.ceiling().min(self.allowed);
        self.target = stream.best_layer_up_to(ceiling).or_else(|| stream.lowest_layer());
    }

    /// Whether the latest estimate is at its ceiling: limited by what we
    /// send rather than by the link.
    fn estimate_saturated(&mut self, now_us: u64) -> bool {
        let sent = self.rate.bps(now_us);
        matches!(self.estimate_bps, Some(e) if sent > 0 && e as f64 >= SATURATED * sent as f64)
    }

    /// Feeds a bandwidth/loss observation (once per receiver report or
    /// REMB; `new_estimate` when a REMB came) and moves the allowed layer: down on heavy loss or a starving
    /// estimate, up (one step, after the hold-off) when loss is low and the
    /// estimate affords the next layer or is saturated. See the constants.
    pub fn observe_link(&mut self, stream: &Producer, now_us: u64, new_estimate: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(current) = self.current else { return };
        let Some(first) = self.first_video_us else { return };
        let seen = stream.layers_seen.load(Relaxed);
        let layer_bps = |l: Layer| stream.layer_bps[l.index()].load(Relaxed);
        let settled = now_us.saturating_sub(first) >= STARTUP_GRACE_US;
        if new_estimate {
            let sent = self.rate.bps(now_us);
            let rising = matches!((self.estimate_bps, self.last_estimate_bps), (Some(e), Some(before)) if e > before);
            let starving = settled && !rising && matches!(self.estimate_bps, Some(e) if (e as f64) < STARVING * sent as f64);
            self.last_estimate_bps = self.estimate_bps;
            self.starving_reports = if starving { self.starving_reports.saturating_add(1) } else { 0 };
        }

        let lower = Layer::ALL.iter().rev().copied().find(|l| *l < current && seen & (1 << l.index()) != 0);
        if let (true, Some(lower)) = (self.loss > DOWNGRADE_LOSS || self.starving_reports >= STARVING_REPORTS, lower) {
            if self.last_upgrade_us.is_some_and(|u| now_us.saturating_sub(u) < FAILED_UPGRADE_US) {
                self.holdoff_us = (self.holdoff_us * 2).min(MAX_HOLDOFF_US);
                // One failed try doubles the wait once, however far the viewer then falls.
                self.last_upgrade_us = None;
            }
            tracing::debug!(from = ?current, to = ?lower, loss = self.loss, estimate = ?self.estimate_bps, sent = self.rate.bps(now_us), holdoff_ms = self.holdoff_us / 1000, "auto layer down");
            self.allowed = lower;
            self.last_change_us = now_us;
            self.starving_reports = 0;
        } else if self.loss < UPGRADE_LOSS && self.allowed < Layer::F && now_us.saturating_sub(self.last_change_us) >= self.holdoff_us {
            let next = Layer::ALL[self.allowed.index() + 1];
            let affordable = match self.estimate_bps {
                None => true,
                Some(e) => e >= layer_bps(next) || self.estimate_saturated(now_us),
            };
            if affordable {
                tracing::debug!(from = ?self.allowed, to = ?next, loss = self.loss, estimate = ?self.estimate_bps, sent = self.rate.bps(now_us), "auto layer up");
                self.allowed = next;
                self.last_change_us = now_us;
                self.last_upgrade_us = Some(now_us);
            }
        } else if self.last_upgrade_us.is_some_and(|u| now_us.saturating_sub(u) > FAILED_UPGRADE_US && u >= self.last_change_us) {
            // The last upgrade held: it succeeded, so the link has recovered
            // and old failures are forgiven (a viewer climbs back step by step
            // at the base pace once a congestion episode is over).
            self.holdoff_us = BASE_HOLDOFF_US;
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
                self.first_video_us.get_or_insert(now_us);
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

    /// After a joining viewer was given a cached keyframe alone: drop what
    /// follows until the next keyframe, and ask for one now.
    pub fn await_keyframe(&mut self) {
        if let Some(t) = self.video.as_mut() {
            t.pause();
        }
        self.current = None;
        self.last_keyframe_request_us = None;
    }

    /// The stream's publisher came back as a new session: both tracks start
    /// over from its packets (video at its next keyframe), numbered on.
    pub fn publisher_changed(&mut self) {
        for t in [self.video.as_mut(), self.audio.as_mut()].into_iter().flatten() {
            t.new_publisher();
        }
        self.current = None;
        self.last_keyframe_request_us = None;
    }

    /// The video now comes from another producer (a co-host room's slot
    /// moved): it resumes at that producer's next keyframe, numbered on.
    pub fn video_source_changed(&mut self) {
        if let Some(t) = self.video.as_mut() {
            t.new_publisher();
        }
        self.current = None;
        self.target = None;
        self.last_keyframe_request_us = None;
    }

    /// The audio now comes from another producer: numbered on from its next packet.
    pub fn audio_source_changed(&mut self) {
        if let Some(t) = self.audio.as_mut() {
            t.new_publisher();
        }
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
    use bytes::Bytes;
    use crate::session::SessionId;

    fn stream(layers: u64) -> Producer {
        let s = Producer::new(1, "s", SessionId::random(), 0);
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
        ForwardPacket { marker: true, ..ForwardPacket::test_video(layer, ssrc, seq, ts, key, vp8_payload(pid, pid as u8, key)) }
    }

    #[test]
    fn first_frame_waits_for_a_keyframe_of_the_target_layer() {
        let s = stream(0b111);
        let mut v = Consumer::new(Some(DownTrack::new(7, 96, 90_000)), None, LayerCap::Auto);
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
        let mut v = Consumer::new(Some(DownTrack::new(7, 96, 90_000)), None, LayerCap::Auto);
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
        let mut v = Consumer::new(Some(DownTrack::new(7, 96, 90_000)), None, LayerCap::Auto);
        v.retarget(&s);
        v.route(&video(Layer::F, 3, 1, 0, 1, true), 0);
        v.loss = 0.2;
        v.observe_link(&s, 1_000_000, false);
        assert_eq!(v.target, Some(Layer::H), "loss counts even during the start-up grace");
        v.route(&video(Layer::H, 2, 1, 0, 1, true), 1_100_000);
        assert_eq!(v.current, Some(Layer::H));
        v.loss = 0.0;
        v.observe_link(&s, 2_000_000, false);
        assert_eq!(v.target, Some(Layer::H), "hold-off after a downgrade");
        v.observe_link(&s, 1_000_000 + BASE_HOLDOFF_US, false);
        assert_eq!(v.target, Some(Layer::F), "no estimate, no loss: back up");
    }

    /// An auto viewer receiving the top layer.
    fn auto_viewer_on_f(s: &Producer) -> Consumer {
        let mut v = Consumer::new(Some(DownTrack::new(7, 96, 90_000)), None, LayerCap::Auto);
        v.retarget(s);
        v.route(&video(Layer::F, 3, 1, 0, 1, true), 0);
        v
    }

    /// A receiver report with `loss` at `at`; the viewer switches at once.
    fn observe_loss(v: &mut Consumer, s: &Producer, loss: f64, at: u64) {
        v.loss = loss;
        v.observe_link(s, at, false);
        if let Some(l) = v.target {
            v.current = Some(l);
        }
    }

    #[test]
    fn after_congestion_an_upgrade_that_holds_restores_the_base_pace() {
        let s = stream(0b111);
        let mut v = auto_viewer_on_f(&s);
        let observe = |v: &mut Consumer, loss: f64, at: u64| observe_loss(v, &s, loss, at);
        observe(&mut v, 0.3, 1_000_000);
        observe(&mut v, 0.3, 2_000_000);
        assert_eq!(v.allowed, Layer::Q, "congestion: down two steps");
        v.holdoff_us = 4 * BASE_HOLDOFF_US; // as after failed tries during the congestion
        let up = 2_000_000 + 4 * BASE_HOLDOFF_US;
        observe(&mut v, 0.0, up);
        assert_eq!(v.allowed, Layer::H, "the congestion is over: one step up after the long wait");
        observe(&mut v, 0.0, up + FAILED_UPGRADE_US + 1);
        assert_eq!(v.holdoff_us, BASE_HOLDOFF_US, "that step held: the failed tries are forgiven");
        observe(&mut v, 0.0, up + FAILED_UPGRADE_US + 1_000_000);
        assert_eq!(v.allowed, Layer::F, "the next step comes at the base pace, not after the long wait again");
    }

    #[test]
    fn one_failed_try_doubles_the_wait_once() {
        let s = stream(0b111);
        let mut v = auto_viewer_on_f(&s);
        let observe = |v: &mut Consumer, loss: f64, at: u64| observe_loss(v, &s, loss, at);
        observe(&mut v, 0.3, 1_000_000);
        observe(&mut v, 0.0, 1_000_000 + BASE_HOLDOFF_US);
        assert_eq!(v.allowed, Layer::F, "a try");
        observe(&mut v, 0.3, 2_000_000 + BASE_HOLDOFF_US);
        observe(&mut v, 0.3, 3_000_000 + BASE_HOLDOFF_US);
        assert_eq!((v.allowed, v.holdoff_us), (Layer::Q, 2 * BASE_HOLDOFF_US), "failed, and still congested: two steps down, one doubling");
    }

    /// Feeds `v` one second of sending at `bps` ending at `at_us`, so its
    /// own rate meter knows what it sends.
    fn send_at(v: &mut Consumer, bps: u64, at_us: u64) {
        for i in 0..100 {
            v.sent((bps / 8 / 100) as usize, at_us - 1_000_000 + i * 10_000);
        }
    }

    /// A REMB of `bps` at `at_us`, while sending at `sending` bit/s.
    fn remb(v: &mut Consumer, s: &Producer, bps: u64, sending: u64, at_us: u64) {
        send_at(v, sending, at_us);
        v.estimate_bps = Some(bps);
        v.observe_link(s, at_us, true);
    }

    #[test]
    fn early_estimates_are_ignored_then_a_falling_one_moves_down() {
        let s = stream(0b111); // q 150k, h 500k, f 2M
        let mut v = Consumer::new(Some(DownTrack::new(7, 96, 90_000)), None, LayerCap::Auto);
        v.retarget(&s);
        v.route(&video(Layer::F, 3, 1, 0, 1, true), 0);
        remb(&mut v, &s, 300_000, 2_000_000, 1_000_000); // Chrome's starting guess
        remb(&mut v, &s, 300_000, 2_000_000, 2_000_000);
        assert_eq!(v.target, Some(Layer::F), "REMB means nothing in the first seconds");
        let t = STARTUP_GRACE_US + 1_000_000;
        remb(&mut v, &s, 1_600_000, 2_000_000, t); // rising from the guess: fine
        remb(&mut v, &s, 1_500_000, 2_000_000, t + 1_000_000);
        v.loss = 0.01;
        v.observe_link(&s, t + 1_000_001, false); // a receiver report between REMBs
        assert_eq!(v.target, Some(Layer::F), "one starving estimate is not enough, whatever else arrives");
        remb(&mut v, &s, 1_500_000, 2_000_000, t + 2_000_000);
        assert_eq!(v.target, Some(Layer::H), "below the rate sent and not rising, twice");
    }

    #[test]
    fn a_rising_estimate_after_a_step_up_is_not_congestion() {
        let s = stream(0b111);
        let mut v = Consumer::new(Some(DownTrack::new(7, 96, 90_000)), None, LayerCap::Auto);
        v.retarget(&s);
        v.route(&video(Layer::F, 3, 1, 0, 1, true), 0);
        // The estimate lags behind 2 Mbit/s but climbs every report.
        let mut e = 800_000;
        for i in 0..8 {
            remb(&mut v, &s, e, 2_000_000, STARTUP_GRACE_US + i * 1_000_000);
            e = e * 108 / 100;
        }
        assert_eq!(v.target, Some(Layer::F));
    }

    #[test]
    fn a_saturated_estimate_tries_the_next_layer_and_a_failed_try_waits_longer() {
        let s = stream(0b111);
        let mut v = Consumer::new(Some(DownTrack::new(7, 96, 90_000)), None, LayerCap::Auto);
        v.retarget(&s);
        v.route(&video(Layer::F, 3, 1, 0, 1, true), 0);
        // Congested: down to h, then to q.
        let mut t = STARTUP_GRACE_US + 1_000_000;
        for _ in 0..2 {
            remb(&mut v, &s, 400_000, 2_000_000, t);
            t += 1_000_000;
        }
        assert_eq!(v.target, Some(Layer::H));
        v.route(&video(Layer::H, 2, 1, 0, 1, true), t);
        for _ in 0..2 {
            remb(&mut v, &s, 250_000, 500_000, t);
            t += 1_000_000;
        }
        assert_eq!(v.target, Some(Layer::Q));
        v.route(&video(Layer::Q, 1, 1, 0, 1, true), t);
        // On q at 160 kbit/s the estimate can only reach ~1.5x that: below h's
        // 500 kbit/s, but saturated. After the hold-off, h is tried.
        t += BASE_HOLDOFF_US;
        remb(&mut v, &s, 240_000, 160_000, t);
        assert_eq!(v.target, Some(Layer::H), "saturated estimate: try the next layer");
        // The try fails: the estimate falls below what h needs, twice -> down,
        // and the hold-off doubles.
        v.route(&video(Layer::H, 2, 2, 3000, 2, true), t + 1);
        remb(&mut v, &s, 230_000, 500_000, t + 1_000_000);
        remb(&mut v, &s, 220_000, 500_000, t + 2_000_000);
        assert_eq!(v.target, Some(Layer::Q));
        let down = t + 2_000_000;
        v.route(&video(Layer::Q, 1, 2, 3000, 2, true), down + 1);
        remb(&mut v, &s, 240_000, 160_000, down + BASE_HOLDOFF_US);
        assert_eq!(v.target, Some(Layer::Q), "the failed try doubled the hold-off");
        remb(&mut v, &s, 240_000, 160_000, down + 2 * BASE_HOLDOFF_US);
        assert_eq!(v.target, Some(Layer::H));
    }

    #[test]
    fn a_saturated_estimate_is_not_a_poor_link() {
        let mut v = Consumer::new(Some(DownTrack::new(7, 96, 90_000)), None, LayerCap::Max(Layer::Q));
        send_at(&mut v, 160_000, 1_000_000);
        v.estimate_bps = Some(240_000); // capped by what it receives, not by the link
        assert_eq!(v.quality(1_000_000), Quality::Excellent);
        v.estimate_bps = Some(150_000); // below what is sent: the link is the limit
        assert_eq!(v.quality(1_000_000), Quality::Poor);
    }

    #[test]
    fn single_layer_streams_always_forward_their_one_layer() {
        let s = stream(0b100); // only f (no simulcast)
        let mut v = Consumer::new(Some(DownTrack::new(7, 96, 90_000)), None, LayerCap::Max(Layer::Q));
        v.retarget(&s);
        assert_eq!(v.target, Some(Layer::F), "falls back to the only layer there is");
    }
}
