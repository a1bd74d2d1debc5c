//! What the SFU handle and every worker share: the live streams by name,
//! the sessions by id, the counters and the event sinks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use tokio::sync::{broadcast, mpsc};

use crate::admission::Admission;
use crate::certificate::Certificates;
use crate::config::MediaConfig;
use crate::error::SfuError;
use crate::events::SfuEvent;
use crate::metrics::Metrics;
use crate::session::{Role, SessionId};
use crate::stream::{lock, StreamShared};

/// Where a session lives.
#[derive(Debug, Clone)]
pub(crate) struct SessionInfo {
    pub worker: usize,
    pub stream: Arc<StreamShared>,
    pub role: Role,
    /// A digest of the credential the session was opened with, if any
    /// (signaling asks for the same one to end or change it).
    pub owner: Option<[u8; 32]>,
}

/// State shared by the handle and the workers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: MediaConfig,
    pub streams: DashMap<String, Arc<StreamShared>>,
    pub sessions: DashMap<SessionId, SessionInfo>,
    pub metrics: Arc<Metrics>,
    pub events: broadcast::Sender<SfuEvent>,
    /// The session caps and who holds them.
    pub admission: Arc<Admission>,
    /// The DTLS certificate new sessions get.
    pub certificates: Certificates,
    /// Set once: every worker stops at its next wake-up.
    pub shutting_down: AtomicBool,
    /// Lossless event consumers (the platform's lifecycle and analytics).
    sinks: Mutex<Vec<mpsc::UnboundedSender<SfuEvent>>>,
    next_stream_id: AtomicU64,
}

impl Shared {
    pub fn new(config: MediaConfig) -> Result<Self, SfuError> {
        let (events, _) = broadcast::channel(1024);
        let workers = config.worker_count();
        let admission = Admission::new(workers, config.max_sessions, config.worker_session_cap(), config.max_sessions_per_network);
        let certificates = Certificates::new(std::time::Instant::now(), crate::certificate::ROTATE_AFTER)?;
        Ok(Shared {
            admission,
            certificates,
            shutting_down: AtomicBool::new(false),
            config,
            streams: DashMap::new(),
            sessions: DashMap::new(),
            metrics: Arc::new(Metrics::default()),
            events,
            sinks: Mutex::new(Vec::new()),
            next_stream_id: AtomicU64::new(1),
        })
    }

    /// Claims `name` for a new publisher session; fails if it is live
    /// already. A stream held for its departed publisher is taken over: it is
    /// returned second, for its viewers to move to the new one.
    pub fn register_stream(&self, name: &str, publisher: SessionId, worker: usize) -> Result<(Arc<StreamShared>, Option<Arc<StreamShared>>), SfuError> {
        let id = self.next_stream_id.fetch_add(1, Ordering::Relaxed);
        let stream = Arc::new(StreamShared::new(id, name, publisher, worker));
        match self.streams.entry(name.to_owned()) {
            dashmap::Entry::Occupied(mut o) => {
                let held = o.get();
                if !held.publisher_gone.load(Ordering::Relaxed) || held.is_ended() {
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

    /// A new lossless event consumer.
    pub fn add_sink(&self, tx: mpsc::UnboundedSender<SfuEvent>) {
        lock(&self.sinks).push(tx);
    }

    pub fn emit(&self, e: SfuEvent) {
        lock(&self.sinks).retain(|s| s.send(e.clone()).is_ok());
        let _ = self.events.send(e);
    }
}
