//! From a producer's RTP packets to whole frames on one timeline: pick the
//! top simulcast layer, depacketize with webrtc-rs's sample builder, drop
//! video after a loss until the next keyframe (a gap stays a gap, never a
//! corrupt frame), and place audio and video on the same clock (RTCP sender
//! reports when the publisher sends them, arrival time until then).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use onair_media::codec::Codec;
use onair_media::packet::{ForwardPacket, Kind};
use onair_media::Layer;
use rtc::media::io::sample_builder::SampleBuilder;
use rtc::rtp;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::codec::opus::OpusPacket;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;

/// A layer not heard from for this long no longer counts as the top one.
const LAYER_TIMEOUT_US: u64 = 1_000_000;

/// One whole frame, on the recording's timeline.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Audio or video.
    pub kind: Kind,
    /// Its codec.
    pub codec: Codec,
    /// Presentation time, microseconds on the producer's worker clock.
    pub pts_us: i64,
    /// The frame: a VP8 frame, an Opus packet, or H.264 in Annex B.
    pub data: Bytes,
    /// A video frame that decodes on its own.
    pub keyframe: bool,
}

/// The depacketizers a recording knows.
#[derive(Debug, Clone)]
enum Depack {
    Vp8(Vp8Packet),
    H264(H264Packet),
    Opus(OpusPacket),
}

impl Depacketizer for Depack {
    fn depacketize(&mut self, b: &Bytes) -> rtc::shared::error::Result<Bytes> {
        match self {
            Depack::Vp8(d) => d.depacketize(b),
            Depack::H264(d) => d.depacketize(b),
            Depack::Opus(d) => d.depacketize(b),
        }
    }
    fn is_partition_head(&self, payload: &Bytes) -> bool {
        match self {
            Depack::Vp8(d) => d.is_partition_head(payload),
            Depack::H264(d) => d.is_partition_head(payload),
            Depack::Opus(d) => d.is_partition_head(payload),
        }
    }
    fn is_partition_tail(&self, marker: bool, payload: &Bytes) -> bool {
        match self {
            Depack::Vp8(d) => d.is_partition_tail(marker, payload),
            Depack::H264(d) => d.is_partition_tail(marker, payload),
            Depack::Opus(d) => d.is_partition_tail(marker, payload),
        }
    }
}

/// Whether a recording can take this codec (VP9 and AV1 are not done yet).
pub fn supported(codec: Codec) -> bool {
    matches!(codec, Codec::Vp8 | Codec::H264 | Codec::Opus)
}

/// One SSRC being depacketized.
struct Track {
    ssrc: u32,
    codec: Codec,
    clock: u32,
    builder: SampleBuilder<Depack>,
    /// Padding-only packets the SFU did not forward leave holes in the
    /// sequence numbers: (first seq after a hole, packets to subtract from
    /// there on), newest last, so that the builder sees no loss there.
    holes: VecDeque<(u16, u16)>,
    removed: u16,
    /// RTP timestamps unwrapped to 64 bits.
    last_ts: Option<u32>,
    ts_cycles: u64,
    /// Maps an unwrapped RTP timestamp to the timeline: (timestamp, µs).
    base: Option<(u64, i64)>,
    /// The last sender report: (NTP time, RTP time).
    sr: Option<(u64, u32)>,
    /// Lined up with the other kind from sender reports.
    synced: bool,
    /// Video after a loss (or at the start): frames wait for a keyframe.
    want_keyframe: bool,
    last_pts: Option<i64>,
}

impl Track {
    fn new(p: &ForwardPacket) -> Option<Track> {
        let (depack, clock, max_late) = match p.codec {
            Codec::Vp8 => (Depack::Vp8(Vp8Packet::default()), 90_000, 512),
            Codec::H264 => (Depack::H264(H264Packet::default()), 90_000, 512),
            Codec::Opus => (Depack::Opus(OpusPacket), 48_000, 64),
            _ => return None,
        };
        let builder = SampleBuilder::new(max_late, depack, clock).with_max_time_delay(Duration::from_millis(500));
        Some(Track {
            ssrc: p.ssrc,
            codec: p.codec,
            clock,
            builder,
            holes: VecDeque::new(),
            removed: 0,
            last_ts: None,
            ts_cycles: 0,
            base: None,
            sr: None,
            synced: false,
            want_keyframe: p.kind == Kind::Video,
            last_pts: None,
        })
    }

