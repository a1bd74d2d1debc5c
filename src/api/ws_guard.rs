//! What one client may do on `/api/ws`: open sockets per network and per
//! user, and messages per socket.
//!
//! - Sockets: at most `--ws-per-ip` open per client network (an IPv4
//!   address or an IPv6 /64, see [`Network`]) and `--ws-per-user` per
//!   logged-in user; past either, the upgrade (or the `auth` message) is
//!   refused with `429 too_many_connections`.
//! - Messages: every frame a socket sends takes a token from its bucket
//!   (`--ws-rate` a second, bursts of six seconds' worth: a directory page
//!   subscribes to its 48 live streams at once). A message with no token
//!   left is not handled: it is answered `rate_limited` with
//!   `retry_after_ms`, and costs the socket a strike; strikes come back at
//!   two a second, and a socket out of strikes is closed (1008). A flood
//!   thus costs the server a bounded amount of parsing and a close, and
//!   other sockets nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dashmap::DashMap;
use onair_signaling::ApiError;

use crate::client_addr::Network;
use crate::ratelimit::Bucket;

/// Strikes a socket may collect at once before it is closed.
const STRIKES: f64 = 20.0;
/// Strikes forgiven per second.
const STRIKES_PER_SEC: f64 = 2.0;
/// A burst is this many seconds of the sustained rate.
const BURST_SECONDS: f64 = 6.0;

/// The open sockets, counted per network and per user.
pub struct WsLimits {
    per_network: u32,
    per_user: u32,
    messages_per_sec: f64,
    networks: DashMap<Network, u32>,
    users: DashMap<i64, u32>,
    /// Sockets refused (per address or per user), since the start.
    pub refused_sockets: AtomicU64,
    /// Messages answered `rate_limited`, since the start.
    pub refused_messages: AtomicU64,
    /// Sockets closed for flooding, since the start.
    pub flood_closes: AtomicU64,
}

/// A counted socket of a network; uncounted when dropped.
pub struct NetworkSlot {
    limits: Arc<WsLimits>,
    network: Network,
}

/// A counted socket of a user; uncounted when dropped.
pub struct UserSlot {
    limits: Arc<WsLimits>,
    /// The user.
    pub user: i64,
}

fn too_many(what: &str) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_connections", format!("too many open connections {what}; close some first")).retry_after(5_000)
}

/// Counts one more in `map[key]` unless it is at `cap`.
fn take<K: std::hash::Hash + Eq>(map: &DashMap<K, u32>, key: K, cap: u32) -> bool {
    let mut n = map.entry(key).or_insert(0);
    if *n >= cap {
        return false;
    }
    *n += 1;
    true
}

fn give_back<K: std::hash::Hash + Eq + Copy>(map: &DashMap<K, u32>, key: K) {
    if let dashmap::Entry::Occupied(mut e) = map.entry(key) {
        *e.get_mut() -= 1;
        if *e.get() == 0 {
            e.remove();
        }
    }
}

impl WsLimits {
    /// Limits of these sizes.
    pub fn new(per_network: u32, per_user: u32, messages_per_sec: u32) -> Arc<WsLimits> {
        Arc::new(WsLimits {
            per_network,
            per_user,
            messages_per_sec: messages_per_sec as f64,
            networks: DashMap::new(),
            users: DashMap::new(),
            refused_sockets: AtomicU64::new(0),
            refused_messages: AtomicU64::new(0),
            flood_closes: AtomicU64::new(0),
        })
    }

    /// Counts a new socket of `network`, or refuses it.
    pub fn admit_network(self: &Arc<Self>, network: Network) -> Result<NetworkSlot, ApiError> {
        if take(&self.networks, network, self.per_network) {
            Ok(NetworkSlot { limits: self.clone(), network })
        } else {
            self.refused_sockets.fetch_add(1, Ordering::Relaxed);
            Err(too_many("from your address"))
        }
    }

    /// Counts a socket logged in as `user`, or refuses it.
    pub fn admit_user(self: &Arc<Self>, user: i64) -> Result<UserSlot, ApiError> {
        if take(&self.users, user, self.per_user) {
            Ok(UserSlot { limits: self.clone(), user })
        } else {
            self.refused_sockets.fetch_add(1, Ordering::Relaxed);
            Err(too_many("for this account"))
        }
    }

    /// A new socket's message budget.
    pub fn budget(&self, now: Instant) -> Budget {
        let burst = self.messages_per_sec * BURST_SECONDS;
        Budget { per_sec: self.messages_per_sec, burst, messages: Bucket::new(burst, now), strikes: Bucket::new(STRIKES, now) }
    }

    /// Open sockets of a network (for tests and metrics).
    pub fn open_from(&self, network: Network) -> u32 {
        self.networks.get(&network).map(|n| *n).unwrap_or(0)
    }
}

impl Drop for NetworkSlot {
    fn drop(&mut self) {
        give_back(&self.limits.networks, self.network);
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        give_back(&self.limits.users, self.user);
    }
}

/// What a message may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Handle,
    /// Refuse it (answer `rate_limited`): a token is there again after this.
    Refuse(Duration),
    /// Refuse it and close the socket: it kept flooding.
    Close,
}

/// One socket's message budget.
pub struct Budget {
    per_sec: f64,
    burst: f64,
    messages: Bucket,
    strikes: Bucket,
}

impl Budget {
    /// Counts a message that arrived at `now`.
    pub fn on_message(&mut self, now: Instant) -> Verdict {
        match self.messages.take(self.per_sec, self.burst, now) {
            Ok(()) => Verdict::Handle,
            Err(wait) => match self.strikes.take(STRIKES_PER_SEC, STRIKES, now) {
                Ok(()) => Verdict::Refuse(wait),
                Err(_) => Verdict::Close,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_counted_per_network_and_user_and_given_back() {
        let limits = WsLimits::new(2, 1, 10);
        let net = Network::of("192.0.2.1".parse().unwrap());
        let a = limits.admit_network(net).unwrap();
        let _b = limits.admit_network(net).unwrap();
        let e = limits.admit_network(net).err().unwrap();
        assert_eq!((e.status.as_u16(), e.code), (429, "too_many_connections"));
        assert!(limits.admit_network(Network::of("192.0.2.2".parse().unwrap())).is_ok(), "another address has its own count");
        drop(a);
        assert!(limits.admit_network(net).is_ok(), "a closed socket frees its place");
        let u = limits.admit_user(7).unwrap();
        assert!(limits.admit_user(7).is_err());
        drop(u);
        assert!(limits.admit_user(7).is_ok());
    }

    #[test]
    fn a_flood_is_refused_then_closed_and_a_steady_client_never() {
        let limits = WsLimits::new(1, 1, 10);
        let t0 = Instant::now();
        let mut flood = limits.budget(t0);
        let verdicts: Vec<Verdict> = (0..200).map(|_| flood.on_message(t0)).collect();
        assert!(verdicts[..60].iter().all(|v| *v == Verdict::Handle), "a burst of 60");
        assert!(matches!(verdicts[60], Verdict::Refuse(_)));
        assert_eq!(verdicts.iter().filter(|v| matches!(v, Verdict::Refuse(_))).count(), 20, "twenty strikes");
        assert_eq!(verdicts[80], Verdict::Close);
        // Ten messages a second for a minute: always handled.
        let mut steady = limits.budget(t0);
        for i in 0..600 {
            assert_eq!(steady.on_message(t0 + Duration::from_millis(100 * i)), Verdict::Handle);
        }
    }
}
