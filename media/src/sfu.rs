//! The SFU's public handle: the control plane.
//!
//! [`Sfu`] owns the workers and the registry of live streams. Signaling calls
//! it (`publish`, `play`, `close`, ...). An offer is admitted under the
//! session caps, turned into a connection on the blocking pool (never on a
//! worker: see [`crate::offer`]) and handed to a worker to install. Media
//! never passes through here.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};
use tracing::info;

use crate::config::MediaConfig;
use crate::error::SfuError;
use crate::events::SfuEvent;
use crate::health::{LayerState, StreamHealth};
use crate::layer::LayerCap;
use crate::metrics::Metrics;
use crate::offer::{self, Prepared};
use crate::registry::Shared;
use crate::session::{Role, SessionId};
use crate::stream::{lock, mono_ms, StreamShared, STALE_PUBLISHER_MS};
use crate::worker::{self, Command, WorkerHandle};

/// The answer to an offer.
#[derive(Debug, Clone)]
pub struct SessionAnswer {
    /// The new session.
    pub session: SessionId,
    /// Answer SDP.
    pub sdp: String,
}

/// Who asks for a new session.
#[derive(Debug, Clone, Copy, Default)]
pub struct Requester {
    /// The client's address (its network's session cap applies).
    pub ip: Option<IpAddr>,
    /// A digest of the credential the offer came with: the session's owner
    /// must show it again to end or change it (see [`Sfu::session_owner`]).
    pub owner: Option<[u8; 32]>,
}

/// An admitted session, before its connection exists.
struct NewSession {
    id: SessionId,
    ticket: crate::admission::Ticket,
    owner: Option<[u8; 32]>,
}

/// How long an offer may wait for a free builder before the answer is
/// `503 capacity`.
const PREPARE_WAIT: Duration = Duration::from_secs(3);

/// The SFU: a handle that is cheap to clone.
#[derive(Clone)]
pub struct Sfu {
    shared: Arc<Shared>,
    workers: Arc<Vec<WorkerHandle>>,
    threads: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
    /// Offers being turned into connections at once (CPU work on the
    /// blocking pool; the rest wait, asynchronously, for a turn).
    builders: Arc<Semaphore>,
}

impl Sfu {
    /// Binds the worker sockets and starts one event-loop thread per worker.
    pub fn start(config: MediaConfig) -> std::io::Result<Sfu> {
        let shared = Arc::new(Shared::new(config.clone()).map_err(std::io::Error::other)?);
        let count = config.worker_count();
        let mut sockets = Vec::with_capacity(count);
        for i in 0..count {
            let port = if config.media_port == 0 { 0 } else { config.media_port.checked_add(i as u16).unwrap_or(0) };
            let sock = std::net::UdpSocket::bind(SocketAddr::new(config.bind_ip, port))?;
            sock.set_nonblocking(true)?;
            let granted = crate::udp::grow_buffers(std::os::fd::AsRawFd::as_raw_fd(&sock));
            tracing::debug!(worker = i, receive_buffer = granted, "media socket buffers");
            sockets.push(sock);
        }
        let (cmd_txs, media_txs, rxs) = worker::channels(count, config.worker_queue);
        let mut workers = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for (i, (sock, rx)) in sockets.into_iter().zip(rxs).enumerate() {
            let (handle, thread) = worker::spawn(i, sock, rx, cmd_txs.clone(), media_txs.clone(), shared.clone())?;
            workers.push(handle);
            threads.push(thread);
        }
        Ok(Sfu { shared, workers: Arc::new(workers), threads: Arc::new(Mutex::new(threads)), builders: Arc::new(Semaphore::new(2 * count)) })
    }

    /// The UDP addresses the workers listen on.
    pub fn media_addrs(&self) -> Vec<SocketAddr> {
        self.workers.iter().map(|w| w.local_addr).collect()
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The media settings.
    pub fn config(&self) -> &MediaConfig {
        &self.shared.config
    }

    /// The ICE servers configured (see [`MediaConfig::ice_servers`]).
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
        self.shared.add_sink(tx);
        rx
    }

