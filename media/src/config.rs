//! Media settings: where the UDP sockets bind and what the SFU announces.

use std::net::IpAddr;
use std::time::Duration;

/// An ICE server handed to clients (STUN or TURN).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IceServer {
    /// `stun:` or `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Settings of the media engine.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address the UDP sockets bind to.
    pub bind_ip: IpAddr,
    /// First UDP port; worker `i` listens on `media_port + i`. 0 picks free ports.
    pub media_port: u16,
    /// Addresses announced as ICE host candidates. Empty: derived from `bind_ip`
    /// (loopback when bound to loopback, else every local interface address).
    pub announce_ips: Vec<IpAddr>,
    /// Number of worker threads (event loops); 0 means one per core.
    pub workers: usize,
    /// ICE servers handed to clients.
    pub ice_servers: Vec<IceServer>,
    /// How long a viewer's outgoing queue from another worker may grow (packets).
    pub worker_queue: usize,
    /// How long a stream whose publisher left keeps its viewers, waiting for
    /// the publisher to come back (a network drop, an encoder restart). A
    /// publish of the same stream within it takes the viewers over without
    /// them renegotiating. Zero ends the stream as soon as its publisher goes.
    pub publisher_hold: Duration,
    /// Sessions (publishers and viewers, connected or not) the whole SFU
    /// holds at most; past it new offers get `503 capacity`.
    pub max_sessions: usize,
    /// Sessions one worker holds at most; 0: the total shared evenly, plus
    /// a quarter for uneven departures.
    pub max_sessions_per_worker: usize,
    /// Sessions one client network (an IPv4 address, an IPv6 /64) holds at
    /// most; past it its offers get `429 rate_limited`.
    pub max_sessions_per_network: usize,
    /// A session whose connection is not up this long after its offer is
    /// dropped (an offer costs a peer connection; one that never connects
    /// must not hold it).
    pub connect_timeout: Duration,
    /// Short-lived TURN credentials (the TURN REST API scheme), when the
    /// operator runs a TURN server that shares this secret.
    pub turn: Option<TurnAuth>,
}

/// The TURN REST API scheme (coturn's `use-auth-secret`): the user name is
/// `<expiry unix time>:<user>`, the password base64(HMAC-SHA1(secret, user name)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnAuth {
    /// The secret shared with the TURN server (`static-auth-secret`).
    pub secret: String,
    /// How long credentials stay valid.
    pub ttl: Duration,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::from([0, 0, 0, 0]),
            media_port: 8189,
            announce_ips: Vec::new(),
            workers: 0,
            ice_servers: Vec::new(),
            worker_queue: 4096,
            publisher_hold: Duration::ZERO,
            max_sessions: 10_000,
            max_sessions_per_worker: 0,
            max_sessions_per_network: 200,
            connect_timeout: Duration::from_secs(10),
            turn: None,
        }
    }
}

impl MediaConfig {
    /// The worker count after resolving "0 = one per core".
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers.min(64)
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(64)
        }
    }

    /// The per-worker session cap after resolving "0 = derived".
    pub fn worker_session_cap(&self) -> usize {
        if self.max_sessions_per_worker > 0 {
            return self.max_sessions_per_worker;
        }
        let even = self.max_sessions.div_ceil(self.worker_count());
        (even + even / 4).max(1)
    }
}
