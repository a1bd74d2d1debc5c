//! The SFU-side packet cache of one stream: the last video packets of each
//! publisher source, kept once for every viewer on every worker.
//!
//! It serves two things:
//! - **Retransmission.** A viewer's NACK names its own (rewritten) sequence
//!   numbers; its down track maps them back to a source packet (see
//!   [`crate::consumer::SentLog`]), which is looked up here. No viewer keeps a
//!   copy of what it was sent.
//! - **A fast first frame.** A joining viewer gets the current group of
//!   pictures (the last keyframe and everything since) straight from here,
//!   without asking the publisher. When that group is too long to send in
//!   one burst, it gets the keyframe alone (a picture at once) and waits for
//!   the next keyframe, which is then asked for (PLI).
//!
//! Packets are the refcounted [`Fanout`]s the workers already share, so the
//! cache holds pointers, not copies. Only the publisher's worker writes
//! (once per incoming video packet); viewers' workers read on NACK and on
//! join. The owner wraps it in a mutex: writes are uncontended, reads rare.

use std::time::{Duration, Instant};

use crate::packet::{Fanout, Kind};
use crate::layer::Layer;

/// Packets kept per source: a few seconds of a 2.5 Mbit/s layer. A NACK for
/// anything older is useless to a jitter buffer anyway.
pub const RING: usize = 1024;

/// The longest group of pictures sent to a joining viewer in one burst;
/// beyond that it gets the keyframe alone. 300 packets are about a second
/// of 2.5 Mbit/s video.
pub const MAX_GOP_BURST: usize = 300;

/// A whole group of pictures is given only while its keyframe is at most
/// this old: the viewer's decoder plays the burst's frames at their pace, so
/// an older group would leave it that far behind live.
pub const MAX_GOP_AGE: Duration = Duration::from_secs(1);

/// A keyframe given alone must be younger than this: browsers send
/// keyframes only when asked, and a picture from minutes ago, then a jump
/// to the live one, is worse than waiting one round trip for a fresh one.
pub const MAX_KEYFRAME_AGE: Duration = Duration::from_secs(3);

/// The publisher of a stream without viewers whose newest keyframe of a
/// layer is older than this is asked for a new one (see the worker's
/// `refresh_keyframes`): browsers send keyframes only when asked, so without
/// this the first viewer of a running browser stream never started from the
/// cache.
pub const KEYFRAME_REFRESH: Duration = Duration::from_secs(2);

/// Recent packets of one publisher SSRC.
struct SourceRing {
    ssrc: u32,
    layer: Layer,
    /// Slot `seq % RING`.
    ring: Box<[Option<Fanout>]>,
    /// Extended sequence number of the newest packet.
    highest: i64,
    /// Extended sequence number of the first packet of the newest keyframe.
    keyframe: Option<i64>,
    /// When that keyframe arrived.
    keyframe_at: Option<Instant>,
}

impl SourceRing {
    fn new(p: &Fanout) -> Self {
        SourceRing { ssrc: p.ssrc, layer: p.layer, ring: vec![None; RING].into_boxed_slice(), highest: i64::from(p.seq), keyframe: None, keyframe_at: None }
    }

    fn extend(&self, seq: u16) -> i64 {
        let diff = seq.wrapping_sub(self.highest as u16) as i16;
        self.highest + i64::from(diff)
    }

    fn slot(ext: i64) -> usize {
        ext.rem_euclid(RING as i64) as usize
    }

