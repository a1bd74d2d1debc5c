//! The SFU's public handle: the control plane.
//!
//! [`Sfu`] owns the workers and the registry of live streams. Signaling calls
//! it (`publish`, `play`, `close`, ...); each call picks a worker and sends it
//! a command. Media never passes through here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use dashmap::DashMap;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::info;

use crate::cache::StreamCache;
use crate::config::MediaConfig;
use crate::error::SfuError;
use crate::layer::{Layer, LayerCap};
use crate::metrics::Metrics;
use crate::negotiate::StreamCodecs;
use crate::worker::{self, Command, WorkerHandle};

/// A media session (one peer connection), unique for the process's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for SessionId {
    type Err = SfuError;
    fn from_str(s: &str) -> Result<Self, SfuError> {
        if s.len() != 16 {
            return Err(SfuError::SessionNotFound);
        }
        u64::from_str_radix(s, 16).map(SessionId).map_err(|_| SfuError::SessionNotFound)
    }
}

/// Publisher or viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sends media in (WHIP).
    Publisher,
    /// Receives media (WHEP).
    Viewer,
}

/// Something that happened, for the platform around the SFU.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SfuEvent {
    /// A publisher's connection is up: the stream is live.
    StreamLive { stream: String },
    /// The publisher's connection went away. With a publisher hold the
    /// stream waits for it (its viewers stay); without one `StreamEnded` follows.
    PublisherLeft { stream: String },
    /// The stream ended (its publisher left and did not come back within the
    /// hold, or the platform ended it): its viewers were closed.
    StreamEnded { stream: String },
    /// A viewer's connection is up.
    ViewerJoined { stream: String, session: String },
    /// A viewer left.
    ViewerLeft { stream: String, session: String },
    /// A session of either role closed, whether or not it ever connected
    /// (bookkeeping keyed by session can let go of it).
    SessionClosed { stream: String, session: String },
    /// A publisher started or stopped speaking (from its RFC 6464 audio levels).
    Speaking { stream: String, session: String, speaking: bool },
    /// The loudest publisher of the stream changed (co-host rooms highlight it).
    ActiveSpeaker { stream: String, session: String },
    /// A viewer now receives another simulcast layer (at the keyframe it
    /// switched on): what its player decodes from here on.
    LayerChanged { stream: String, session: String, layer: Layer },
}

impl SfuEvent {
    /// The stream the event is about.
    pub fn stream(&self) -> &str {
        match self {
            SfuEvent::StreamLive { stream }
            | SfuEvent::PublisherLeft { stream }
            | SfuEvent::StreamEnded { stream }
            | SfuEvent::ViewerJoined { stream, .. }
            | SfuEvent::ViewerLeft { stream, .. }
            | SfuEvent::SessionClosed { stream, .. }
            | SfuEvent::Speaking { stream, .. }
            | SfuEvent::ActiveSpeaker { stream, .. }
            | SfuEvent::LayerChanged { stream, .. } => stream,
        }
    }
}

/// Milliseconds on a process-wide monotonic clock (comparable across workers).
pub fn mono_ms() -> u64 {
    mono_ms_at(Instant::now())
}

/// [`mono_ms`] of an instant already taken.
pub fn mono_ms_at(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    at.saturating_duration_since(*EPOCH.get_or_init(Instant::now)).as_millis() as u64
}

/// A publisher that has sent no media for this long loses its stream to a
/// new publish with the stream's key (an encoder reconnecting after a
/// network drop must not wait for the server to notice the old session died).
pub const STALE_PUBLISHER_MS: u64 = 3_000;

/// Shared state of one live stream, seen by every worker.
#[derive(Debug)]
pub struct StreamShared {
    /// Unique id (packets carry it).
    pub id: u64,
    /// Stream name.
    pub name: String,
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
}

impl StreamShared {
    /// A stream with no layers seen yet (also used by benchmarks and tests).
    pub fn new(id: u64, name: &str, publisher: SessionId, publisher_worker: usize) -> Self {
        StreamShared {
            id,
            name: name.to_owned(),
            publisher,
            publisher_worker,
            viewer_workers: AtomicU64::new(0),
            layer_bps: Default::default(),
            layers_seen: AtomicU64::new(0),
            codecs: Mutex::new(StreamCodecs::default()),
            ended: AtomicBool::new(false),
            publisher_gone: AtomicBool::new(false),
            media_at_ms: AtomicU64::new(mono_ms()),
            cache: Mutex::new(StreamCache::default()),
        }
    }
}

