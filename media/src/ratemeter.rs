//! A bitrate meter over a sliding one-second window, cheap enough to bump per packet.

/// Counts bytes and reports bits per second over roughly the last second.
#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    window_start_us: u64,
    bytes_in_window: u64,
    last_bps: u64,
}

impl RateMeter {
    /// Adds a packet of `bytes` seen at `now_us`.
    #[inline]
    pub fn add(&mut self, bytes: usize, now_us: u64) {
        self.roll(now_us);
        self.bytes_in_window += bytes as u64;
    }

    /// Bits per second measured over the last full window.
    pub fn bps(&mut self, now_us: u64) -> u64 {
        self.roll(now_us);
        self.last_bps
    }

    fn roll(&mut self, now_us: u64) {
        let elapsed = now_us.saturating_sub(self.window_start_us);
        if elapsed >= 1_000_000 {
            self.last_bps = if elapsed < 2_000_000 { self.bytes_in_window * 8 * 1_000_000 / elapsed } else { 0 };
            self.bytes_in_window = 0;
            self.window_start_us = now_us;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RateMeter;

    #[test]
    fn measures_one_second_windows() {
        let mut m = RateMeter::default();
        m.add(0, 0);
        for i in 0..100 {
            m.add(1250, i * 10_000); // 125 kB/s = 1 Mbit/s
        }
        assert_eq!(m.bps(1_000_000), 1_000_000);
        // A long silence reads as zero, not as the old rate.
        assert_eq!(m.bps(5_000_000), 0);
    }
}
