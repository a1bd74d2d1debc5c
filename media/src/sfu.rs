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
use crate::offer::{self, Part, Prepared};
use crate::registry::Shared;
use crate::session::{Role, SessionId};
use crate::producer::{lock, mono_ms, STALE_PUBLISHER_MS};
use crate::room::{Layout, LinkError, Room};
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

/// One slot of a viewer's connection: its mids and who is in it now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionSlot {
    /// Its index (the order of the offer's video m-lines).
    pub slot: usize,
    /// The mid of its video m-line.
    pub video_mid: Option<String>,
    /// The mid of its audio m-line.
    pub audio_mid: Option<String>,
    /// The host whose video it carries (`None`: it sends nothing now).
    pub host: Option<String>,
    /// The host whose audio it carries (a one-slot player's audio is the
    /// active speaker, who may not be the host on screen).
    pub audio_host: Option<String>,
}

/// A host of a room, as the media sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostMedia {
    /// The host's name.
    pub host: String,
    /// The room's primary host.
    pub primary: bool,
    /// Its publisher is connected (not held for a reconnect).
    pub connected: bool,
    /// Its audio is muted by the room.
    pub audio_muted: bool,
    /// Its video is muted by the room.
    pub video_muted: bool,
    /// It is speaking now.
    pub speaking: bool,
    /// It is the room's dominant speaker.
    pub active_speaker: bool,
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

    /// Ends a stream from the platform's side (the host ended it): closes
    /// every publisher of its room and every viewer. False if it is not live.
    pub async fn end_stream(&self, stream: &str) -> bool {
        let Some(room) = self.shared.rooms.get(stream).map(|s| s.clone()) else { return false };
        worker::end_room(&self.shared, &self.command_queues(), &room, true);
        true
    }

    fn command_queues(&self) -> Vec<&mpsc::Sender<Command>> {
        self.workers.iter().map(|w| &w.commands).collect()
    }

    /// Names of live streams.
    pub fn live_streams(&self) -> Vec<String> {
        self.shared.rooms.iter().map(|e| e.key().clone()).collect()
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

    /// Builds the connection of an admitted session in `room` (off the
    /// workers) and has its worker install it.
    async fn open(&self, new: NewSession, room: Arc<Room>, part: Part, offer: &str) -> Result<String, SfuError> {
        let NewSession { id: session, ticket, owner } = new;
        let worker = ticket.worker;
        let Ok(_turn) = tokio::time::timeout(PREPARE_WAIT, self.builders.acquire()).await else {
            return Err(SfuError::Capacity("too many offers at once".into()));
        };
        let certificate = self.shared.certificates.current(Instant::now())?;
        let request = offer::Request { offer: offer.to_owned(), room: room.clone(), part, announce: self.workers[worker].announce.clone(), certificate };
        let prepared: Prepared = tokio::task::spawn_blocking(move || offer::prepare(request, Instant::now()))
            .await
            .map_err(|_| SfuError::Internal("the offer's builder panicked".into()))??;
        drop(_turn);
        let answer = prepared.answer.clone();
        self.ask(worker, |reply| Command::Open { id: session, room, prepared: Box::new(prepared), ticket, owner, reply }).await??;
        Ok(answer)
    }

    /// Starts publishing `stream` with a WHIP offer: its room's primary (and
    /// only) host, unnamed.
    pub async fn publish(&self, stream: &str, offer: &str, from: Requester) -> Result<SessionAnswer, SfuError> {
        self.publish_host(stream, "", true, offer, from).await
    }

    /// Publishes `host`'s tracks into room `stream` with a WHIP offer. The
    /// `primary` host's leaving ends the room. A host whose producer is held
    /// (its publisher left within the hold) takes it over: its consumers
    /// stay, and resume at the new publisher's first keyframe.
    pub async fn publish_host(&self, stream: &str, host: &str, primary: bool, offer: &str, from: Requester) -> Result<SessionAnswer, SfuError> {
        crate::negotiate::check_offer(offer)?;
        let current = self.shared.rooms.get(stream).and_then(|r| r.producer(host));
        if let Some(current) = current.filter(|p| !p.publisher_gone.load(Ordering::Relaxed) && !p.is_ended()) {
            let silent_ms = mono_ms().saturating_sub(current.media_at_ms.load(Ordering::Relaxed));
            if silent_ms >= STALE_PUBLISHER_MS {
                // Its connection is surely gone: close it (the producer is
                // then held, see `MediaConfig::publisher_hold`) and take over below.
                info!(stream, host, old = %current.publisher, silent_ms, "a new publish takes over from a silent publisher");
                let _ = self.close(current.publisher).await;
            }
        }
        let ticket = self.admit(from)?;
        let session = SessionId::random();
        let (room, producer, held) = self.shared.register_producer(stream, host, primary, session, ticket.worker)?;
        let res = self.open(NewSession { id: session, ticket, owner: from.owner }, room.clone(), Part::Publisher(producer.clone()), offer).await;
        match (&res, held) {
            (Err(_), Some(held)) => {
                // Still held for a publisher: the next attempt may take it.
                room.restore(&producer, held);
            }
            (Err(_), None) => {
                producer.ended.store(true, Ordering::Relaxed);
                room.remove(&producer);
                if room.producers().is_empty() {
                    worker::end_room(&self.shared, &self.command_queues(), &room, false);
                }
            }
            (Ok(_), Some(held)) => {
                // The publisher is back: the room's new version moves the
                // consumers of the held producer to this one (closing
                // one-slot viewers if the codecs changed under them); its
                // sinks (recorders, relays) move too.
                held.ended.store(true, Ordering::Relaxed);
                held.sinks.move_to(&producer.sinks);
                info!(stream, host, session = %session, "publisher back: its consumers move to it");
                self.room_changed(&room);
            }
            (Ok(_), None) => self.room_changed(&room),
        }
        res.map(|sdp| SessionAnswer { session, sdp })
    }

    /// Tells every worker with subscribers of `room` to rebind them now
    /// (they would at their next tick anyway).
    fn room_changed(&self, room: &Room) {
        for w in self.workers.iter() {
            let _ = w.commands.try_send(Command::RoomChanged { room: room.id });
        }
    }

    /// Starts watching `stream` with a WHEP offer: one slot per video (and
    /// audio) m-line of the offer.
    pub async fn play(&self, stream: &str, offer: &str, cap: LayerCap, from: Requester) -> Result<SessionAnswer, SfuError> {
        self.subscribe_room(stream, offer, cap, None, from).await
    }

    /// A host watches its own room: like [`Sfu::play`], with its own
    /// producer left out of the slots.
    pub async fn play_as_host(&self, stream: &str, host: &str, offer: &str, cap: LayerCap, from: Requester) -> Result<SessionAnswer, SfuError> {
        self.subscribe_room(stream, offer, cap, Some(host.to_owned()), from).await
    }

    async fn subscribe_room(&self, stream: &str, offer: &str, cap: LayerCap, exclude: Option<String>, from: Requester) -> Result<SessionAnswer, SfuError> {
        crate::negotiate::check_offer(offer)?;
        let room = self.shared.live_room(stream)?;
        let ticket = self.admit(from)?;
        let session = SessionId::random();
        self.open(NewSession { id: session, ticket, owner: from.owner }, room, Part::Viewer { cap, exclude }, offer).await.map(|sdp| SessionAnswer { session, sdp })
    }

    /// Mutes or unmutes a host's audio and/or video in its room: muted
    /// packets are dropped as they arrive, for every consumer. False if the
    /// host does not publish there.
    pub fn set_muted(&self, stream: &str, host: &str, audio: Option<bool>, video: Option<bool>) -> bool {
        let Some(producer) = self.shared.rooms.get(stream).and_then(|r| r.producer(host)) else { return false };
        if let Some(a) = audio {
            producer.audio_muted.store(a, Ordering::Relaxed);
        }
        if let Some(v) = video {
            producer.video_muted.store(v, Ordering::Relaxed);
        }
        true
    }

    /// Sets a room's layout: subscribers' slots and layer targets follow.
    /// False if the room is not live.
    pub fn set_layout(&self, stream: &str, layout: Layout) -> bool {
        let Some(room) = self.shared.rooms.get(stream).map(|r| r.clone()) else { return false };
        room.set_layout(layout);
        self.room_changed(&room);
        true
    }

    /// Removes `host` from room `stream` (left or kicked): its publishing
    /// session and the sessions it watches the room with close at once, and
    /// it cannot publish into this room again. Removing the primary host
    /// ends the room. Returns the sessions closed.
    pub async fn remove_host(&self, stream: &str, host: &str) -> usize {
        let Some(room) = self.shared.rooms.get(stream).map(|r| r.clone()) else { return 0 };
        room.bar(host);
        if let Some(producer) = room.producer(host) {
            producer.ended.store(true, Ordering::Relaxed);
            if producer.publisher_gone.load(Ordering::Relaxed) {
                // Held, with no session to close: end it here.
                worker::end_producer(&self.shared, &self.command_queues(), &room, &producer, true);
            }
        }
        let sessions: Vec<SessionId> = self.shared.sessions.iter().filter(|e| e.room.id == room.id && e.host.as_deref() == Some(host)).map(|e| *e.key()).collect();
        let mut closed = 0;
        for id in sessions {
            if self.close(id).await.is_ok() {
                closed += 1;
            }
        }
        closed
    }

    /// Links live rooms `a` and `b` (a PK battle): each room's hosts also
    /// fill the other's multi-slot subscribers and its hosts' views, in
    /// process, with no re-publishing; every slot that changes resumes at
    /// a keyframe. A room is linked with one other at most.
    pub fn link_rooms(&self, a: &str, b: &str) -> Result<(), SfuError> {
        let (ra, rb) = (self.shared.live_room(a)?, self.shared.live_room(b)?);
        Room::link(&ra, &rb).map_err(|e| match e {
            LinkError::SameRoom => SfuError::LinkRefused(format!("'{a}' cannot be linked with itself")),
            LinkError::Linked(r) => SfuError::LinkRefused(format!("'{r}' is linked with another room")),
        })?;
        info!(a, b, "rooms linked");
        self.room_changed(&ra);
        self.room_changed(&rb);
        Ok(())
    }

    /// Undoes [`Sfu::link_rooms`]: each side's hosts leave the other's
    /// slots (at a keyframe), and no connection is touched. False if the
    /// two were not linked (or one is gone: an ended room's link lapses).
    pub fn unlink_rooms(&self, a: &str, b: &str) -> bool {
        let (Some(ra), Some(rb)) = (self.shared.rooms.get(a).map(|r| r.clone()), self.shared.rooms.get(b).map(|r| r.clone())) else { return false };
        let done = Room::unlink(&ra, &rb);
        if done {
            info!(a, b, "rooms unlinked");
            self.room_changed(&ra);
            self.room_changed(&rb);
        }
        done
    }

    /// The room `stream` is linked with, by name.
    pub fn linked_room(&self, stream: &str) -> Option<String> {
        self.shared.rooms.get(stream).and_then(|r| r.linked()).map(|r| r.name.clone())
    }

    /// Attaches a sink (a recorder, a relay) to `host`'s producer in room
    /// `stream`, and asks for a keyframe of every layer so that it can start
    /// at once. `None` if that host does not publish there.
    pub fn attach_sink(&self, stream: &str, host: &str, sink: Arc<dyn crate::sink::Sink>) -> Option<crate::sink::SinkId> {
        let producer = self.shared.rooms.get(stream).and_then(|r| r.producer(host))?;
        let id = producer.sinks.attach(sink);
        for layer in crate::layer::Layer::ALL {
            producer.request_keyframe(layer);
        }
        Some(id)
    }

    /// Detaches a sink; false if it was not attached to that host's producer.
    pub fn detach_sink(&self, stream: &str, host: &str, id: crate::sink::SinkId) -> bool {
        self.shared.rooms.get(stream).and_then(|r| r.producer(host)).is_some_and(|p| p.sinks.detach(id))
    }

    /// The hosts of room `stream`, in join order.
    pub fn room_hosts(&self, stream: &str) -> Option<Vec<HostMedia>> {
        let room = self.shared.rooms.get(stream).map(|r| r.clone())?;
        let now_ms = mono_ms();
        let active = room.active_speaker();
        Some(
            room.producers()
                .into_iter()
                .map(|p| HostMedia {
                    host: p.host.clone(),
                    primary: p.primary,
                    connected: !p.publisher_gone.load(Ordering::Relaxed) && !p.is_ended(),
                    audio_muted: p.audio_muted.load(Ordering::Relaxed),
                    video_muted: p.video_muted.load(Ordering::Relaxed),
                    speaking: room.speaking(p.id, now_ms),
                    active_speaker: active == Some(p.id),
                })
                .collect(),
        )
    }

    /// Which host is in which of `count` slots of room `stream` now (what a
    /// viewer with that many slots is sent; `exclude`: a host watching).
    pub fn room_slots(&self, stream: &str, count: usize, exclude: Option<&str>) -> Option<Vec<Option<String>>> {
        let room = self.shared.rooms.get(stream).map(|r| r.clone())?;
        Some(room.slots(count, exclude).video.into_iter().map(|p| p.map(|p| p.host.clone())).collect())
    }

    /// Which host is in which slot of viewer `session` now (what it is
    /// sent, by slot in the order of its offer's video m-lines), and the
    /// room's version: it changes whenever this may. `None` if no such
    /// viewer.
    pub fn session_slots(&self, session: SessionId) -> Option<(u64, Vec<SessionSlot>)> {
        let info = self.shared.sessions.get(&session).map(|s| s.clone()).filter(|s| s.role == Role::Viewer)?;
        let version = info.room.version();
        let map = info.room.slots(info.slots.len(), info.host.as_deref());
        let slots = info
            .slots
            .iter()
            .enumerate()
            .map(|(i, mids)| SessionSlot {
                slot: i,
                video_mid: mids.video.clone(),
                audio_mid: mids.audio.clone(),
                host: map.video.get(i).cloned().flatten().map(|p| p.host.clone()),
                audio_host: map.audio.get(i).cloned().flatten().map(|p| p.host.clone()),
            })
            .collect();
        Some((version, slots))
    }

    /// A room's version (see [`Sfu::session_slots`]): cheap, for polling.
    pub fn session_room_version(&self, session: SessionId) -> Option<u64> {
        self.shared.sessions.get(&session).map(|s| s.room.version())
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
        self.shared.sessions.get(&session).map(|s| (s.role, s.room.name.clone()))
    }

    /// The simulcast layers a live stream's primary host sends now.
    pub fn stream_layers(&self, stream: &str) -> Option<Vec<crate::health::LayerInfo>> {
        let room = self.shared.rooms.get(stream).map(|r| r.clone())?;
        room.primary().or_else(|| room.producers().into_iter().next()).map(|p| p.layers())
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
        let shared = self.shared.rooms.get(stream).map(|s| s.clone())?;
        let mut all = Vec::new();
        for w in 0..self.workers.len() {
            if let Ok(mut peers) = self.ask(w, |reply| Command::Health { room: shared.id, reply }).await {
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