    /// The sequence number with the padding holes before it taken out.
    fn renumber(&mut self, p: &ForwardPacket) -> u16 {
        if p.padding_before > 0 {
            self.removed = self.removed.wrapping_add(p.padding_before);
            self.holes.push_back((p.seq, self.removed));
            if self.holes.len() > 64 {
                self.holes.pop_front();
            }
        }
        // A late (retransmitted) packet from before the newest holes takes
        // the count that held where it belongs.
        let removed = self.holes.iter().rev().find(|(from, _)| (p.seq.wrapping_sub(*from) as i16) >= 0).map_or(0, |h| h.1);
        p.seq.wrapping_sub(removed)
    }

    fn unwrap_ts(&mut self, ts: u32) -> u64 {
        if let Some(last) = self.last_ts {
            if ts < last && last - ts > 0x8000_0000 {
                self.ts_cycles += 1;
            } else if ts > last && ts - last > 0x8000_0000 {
                // A reordered packet from before a wrap.
                return (self.ts_cycles.saturating_sub(1) << 32) | u64::from(ts);
            }
        }
        self.last_ts = Some(ts);
        (self.ts_cycles << 32) | u64::from(ts)
    }

    fn pts(&self, ext_ts: u64) -> Option<i64> {
        let (ts0, us0) = self.base?;
        let delta = ext_ts as i64 - ts0 as i64;
        Some(us0 + delta * 1_000_000 / i64::from(self.clock))
    }
}

/// Turns a producer's packets into frames.
#[derive(Default)]
pub struct Assembler {
    audio: Option<Track>,
    video: Option<Track>,
    /// The video layer being recorded, and when each layer was last heard.
    layer: Option<Layer>,
    layer_seen_us: [Option<u64>; 3],
    /// Sender reports of SSRCs not (yet) tracked.
    reports: Vec<(u32, u64, u32)>,
    /// Frames dropped while waiting for a keyframe after a loss.
    pub dropped_frames: u64,
}


impl Assembler {
    /// Feeds a packet; whole frames come out in `out`.
    pub fn packet(&mut self, p: &ForwardPacket, out: &mut Vec<Frame>) {
        if !supported(p.codec) {
            return;
        }
        if p.kind == Kind::Video && !self.follow_top_layer(p) {
            return;
        }
        let slot = if p.kind == Kind::Video { &mut self.video } else { &mut self.audio };
        if slot.as_ref().is_none_or(|t| t.ssrc != p.ssrc) {
            let Some(mut t) = Track::new(p) else { return };
            if let Some(&(_, ntp, rtp)) = self.reports.iter().rev().find(|r| r.0 == p.ssrc) {
                t.sr = Some((ntp, rtp));
            }
            *slot = Some(t);
        }
        let track = slot.as_mut().expect("set above");
        let ext_ts = track.unwrap_ts(p.timestamp);
        if track.base.is_none() {
            track.base = Some((ext_ts, p.arrival_us as i64));
        }
        let seq = track.renumber(p);
        let header = rtp::header::Header { version: 2, marker: p.marker, sequence_number: seq, timestamp: p.timestamp, ssrc: p.ssrc, ..Default::default() };
        track.builder.push(Instant::now(), rtp::Packet { header, payload: p.payload.clone() });
        self.sync();
        self.drain(p.kind, out);
    }

    /// A sender report: its SSRC's RTP clock against the publisher's wallclock.
    pub fn sender_report(&mut self, ssrc: u32, ntp: u64, rtp_time: u32) {
        self.reports.retain(|r| r.0 != ssrc);
        self.reports.push((ssrc, ntp, rtp_time));
        if self.reports.len() > 8 {
            self.reports.remove(0);
        }
        for t in [self.audio.as_mut(), self.video.as_mut()].into_iter().flatten() {
            if t.ssrc == ssrc {
                t.sr = Some((ntp, rtp_time));
            }
        }
        self.sync();
    }

