//! Process-wide media counters, read by `/metrics` and the health API.
//!
//! Plain relaxed atomics: they are bumped on the hot path, so they must cost
//! no more than an uncontended add.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of the whole SFU.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Publisher sessions open now.
    pub publishers: AtomicU64,
    /// Viewer sessions open now.
    pub viewers: AtomicU64,
    /// Sessions ever opened.
    pub sessions_opened: AtomicU64,
    /// Sessions ever closed.
    pub sessions_closed: AtomicU64,
    /// RTP packets received from publishers.
    pub received_packets: AtomicU64,
    /// RTP payload bytes received from publishers.
    pub received_bytes: AtomicU64,
    /// RTP packets sent to viewers.
    pub forwarded_packets: AtomicU64,
    /// RTP payload bytes sent to viewers.
    pub forwarded_bytes: AtomicU64,
    /// Keyframe requests (PLI/FIR) received from viewers.
    pub keyframe_requests: AtomicU64,
    /// PLIs actually sent to publishers after aggregation.
    pub plis_sent: AtomicU64,
    /// Packets NACKed toward publishers.
    pub nacks_sent: AtomicU64,
    /// NACKs received from viewers.
    pub nacks_received: AtomicU64,
    /// Packets sent again from the SFU's cache in answer to NACKs.
    pub retransmitted_packets: AtomicU64,
    /// Viewers whose first frame came from the keyframe cache.
    pub first_frames_from_cache: AtomicU64,
    /// Simulcast layer switches completed.
    pub layer_switches: AtomicU64,
    /// UDP datagrams handed to the kernel.
    pub udp_datagrams_sent: AtomicU64,
    /// System calls that sent them (fewer than datagrams thanks to GSO).
    pub udp_send_calls: AtomicU64,
    /// Datagrams the kernel refused (full socket buffer).
    pub udp_send_drops: AtomicU64,
    /// Packets dropped because a worker's queue was full.
    pub queue_drops: AtomicU64,
    /// Datagrams that matched no session.
    pub unknown_datagrams: AtomicU64,
    /// Keyframe requests from viewers ignored: over the viewer's budget.
    pub keyframe_requests_ignored: AtomicU64,
    /// STUN checks refused: a bad MESSAGE-INTEGRITY, or a replay from another address.
    pub stun_checks_refused: AtomicU64,
    /// Offers refused: the SFU, a worker or a client network was at its cap.
    pub sessions_refused: AtomicU64,
    /// Sessions dropped because their connection never came up in time.
    pub sessions_timed_out: AtomicU64,
    /// Panics while handling one peer (that peer was closed, the worker went on).
    pub peer_panics: AtomicU64,
    /// Workers restarted after a panic outside any one peer's handling.
    pub worker_restarts: AtomicU64,
}

impl Metrics {
    /// Adds `n` to a counter.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Subtracts one, saturating at zero.
    #[inline]
    pub fn dec(counter: &AtomicU64) {
        let _ = counter.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
    }

    /// Prometheus text exposition of every counter.
    pub fn prometheus(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 26] = [
            ("onair_publishers", "gauge", "Publisher sessions open now", &self.publishers),
            ("onair_viewers", "gauge", "Viewer sessions open now", &self.viewers),
            ("onair_sessions_opened_total", "counter", "Media sessions opened", &self.sessions_opened),
            ("onair_sessions_closed_total", "counter", "Media sessions closed", &self.sessions_closed),
            ("onair_received_packets_total", "counter", "RTP packets received from publishers", &self.received_packets),
            ("onair_received_bytes_total", "counter", "RTP payload bytes received from publishers", &self.received_bytes),
            ("onair_forwarded_packets_total", "counter", "RTP packets forwarded to viewers", &self.forwarded_packets),
            ("onair_forwarded_bytes_total", "counter", "RTP payload bytes forwarded to viewers", &self.forwarded_bytes),
            ("onair_keyframe_requests_total", "counter", "PLI/FIR received from viewers", &self.keyframe_requests),
            ("onair_plis_sent_total", "counter", "PLIs sent to publishers after aggregation", &self.plis_sent),
            ("onair_nacks_sent_total", "counter", "Packets NACKed toward publishers", &self.nacks_sent),
            ("onair_nacks_received_total", "counter", "NACKs received from viewers", &self.nacks_received),
            ("onair_retransmitted_packets_total", "counter", "Packets resent from the SFU cache", &self.retransmitted_packets),
            ("onair_first_frames_from_cache_total", "counter", "Viewers started from the keyframe cache", &self.first_frames_from_cache),
            ("onair_layer_switches_total", "counter", "Simulcast layer switches", &self.layer_switches),
            ("onair_udp_datagrams_sent_total", "counter", "UDP datagrams sent", &self.udp_datagrams_sent),
            ("onair_udp_send_calls_total", "counter", "System calls that sent them (GSO batches several)", &self.udp_send_calls),
            ("onair_udp_send_drops_total", "counter", "Datagrams the kernel refused", &self.udp_send_drops),
            ("onair_queue_drops_total", "counter", "Packets dropped on a full worker queue", &self.queue_drops),
            ("onair_unknown_datagrams_total", "counter", "UDP datagrams matching no session", &self.unknown_datagrams),
            ("onair_keyframe_requests_ignored_total", "counter", "Viewer PLI/FIR over the per-viewer budget", &self.keyframe_requests_ignored),
            ("onair_stun_checks_refused_total", "counter", "STUN checks refused: bad MESSAGE-INTEGRITY or replayed", &self.stun_checks_refused),
            ("onair_sessions_refused_total", "counter", "Offers refused at a session cap", &self.sessions_refused),
            ("onair_sessions_timed_out_total", "counter", "Sessions dropped for never connecting", &self.sessions_timed_out),
            ("onair_peer_panics_total", "counter", "Panics while handling one peer (that peer closed)", &self.peer_panics),
            ("onair_worker_restarts_total", "counter", "Media workers restarted after a panic", &self.worker_restarts),
        ];
        let mut out = String::with_capacity(2048);
        for (name, kind, help, v) in rows {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n", v.load(Relaxed)));
        }
        out
    }
}
