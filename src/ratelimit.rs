//! Token buckets: per-user chat rates, and per-IP and per-user request
//! limits on auth and writes.

use std::hash::Hash;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// A token bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Full.
    pub fn new(burst: f64, now: Instant) -> Self {
        Bucket { tokens: burst, last: now }
    }

    /// Takes a token, or says how long until one is there.
    pub fn take(&mut self, per_sec: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * per_sec).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / per_sec))
        }
    }

    /// Full again by now: it can be forgotten.
    fn idle(&self, per_sec: f64, burst: f64, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * per_sec >= burst
    }
}

/// A rate: sustained per second, and burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained.
    pub per_sec: f64,
    /// At once.
    pub burst: f64,
}

impl Rate {
    /// `n` per minute, with a burst of `burst`.
    pub fn per_minute(n: f64, burst: f64) -> Rate {
        Rate { per_sec: n / 60.0, burst }
    }
}

/// One bucket per key.
pub struct Limiter<K: Eq + Hash> {
    rate: Rate,
    buckets: DashMap<K, Bucket>,
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    /// Every key at this rate.
    pub fn new(rate: Rate) -> Self {
        Limiter { rate, buckets: DashMap::new() }
    }

    /// Counts a request of `key`; `Err(wait)` when over the rate.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let Rate { per_sec, burst } = self.rate;
        self.buckets.entry(key.clone()).or_insert_with(|| Bucket::new(burst, now)).take(per_sec, burst, now)
    }

    /// Forgets keys whose buckets are full again (memory stays bounded by
    /// the clients active in the last minute or so).
    pub fn prune(&self) {
        let now = Instant::now();
        let Rate { per_sec, burst } = self.rate;
        self.buckets.retain(|_, b| !b.idle(per_sec, burst, now));
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// None remembered.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(2.0, t0);
        b.take(1.0, 2.0, t0).unwrap();
        b.take(1.0, 2.0, t0).unwrap();
        let wait = b.take(1.0, 2.0, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        b.take(1.0, 2.0, t0 + Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn limiter_keys_are_independent_and_pruned() {
        let l = Limiter::new(Rate { per_sec: 0.001, burst: 1.0 });
        l.check(&"a").unwrap();
        assert!(l.check(&"a").is_err());
        l.check(&"b").unwrap();
        assert_eq!(l.len(), 2);
        l.prune();
        assert_eq!(l.len(), 2, "empty buckets are kept");
        let fast = Limiter::new(Rate { per_sec: 1e9, burst: 1.0 });
        fast.check(&1).unwrap();
        std::thread::sleep(Duration::from_millis(1));
        fast.prune();
        assert!(fast.is_empty(), "full buckets are forgotten");
    }
}