    fn insert(&mut self, p: &Fanout) {
        let ext = self.extend(p.seq);
        if ext <= self.highest - RING as i64 {
            return; // far too late to be of use
        }
        if ext > self.highest {
            // Slots skipped over belong to packets not received (yet): clear them.
            let gap = (ext - self.highest).min(RING as i64);
            for e in ext - gap + 1..ext {
                self.ring[Self::slot(e)] = None;
            }
            self.highest = ext;
        }
        // A keyframe begins at the first of its packets that looks like a
        // start: H.264 encoders send SPS, PPS and the IDR slice as separate
        // packets of one picture, and the parameter sets must not be cut off.
        let same_picture = self.keyframe.and_then(|k| self.get_ext(k)).is_some_and(|k| k.timestamp == p.timestamp);
        if p.keyframe && !same_picture && self.keyframe.is_none_or(|k| ext > k) {
            self.keyframe = Some(ext);
            self.keyframe_at = Some(Instant::now());
        }
        self.ring[Self::slot(ext)] = Some(p.clone());
    }

    fn get_ext(&self, ext: i64) -> Option<&Fanout> {
        if ext > self.highest || ext <= self.highest - RING as i64 {
            return None;
        }
        self.ring[Self::slot(ext)].as_ref().filter(|p| p.seq == ext as u16)
    }
}

/// The group of pictures given to a joining viewer.
#[derive(Debug, Default)]
pub struct Gop {
    /// Packets in sequence order, starting with a keyframe.
    pub packets: Vec<Fanout>,
    /// True when `packets` run without a gap up to the newest packet, so the
    /// viewer can carry on with live packets; false when only the keyframe
    /// is given and the viewer must wait for the next one.
    pub complete: bool,
}

/// Recent video packets of one stream, by source.
#[derive(Default)]
pub struct StreamCache {
    sources: Vec<SourceRing>,
}

impl std::fmt::Debug for StreamCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamCache").field("sources", &self.sources.iter().map(|s| (s.ssrc, s.layer)).collect::<Vec<_>>()).finish()
    }
}

impl StreamCache {
    /// Keeps a video packet (audio is neither NACKed nor needed to start).
    pub fn insert(&mut self, p: &Fanout) {
        if p.kind != Kind::Video {
            return;
        }
        match self.sources.iter_mut().find(|s| s.ssrc == p.ssrc) {
            Some(s) => s.insert(p),
            None => {
                // A new SSRC for a layer replaces the old one (publisher restarted its encoder).
                self.sources.retain(|s| s.layer != p.layer);
                let mut s = SourceRing::new(p);
                s.insert(p);
                self.sources.push(s);
            }
        }
    }

    /// The packet `seq` of source `ssrc`, if still cached.
    pub fn get(&self, ssrc: u32, seq: u16) -> Option<Fanout> {
        let s = self.sources.iter().find(|s| s.ssrc == ssrc)?;
        s.get_ext(s.extend(seq)).cloned()
    }

    /// How old `layer`'s newest keyframe is (`None`: the layer has none).
    pub fn keyframe_age(&self, layer: Layer) -> Option<Duration> {
        self.sources.iter().find(|s| s.layer == layer)?.keyframe_at.map(|at| at.elapsed())
    }

    /// The picture size of `layer`'s newest keyframe, when its codec says
    /// it there (VP8's frame header, H.264's sequence parameter set).
    pub fn keyframe_size(&self, layer: Layer) -> Option<(u32, u32)> {
        let s = self.sources.iter().find(|s| s.layer == layer)?;
        let start = s.keyframe?;
        let ts = s.get_ext(start)?.timestamp;
        // The keyframe's first packets: parameter sets come before the picture.
        (start..=s.highest).take(8).filter_map(|e| s.get_ext(e)).take_while(|p| p.timestamp == ts).find_map(|p| match p.codec {
            crate::codec::Codec::Vp8 => crate::codec::vp8::keyframe_size(&p.payload),
            crate::codec::Codec::H264 => crate::codec::h264::sps_size(&p.payload),
            _ => None,
        })
    }

