//! One continuous outgoing stream from several incoming ones.
//!
//! A viewer receives one simulcast layer at a time, but each layer has its
//! own SSRC, sequence numbers, timestamps and VP8 picture ids. When the SFU
//! switches layers (always at a keyframe), the viewer's decoder must see the
//! numbers simply carry on: sequence +1, timestamp advanced by the wall-clock
//! time since the last packet, picture id +1. Within one source, gaps and
//! reordering are kept as they are, so the viewer's NACKs still mean
//! something.

/// Rewrites (seq, timestamp, VP8 ids) of one outgoing track.
#[derive(Debug, Clone)]
pub struct StreamRewriter {
    clock_rate: u32,
    source: Option<u32>,
    /// Packets of the current source older than this were before the switch.
    first_seq: u16,
    seq_offset: u16,
    ts_offset: u32,
    /// Highest (seq, ts) sent, and when.
    last: Option<(u16, u32, u64)>,
    pid_offset: u16,
    tl0_offset: u8,
    /// Highest (picture id, tl0) sent.
    last_vp8: Option<(u16, u8)>,
}

/// True when `a` comes after `b` in 16-bit serial number arithmetic.
fn seq_after(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

impl StreamRewriter {
    /// A rewriter for a codec with this RTP clock rate.
    pub fn new(clock_rate: u32) -> Self {
        StreamRewriter {
            clock_rate: clock_rate.max(1),
            source: None,
            first_seq: 0,
            seq_offset: 0,
            ts_offset: 0,
            last: None,
            pid_offset: 0,
            tl0_offset: 0,
            last_vp8: None,
        }
    }

    /// The current source SSRC.
    pub fn source(&self) -> Option<u32> {
        self.source
    }

    /// The highest (seq, ts) sent so far.
    pub fn last_sent(&self) -> Option<(u16, u32)> {
        self.last.map(|(s, t, _)| (s, t))
    }

    /// Starts forwarding `source` from the packet (`first_seq`, `first_ts`),
    /// which must be a keyframe start for video.
    pub fn switch_to(&mut self, source: u32, first_seq: u16, first_ts: u32, now_us: u64) {
        match self.last {
            // First source: keep its numbers (they are already random).
            None => {
                self.seq_offset = 0;
                self.ts_offset = 0;
            }
            Some((seq, ts, at)) => {
                self.seq_offset = seq.wrapping_add(1).wrapping_sub(first_seq);
                let elapsed = now_us.saturating_sub(at) as u128 * u128::from(self.clock_rate) / 1_000_000;
                let advance = (elapsed.min(u32::MAX as u128) as u32).max(1);
                self.ts_offset = ts.wrapping_add(advance).wrapping_sub(first_ts);
            }
        }
        self.source = Some(source);
        self.first_seq = first_seq;
    }

    /// Aligns VP8 picture ids at a switch (call after `switch_to`, with the
    /// keyframe's picture id and TL0PICIDX).
    pub fn switch_vp8(&mut self, first_picture_id: u16, first_tl0: u8) {
        match self.last_vp8 {
            None => {
                self.pid_offset = 0;
                self.tl0_offset = 0;
            }
            Some((pid, tl0)) => {
                self.pid_offset = pid.wrapping_add(1).wrapping_sub(first_picture_id) & 0x7fff;
                self.tl0_offset = tl0.wrapping_add(1).wrapping_sub(first_tl0);
            }
        }
    }

    /// The outgoing (seq, ts) of a packet, or `None` when it must not be sent
    /// (another source, or from before the switch point).
    pub fn rewrite(&mut self, source: u32, seq: u16, ts: u32, now_us: u64) -> Option<(u16, u32)> {
        if self.source != Some(source) {
            return None;
        }
        if seq != self.first_seq && !seq_after(seq, self.first_seq) {
            return None;
        }
        let out = (seq.wrapping_add(self.seq_offset), ts.wrapping_add(self.ts_offset));
        match self.last {
            Some((s, _, _)) if !seq_after(out.0, s) => {}
            _ => self.last = Some((out.0, out.1, now_us)),
        }
        Some(out)
    }

    /// The outgoing VP8 picture id (same width as incoming) and TL0PICIDX.
    pub fn rewrite_vp8_ids(&mut self, picture_id: u16, fifteen_bit: bool, tl0: u8) -> (u16, u8) {
        let mask = if fifteen_bit { 0x7fff } else { 0x7f };
        let pid = picture_id.wrapping_add(self.pid_offset) & mask;
        let tl0 = tl0.wrapping_add(self.tl0_offset);
        let full = picture_id.wrapping_add(self.pid_offset) & 0x7fff;
        match self.last_vp8 {
            Some((p, _)) if full != p && full.wrapping_sub(p) & 0x7fff >= 0x4000 => {}
            _ => self.last_vp8 = Some((full, tl0)),
        }
        (pid, tl0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_source_keeps_its_numbers() {
        let mut r = StreamRewriter::new(90_000);
        r.switch_to(1, 100, 5000, 0);
        assert_eq!(r.rewrite(1, 100, 5000, 0), Some((100, 5000)));
        assert_eq!(r.rewrite(1, 101, 8000, 33_000), Some((101, 8000)));
        assert_eq!(r.rewrite(2, 7, 1, 33_000), None, "other source");
    }

    #[test]
    fn switch_continues_sequence_and_time() {
        let mut r = StreamRewriter::new(90_000);
        r.switch_to(1, 100, 5000, 0);
        r.rewrite(1, 100, 5000, 0);
        r.rewrite(1, 101, 8000, 33_000);
        // 100 ms later, layer 2 starts at unrelated numbers.
        r.switch_to(2, 40_000, 1_000_000, 133_000);
        let (s, t) = r.rewrite(2, 40_000, 1_000_000, 133_000).unwrap();
        assert_eq!(s, 102);
        assert_eq!(t, 8000 + 9000, "100 ms at 90 kHz");
        assert_eq!(r.rewrite(2, 40_001, 1_003_000, 166_000), Some((103, 20_000)));
        // The old source is cut off.
        assert_eq!(r.rewrite(1, 102, 11_000, 166_000), None);
        // Packets of the new source from before the switch point are dropped.
        assert_eq!(r.rewrite(2, 39_999, 997_000, 170_000), None);
    }

    #[test]
    fn gaps_and_reordering_are_kept() {
        let mut r = StreamRewriter::new(48_000);
        r.switch_to(9, 10, 0, 0);
        assert_eq!(r.rewrite(9, 10, 0, 0).unwrap().0, 10);
        assert_eq!(r.rewrite(9, 12, 1920, 0).unwrap().0, 12, "gap stays a gap");
        assert_eq!(r.rewrite(9, 11, 960, 0).unwrap().0, 11, "late packet keeps its place");
        assert_eq!(r.last_sent(), Some((12, 1920)), "highest stays highest");
    }

    #[test]
    fn wraparound() {
        let mut r = StreamRewriter::new(90_000);
        r.switch_to(1, 65_534, u32::MAX - 1000, 0);
        assert_eq!(r.rewrite(1, 65_534, u32::MAX - 1000, 0).unwrap().0, 65_534);
        assert_eq!(r.rewrite(1, 65_535, u32::MAX, 0).unwrap().0, 65_535);
        assert_eq!(r.rewrite(1, 0, 1999, 33_000), Some((0, 1999)), "seq and ts wrap");
        r.switch_to(2, 500, 10, 66_000);
        assert_eq!(r.rewrite(2, 500, 10, 66_000).unwrap().0, 1, "continues after the wrap");
        // Switch where the new source's numbers wrap right after the switch.
        r.switch_to(3, 65_535, 0, 100_000);
        assert_eq!(r.rewrite(3, 65_535, 0, 100_000).unwrap().0, 2);
        assert_eq!(r.rewrite(3, 0, 3000, 133_000).unwrap().0, 3);
    }

    #[test]
    fn vp8_picture_ids_continue_and_wrap() {
        let mut r = StreamRewriter::new(90_000);
        r.switch_vp8(32_766, 250);
        assert_eq!(r.rewrite_vp8_ids(32_766, true, 250), (32_766, 250));
        assert_eq!(r.rewrite_vp8_ids(32_767, true, 251), (32_767, 251));
        r.switch_vp8(5, 17);
        assert_eq!(r.rewrite_vp8_ids(5, true, 17), (0, 252), "15-bit wrap");
        assert_eq!(r.rewrite_vp8_ids(6, true, 18), (1, 253));
        // 7-bit ids wrap at 128.
        let mut r = StreamRewriter::new(90_000);
        r.switch_vp8(126, 0);
        r.rewrite_vp8_ids(126, false, 0);
        r.rewrite_vp8_ids(127, false, 1);
        r.switch_vp8(40, 9);
        assert_eq!(r.rewrite_vp8_ids(40, false, 9).0, 0);
    }
}