impl StreamShared {
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
    pub fn layers(&self) -> Vec<LayerInfo> {
        let seen = self.layers_seen.load(Ordering::Relaxed);
        let cache = self.cache.lock().expect("cache lock");
        Layer::ALL
            .iter()
            .filter(|l| seen & (1 << l.index()) != 0)
            .map(|&layer| {
                let size = cache.keyframe_size(layer);
                LayerInfo { layer, width: size.map(|s| s.0), height: size.map(|s| s.1), bitrate_bps: self.layer_bps[layer.index()].load(Ordering::Relaxed) }
            })
            .collect()
    }
}

/// One simulcast layer of a stream, as a viewer may choose it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct LayerInfo {
    /// `q`, `h` or `f` (a stream without simulcast has `f` only).
    pub layer: Layer,
    /// Picture width of its last keyframe, when known.
    pub width: Option<u32>,
    /// Picture height of its last keyframe, when known.
    pub height: Option<u32>,
    /// The rate it arrives at.
    pub bitrate_bps: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct SessionInfo {
    pub worker: usize,
    pub stream: Arc<StreamShared>,
    pub role: Role,
}

/// State shared by the handle and the workers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: MediaConfig,
    pub streams: DashMap<String, Arc<StreamShared>>,
    pub sessions: DashMap<SessionId, SessionInfo>,
    pub metrics: Arc<Metrics>,
    pub events: broadcast::Sender<SfuEvent>,
    /// Lossless event consumers (the platform's lifecycle and analytics).
    sinks: Mutex<Vec<mpsc::UnboundedSender<SfuEvent>>>,
    next_id: AtomicU64,
}

impl Shared {
    pub fn new(config: MediaConfig) -> Self {
        let (events, _) = broadcast::channel(1024);
        Shared {
            config,
            streams: DashMap::new(),
            sessions: DashMap::new(),
            metrics: Arc::new(Metrics::default()),
            events,
            sinks: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// Claims `name` for a new publisher session; fails if it is live
    /// already. A stream held for its departed publisher is taken over: it is
    /// returned second, for its viewers to move to the new one.
    pub fn register_stream(&self, name: &str, publisher: SessionId, worker: usize) -> Result<(Arc<StreamShared>, Option<Arc<StreamShared>>), SfuError> {
        let stream = Arc::new(StreamShared::new(self.new_id(), name, publisher, worker));
        match self.streams.entry(name.to_owned()) {
            dashmap::Entry::Occupied(mut o) => {
                let held = o.get();
                if !held.publisher_gone.load(Ordering::Relaxed) || held.ended.load(Ordering::Relaxed) {
                    return Err(SfuError::StreamBusy(name.to_owned()));
                }
                let old = o.insert(stream.clone());
                Ok((stream, Some(old)))
            }
            dashmap::Entry::Vacant(v) => {
                v.insert(stream.clone());
                Ok((stream, None))
            }
        }
    }

    /// A live stream by name.
    pub fn live_stream(&self, name: &str) -> Result<Arc<StreamShared>, SfuError> {
        self.streams.get(name).map(|s| s.clone()).ok_or_else(|| SfuError::StreamNotFound(name.to_owned()))
    }

    pub fn new_id(&self) -> u64 {
        // Random high bits make ids unguessable across restarts; the counter keeps them unique.
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        (rand::random::<u64>() & 0xffff_ffff_0000_0000) | (n & 0xffff_ffff)
    }

    pub fn emit(&self, e: SfuEvent) {
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.retain(|s| s.send(e.clone()).is_ok());
        }
        let _ = self.events.send(e);
    }
}

/// The answer to an offer.
#[derive(Debug, Clone)]
pub struct SessionAnswer {
    /// The new session.
    pub session: SessionId,
    /// Answer SDP.
    pub sdp: String,
}

/// A viewer's layer state, as the layer API reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LayerState {
    /// The viewer's cap (`auto` or a layer).
    pub max_layer: String,
    /// The layer being forwarded now, if any.
    pub current_layer: Option<Layer>,
    /// The layer the viewer is moving to.
    pub target_layer: Option<Layer>,
}