    /// The current group of pictures of `layer`: the newest keyframe and
    /// everything after it; or the keyframe alone when the group is longer
    /// than [`MAX_GOP_BURST`], older than [`MAX_GOP_AGE`] or has holes; or
    /// `None` when no keyframe is cached or it is older than
    /// [`MAX_KEYFRAME_AGE`].
    pub fn gop(&self, layer: Layer) -> Option<Gop> {
        let s = self.sources.iter().find(|s| s.layer == layer)?;
        let start = s.keyframe?;
        let first = s.get_ext(start)?;
        let age = s.keyframe_at.map_or(Duration::MAX, |at| at.elapsed());
        // Whole when every hole is padding the next packet says it follows
        // (bandwidth probes are never cached), not loss.
        let mut all = Vec::new();
        let mut hole = 0usize;
        let mut whole = true;
        for e in start..=s.highest {
            match s.get_ext(e) {
                Some(p) => {
                    whole &= hole <= usize::from(p.padding_before);
                    hole = 0;
                    all.push(p.clone());
                }
                None => hole += 1,
            }
        }
        if whole && all.len() <= MAX_GOP_BURST && age <= MAX_GOP_AGE {
            return Some(Gop { packets: all, complete: true });
        }
        // The keyframe alone, if recent: its packets share its timestamp and
        // run without a hole up to the one with the marker bit (the end of
        // the frame).
        if age > MAX_KEYFRAME_AGE {
            return None;
        }
        let ts = first.timestamp;
        let mut frame: Vec<Fanout> = Vec::new();
        for e in start..=s.highest {
            match s.get_ext(e) {
                Some(p) if p.timestamp == ts => {
                    frame.push(p.clone());
                    if p.marker {
                        break;
                    }
                }
                Some(_) => break,
                None if frame.last().is_some_and(|p| p.marker) => break,
                None => return None, // a hole inside the keyframe: nothing decodable
            }
        }
        Some(Gop { packets: frame, complete: false })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::packet::ForwardPacket;

    fn pkt(layer: Layer, ssrc: u32, seq: u16, ts: u32, key: bool) -> Fanout {
        Arc::new(ForwardPacket::test_video(layer, ssrc, seq, ts, key, Bytes::from_static(b"x")))
    }

    /// Frames of `per_frame` packets from `seq`, the first one a keyframe.
    fn gop(c: &mut StreamCache, ssrc: u32, seq: u16, frames: u16, per_frame: u16) -> u16 {
        let mut s = seq;
        for f in 0..frames {
            for i in 0..per_frame {
                c.insert(&pkt(Layer::F, ssrc, s, (u32::from(seq) + u32::from(f)) * 3000, f == 0 && i == 0));
                s = s.wrapping_add(1);
            }
        }
        s
    }

    #[test]
    fn nack_lookups_find_packets_until_they_age_out() {
        let mut c = StreamCache::default();
        for seq in 65_000u16..=65_535 {
            c.insert(&pkt(Layer::F, 7, seq, 0, false));
        }
        for seq in 0u16..600 {
            c.insert(&pkt(Layer::F, 7, seq, 0, false)); // across the 16-bit wrap
        }
        assert_eq!(c.get(7, 599).unwrap().seq, 599);
        assert_eq!(c.get(7, 65_300).unwrap().seq, 65_300);
        assert!(c.get(7, 65_000).is_none(), "older than the ring");
        assert!(c.get(8, 10).is_none(), "unknown source");
        assert!(c.get(7, 700).is_none(), "not received yet");
    }

    #[test]
    fn a_short_gop_is_given_whole() {
        let mut c = StreamCache::default();
        c.insert(&pkt(Layer::F, 7, 90, 0, false)); // before the keyframe: not part of it
        let end = gop(&mut c, 7, 100, 10, 3);
        let g = c.gop(Layer::F).unwrap();
        assert!(g.complete);
        assert_eq!(g.packets.len(), 30);
        assert!(g.packets[0].keyframe);
        assert_eq!(g.packets.last().unwrap().seq, end - 1);
        assert!(c.gop(Layer::Q).is_none(), "no such layer");
    }

    #[test]
    fn a_long_or_holed_gop_gives_the_keyframe_alone() {
        let mut c = StreamCache::default();
        gop(&mut c, 7, 100, 200, 3); // 600 packets
        let g = c.gop(Layer::F).unwrap();
        assert!(!g.complete);
        assert_eq!(g.packets.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![100, 101, 102]);

        let mut c = StreamCache::default();
        for seq in [100u16, 101, 102, 103, 105] {
            c.insert(&pkt(Layer::F, 7, seq, if seq < 102 { 0 } else { 3000 }, seq == 100));
        }
        let g = c.gop(Layer::F).unwrap();
        assert!(!g.complete, "104 is missing");
        assert_eq!(g.packets.len(), 2);
    }

    #[test]
    fn padding_holes_do_not_break_a_gop() {
        let mut c = StreamCache::default();
        c.insert(&pkt(Layer::F, 7, 100, 0, true));
        c.insert(&Arc::new(ForwardPacket { marker: true, ..(*pkt(Layer::F, 7, 101, 0, false)).clone() }));
        // 102 and 103 were padding probes, announced by 104.
        let after_padding = Arc::new(ForwardPacket { padding_before: 2, ..(*pkt(Layer::F, 7, 104, 3000, false)).clone() });
        c.insert(&after_padding);
        let g = c.gop(Layer::F).unwrap();
        assert!(g.complete);
        assert_eq!(g.packets.len(), 3);
        // A hole nobody announced is loss: the keyframe alone, up to its marker.
        c.insert(&pkt(Layer::F, 7, 106, 6000, false));
        let g = c.gop(Layer::F).unwrap();
        assert!(!g.complete);
        assert_eq!(g.packets.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![100, 101]);
    }

    #[test]
    fn a_stale_keyframe_is_not_given_alone() {
        let mut c = StreamCache::default();
        gop(&mut c, 7, 100, 200, 3); // too long for a burst: keyframe alone
        assert!(c.gop(Layer::F).is_some());
        c.sources[0].keyframe_at = Some(Instant::now() - MAX_KEYFRAME_AGE - Duration::from_millis(1));
        assert!(c.gop(Layer::F).is_none(), "minutes-old pictures are not a first frame");
        let mut c = StreamCache::default();
        gop(&mut c, 7, 100, 10, 3); // short enough for a burst...
        c.sources[0].keyframe_at = Some(Instant::now() - MAX_GOP_AGE - Duration::from_millis(1));
        let g = c.gop(Layer::F).unwrap();
        assert!(!g.complete, "...but a second old: it would leave the viewer behind live");
        assert_eq!(g.packets.len(), 3, "the keyframe alone");
    }

    #[test]
    fn a_keyframe_starts_at_its_first_packet() {
        // H.264 as FFmpeg and OBS send it: SPS, PPS, then the IDR slice,
        // each a keyframe start, all with the picture's timestamp.
        let mut c = StreamCache::default();
        for (seq, key) in [(10u16, true), (11, false), (12, true), (13, false)] {
            c.insert(&pkt(Layer::F, 7, seq, 9000, key));
        }
        c.insert(&pkt(Layer::F, 7, 14, 12000, false));
        let g = c.gop(Layer::F).unwrap();
        assert_eq!(g.packets[0].seq, 10, "the parameter sets are part of the keyframe");
        assert_eq!(g.packets.len(), 5);
    }

    #[test]
    fn the_newest_keyframe_starts_the_gop_and_a_new_ssrc_replaces_the_layer() {
        let mut c = StreamCache::default();
        let next = gop(&mut c, 7, 100, 5, 2);
        gop(&mut c, 7, next, 3, 2);
        assert_eq!(c.gop(Layer::F).unwrap().packets[0].seq, next);
        gop(&mut c, 9, 5000, 2, 2);
        assert!(c.get(7, next).is_none(), "old source dropped");
        assert_eq!(c.gop(Layer::F).unwrap().packets[0].ssrc, 9);
    }
}
