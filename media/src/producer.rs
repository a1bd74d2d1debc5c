//! A producer: one host's published tracks in a room, shared by every
//! worker: who publishes them, which workers have consumers of them, the
//! simulcast layers, codecs, packet cache, mutes and keyframe requests.
//!
//! Workers read it on every packet; only the publisher's worker writes most
//! of it (layer rates, the cache), so the fields are atomics or mutexes that
//! are never contended on the packet path.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use crate::cache::StreamCache;
use crate::layer::Layer;
use crate::negotiate::StreamCodecs;
use crate::session::SessionId;

/// Milliseconds on a process-wide monotonic clock (comparable across workers).
pub fn mono_ms() -> u64 {
    mono_ms_at(Instant::now())
}

/// [`mono_ms`] of an instant already taken.
pub fn mono_ms_at(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    at.saturating_duration_since(*EPOCH.get_or_init(Instant::now)).as_millis() as u64
}

/// Locks a mutex whose holder may have panicked. A panic while handling one
/// peer closes that peer only (see the worker); the data it left behind is
/// still usable (a cache, a codec set), so no other worker inherits the panic.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A publisher that has sent no media for this long loses its stream to a
/// new publish with the stream's key (an encoder reconnecting after a
/// network drop must not wait for the server to notice the old session died).
pub const STALE_PUBLISHER_MS: u64 = 3_000;

/// A producer's id: unique in the process, carried by every packet.
pub type ProducerId = u64;

/// One host's tracks, seen by every worker.
#[derive(Debug)]
pub struct Producer {
    /// Unique id (packets carry it).
    pub id: ProducerId,
    /// The room (stream) it publishes into.
    pub name: String,
    /// The host's name in the room ("" for the host of a stream published
    /// without one).
    pub host: String,
    /// The room's primary host: the room ends when this producer does.
    pub primary: bool,
    /// Muted by the room (the host, or the primary host): packets of that
    /// kind are dropped as they arrive, whatever the client sends.
    pub audio_muted: AtomicBool,
    /// See `audio_muted`.
    pub video_muted: AtomicBool,
    /// The publisher's session.
    pub publisher: SessionId,
    /// The publisher's worker.
    pub publisher_worker: usize,
    /// Bit `i` set: worker `i` has viewers of this stream.
    pub viewer_workers: AtomicU64,
    /// Bitrate each simulcast layer arrives at, measured by the publisher's worker.
    pub layer_bps: [AtomicU64; 3],
    /// Which layers have been seen at all (bit per layer).
    pub layers_seen: AtomicU64,
    /// Keyframes viewers are waiting for (bit per layer): set by any
    /// worker, taken by the publisher's worker at its next tick, so that
    /// however many viewers ask, one request per layer is queued.
    pub keyframes_wanted: AtomicU8,
    /// What the publisher negotiated; viewers get the same.
    pub codecs: Mutex<StreamCodecs>,
    /// Set when the stream is over (no viewer may join it any more).
    pub ended: AtomicBool,
    /// Set when the publisher's connection is gone but the stream is held
    /// for it (see `MediaConfig::publisher_hold`).
    pub publisher_gone: AtomicBool,
    /// When the publisher's last RTP packet arrived ([`mono_ms`]; the
    /// stream's creation until the first).
    pub media_at_ms: AtomicU64,
    /// Recent video packets (written by the publisher's worker only).
    pub cache: Mutex<StreamCache>,
    /// Recorders and relays fed at the fan-out point (see [`crate::sink`]).
    pub sinks: crate::sink::Sinks,

}

impl Producer {
    /// The primary (and only) host of room `name`, with no layers seen yet
    /// (also used by benchmarks and tests).
    pub fn new(id: u64, name: &str, publisher: SessionId, publisher_worker: usize) -> Self {
        Self::for_host(id, name, "", true, publisher, publisher_worker)
    }

    /// Host `host`'s producer in room `name`.
    pub fn for_host(id: u64, name: &str, host: &str, primary: bool, publisher: SessionId, publisher_worker: usize) -> Self {
        Producer {
            id,
            name: name.to_owned(),
            host: host.to_owned(),
            primary,
            audio_muted: AtomicBool::new(false),
            video_muted: AtomicBool::new(false),
            publisher,
            publisher_worker,
            viewer_workers: AtomicU64::new(0),
            layer_bps: Default::default(),
            layers_seen: AtomicU64::new(0),
            keyframes_wanted: AtomicU8::new(0),
            codecs: Mutex::new(StreamCodecs::default()),
            ended: AtomicBool::new(false),
            publisher_gone: AtomicBool::new(false),
            media_at_ms: AtomicU64::new(mono_ms()),
            cache: Mutex::new(StreamCache::default()),
            sinks: Default::default(),
        }
    }

    /// The highest layer the publisher sends, at most `ceiling`.
    pub fn best_layer_up_to(&self, ceiling: Layer) -> Option<Layer> {
        let seen = self.layers_seen.load(Ordering::Relaxed);
        Layer::ALL.iter().rev().copied().find(|l| *l <= ceiling && seen & (1 << l.index()) != 0)
    }

    /// The lowest layer the publisher sends.
    pub fn lowest_layer(&self) -> Option<Layer> {
        let seen = self.layers_seen.load(Ordering::Relaxed);
        Layer::ALL.iter().copied().find(|l| seen & (1 << l.index()) != 0)
    }

    /// The layers the publisher sends, low to high, with their bitrate and,
    /// where the codec says it in its keyframes (VP8, H.264), their size.
    pub fn layers(&self) -> Vec<crate::health::LayerInfo> {
        let seen = self.layers_seen.load(Ordering::Relaxed);
        let cache = lock(&self.cache);
        Layer::ALL
            .iter()
            .filter(|l| seen & (1 << l.index()) != 0)
            .map(|&layer| {
                let size = cache.keyframe_size(layer);
                crate::health::LayerInfo { layer, width: size.map(|s| s.0), height: size.map(|s| s.1), bitrate_bps: self.layer_bps[layer.index()].load(Ordering::Relaxed) }
            })
            .collect()
    }

    /// Whether packets of `kind` are muted (dropped at ingest).
    pub fn muted(&self, kind: crate::packet::Kind) -> bool {
        match kind {
            crate::packet::Kind::Audio => self.audio_muted.load(Ordering::Relaxed),
            crate::packet::Kind::Video => self.video_muted.load(Ordering::Relaxed),
        }
    }

    /// Asks the publisher's worker for a keyframe of `layer` (merged with
    /// every other request for it until that worker's next tick).
    pub fn request_keyframe(&self, layer: Layer) {
        self.keyframes_wanted.fetch_or(1 << layer.index(), Ordering::Relaxed);
    }

    /// Takes the layers whose keyframes are wanted (the publisher's worker).
    pub fn take_wanted_keyframes(&self) -> u8 {
        if self.keyframes_wanted.load(Ordering::Relaxed) == 0 {
            return 0; // the common case: no write to a shared cache line
        }
        self.keyframes_wanted.swap(0, Ordering::Relaxed)
    }

    /// Whether the stream is over.
    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}
