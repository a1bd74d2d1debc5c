//! What the SFU handle and every worker share: the live rooms by name,
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
use crate::producer::{lock, Producer};
use crate::room::{AddError, Room};

/// Where a session lives.
#[derive(Debug, Clone)]
pub(crate) struct SessionInfo {
    pub worker: usize,
    pub room: Arc<Room>,
    /// The host the session belongs to (a publisher's, or a host watching
    /// its own room): removing the host closes it.
    pub host: Option<String>,
    pub role: Role,
    /// A viewer's slots, by their mids (none for a publisher).
    pub slots: Arc<Vec<crate::offer::SlotMids>>,
    /// A digest of the credential the session was opened with, if any
    /// (signaling asks for the same one to end or change it).
    pub owner: Option<[u8; 32]>,
}

/// A new producer: its room, itself, and the held producer it replaces.
pub(crate) type Registered = (Arc<Room>, Arc<Producer>, Option<Arc<Producer>>);

/// State shared by the handle and the workers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: MediaConfig,
    pub rooms: DashMap<String, Arc<Room>>,
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
            rooms: DashMap::new(),
            sessions: DashMap::new(),
            metrics: Arc::new(Metrics::default()),
            events,
            sinks: Mutex::new(Vec::new()),
            next_stream_id: AtomicU64::new(1),
        })
    }

    /// Adds `host`'s new producer to room `name` (made if there is none),
    /// for a new publisher session. A producer of the same host held for its
    /// departed publisher is taken over: it is returned third, for its
    /// consumers to move to the new one.
    pub fn register_producer(&self, name: &str, host: &str, primary: bool, publisher: SessionId, worker: usize) -> Result<Registered, SfuError> {
        let producer = Arc::new(Producer::for_host(self.next_id(), name, host, primary, publisher, worker));
        let room = match self.rooms.entry(name.to_owned()) {
            dashmap::Entry::Occupied(mut o) if o.get().is_ended() => {
                let room = Arc::new(Room::new(self.next_id(), name));
                o.insert(room.clone());
                room
            }
            dashmap::Entry::Occupied(o) => o.get().clone(),
            dashmap::Entry::Vacant(v) => v.insert(Arc::new(Room::new(self.next_id(), name))).clone(),
        };
        match room.add(producer.clone()) {
            Ok(held) => Ok((room, producer, held)),
            Err(AddError::Busy) => Err(SfuError::StreamBusy(name.to_owned())),
            Err(AddError::Full) => Err(SfuError::RoomFull(name.to_owned())),
            Err(AddError::Removed) => Err(SfuError::HostRemoved(host.to_owned())),
        }
    }

    fn next_id(&self) -> u64 {
        self.next_stream_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A live room by name.
    pub fn live_room(&self, name: &str) -> Result<Arc<Room>, SfuError> {
        self.rooms.get(name).map(|s| s.clone()).filter(|r| !r.is_ended()).ok_or_else(|| SfuError::StreamNotFound(name.to_owned()))
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
