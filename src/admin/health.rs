//! The server's health over time, for the admin console: the same numbers
//! as `/metrics` (the SFU's counters, the WebSocket hub's) plus the
//! process's CPU and memory from `/proc`, sampled every few seconds for the
//! figures "now" and once a minute into a ring of the last 24 hours (kept in
//! memory: a restart starts the charts again).

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

/// How often the figures "now" are read.
pub const READ_EVERY: Duration = Duration::from_secs(5);
/// Samples kept: one a minute for a day.
pub const RING: usize = 24 * 60;
/// A sample goes into the ring this often.
pub const SAMPLE_EVERY_MS: i64 = 60_000;

/// The server's health at a moment.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema, PartialEq)]
pub struct Sample {
    /// When.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    /// Streams live.
    pub live_streams: u64,
    /// Real viewers (watch pages and WebRTC, never load tests).
    pub viewers: u64,
    /// Media sessions open (publishers and WebRTC viewers: `onair_publishers + onair_viewers`).
    pub media_sessions: u64,
    /// RTP packets forwarded to viewers per second (from `onair_forwarded_packets_total`).
    pub packets_per_second: f64,
    /// The process's CPU use, percent of one core (200 = two cores busy).
    pub cpu_percent: f64,
    /// Resident memory, bytes.
    pub memory_bytes: u64,
}

/// Raw counters read at a moment: what rates are computed from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// Unix ms.
    pub at: i64,
    /// CPU time used by the process so far, in clock ticks.
    pub cpu_ticks: u64,
    /// `onair_forwarded_packets_total`.
    pub forwarded_packets: u64,
}

/// Per second between two readings (0 when they are not apart).
pub fn rate(before: u64, after: u64, ms: i64) -> f64 {
    if ms <= 0 {
        return 0.0;
    }
    after.saturating_sub(before) as f64 * 1000.0 / ms as f64
}

/// CPU percent of one core between two readings.
pub fn cpu_percent(before: &Reading, after: &Reading, ticks_per_second: u64) -> f64 {
    if ticks_per_second == 0 {
        return 0.0;
    }
    rate(before.cpu_ticks, after.cpu_ticks, after.at - before.at) * 100.0 / ticks_per_second as f64
}

/// The ring of samples and the latest figures.
#[derive(Default)]
pub struct History {
    ring: Mutex<VecDeque<Sample>>,
    now: Mutex<Sample>,
    last: Mutex<Option<Reading>>,
}

impl History {
    /// Records the figures read at `sample.at` (with the counters of `reading`):
    /// they become "now", and go into the ring if the last sample there is a
    /// minute old.
    pub fn record(&self, reading: Reading, mut sample: Sample, ticks_per_second: u64) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(before) = *last {
            sample.cpu_percent = (cpu_percent(&before, &reading, ticks_per_second) * 10.0).round() / 10.0;
            sample.packets_per_second = (rate(before.forwarded_packets, reading.forwarded_packets, reading.at - before.at) * 10.0).round() / 10.0;
        }
        *last = Some(reading);
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = sample;
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.back().is_none_or(|s| sample.at - s.at >= SAMPLE_EVERY_MS) {
            if ring.len() == RING {
                ring.pop_front();
            }
            ring.push_back(sample);
        }
    }

    /// The latest figures.
    pub fn now(&self) -> Sample {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The samples of the last 24 hours before `now`, oldest first.
    pub fn day(&self, now: i64) -> Vec<Sample> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().filter(|s| now - s.at <= 24 * 3600 * 1000).copied().collect()
    }
}

/// CPU time (user + system, clock ticks) and resident memory (bytes) of
/// this process, from `/proc/self/stat` and `/proc/self/status`.
pub fn process_usage() -> (u64, u64) {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) in parentheses.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15: 12 and 13 after the name.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<u64>().ok()))
        .map(|kb| kb * 1024)
        .unwrap_or(0);
    (ticks, rss)
}

/// Clock ticks per second (for `/proc` CPU times).
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Reads the figures every [`READ_EVERY`] into `history` while `app` lives.
pub fn start(app: std::sync::Weak<crate::app::App>, history: Arc<History>) {
    let ticks = ticks_per_second();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(READ_EVERY);
        loop {
            tick.tick().await;
            let Some(app) = app.upgrade() else { return };
            let (reading, sample) = read(&app).await;
            history.record(reading, sample, ticks);
        }
    });
}

async fn read(app: &crate::app::App) -> (Reading, Sample) {
    let at = crate::clock::now_ms();
    let m = app.sfu.metrics();
    let (cpu_ticks, memory_bytes) = process_usage();
    let live: Option<(i64,)> = sqlx::query_as("SELECT COUNT(*) FROM streams WHERE state = 'live'").fetch_optional(&app.pool).await.ok().flatten();
    let reading = Reading { at, cpu_ticks, forwarded_packets: m.forwarded_packets.load(Relaxed) };
    let sample = Sample {
        at,
        live_streams: live.map(|l| l.0.max(0) as u64).unwrap_or(0),
        viewers: app.analytics.viewers_total(),
        media_sessions: m.publishers.load(Relaxed) + m.viewers.load(Relaxed),
        packets_per_second: 0.0,
        cpu_percent: 0.0,
        memory_bytes,
    };
    (reading, sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64) -> Sample {
        Sample { at, viewers: 3, ..Default::default() }
    }

    #[test]
    fn rates_between_readings() {
        let h = History::default();
        h.record(Reading { at: 0, cpu_ticks: 100, forwarded_packets: 1000 }, sample(0), 100);
        assert_eq!(h.now().cpu_percent, 0.0, "no rate from one reading");
        h.record(Reading { at: 5000, cpu_ticks: 150, forwarded_packets: 6000 }, sample(5000), 100);
        let now = h.now();
        assert_eq!(now.cpu_percent, 10.0, "50 ticks of 100/s over 5 s: a tenth of a core");
        assert_eq!(now.packets_per_second, 1000.0);
        assert_eq!(h.day(5000).len(), 1, "a minute between ring samples");
    }

    #[test]
    fn the_ring_keeps_a_day_of_minutes() {
        let h = History::default();
        let minute = SAMPLE_EVERY_MS;
        for i in 0..(RING as i64 + 10) {
            h.record(Reading { at: i * minute, ..Default::default() }, sample(i * minute), 100);
            h.record(Reading { at: i * minute + 5000, ..Default::default() }, sample(i * minute + 5000), 100);
        }
        let now = (RING as i64 + 9) * minute;
        let day = h.day(now);
        assert_eq!(day.len(), RING, "one per minute, the oldest dropped");
        assert_eq!(day.first().unwrap().at, 10 * minute);
        assert!(day.windows(2).all(|w| w[1].at - w[0].at == minute));
        assert_eq!(h.day(now + 12 * 3600 * 1000).len(), 12 * 60 + 1, "only the last 24 hours");
    }

    #[test]
    fn reads_this_process() {
        let (ticks, rss) = process_usage();
        assert!(rss > 1024 * 1024, "a test process has over a megabyte resident: {rss}");
        let _ = ticks;
        assert!(ticks_per_second() > 0);
    }
}