/// Statistics of one peer, for the health API.
#[derive(Debug, Clone, Serialize)]
pub struct PeerHealth {
    /// Session id.
    pub session: String,
    /// Publisher or viewer.
    pub role: Role,
    /// `new`, `connecting`, `connected`, `closed`.
    pub state: String,
    /// Outgoing (viewer) or incoming (publisher) media bitrate.
    pub bitrate_bps: u64,
    /// RTP packets sent to (viewer) or received from (publisher) the peer.
    pub packets: u64,
    /// Fraction of packets lost, as the peer's receiver reports say (viewer).
    pub loss: f64,
    /// Round-trip time from receiver reports.
    pub rtt_ms: Option<f64>,
    /// Interarrival jitter the peer reports.
    pub jitter_ms: Option<f64>,
    /// Bandwidth the viewer's browser estimates (REMB).
    pub estimate_bps: Option<u64>,
    /// Forwarded layer (viewer).
    pub layer: Option<Layer>,
    /// Layer being switched to (viewer).
    pub target_layer: Option<Layer>,
    /// Cap asked for (viewer).
    pub max_layer: Option<String>,
    /// Layer switches so far (viewer).
    pub layer_switches: u64,
    /// The product's quality level (viewer).
    pub quality: Option<crate::layer::Quality>,
    /// Incoming tracks (publisher).
    pub tracks: Vec<TrackHealth>,
}

/// One incoming track of a publisher.
#[derive(Debug, Clone, Serialize)]
pub struct TrackHealth {
    /// `audio` or `video`.
    pub kind: &'static str,
    /// Mime type.
    pub codec: String,
    /// Simulcast rid, if any.
    pub rid: Option<String>,
    /// Bitrate.
    pub bitrate_bps: u64,
    /// Packets received.
    pub packets: u64,
    /// Packets missing by sequence number.
    pub lost: u64,
    /// Latest RFC 6464 audio level in -dBov (0 loudest, 127 silence), audio only.
    pub audio_level_dbov: Option<u8>,
    /// Latest voice-activity flag, audio only.
    pub voice: Option<bool>,
    /// Whether the publisher is speaking (see [`crate::audio_level`]), audio only.
    pub speaking: Option<bool>,
}

/// Health of one stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamHealth {
    /// Stream name.
    pub stream: String,
    /// True while a publisher is connected.
    pub live: bool,
    /// Viewer sessions.
    pub viewer_count: usize,
    /// The publisher.
    pub publisher: Option<PeerHealth>,
    /// Every viewer.
    pub viewers: Vec<PeerHealth>,
}

/// The SFU: a handle that is cheap to clone.
#[derive(Clone)]
pub struct Sfu {
    shared: Arc<Shared>,
    workers: Arc<Vec<WorkerHandle>>,
    next_worker: Arc<AtomicUsize>,
}

impl Sfu {
    /// Binds the worker sockets and starts one event-loop thread per worker.
    pub fn start(config: MediaConfig) -> std::io::Result<Sfu> {
        let shared = Arc::new(Shared::new(config.clone()));
        let count = config.worker_count();
        let mut sockets = Vec::with_capacity(count);
        for i in 0..count {
            let port = if config.media_port == 0 { 0 } else { config.media_port.checked_add(i as u16).unwrap_or(0) };
            let sock = std::net::UdpSocket::bind(SocketAddr::new(config.bind_ip, port))?;
            sock.set_nonblocking(true)?;
            sockets.push(sock);
        }
        let (cmd_txs, media_txs, rxs) = worker::channels(count, config.worker_queue);
        let mut workers = Vec::with_capacity(count);
        for (i, (sock, (cmd_rx, media_rx))) in sockets.into_iter().zip(rxs).enumerate() {
            workers.push(worker::spawn(i, sock, cmd_rx, media_rx, cmd_txs.clone(), media_txs.clone(), shared.clone())?);
        }
        Ok(Sfu { shared, workers: Arc::new(workers), next_worker: Arc::new(AtomicUsize::new(0)) })
    }

