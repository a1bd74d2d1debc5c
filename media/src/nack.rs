//! Asking publishers again for packets that did not arrive (RFC 4585 generic
//! NACK), from the SFU's side.
//!
//! Each incoming video source has a [`NackTracker`]: a gap in its sequence
//! numbers records the missing packets; after a short wait for reordering
//! they are NACKed, again every retry interval, at most [`MAX_TRIES`] times,
//! and forgotten once they are too old to help. A packet that turns up
//! (late or retransmitted) is struck off.
//!
//! `rtc`'s own NACK generator retries without limit every 100 ms, so a
//! publisher whose retransmissions are rejected (a replayed SRTP index) is
//! asked for the same packets dozens of times: a retransmission storm that
//! eats the bandwidth its encoder needs. Hence this one.

/// Wait this long before a gap counts as loss rather than reordering.
pub const REORDER_WAIT_US: u64 = 10_000;
/// Ask again after this long (a generous loopback-to-WAN round trip).
pub const RETRY_US: u64 = 100_000;
/// Ask at most this many times per packet.
pub const MAX_TRIES: u8 = 3;
/// Remember at most this many missing packets; a bigger gap is a
/// discontinuity (encoder restart, long outage), not loss worth repairing.
pub const MAX_MISSING: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Missing {
    ext: i64,
    since_us: u64,
    last_nack_us: u64,
    tries: u8,
}

/// Missing packets of one incoming source.
#[derive(Debug, Default)]
pub struct NackTracker {
    highest: Option<i64>,
    missing: Vec<Missing>,
}

impl NackTracker {
    /// Records the arrival of `seq`.
    pub fn on_packet(&mut self, seq: u16, now_us: u64) {
        let Some(highest) = self.highest else {
            self.highest = Some(i64::from(seq));
            return;
        };
        let ext = highest + i64::from(seq.wrapping_sub(highest as u16) as i16);
        if ext > highest {
            let gap = (ext - highest - 1) as usize;
            if gap > MAX_MISSING {
                self.missing.clear();
            } else {
                for e in highest + 1..ext {
                    self.missing.push(Missing { ext: e, since_us: now_us, last_nack_us: 0, tries: 0 });
                }
                if self.missing.len() > MAX_MISSING {
                    let excess = self.missing.len() - MAX_MISSING;
                    self.missing.drain(..excess);
                }
            }
            self.highest = Some(ext);
        } else {
            self.missing.retain(|m| m.ext != ext);
        }
    }

    /// The sequence numbers to NACK now, oldest first; each counts as one try.
    pub fn due(&mut self, now_us: u64) -> Vec<u16> {
        let mut out = Vec::new();
        self.missing.retain_mut(|m| {
            let ready = if m.tries == 0 {
                now_us.saturating_sub(m.since_us) >= REORDER_WAIT_US
            } else {
                now_us.saturating_sub(m.last_nack_us) >= RETRY_US
            };
            if !ready {
                return true;
            }
            if m.tries >= MAX_TRIES {
                return false; // given up
            }
            m.tries += 1;
            m.last_nack_us = now_us;
            out.push(m.ext as u16);
            true
        });
        out
    }

    /// Packets currently missing.
    pub fn missing(&self) -> usize {
        self.missing.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000;

    #[test]
    fn a_gap_is_nacked_after_the_reorder_wait_and_retried_a_few_times() {
        let mut t = NackTracker::default();
        t.on_packet(100, 0);
        t.on_packet(103, 0); // 101 and 102 missing
        assert!(t.due(5 * MS).is_empty(), "could still be reordering");
        assert_eq!(t.due(10 * MS), vec![101, 102]);
        assert!(t.due(50 * MS).is_empty(), "not before the retry interval");
        assert_eq!(t.due(110 * MS), vec![101, 102]);
        t.on_packet(101, 120 * MS); // retransmission arrived
        assert_eq!(t.due(210 * MS), vec![102]);
        assert!(t.due(310 * MS).is_empty(), "three tries, then given up");
        assert_eq!(t.missing(), 0);
    }

    #[test]
    fn reordered_packets_are_never_nacked() {
        let mut t = NackTracker::default();
        t.on_packet(10, 0);
        t.on_packet(12, 0);
        t.on_packet(11, 2 * MS);
        assert!(t.due(20 * MS).is_empty());
    }

    #[test]
    fn works_across_the_sequence_number_wrap() {
        let mut t = NackTracker::default();
        t.on_packet(65_534, 0);
        t.on_packet(1, 0);
        assert_eq!(t.due(10 * MS), vec![65_535, 0]);
    }

    #[test]
    fn a_huge_jump_is_a_discontinuity_not_loss() {
        let mut t = NackTracker::default();
        t.on_packet(1, 0);
        t.on_packet(3, 0);
        t.on_packet(3 + MAX_MISSING as u16 + 10, 0);
        assert!(t.due(10 * MS).is_empty(), "earlier losses are dropped with the discontinuity");
    }
}