    /// Places video on audio's clock once both have a sender report: the
    /// instant of video's report gets the time audio has at that instant.
    fn sync(&mut self) {
        let (Some(a), Some(v)) = (self.audio.as_ref(), self.video.as_mut()) else { return };
        if v.synced {
            return;
        }
        let (Some((a_ntp, a_rtp)), Some((v_ntp, v_rtp)), Some(_)) = (a.sr, v.sr, a.base) else { return };
        // Audio's RTP time at video's report instant (NTP: 32.32 fixed point seconds).
        let dt_ntp = v_ntp.wrapping_sub(a_ntp) as i64;
        let a_at = i64::from(a_rtp) + ((i128::from(dt_ntp) * i128::from(a.clock)) >> 32) as i64;
        let Some(a_ts) = a.last_ts else { return };
        // Unwrap audio's RTP time near its last packet.
        let a_ext = (a.ts_cycles << 32) as i64 + i64::from(a_ts) + i64::from((a_at as u32).wrapping_sub(a_ts) as i32);
        let Some(at_us) = a.pts(a_ext as u64) else { return };
        let v_ext = match v.last_ts {
            Some(last) => (v.ts_cycles << 32) as i64 + i64::from(last) + i64::from(v_rtp.wrapping_sub(last) as i32),
            None => return,
        };
        v.base = Some((v_ext as u64, at_us));
        v.synced = true;
    }

    /// Whether a video packet is of the layer being recorded; switches to a
    /// higher layer when one appears, to a lower one when the top one stops.
    fn follow_top_layer(&mut self, p: &ForwardPacket) -> bool {
        self.layer_seen_us[p.layer.index()] = Some(p.arrival_us);
        let now = p.arrival_us;
        let top = Layer::ALL.iter().rev().copied().find(|l| self.layer_seen_us[l.index()].is_some_and(|t| now.saturating_sub(t) < LAYER_TIMEOUT_US));
        if top != self.layer {
            if top != Some(p.layer) {
                return false; // switch on a packet of the new layer
            }
            self.layer = top;
            // The new layer's stream: it starts at its next keyframe, on
            // the same timeline (its base comes from the old one's clock).
            let old = self.video.take();
            if let Some(mut t) = Track::new(p) {
                if let Some(old) = old {
                    t.last_pts = old.last_pts;
                }
                self.video = Some(t);
            }
        }
        self.layer == Some(p.layer)
    }

    fn drain(&mut self, kind: Kind, out: &mut Vec<Frame>) {
        let slot = if kind == Kind::Video { &mut self.video } else { &mut self.audio };
        let Some(track) = slot.as_mut() else { return };
        while let Some(sample) = track.builder.pop(Instant::now()) {
            let lost = sample.prev_dropped_packets > sample.prev_padding_packets;
            let keyframe = kind == Kind::Video && is_keyframe(track.codec, &sample.data);
            if kind == Kind::Video {
                if lost {
                    track.want_keyframe = true;
                }
                if track.want_keyframe && !keyframe {
                    self.dropped_frames += 1;
                    continue;
                }
                track.want_keyframe = false;
            }
            if sample.data.is_empty() {
                continue;
            }
            let ext = {
                let last = track.last_ts.unwrap_or(sample.packet_timestamp);
                (track.ts_cycles << 32) as i64 + i64::from(last) + i64::from(sample.packet_timestamp.wrapping_sub(last) as i32)
            };
            let Some(mut pts) = track.pts(ext as u64) else { continue };
            // Never backwards (a re-sync, a layer switch): one µs on.
            if let Some(last) = track.last_pts {
                pts = pts.max(last + 1);
            }
            track.last_pts = Some(pts);
            out.push(Frame { kind, codec: track.codec, pts_us: pts, data: sample.data, keyframe });
        }
    }
}

/// Whether a depacketized frame decodes on its own.
pub fn is_keyframe(codec: Codec, frame: &[u8]) -> bool {
    match codec {
        // VP8's frame tag: bit 0 clear = key frame.
        Codec::Vp8 => frame.first().is_some_and(|b| b & 1 == 0),
        Codec::H264 => annex_b_units(frame).any(|n| n.first().is_some_and(|b| b & 0x1f == 5)),
        _ => false,
    }
}

/// The NAL units of an Annex B stream (without their start codes).
pub fn annex_b_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |n| n - 3);
        // A four-byte start code's leading zero belongs to neither unit.
        while end > s && data[end - 1] == 0 && starts.get(k + 1).is_some() {
            end -= 1;
        }
        units.push(&data[s..end]);
    }
    units.into_iter()
}

