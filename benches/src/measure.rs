//! What the harness measures with: the server process's CPU time and memory
//! (from `/proc`), latency percentiles, and the table of send times that
//! lets a viewer tell how long the server held each packet.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// CPU time and memory of one process, from `/proc/PID/stat` and `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Resident set size now.
    pub rss_bytes: u64,
    /// Peak resident set size so far (VmHWM).
    pub peak_rss_bytes: u64,
}

impl ProcSample {
    /// Reads the process `pid` now.
    pub fn read(pid: u32) -> Result<ProcSample, String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
        // The command name (field 2) may hold spaces; fields after its ')' are fixed.
        let after = stat.rsplit_once(')').map(|(_, r)| r).ok_or("malformed /proc stat")?;
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).ok_or("malformed /proc stat");
        let total = ticks(11)? + ticks(12)?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
        let kib = |name: &str| {
            status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).unwrap_or(0) * 1024
        };
        Ok(ProcSample { cpu: Duration::from_micros(total * 1_000_000 / hz), rss_bytes: kib("VmRSS:"), peak_rss_bytes: kib("VmHWM:") })
    }
}

/// Percentiles of a set of samples.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub count: u64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (sorted in place); `None` when empty.
    pub fn of(samples: &mut [f64]) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
        Some(Percentiles { p50: at(0.50), p95: at(0.95), p99: at(0.99), max: samples[samples.len() - 1], count: samples.len() as u64 })
    }
}

/// A latency histogram in 10 µs buckets up to 1 s, shared by all viewers
/// without locks (one relaxed add per sample); later samples go in the last
/// bucket.
pub struct LatencyHistogram {
    buckets: Vec<AtomicU64>,
}

const BUCKET_US: u64 = 10;
const BUCKETS: usize = 100_000;

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl LatencyHistogram {
    pub fn record(&self, latency: Duration) {
        let i = ((latency.as_micros() as u64) / BUCKET_US).min(BUCKETS as u64 - 1) as usize;
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Clears every bucket (start of a measurement window).
    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
    }

    /// Percentiles in milliseconds (bucket upper bounds); `None` when empty.
    pub fn percentiles_ms(&self) -> Option<Percentiles> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let at = |q: f64| {
            let rank = ((q * total as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return ((i as u64 + 1) * BUCKET_US) as f64 / 1000.0;
                }
            }
            (BUCKETS as u64 * BUCKET_US) as f64 / 1000.0
        };
        Some(Percentiles { p50: at(0.50), p95: at(0.95), p99: at(0.99), max: at(1.0), count: total })
    }
}

/// When each RTP payload left the publisher, so a viewer can compute the
/// time the server added. Keyed by the payload's length and last 16 bytes:
/// servers rewrite headers and the VP8 descriptor at the front, never the
/// end of the payload, so this works against any SFU without a header
/// extension it might strip. A fixed table of atomics, newest entry wins:
/// the publisher writes, hundreds of viewers read, nobody locks.
pub struct SendTimes {
    epoch: Instant,
    slots: Vec<(AtomicU64, AtomicU64)>,
}

const SLOTS: usize = 1 << 16;

impl SendTimes {
    pub fn new(epoch: Instant) -> SendTimes {
        SendTimes { epoch, slots: (0..SLOTS).map(|_| (AtomicU64::new(0), AtomicU64::new(0))).collect() }
    }

    /// The key of a payload (0 for payloads too short to tell apart).
    pub fn key(payload: &[u8]) -> u64 {
        if payload.len() < 16 {
            return 0;
        }
        let n = payload.len();
        // FNV-1a over length and tail: cheap, and well spread for compressed data.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ n as u64;
        for &b in &payload[n - 16..] {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        h.max(1)
    }

    /// Records that `payload` was sent at `at`.
    pub fn sent(&self, payload: &[u8], at: Instant) {
        let key = Self::key(payload);
        if key == 0 {
            return;
        }
        let slot = &self.slots[(key as usize) & (SLOTS - 1)];
        let us = at.saturating_duration_since(self.epoch).as_micros() as u64;
        // Key 0 while the time is written, so a reader never pairs a new key with an old time.
        slot.0.store(0, Ordering::Release);
        slot.1.store(us, Ordering::Release);
        slot.0.store(key, Ordering::Release);
    }

    /// When `payload` was sent, if it is known.
    pub fn lookup(&self, payload: &[u8]) -> Option<Instant> {
        let key = Self::key(payload);
        if key == 0 {
            return None;
        }
        let slot = &self.slots[(key as usize) & (SLOTS - 1)];
        if slot.0.load(Ordering::Acquire) != key {
            return None;
        }
        let us = slot.1.load(Ordering::Acquire);
        if slot.0.load(Ordering::Acquire) != key {
            return None;
        }
        Some(self.epoch + Duration::from_micros(us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(|i| i as f64).collect();
        let p = Percentiles::of(&mut v).unwrap();
        assert_eq!((p.p50, p.p95, p.p99, p.max, p.count), (50.0, 95.0, 99.0, 100.0, 100));
        assert!(Percentiles::of(&mut []).is_none());
    }

    #[test]
    fn histogram_percentiles_land_in_the_right_buckets() {
        let h = LatencyHistogram::default();
        for _ in 0..98 {
            h.record(Duration::from_micros(1_234));
        }
        h.record(Duration::from_millis(7));
        h.record(Duration::from_secs(5));
        let p = h.percentiles_ms().unwrap();
        assert_eq!(p.p50, 1.24);
        assert_eq!(p.p99, 7.01);
        assert_eq!(p.max, 1000.0, "beyond the range goes in the last bucket");
        h.reset();
        assert!(h.percentiles_ms().is_none());
    }

    #[test]
    fn send_times_find_a_payload_whose_front_was_rewritten() {
        let epoch = Instant::now();
        let t = SendTimes::new(epoch);
        let mut p: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
        let at = epoch + Duration::from_millis(12);
        t.sent(&p, at);
        p[0] ^= 0xff; // a descriptor rewrite
        p[2] ^= 0x55;
        assert_eq!(t.lookup(&p), Some(at));
        let last = p.len() - 1;
        p[last] ^= 1;
        assert_eq!(t.lookup(&p), None);
        assert_eq!(t.lookup(&[1, 2, 3]), None, "too short to key");
    }

    #[test]
    fn reads_this_process() {
        let s = ProcSample::read(std::process::id()).unwrap();
        assert!(s.rss_bytes > 0 && s.peak_rss_bytes >= s.rss_bytes);
    }
}