    /// The UDP addresses the workers listen on.
    pub fn media_addrs(&self) -> Vec<SocketAddr> {
        self.workers.iter().map(|w| w.local_addr).collect()
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// ICE servers handed to clients.
    pub fn ice_servers(&self) -> &[crate::config::IceServer] {
        &self.shared.config.ice_servers
    }

    /// Stream and session events. A receiver that falls behind misses some
    /// (pages showing them); see [`Sfu::event_sink`] for every one.
    pub fn subscribe(&self) -> broadcast::Receiver<SfuEvent> {
        self.shared.events.subscribe()
    }

    /// Every event from now on, none dropped (for bookkeeping that must see
    /// each join and leave). Unbounded: the consumer must keep up.
    pub fn event_sink(&self) -> mpsc::UnboundedReceiver<SfuEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut sinks) = self.shared.sinks.lock() {
            sinks.push(tx);
        }
        rx
    }

    /// Ends a stream from the platform's side (the host ended it): closes its
    /// publisher, which closes its viewers. False if it is not live.
    pub async fn end_stream(&self, stream: &str) -> bool {
        let Some(shared) = self.shared.streams.get(stream).map(|s| s.clone()) else { return false };
        if shared.publisher_gone.load(Ordering::Relaxed) {
            // Held for a publisher that is not coming back: end it here.
            if !shared.ended.swap(true, Ordering::Relaxed) {
                crate::worker::end_everywhere(&self.shared, self.workers.iter().map(|w| &w.commands), &shared, true);
            }
            return true;
        }
        let Some(worker) = self.shared.sessions.get(&shared.publisher).map(|s| s.worker) else { return false };
        self.ask(worker, |reply| Command::Close { id: shared.publisher, end_stream: true, reply }).await.is_ok()
    }

    /// Names of live streams.
    pub fn live_streams(&self) -> Vec<String> {
        self.shared.streams.iter().map(|e| e.key().clone()).collect()
    }

    /// Number of open sessions (publishers and viewers).
    pub fn session_count(&self) -> usize {
        self.shared.sessions.len()
    }

    fn pick_worker(&self) -> usize {
        self.next_worker.fetch_add(1, Ordering::Relaxed) % self.workers.len()
    }

    async fn ask<T>(&self, worker: usize, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, SfuError> {
        let (tx, rx) = oneshot::channel();
        self.workers[worker].commands.send(make(tx)).map_err(|_| SfuError::Unavailable)?;
        rx.await.map_err(|_| SfuError::Unavailable)
    }

    /// Starts publishing `stream` with a WHIP offer.
    pub async fn publish(&self, stream: &str, offer: &str) -> Result<SessionAnswer, SfuError> {
        crate::negotiate::check_offer(offer)?;
        let current = self.shared.streams.get(stream).map(|s| s.clone());
        if let Some(current) = current.filter(|s| !s.publisher_gone.load(Ordering::Relaxed) && !s.ended.load(Ordering::Relaxed)) {
            let silent_ms = mono_ms().saturating_sub(current.media_at_ms.load(Ordering::Relaxed));
            if silent_ms >= STALE_PUBLISHER_MS {
                // Its connection is surely gone: close it (the stream is then
                // held, see `MediaConfig::publisher_hold`) and take over below.
                info!(stream, old = %current.publisher, silent_ms, "a new publish takes over from a silent publisher");
                let _ = self.close(current.publisher).await;
            }
        }
        let worker = self.pick_worker();
        let session = SessionId(self.shared.new_id());
        let (shared, held) = self.shared.register_stream(stream, session, worker)?;
        let offer = offer.to_owned();
        let res = self
            .ask(worker, |reply| Command::Open { id: session, stream: shared.clone(), role: Role::Publisher, cap: LayerCap::Auto, offer, reply })
            .await
            .and_then(|r| r);
        match (&res, held) {
            (Err(_), held) => {
                self.shared.streams.remove_if(stream, |_, s| s.publisher == session);
                if let Some(held) = held {
                    // Still held for a publisher: the next attempt may take it.
                    self.shared.streams.entry(stream.to_owned()).or_insert(held);
                }
            }
            (Ok(_), Some(held)) => {
                // The publisher is back: its viewers move to the new session's
                // stream (same tracks, continuous numbering, from its next
                // keyframe), unless the codecs changed under them. `ended`
                // first, so that no viewer joins the old one after the move.
                held.ended.store(true, Ordering::Relaxed);
                let keep = held.codecs.lock().expect("codecs lock").same_media(&shared.codecs.lock().expect("codecs lock"));
                info!(stream, session = %session, keep, "publisher back: viewers move to it");
                for w in self.workers.iter() {
                    let _ = w.commands.send(Command::Adopt { old: held.clone(), new: shared.clone(), keep });
                }
            }
            (Ok(_), None) => {}
        }
        res.map(|sdp| SessionAnswer { session, sdp })
    }

    /// Starts watching `stream` with a WHEP offer.
    pub async fn play(&self, stream: &str, offer: &str, cap: LayerCap) -> Result<SessionAnswer, SfuError> {
        crate::negotiate::check_offer(offer)?;
        let shared = self.shared.live_stream(stream)?;
        let worker = self.pick_worker();
        let session = SessionId(self.shared.new_id());
        let offer = offer.to_owned();
        self.ask(worker, |reply| Command::Open { id: session, stream: shared, role: Role::Viewer, cap, offer, reply })
            .await
            .and_then(|r| r)
            .map(|sdp| SessionAnswer { session, sdp })
    }

    /// Ends a session (WHIP/WHEP DELETE). Ending a publisher ends its stream.
    pub async fn close(&self, session: SessionId) -> Result<(), SfuError> {
        let worker = self.shared.sessions.get(&session).map(|s| s.worker).ok_or(SfuError::SessionNotFound)?;
        self.ask(worker, |reply| Command::Close { id: session, end_stream: false, reply }).await
    }

    /// The role and stream of a session.
    pub fn session(&self, session: SessionId) -> Option<(Role, String)> {
        self.shared.sessions.get(&session).map(|s| (s.role, s.stream.name.clone()))
    }

    /// The simulcast layers a live stream's publisher sends now.
    pub fn stream_layers(&self, stream: &str) -> Option<Vec<LayerInfo>> {
        self.shared.streams.get(stream).map(|s| s.layers())
    }

    /// A viewer's layer state (cap, current and target layer), unchanged.
    pub async fn viewer_layer(&self, session: SessionId) -> Result<LayerState, SfuError> {
        let worker = self.shared.sessions.get(&session).map(|s| s.worker).ok_or(SfuError::SessionNotFound)?;
        self.ask(worker, |reply| Command::ViewerLayer { id: session, reply }).await.and_then(|r| r)
    }

    /// Sets a viewer's layer cap.
    pub async fn set_layer_cap(&self, session: SessionId, cap: LayerCap) -> Result<LayerState, SfuError> {
        let worker = self.shared.sessions.get(&session).map(|s| s.worker).ok_or(SfuError::SessionNotFound)?;
        self.ask(worker, |reply| Command::SetCap { id: session, cap, reply }).await.and_then(|r| r)
    }

    /// Adds a remote ICE candidate (trickle, `a=candidate:...` without the `a=`).
    pub async fn add_candidate(&self, session: SessionId, candidate: String) -> Result<(), SfuError> {
        let worker = self.shared.sessions.get(&session).map(|s| s.worker).ok_or(SfuError::SessionNotFound)?;
        self.ask(worker, |reply| Command::Candidate { id: session, candidate, reply }).await.and_then(|r| r)
    }

    /// Health of a stream: every peer's stats, gathered from every worker.
    pub async fn stream_health(&self, stream: &str) -> Option<StreamHealth> {
        let shared = self.shared.streams.get(stream).map(|s| s.clone())?;
        let mut all = Vec::new();
        for w in 0..self.workers.len() {
            if let Ok(mut peers) = self.ask(w, |reply| Command::Health { stream: shared.id, reply }).await {
                all.append(&mut peers);
            }
        }
        let (publisher, viewers): (Vec<_>, Vec<_>) = all.into_iter().partition(|p| p.role == Role::Publisher);
        let mut viewers = viewers;
        viewers.sort_by(|a, b| a.session.cmp(&b.session));
        Some(StreamHealth {
            stream: stream.to_owned(),
            live: !shared.ended.load(Ordering::Relaxed),
            viewer_count: viewers.len(),
            publisher: publisher.into_iter().next(),
            viewers,
        })
    }

    /// Closes every session and stops the workers.
    pub fn shutdown(&self) {
        for w in self.workers.iter() {
            let _ = w.commands.send(Command::Shutdown);
        }
    }
}