    /// Ends a stream from the platform's side (the host ended it): closes its
    /// publisher, which closes its viewers. False if it is not live.
    pub async fn end_stream(&self, stream: &str) -> bool {
        let Some(shared) = self.shared.streams.get(stream).map(|s| s.clone()) else { return false };
        if shared.publisher_gone.load(Ordering::Relaxed) {
            // Held for a publisher that is not coming back: end it here.
            if !shared.ended.swap(true, Ordering::Relaxed) {
                worker::end_everywhere(&self.shared, self.workers.iter().map(|w| &w.commands), &shared, true);
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

    /// Sends a command to a worker without waiting for room in its queue: a
    /// worker that has this much to do answers `503 capacity`.
    async fn ask<T>(&self, worker: usize, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, SfuError> {
        let (tx, rx) = oneshot::channel();
        self.workers[worker].commands.try_send(make(tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SfuError::Capacity("the media worker is busy".into()),
            mpsc::error::TrySendError::Closed(_) => SfuError::Unavailable,
        })?;
        rx.await.map_err(|_| SfuError::Unavailable)
    }

    /// Builds the connection of an admitted session of `stream` (off the
    /// workers) and has its worker install it.
    async fn open(&self, new: NewSession, stream: Arc<StreamShared>, role: Role, cap: LayerCap, offer: &str) -> Result<String, SfuError> {
        let NewSession { id: session, ticket, owner } = new;
        let worker = ticket.worker;
        let Ok(_turn) = tokio::time::timeout(PREPARE_WAIT, self.builders.acquire()).await else {
            return Err(SfuError::Capacity("too many offers at once".into()));
        };
        let certificate = self.shared.certificates.current(Instant::now())?;
        let request = offer::Request { offer: offer.to_owned(), role, stream: stream.clone(), cap, announce: self.workers[worker].announce.clone(), certificate };
        let prepared: Prepared = tokio::task::spawn_blocking(move || offer::prepare(request, Instant::now()))
            .await
            .map_err(|_| SfuError::Internal("the offer's builder panicked".into()))??;
        drop(_turn);
        let answer = prepared.answer.clone();
        self.ask(worker, |reply| Command::Open { id: session, stream, prepared: Box::new(prepared), ticket, owner, reply }).await??;
        Ok(answer)
    }

    /// Starts publishing `stream` with a WHIP offer.
    pub async fn publish(&self, stream: &str, offer: &str, from: Requester) -> Result<SessionAnswer, SfuError> {
        crate::negotiate::check_offer(offer)?;
        let current = self.shared.streams.get(stream).map(|s| s.clone());
        if let Some(current) = current.filter(|s| !s.publisher_gone.load(Ordering::Relaxed) && !s.is_ended()) {
            let silent_ms = mono_ms().saturating_sub(current.media_at_ms.load(Ordering::Relaxed));
            if silent_ms >= STALE_PUBLISHER_MS {
                // Its connection is surely gone: close it (the stream is then
                // held, see `MediaConfig::publisher_hold`) and take over below.
                info!(stream, old = %current.publisher, silent_ms, "a new publish takes over from a silent publisher");
                let _ = self.close(current.publisher).await;
            }
        }
        let ticket = self.admit(from)?;
        let session = SessionId::random();
        let (shared, held) = self.shared.register_stream(stream, session, ticket.worker)?;
        let res = self.open(NewSession { id: session, ticket, owner: from.owner }, shared.clone(), Role::Publisher, LayerCap::Auto, offer).await;
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
                // keyframe), unless the codecs changed under them. The
                // successor is set before `ended`, so that a worker seeing
                // the old stream ended knows where its viewers go.
                let keep = lock(&held.codecs).same_media(&lock(&shared.codecs));
                let _ = held.successor.set((shared.clone(), keep));
                held.ended.store(true, Ordering::Relaxed);
                info!(stream, session = %session, keep, "publisher back: viewers move to it");
                for w in self.workers.iter() {
                    // A full queue only delays the move to that worker's next second.
                    let _ = w.commands.try_send(Command::Adopt { old: held.clone(), new: shared.clone(), keep });
                }
            }
            (Ok(_), None) => {}
        }
        res.map(|sdp| SessionAnswer { session, sdp })
    }

    /// Starts watching `stream` with a WHEP offer.
    pub async fn play(&self, stream: &str, offer: &str, cap: LayerCap, from: Requester) -> Result<SessionAnswer, SfuError> {
        crate::negotiate::check_offer(offer)?;
        let shared = self.shared.live_stream(stream)?;
        let ticket = self.admit(from)?;
        let session = SessionId::random();
        self.open(NewSession { id: session, ticket, owner: from.owner }, shared, Role::Viewer, cap, offer).await.map(|sdp| SessionAnswer { session, sdp })
    }

    fn admit(&self, from: Requester) -> Result<crate::admission::Ticket, SfuError> {
        self.shared.admission.admit(from.ip, None).inspect_err(|_| Metrics::add(&self.shared.metrics.sessions_refused, 1))
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
    pub fn stream_layers(&self, stream: &str) -> Option<Vec<crate::health::LayerInfo>> {
        self.shared.streams.get(stream).map(|s| s.layers())
    }

    /// A viewer's layer state (cap, current and target layer), unchanged.
    pub async fn viewer_layer(&self, session: SessionId) -> Result<LayerState, SfuError> {
        let worker = self.shared.sessions.get(&session).map(|s| s.worker).ok_or(SfuError::SessionNotFound)?;
        self.ask(worker, |reply| Command::ViewerLayer { id: session, reply }).await.and_then(|r| r)
    }

    /// The credential digest a session was opened with (see [`Requester::owner`]).
    pub fn session_owner(&self, session: SessionId) -> Option<[u8; 32]> {
        self.shared.sessions.get(&session).and_then(|s| s.owner)
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
        viewers.sort_by_key(|p| p.session);
        Some(StreamHealth {
            stream: stream.to_owned(),
            live: !shared.is_ended(),
            viewer_count: viewers.len(),
            publisher: publisher.into_iter().next(),
            viewers,
        })
    }

    /// Test hook: makes the handling of `session` panic the next time it is
    /// touched, or (`None`) makes worker `worker` panic outside any peer.
    #[cfg(feature = "fault-injection")]
    pub fn inject_panic(&self, worker: usize, session: Option<SessionId>) {
        let worker = session.and_then(|s| self.shared.sessions.get(&s).map(|i| i.worker)).unwrap_or(worker);
        let _ = self.workers[worker].commands.try_send(Command::Fault { id: session });
    }

    /// Asks every worker to close its sessions (telling their peers) and stop.
    pub fn shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::Relaxed);
        for w in self.workers.iter() {
            let _ = w.commands.try_send(Command::Shutdown);
        }
    }

    /// [`Sfu::shutdown`], then waits up to `timeout` for the worker threads
    /// to finish. True when they all did.
    pub async fn stop(&self, timeout: Duration) -> bool {
        self.shutdown();
        let threads = std::mem::take(&mut *lock(&self.threads));
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        });
        matches!(tokio::time::timeout(timeout, joined).await, Ok(Ok(())))
    }
}
