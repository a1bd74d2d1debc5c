//! One continuous outgoing RTP stream per viewer across simulcast switches.
//!
//! A simulcast publisher sends each layer as its own RTP stream (RFC 8853):
//! its own SSRC, sequence numbers, timestamps and (for VP8, RFC 7741)
//! picture ids. A viewer receives one of them at a time, but as a single
//! outgoing stream, so when the SFU moves the viewer to another layer the
//! numbering it sees must carry on as if nothing happened (RFC 3550 section
//! 5.1: sequence numbers increase by one per packet; timestamps follow the
//! sampling clock; RFC 7667 section 3.7 describes this "switching" middlebox).
//!
//! [`StreamRewriter`] keeps that continuity:
//!
//! * at a switch (always at a keyframe of the new layer, see
//!   [`crate::codec::is_keyframe_start`]) the first packet of the new source
//!   gets `last sequence number sent + 1` and a timestamp advanced by the
//!   wall-clock time since the last packet sent (at least 1 tick);
//! * within one source every packet keeps its distance to the switch point,
//!   so losses stay gaps (the viewer's NACKs still name the right packets)
//!   and reordered packets land on their proper numbers;
//! * packets of any other source, packets from before the switch point,
//!   duplicates and packets too old to matter are refused.
//!
//! Sequence numbers are tracked as 64-bit extended numbers internally, so
//! 16-bit wraparound (and 32-bit timestamp wraparound) needs no special case.
//! All state is fixed-size: no allocation per packet.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use crate::codec::vp8;

/// How far behind the newest packet a packet may be and still be forwarded
/// (and checked for duplicates). 512 packets is over a second of 4 Mbit/s
/// video: anything later is useless to a jitter buffer.
const REPLAY_WINDOW: u64 = 512;
const WINDOW_WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// Upper bound of the timestamp jump at a switch, so that after a very long
/// pause the new timestamp still compares as "later" (RFC 3550 arithmetic is
/// modulo 2^32, so jumps must stay below 2^31).
const MAX_TS_ADVANCE: u64 = 1 << 30;

/// What has been sent on the outgoing stream, across all sources.
#[derive(Clone, Copy, Debug)]
struct Sent {
    /// Highest extended outgoing sequence number.
    seq: i64,
    /// Highest outgoing timestamp (wraparound-aware).
    ts: u32,
    /// Wall-clock time of the last packet sent, microseconds.
    at_us: u64,
}

/// The mapping from the current source to the outgoing stream.
#[derive(Clone, Debug)]
struct Mapping {
    source: u32,
    /// Extended incoming sequence number of the switch point.
    in_base: i64,
    /// Highest extended incoming sequence number accepted so far.
    in_highest: i64,
    /// Extended outgoing sequence number of the switch point.
    out_base: i64,
    /// Added (mod 2^32) to every incoming timestamp.
    ts_offset: u32,
    /// Bit `ext % REPLAY_WINDOW` is set when that packet was forwarded.
    seen: [u64; WINDOW_WORDS],
    /// Padding-only packets of the source that were not forwarded, as
    /// `(first extended number they precede, total skipped up to there)`:
    /// packets from there on move down by that total, so the viewer sees no
    /// hole where a publisher's bandwidth probes were.
    skips: Vec<(i64, i64)>,
}

/// Skip ranges remembered per source; older ones fall outside the window.
const MAX_SKIPS: usize = 32;

impl Mapping {
    fn bit(ext: i64) -> (usize, u64) {
        let i = ext.rem_euclid(REPLAY_WINDOW as i64) as usize;
        (i / 64, 1u64 << (i % 64))
    }

    fn is_seen(&self, ext: i64) -> bool {
        let (w, m) = Self::bit(ext);
        self.seen[w] & m != 0
    }

    fn mark_seen(&mut self, ext: i64) {
        let (w, m) = Self::bit(ext);
        self.seen[w] |= m;
    }

    /// Padding skipped before `ext`.
    fn skipped_before(&self, ext: i64) -> i64 {
        self.skips.iter().rev().find(|(from, _)| *from <= ext).map_or(0, |(_, total)| *total)
    }

    /// Moves the window forward so that `ext` becomes the newest packet.
    fn advance_to(&mut self, ext: i64) {
        let steps = ext - self.in_highest;
        if steps >= REPLAY_WINDOW as i64 {
            self.seen = [0; WINDOW_WORDS];
        } else {
            for e in self.in_highest + 1..=ext {
                let (w, m) = Self::bit(e);
                self.seen[w] &= !m;
            }
        }
        self.in_highest = ext;
    }
}

/// Continuity of one small wrapping counter (VP8 PictureID, TL0PICIDX)
/// within the current source.
#[derive(Clone, Copy, Debug)]
struct IdMap {
    in_base: i64,
    in_highest: i64,
    out_base: i64,
}

/// A wrapping id counter continued across sources.
#[derive(Clone, Copy, Debug, Default)]
struct IdCounter {
    /// Mapping for the current source, set by its first packet after a switch.
    map: Option<IdMap>,
    /// Highest extended outgoing value, across sources.
    out_highest: Option<i64>,
}