/// The width and height a VP8 keyframe declares.
pub fn vp8_size(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 packet as the test peers send it (one partition per frame).
    fn vp8(seq: u16, ts: u32, key: bool, first: bool, marker: bool, padding_before: u16, layer: Layer) -> ForwardPacket {
        let mut b = vec![if first { 0x90 } else { 0x80 }, 0xC0, 0x80, 0x01, 0x00];
        if first {
            if key {
                b.extend_from_slice(&[0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00]);
            } else {
                b.extend_from_slice(&[0x11, 0x00, 0x00]);
            }
        }
        b.extend_from_slice(&[0xAB; 100]);
        ForwardPacket {
            producer: 1,
            kind: Kind::Video,
            layer,
            codec: Codec::Vp8,
            ssrc: 10 + layer.index() as u32,
            seq,
            timestamp: ts,
            marker,
            payload: Bytes::from(b),
            keyframe: key && first,
            arrival_us: u64::from(ts / 90) * 1000,
            padding_before,
        }
    }

    /// Frames of three packets from `seq`; `skip` leaves one packet out.
    fn frames(asm: &mut Assembler, n: u32, key_every: u32, skip: Option<u16>, padding_at: Option<u32>) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut seq = 100u16;
        for f in 0..n {
            let ts = 3000 * (f + 1);
            let key = f % key_every == 0;
            let pad = if padding_at == Some(f) { 2 } else { 0 };
            seq = seq.wrapping_add(pad);
            for i in 0..3u16 {
                let p = vp8(seq, ts, key, i == 0, i == 2, if i == 0 { pad } else { 0 }, Layer::F);
                if skip != Some(seq) {
                    asm.packet(&p, &mut out);
                }
                seq = seq.wrapping_add(1);
            }
        }
        out
    }

    #[test]
    fn whole_frames_come_out_and_padding_holes_are_not_loss() {
        let mut asm = Assembler::default();
        let out = frames(&mut asm, 30, 10, None, Some(5));
        // The last frame waits for a packet of the next one.
        assert_eq!(out.len(), 29, "{:?}", out.iter().map(|f| f.pts_us).collect::<Vec<_>>());
        assert!(out[0].keyframe && !out[1].keyframe);
        assert_eq!(out[0].data.len(), 10 + 300, "three payloads, descriptors stripped");
        assert_eq!(out[1].pts_us - out[0].pts_us, 33_333);
        assert_eq!(asm.dropped_frames, 0);
    }

    #[test]
    fn the_top_simulcast_layer_is_recorded() {
        let mut asm = Assembler::default();
        let mut out = Vec::new();
        for f in 0..10u32 {
            let ts = 3000 * (f + 1);
            for (i, layer) in Layer::ALL.into_iter().enumerate() {
                let seq = 1000 * i as u16 + f as u16;
                asm.packet(&vp8(seq, ts, f == 0, true, true, 0, layer), &mut out);
            }
        }
        assert_eq!(out.len(), 9, "one layer's frames, not three");
        assert!(out[0].keyframe);
    }

    #[test]
    fn after_a_loss_video_waits_for_the_next_keyframe() {
        let mut asm = Assembler::default();
        // Frame 3's middle packet (seq 100 + 3*3 + 1) is lost; keyframes at 0, 10, 20.
        let out = frames(&mut asm, 30, 10, Some(110), None);
        let pts: Vec<i64> = out.iter().map(|f| f.pts_us / 33_333).collect();
        assert!(!pts.iter().any(|&f| (4..=10).contains(&f) && f != 10), "no frame between the loss and the next keyframe: {pts:?}");
        assert!(out.iter().any(|f| f.keyframe && f.pts_us / 33_333 == 10), "{pts:?}");
        assert_eq!(out.len(), 29 - 7, "frames 3-9 left out: {pts:?}");
        assert!(asm.dropped_frames > 0);
    }

    #[test]
    fn annex_b_splits_on_three_and_four_byte_start_codes() {
        let data = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9];
        let units: Vec<&[u8]> = annex_b_units(&data).collect();
        assert_eq!(units, vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 9, 9][..]]);
        assert!(is_keyframe(Codec::H264, &data));
        assert!(!is_keyframe(Codec::H264, &[0, 0, 0, 1, 0x41, 1]));
    }

    #[test]
    fn vp8_keyframe_size() {
        let key = [0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00];
        assert_eq!(vp8_size(&key), Some((320, 180)));
        assert!(is_keyframe(Codec::Vp8, &key));
        assert!(!is_keyframe(Codec::Vp8, &[0x11, 0, 0]));
    }
}