impl IdCounter {
    /// Maps an incoming `bits`-wide value to the extended outgoing value.
    fn map(&mut self, value: u16, bits: u32) -> i64 {
        let value = i64::from(value) & ((1 << bits) - 1);
        let out_highest = self.out_highest;
        // The first value seen after a switch is the switch point: it
        // continues at the highest value sent + 1 (or passes through
        // unchanged for the very first source).
        let map = self.map.get_or_insert_with(|| IdMap {
            in_base: value,
            in_highest: value,
            out_base: out_highest.map_or(value, |h| h + 1),
        });
        let ext = unwrap(map.in_highest, value, bits);
        map.in_highest = map.in_highest.max(ext);
        let out = map.out_base + (ext - map.in_base);
        self.out_highest = Some(out_highest.map_or(out, |h| h.max(out)));
        out
    }
}

/// Extends `value` (`bits` wide) to the extended number closest to `reference`.
fn unwrap(reference: i64, value: i64, bits: u32) -> i64 {
    let modulus = 1i64 << bits;
    let mut diff = (value - reference).rem_euclid(modulus);
    if diff >= modulus / 2 {
        diff -= modulus;
    }
    reference + diff
}

/// Rewrites sequence numbers, timestamps and VP8 picture ids of the packets
/// forwarded to one viewer on one outgoing track. See the module docs.
///
/// Per packet the caller does:
///
/// ```text
/// if wants_other_layer && codec::is_keyframe_start(codec, payload) {
///     rewriter.switch_to(ssrc, seq, ts, now_us);
/// }
/// let Some((out_seq, out_ts)) = rewriter.rewrite(ssrc, seq, ts, now_us) else { drop };
/// if codec == Vp8 { rewriter.rewrite_vp8_payload(payload); }
/// ```
#[derive(Clone, Debug)]
pub struct StreamRewriter {
    clock_rate: u32,
    initial_seq: u16,
    initial_ts: u32,
    sent: Option<Sent>,
    current: Option<Mapping>,
    picture_id: IdCounter,
    tl0picidx: IdCounter,
}

impl StreamRewriter {
    /// A rewriter for a stream with the given RTP clock rate (90 000 for
    /// video, 48 000 for Opus). The first packet sent gets a random sequence
    /// number and timestamp, as RFC 3550 recommends.
    pub fn new(clock_rate: u32) -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(clock_rate);
        let r = h.finish();
        StreamRewriter {
            clock_rate,
            // Keep the first sequence number in the lower half so a stream
            // does not wrap within its first second (eases debugging only).
            initial_seq: (r as u16) & 0x7FFF,
            initial_ts: (r >> 32) as u32,
            sent: None,
            current: None,
            picture_id: IdCounter::default(),
            tl0picidx: IdCounter::default(),
        }
    }

    /// Sets the sequence number and timestamp of the first packet sent
    /// (instead of random ones); for tests and deterministic replays.
    pub fn with_initial(mut self, seq: u16, ts: u32) -> Self {
        self.initial_seq = seq;
        self.initial_ts = ts;
        self
    }

    /// The RTP clock rate given to [`StreamRewriter::new`].
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// The SSRC currently forwarded, if any.
    pub fn current_source(&self) -> Option<u32> {
        self.current.as_ref().map(|m| m.source)
    }

    /// Starts forwarding `source` from the packet `first_seq` / `first_ts`
    /// (its keyframe start) on: that packet will be sent as
    /// `last sequence number + 1` with a timestamp advanced by the time
    /// elapsed since the last packet sent (at least 1). Call
    /// [`StreamRewriter::rewrite`] for that packet afterwards, as for any.
    ///
    /// Switching to the source already being forwarded does nothing; call
    /// [`StreamRewriter::reset`] first to re-anchor it (e.g. after pausing).
    pub fn switch_to(&mut self, source: u32, first_seq: u16, first_ts: u32, now_us: u64) {
        if self.current_source() == Some(source) {
            return;
        }
        let (out_base, out_ts) = match self.sent {
            Some(sent) => (
                sent.seq + 1,
                sent.ts.wrapping_add(self.ts_advance(sent.at_us, now_us)),
            ),
            None => (i64::from(self.initial_seq), self.initial_ts),
        };
        let in_base = i64::from(first_seq);
        self.current = Some(Mapping {
            source,
            in_base,
            in_highest: in_base - 1,
            out_base,
            ts_offset: out_ts.wrapping_sub(first_ts),
            seen: [0; WINDOW_WORDS],
            skips: Vec::new(),
        });
        self.picture_id.map = None;
        self.tl0picidx.map = None;
    }

    /// Stops forwarding the current source. What was sent is remembered, so
    /// the next [`StreamRewriter::switch_to`] (to any source) continues the
    /// outgoing numbering.
    pub fn reset(&mut self) {
        self.current = None;
        self.picture_id.map = None;
        self.tl0picidx.map = None;
    }

    /// Timestamp ticks to advance by at a switch.
    fn ts_advance(&self, last_us: u64, now_us: u64) -> u32 {
        let elapsed_us = u128::from(now_us.saturating_sub(last_us));
        let ticks = elapsed_us * u128::from(self.clock_rate) / 1_000_000;
        ticks.clamp(1, u128::from(MAX_TS_ADVANCE)) as u32
    }

    /// The outgoing `(sequence number, timestamp)` for a packet of the
    /// current source, or `None` when it must not be forwarded: another
    /// source, older than the switch point, already forwarded, or more than
    /// 512 packets behind the newest one.
    pub fn rewrite(&mut self, source: u32, seq: u16, ts: u32, now_us: u64) -> Option<(u16, u32)> {
        let m = self.current.as_mut().filter(|m| m.source == source)?;

        let ext = unwrap(m.in_highest, i64::from(seq), 16);
        if ext < m.in_base {
            return None;
        }
        if ext > m.in_highest {
            m.advance_to(ext);
        } else if m.in_highest - ext >= REPLAY_WINDOW as i64 || m.is_seen(ext) {
            return None;
        }
        m.mark_seen(ext);

        let out_ext = m.out_base + (ext - m.in_base) - m.skipped_before(ext);
        let out_ts = ts.wrapping_add(m.ts_offset);

        self.sent = Some(match self.sent {
            None => Sent {
                seq: out_ext,
                ts: out_ts,
                at_us: now_us,
            },
            Some(s) => Sent {
                seq: s.seq.max(out_ext),
                ts: if (out_ts.wrapping_sub(s.ts) as i32) > 0 {
                    out_ts
                } else {
                    s.ts
                },
                at_us: s.at_us.max(now_us),
            },
        });
        Some((out_ext as u16, out_ts))
    }

    /// Tells the rewriter that the `count` packets of `source` right before
    /// `seq` were padding-only (bandwidth probes) and were not forwarded, so
    /// numbering closes over them instead of leaving a hole the viewer would
    /// count as loss. Only for a packet newer than any seen, and only for
    /// packets after the switch point; call it before [`Self::rewrite`].
    pub fn skip_padding(&mut self, source: u32, seq: u16, count: u16) {
        let Some(m) = self.current.as_mut().filter(|m| m.source == source) else { return };
        let ext = unwrap(m.in_highest, i64::from(seq), 16);
        if count == 0 || ext <= m.in_highest {
            return;
        }
        let count = i64::from(count).min(ext - m.in_base);
        if count <= 0 {
            return;
        }
        let total = m.skips.last().map_or(0, |(_, t)| *t) + count;
        m.skips.push((ext, total));
        if m.skips.len() > MAX_SKIPS {
            m.skips.remove(0);
        }
    }

    /// The outgoing VP8 PictureID and TL0PICIDX for a packet that
    /// [`StreamRewriter::rewrite`] accepted. Both continue +1 across a
    /// switch (the first values seen after [`StreamRewriter::switch_to`] are
    /// the switch point) and keep their distances within a source.
    ///
    /// The PictureID is counted modulo 2^15 and returned 15 bits wide, or
    /// only its low 7 bits when `fifteen_bit` is false (so a 7-bit field
    /// wraps 127 -> 0). Absent fields stay absent and do not disturb the
    /// counters.
    pub fn rewrite_vp8_ids(
        &mut self,
        picture_id: Option<u16>,
        fifteen_bit: bool,
        tl0picidx: Option<u8>,
    ) -> (Option<u16>, Option<u8>) {
        let pid = picture_id.map(|p| {
            let bits = if fifteen_bit { 15 } else { 7 };
            let out = self.picture_id.map(p, bits);
            (out.rem_euclid(1 << bits)) as u16
        });
        let tl0 = tl0picidx.map(|t| self.tl0picidx.map(u16::from(t), 8).rem_euclid(256) as u8);
        (pid, tl0)
    }

    /// Parses the VP8 descriptor of `payload`, maps its PictureID and
    /// TL0PICIDX with [`StreamRewriter::rewrite_vp8_ids`] and writes them
    /// back in place. Returns false (and leaves the payload alone) if the
    /// descriptor is malformed.
    pub fn rewrite_vp8_payload(&mut self, payload: &mut [u8]) -> bool {
        let Some(desc) = vp8::parse(payload) else {
            return false;
        };
        let (pid, tl0) =
            self.rewrite_vp8_ids(desc.picture_id, desc.picture_id_15bit, desc.tl0picidx);
        vp8::rewrite(payload, &desc, pid.unwrap_or(0), tl0.unwrap_or(0));
        true
    }

    /// The highest outgoing sequence number and timestamp sent so far.
    pub fn last_sent(&self) -> Option<(u16, u32)> {
        self.sent.map(|s| (s.seq as u16, s.ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u32 = 0xAAAA_0001;
    const B: u32 = 0xBBBB_0002;
    const C: u32 = 0xCCCC_0003;
    const MS: u64 = 1_000;

    fn rw() -> StreamRewriter {
        StreamRewriter::new(90_000).with_initial(1000, 50_000)
    }

    /// Timestamp `a` is later than `b` in RTP (mod 2^32) arithmetic.
    fn ts_after(a: u32, b: u32) -> bool {
        (a.wrapping_sub(b) as i32) > 0
    }

    #[test]
    fn padding_probes_leave_no_hole_and_late_packets_keep_their_place() {
        let mut r = rw();
        r.switch_to(A, 100, 9_000, 0);
        assert_eq!(r.rewrite(A, 100, 9_000, 0), Some((1000, 50_000)));
        assert_eq!(r.rewrite(A, 101, 9_000, 0), Some((1001, 50_000)));
        // 102 is lost (a real hole the viewer must NACK), 103..=105 are
        // padding probes, 106 carries media again.
        r.skip_padding(A, 106, 3);
        assert_eq!(r.rewrite(A, 106, 12_000, MS), Some((1003, 53_000)), "the probes close up, the loss stays");
        assert_eq!(r.rewrite(A, 107, 12_000, MS), Some((1004, 53_000)));
        // 102 arrives late (retransmitted): its place is before the probes.
        assert_eq!(r.rewrite(A, 102, 9_000, 2 * MS), Some((1002, 50_000)));
        // Padding before the switch point is not ours to skip.
        r.switch_to(B, 500, 0, 3 * MS);
        r.skip_padding(B, 500, 4);
        assert_eq!(r.rewrite(B, 500, 0, 3 * MS).map(|(s, _)| s), Some(1005));
    }

    #[test]
    fn nothing_before_first_switch() {
        let mut r = rw();
        assert_eq!(r.rewrite(A, 1, 1, 0), None);
        assert_eq!(r.last_sent(), None);
        assert_eq!(r.current_source(), None);
    }

    #[test]
    fn first_switch_uses_initial_values() {
        let mut r = rw();
        r.switch_to(A, 4242, 777_000, 0);
        assert_eq!(r.current_source(), Some(A));
        assert_eq!(r.rewrite(A, 4242, 777_000, 0), Some((1000, 50_000)));
        assert_eq!(r.rewrite(A, 4243, 777_000, MS), Some((1001, 50_000)));
        assert_eq!(r.rewrite(A, 4244, 780_000, 33 * MS), Some((1002, 53_000)));
        assert_eq!(r.last_sent(), Some((1002, 53_000)));
    }

    #[test]
    fn random_initial_values_differ_between_rewriters() {
        // Not a strict guarantee, but 8 identical draws in a row would mean
        // the values are not random at all.
        let firsts: Vec<(u16, u32)> = (0..8)
            .map(|_| {
                let mut r = StreamRewriter::new(90_000);
                r.switch_to(A, 0, 0, 0);
                r.rewrite(A, 0, 0, 0).unwrap()
            })
            .collect();
        assert!(firsts.iter().any(|f| *f != firsts[0]));
    }

    #[test]
    fn switch_mid_stream_continues_numbering() {
        let mut r = rw();
        // Layer A: 30 fps, 3 packets per frame.
        r.switch_to(A, 100, 9_000, 0);
        let mut now = 0;
        let mut last = None;
        for frame in 0..4u16 {
            for p in 0..3u16 {
                let seq = 100 + frame * 3 + p;
                let ts = 9_000 + u32::from(frame) * 3_000;
                last = r.rewrite(A, seq, ts, now);
                assert!(last.is_some());
                now += 2 * MS;
            }
            now += 27 * MS;
        }
        let (last_seq, last_ts) = last.unwrap();
        assert_eq!((last_seq, last_ts), (1011, 50_000 + 9_000));
        let last_at = now - 27 * MS - 2 * MS;

        // 40 ms after the last packet, a keyframe of layer B arrives.
        let switch_at = last_at + 40 * MS;
        r.switch_to(B, 60_000, 3_000_000_000, switch_at);
        let (s, t) = r.rewrite(B, 60_000, 3_000_000_000, switch_at).unwrap();
        assert_eq!(s, last_seq + 1);
        assert_eq!(t, last_ts + 40 * 90, "advanced by the elapsed 40 ms");
        // B continues with its own spacing.
        assert_eq!(
            r.rewrite(B, 60_001, 3_000_000_000, switch_at + MS),
            Some((s + 1, t))
        );
        assert_eq!(
            r.rewrite(B, 60_002, 3_000_003_000, switch_at + 33 * MS),
            Some((s + 2, t + 3_000))
        );

        // Late packets of A are dropped now.
        assert_eq!(r.rewrite(A, 112, 21_000, switch_at + 34 * MS), None);
        // So are packets of B from before its keyframe.
        assert_eq!(
            r.rewrite(B, 59_999, 2_999_997_000, switch_at + 35 * MS),
            None
        );
        assert_eq!(r.last_sent(), Some((s + 2, t + 3_000)));
    }

    #[test]
    fn switch_timestamp_advances_at_least_one_tick() {
        let mut r = rw();
        r.switch_to(A, 0, 0, 5_000 * MS);
        let (_, t0) = r.rewrite(A, 0, 0, 5_000 * MS).unwrap();
        // Switch in the same microsecond.
        r.switch_to(B, 500, 1234, 5_000 * MS);
        let (_, t1) = r.rewrite(B, 500, 1234, 5_000 * MS).unwrap();
        assert_eq!(t1, t0 + 1);
        // Clock going backwards: still +1, no panic.
        r.switch_to(C, 9, 99, 4_000 * MS);
        let (_, t2) = r.rewrite(C, 9, 99, 4_000 * MS).unwrap();
        assert_eq!(t2, t1 + 1);
        // 5 µs at 90 kHz is less than a tick: +1.
        r.switch_to(A, 10, 0, 5_000 * MS + 5);
        let (_, t3) = r.rewrite(A, 10, 0, 5_000 * MS + 5).unwrap();
        assert_eq!(t3, t2 + 1);
    }

    #[test]
    fn long_pause_advance_is_capped() {
        let mut r = rw();
        r.switch_to(A, 0, 0, 0);
        let (_, t0) = r.rewrite(A, 0, 0, 0).unwrap();
        let a_day = 86_400 * 1_000 * MS;
        r.switch_to(B, 0, 0, a_day);
        let (_, t1) = r.rewrite(B, 0, 0, a_day).unwrap();
        assert_eq!(t1.wrapping_sub(t0), 1 << 30);
        assert!(ts_after(t1, t0));
    }

    #[test]
    fn audio_clock_rate() {
        let mut r = StreamRewriter::new(48_000).with_initial(0, 0);
        assert_eq!(r.clock_rate(), 48_000);
        r.switch_to(A, 0, 0, 0);
        r.rewrite(A, 0, 0, 0).unwrap();
        r.switch_to(B, 7, 7, 20 * MS);
        assert_eq!(r.rewrite(B, 7, 7, 20 * MS), Some((1, 960)));
    }

    #[test]
    fn reordering_within_source_is_preserved() {
        let mut r = rw();
        r.switch_to(A, 10, 0, 0);
        assert_eq!(r.rewrite(A, 10, 0, 0).unwrap().0, 1000);
        assert_eq!(r.rewrite(A, 12, 3_000, MS).unwrap().0, 1002);
        assert_eq!(r.rewrite(A, 11, 0, 2 * MS).unwrap().0, 1001);
        assert_eq!(r.rewrite(A, 13, 3_000, 3 * MS).unwrap().0, 1003);
        // The late packet did not lower what was sent.
        assert_eq!(r.last_sent(), Some((1003, 53_000)));
    }

    #[test]
    fn gaps_are_preserved() {
        let mut r = rw();
        r.switch_to(A, 10, 0, 0);
        assert_eq!(r.rewrite(A, 10, 0, 0).unwrap().0, 1000);
        assert_eq!(r.rewrite(A, 11, 0, 0).unwrap().0, 1001);
        // 12 and 13 lost upstream.
        assert_eq!(r.rewrite(A, 14, 0, 0).unwrap().0, 1004);
        // 12 arrives later (upstream retransmission): fills its slot.
        assert_eq!(r.rewrite(A, 12, 0, 0).unwrap().0, 1002);
        assert_eq!(r.last_sent().unwrap().0, 1004);
    }

    #[test]
    fn duplicates_and_stale_packets_are_dropped() {
        let mut r = rw();
        r.switch_to(A, 0, 0, 0);
        assert!(r.rewrite(A, 0, 0, 0).is_some());
        assert!(r.rewrite(A, 1, 0, 0).is_some());
        assert_eq!(r.rewrite(A, 1, 0, 0), None, "duplicate");
        assert_eq!(
            r.rewrite(A, 0, 0, 0),
            None,
            "duplicate of the switch packet"
        );
        // Jump ahead by 600: packet 2 is now more than 512 behind.
        assert_eq!(r.rewrite(A, 601, 0, 0).unwrap().0, 1601);
        assert_eq!(r.rewrite(A, 2, 0, 0), None, "too old");
        // 100 behind and never seen: still forwarded, once.
        assert_eq!(r.rewrite(A, 501, 0, 0).unwrap().0, 1501);
        assert_eq!(r.rewrite(A, 501, 0, 0), None);
        // The window slot that 1 used (1 + 512 = 513) is free again.
        assert_eq!(r.rewrite(A, 513, 0, 0).unwrap().0, 1513);
    }

    #[test]
    fn big_jump_clears_the_duplicate_window() {
        let mut r = rw();
        r.switch_to(A, 0, 0, 0);
        for s in 0..100 {
            assert!(r.rewrite(A, s, 0, 0).is_some());
        }
        // Same slots modulo the window, further ahead: the slots freed as
        // the window slides must not look like duplicates.
        for s in 512..600 {
            assert!(r.rewrite(A, s, 0, 0).is_some(), "seq {s}");
        }
        // And after a jump of more than the whole window.
        for s in 2_000..2_100 {
            assert!(r.rewrite(A, s, 0, 0).is_some(), "seq {s}");
        }
        assert_eq!(r.rewrite(A, 2_050, 0, 0), None);
    }

    #[test]
    fn seq_wraparound_within_source() {
        let mut r = rw();
        r.switch_to(A, 65_533, 0, 0);
        let outs: Vec<u16> = [65_533u16, 65_534, 65_535, 0, 1, 2]
            .iter()
            .map(|&s| r.rewrite(A, s, 0, 0).unwrap().0)
            .collect();
        assert_eq!(outs, vec![1000, 1001, 1002, 1003, 1004, 1005]);
        // Reordered across the wrap: 65535 is a duplicate, and a packet from
        // before the switch (65532) is refused even though 65532 > 2.
        assert_eq!(r.rewrite(A, 65_535, 0, 0), None);
        assert_eq!(r.rewrite(A, 65_532, 0, 0), None);
    }

    #[test]
    fn seq_wraparound_late_packet_across_wrap() {
        let mut r = rw();
        r.switch_to(A, 65_534, 0, 0);
        assert_eq!(r.rewrite(A, 65_534, 0, 0).unwrap().0, 1000);
        assert_eq!(r.rewrite(A, 0, 0, 0).unwrap().0, 1002);
        assert_eq!(r.rewrite(A, 65_535, 0, 0).unwrap().0, 1001);
    }

    #[test]
    fn out_seq_wraps_across_sources() {
        let mut r = StreamRewriter::new(90_000).with_initial(65_534, 0);
        r.switch_to(A, 7, 0, 0);
        assert_eq!(r.rewrite(A, 7, 0, 0).unwrap().0, 65_534);
        assert_eq!(r.rewrite(A, 8, 0, 0).unwrap().0, 65_535);
        r.switch_to(B, 30_000, 0, 10 * MS);
        assert_eq!(r.rewrite(B, 30_000, 0, 10 * MS).unwrap().0, 0);
        assert_eq!(r.rewrite(B, 30_001, 0, 10 * MS).unwrap().0, 1);
        // A stream that has wrapped many times keeps counting.
        r.switch_to(A, 100, 0, 20 * MS);
        for i in 0..200_000u32 {
            let out = r
                .rewrite(A, 100u16.wrapping_add(i as u16), 0, 20 * MS)
                .unwrap()
                .0;
            assert_eq!(out, 2u16.wrapping_add(i as u16));
        }
        r.switch_to(B, 5, 0, 30 * MS);
        assert_eq!(
            r.rewrite(B, 5, 0, 30 * MS).unwrap().0,
            2u16.wrapping_add(200_000u32 as u16)
        );
    }

    #[test]
    fn switch_at_source_wrap_maps_keyframe_to_last_plus_one() {
        // The new source's keyframe is 65535 and it wraps right after.
        let mut r = rw();
        r.switch_to(A, 1, 0, 0);
        r.rewrite(A, 1, 0, 0).unwrap();
        r.switch_to(B, 65_535, 0, MS);
        assert_eq!(r.rewrite(B, 65_535, 0, MS).unwrap().0, 1001);
        assert_eq!(r.rewrite(B, 0, 0, MS).unwrap().0, 1002);
        assert_eq!(r.rewrite(B, 65_534, 0, MS), None, "before the switch point");
    }

    #[test]
    fn timestamp_wraparound() {
        let mut r = StreamRewriter::new(90_000).with_initial(0, u32::MAX - 1_000);
        r.switch_to(A, 0, 10, 0);
        assert_eq!(r.rewrite(A, 0, 10, 0).unwrap().1, u32::MAX - 1_000);
        // Within the source: wraps past 2^32.
        assert_eq!(r.rewrite(A, 1, 3_010, 33 * MS).unwrap().1, 1_999);
        assert_eq!(r.last_sent().unwrap().1, 1_999);
        // An older packet (lower ts, before the wrap) does not move the
        // highest timestamp back.
        assert_eq!(r.rewrite(A, 2, 10, 34 * MS), Some((2, u32::MAX - 1_000)));
        assert_eq!(r.last_sent(), Some((2, 1_999)));
        // Switch: the advance is applied to the highest timestamp.
        r.switch_to(B, 0, u32::MAX, 44 * MS);
        let (_, t) = r.rewrite(B, 0, u32::MAX, 44 * MS).unwrap();
        assert_eq!(t, 1_999 + 10 * 90);
        // B's own timestamps wrap too.
        assert_eq!(r.rewrite(B, 1, 2_999, 77 * MS).unwrap().1, t + 3_000);
    }

    #[test]
    fn switch_to_same_source_is_a_no_op_until_reset() {
        let mut r = rw();
        r.switch_to(A, 0, 0, 0);
        r.rewrite(A, 0, 0, 0).unwrap();
        r.rewrite(A, 1, 0, 0).unwrap();
        r.switch_to(A, 5, 9_000, 100 * MS);
        // Still the old mapping: 5 keeps its distance.
        assert_eq!(r.rewrite(A, 5, 9_000, 100 * MS), Some((1005, 59_000)));

        // Pause, then resume on the same layer: re-anchored, no gap.
        r.reset();
        assert_eq!(r.current_source(), None);
        assert_eq!(r.rewrite(A, 6, 9_000, 100 * MS), None);
        r.switch_to(A, 900, 90_000, 1_100 * MS);
        assert_eq!(
            r.rewrite(A, 900, 90_000, 1_100 * MS),
            Some((1006, 59_000 + 90_000))
        );
    }

    #[test]
    fn switching_back_and_forth() {
        let mut r = rw();
        let mut now = 0;
        let mut expected = 1000u16;
        let mut last_ts: Option<u32> = None;
        let mut seqs = [0u16, 20_000, 65_000];
        for round in 0..30 {
            let idx = round % 3;
            let src = [A, B, C][idx];
            r.switch_to(src, seqs[idx], 0, now);
            for _ in 0..5 {
                let (s, t) = r.rewrite(src, seqs[idx], 0, now).unwrap();
                assert_eq!(s, expected);
                if let Some(prev) = last_ts {
                    assert!(!ts_after(prev, t));
                }
                last_ts = Some(t);
                expected = expected.wrapping_add(1);
                seqs[idx] = seqs[idx].wrapping_add(1);
                now += 5 * MS;
            }
            // Other sources' packets are refused.
            let other = [A, B, C][(idx + 1) % 3];
            assert_eq!(r.rewrite(other, seqs[(idx + 1) % 3], 0, now), None);
        }
    }

    #[test]
    fn vp8_picture_id_continues_across_switch() {
        let mut r = rw();
        r.switch_to(A, 0, 0, 0);
        // Layer A's picture ids, passed through for the first source.
        assert_eq!(
            r.rewrite_vp8_ids(Some(500), true, Some(40)),
            (Some(500), Some(40))
        );
        assert_eq!(
            r.rewrite_vp8_ids(Some(500), true, Some(40)),
            (Some(500), Some(40))
        );
        assert_eq!(
            r.rewrite_vp8_ids(Some(501), true, Some(40)),
            (Some(501), Some(40))
        );
        assert_eq!(
            r.rewrite_vp8_ids(Some(502), true, Some(41)),
            (Some(502), Some(41))
        );
        // Switch to B whose ids are unrelated.
        r.switch_to(B, 0, 0, MS);
        assert_eq!(
            r.rewrite_vp8_ids(Some(20_000), true, Some(7)),
            (Some(503), Some(42))
        );
        assert_eq!(
            r.rewrite_vp8_ids(Some(20_001), true, Some(7)),
            (Some(504), Some(42))
        );
        // A gap in B's picture ids (dropped temporal layer) is kept.
        assert_eq!(
            r.rewrite_vp8_ids(Some(20_003), true, Some(8)),
            (Some(506), Some(43))
        );
        // A late packet of B's previous picture keeps its id.
        assert_eq!(
            r.rewrite_vp8_ids(Some(20_001), true, Some(7)),
            (Some(504), Some(42))
        );
    }

    #[test]
    fn vp8_picture_id_wraps_at_15_bits() {
        let mut r = rw();
        r.switch_to(A, 0, 0, 0);
        assert_eq!(r.rewrite_vp8_ids(Some(32_766), true, None).0, Some(32_766));
        assert_eq!(r.rewrite_vp8_ids(Some(32_767), true, None).0, Some(32_767));
        assert_eq!(r.rewrite_vp8_ids(Some(0), true, None).0, Some(0));
        assert_eq!(r.rewrite_vp8_ids(Some(1), true, None).0, Some(1));
        // Late packet from before the wrap.
        assert_eq!(r.rewrite_vp8_ids(Some(32_767), true, None).0, Some(32_767));
        // Switch: continues from 1 (the highest), not from 32767.
        r.switch_to(B, 0, 0, MS);
        assert_eq!(r.rewrite_vp8_ids(Some(32_767), true, None).0, Some(2));
        assert_eq!(r.rewrite_vp8_ids(Some(0), true, None).0, Some(3));

        // Output wraps at 2^15 when the source doesn't.
        let mut r = rw();
        r.switch_to(A, 0, 0, 0);
        r.rewrite_vp8_ids(Some(32_767), true, None);
        r.switch_to(B, 0, 0, MS);
        assert_eq!(r.rewrite_vp8_ids(Some(100), true, None).0, Some(0));
        assert_eq!(r.rewrite_vp8_ids(Some(101), true, None).0, Some(1));
    }

    #[test]
    fn vp8_picture_id_wraps_at_7_bits() {
        let mut r = rw();
        r.switch_to(A, 0, 0, 0);
        assert_eq!(r.rewrite_vp8_ids(Some(126), false, None).0, Some(126));
        assert_eq!(r.rewrite_vp8_ids(Some(127), false, None).0, Some(127));
        assert_eq!(r.rewrite_vp8_ids(Some(0), false, None).0, Some(0));
        r.switch_to(B, 0, 0, MS);
        assert_eq!(r.rewrite_vp8_ids(Some(60), false, None).0, Some(1));
        assert_eq!(r.rewrite_vp8_ids(Some(61), false, None).0, Some(2));
        // A 7-bit field never receives more than 7 bits.
        for i in 0..1_000u16 {
            let out = r
                .rewrite_vp8_ids(Some((62 + i) & 0x7F), false, None)
                .0
                .unwrap();
            assert!(out < 128);
            assert_eq!(out, (3 + i) & 0x7F);
        }
    }

    #[test]
    fn vp8_seven_bit_source_into_continuing_counter() {
        // A 15-bit layer followed by a 7-bit layer: the low 7 bits continue.
        let mut r = rw();
        r.switch_to(A, 0, 0, 0);
        r.rewrite_vp8_ids(Some(1_000), true, None);
        r.switch_to(B, 0, 0, MS);
        let out = r.rewrite_vp8_ids(Some(5), false, None).0.unwrap();
        assert_eq!(out, 1_001 & 0x7F);
    }

    #[test]
    fn tl0picidx_wraps_at_8_bits() {
        let mut r = rw();
        r.switch_to(A, 0, 0, 0);
        assert_eq!(r.rewrite_vp8_ids(None, true, Some(254)), (None, Some(254)));
        assert_eq!(r.rewrite_vp8_ids(None, true, Some(255)).1, Some(255));
        assert_eq!(r.rewrite_vp8_ids(None, true, Some(0)).1, Some(0));
        r.switch_to(B, 0, 0, MS);
        assert_eq!(r.rewrite_vp8_ids(None, true, Some(77)).1, Some(1));
        // Absent fields don't consume or disturb the counters.
        assert_eq!(r.rewrite_vp8_ids(None, true, None), (None, None));
        assert_eq!(r.rewrite_vp8_ids(None, true, Some(78)).1, Some(2));
    }

    #[test]
    fn vp8_payload_rewritten_in_place() {
        let mut r = rw();
        r.switch_to(A, 0, 0, 0);
        // Key frame start: X=1 S=1; I,L,T; PictureID 0x7FFF (15 bit); TL0 0xFF; TID 0 Y 1.
        let mut p = [0x90, 0xE0, 0xFF, 0xFF, 0xFF, 0x20, 0x50];
        assert!(r.rewrite_vp8_payload(&mut p));
        assert_eq!(p, [0x90, 0xE0, 0xFF, 0xFF, 0xFF, 0x20, 0x50]);
        r.switch_to(B, 0, 0, MS);
        let mut q = [0x90, 0xE0, 0x80, 0x10, 0x09, 0x20, 0x50];
        assert!(r.rewrite_vp8_payload(&mut q));
        let d = vp8::parse(&q).unwrap();
        assert_eq!(d.picture_id, Some(0));
        assert_eq!(d.tl0picidx, Some(0));
        assert_eq!(d.tid, Some(0));
        assert!(d.is_keyframe);
        // Malformed descriptor: refused, untouched.
        let mut bad = [0x80];
        assert!(!r.rewrite_vp8_payload(&mut bad));
        assert_eq!(bad, [0x80]);
    }

    #[test]
    fn unwrap_helper() {
        assert_eq!(unwrap(65_535, 0, 16), 65_536);
        assert_eq!(unwrap(65_536, 65_535, 16), 65_535);
        assert_eq!(unwrap(10, 10, 16), 10);
        assert_eq!(unwrap(127, 0, 7), 128);
        assert_eq!(unwrap(128, 127, 7), 127);
        assert_eq!(unwrap(-1, 0, 16), 0);
        assert_eq!(unwrap(0, 65_535, 16), -1);
    }

    #[test]
    fn random_traffic_keeps_invariants() {
        // Two sources with loss, reordering, duplicates and switches. Checks:
        // no outgoing sequence number is used twice, within a source the
        // outgoing distance equals the incoming distance, and each switch
        // continues at highest + 1.
        let mut state: u32 = 0x2468_ACE1;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let mut r = StreamRewriter::new(90_000).with_initial(65_000, 0);
        let mut used = std::collections::HashSet::new();
        let mut next_seq = [65_500u16, 10];
        let sources = [A, B];
        let mut now = 0u64;
        let mut active = 0usize;
        r.switch_to(A, next_seq[0], 0, now);
        let mut anchor: (u16, u16) = (next_seq[0], 65_000);
        let mut highest_out: Option<u16> = None;
        let (mut switches, mut accepted, mut refused_active) = (0, 0, 0);
        for _ in 0..50_000 {
            now += u64::from(rnd() % 3_000);
            let roll = rnd() % 100;
            if roll < 2 {
                // Switch to the other source at its next packet.
                active ^= 1;
                let first = next_seq[active];
                r.switch_to(sources[active], first, rnd(), now);
                let (s, _) = r.rewrite(sources[active], first, 0, now).unwrap();
                assert_eq!(
                    Some(s),
                    highest_out.map(|h| h.wrapping_add(1)).or(Some(65_000))
                );
                assert!(used.insert(s));
                highest_out = Some(s);
                anchor = (first, s);
                switches += 1;
                next_seq[active] = first.wrapping_add(1);
                continue;
            }
            // Both sources keep producing; only the active one is forwarded.
            for (i, src) in sources.iter().enumerate() {
                let seq = next_seq[i];
                next_seq[i] = seq.wrapping_add(1);
                if rnd() % 10 == 0 {
                    continue; // lost
                }
                // Sometimes deliver an older packet instead (reorder / dup).
                let deliver = if rnd() % 8 == 0 {
                    seq.wrapping_sub((rnd() % 20) as u16)
                } else {
                    seq
                };
                let res = r.rewrite(*src, deliver, 0, now);
                if i != active {
                    assert_eq!(res, None);
                    continue;
                }
                let dist = deliver.wrapping_sub(anchor.0) as i16;
                if dist < 0 {
                    assert_eq!(res, None, "before the switch point");
                    continue;
                }
                if res.is_none() {
                    refused_active += 1; // duplicates
                }
                if let Some((s, _)) = res {
                    accepted += 1;
                    assert_eq!(s.wrapping_sub(anchor.1), dist as u16);
                    // u16 outputs can repeat only after 65536 packets; the
                    // set is cleared well before that.
                    assert!(used.insert(s), "out seq {s} used twice");
                    if highest_out.is_none_or(|h| (s.wrapping_sub(h) as i16) > 0) {
                        highest_out = Some(s);
                    }
                }
            }
            if used.len() > 30_000 {
                used.clear();
            }
        }
        // The run exercised what it claims to.
        assert!(switches > 500, "{switches} switches");
        assert!(accepted > 30_000, "{accepted} accepted");
        assert!(refused_active > 500, "{refused_active} duplicates refused");
    }
}
