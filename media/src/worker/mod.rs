//! A worker: one thread, one UDP socket, one event loop, many peers.
//!
//! The data path, packet in to packet out, file by file:
//! 1. [`routes`]: a datagram finds its peer by remote address; a new address
//!    is routed only by a STUN check that proves the peer's ICE password.
//! 2. `pump` (here) hands it to the peer's `RTCPeerConnection` (ICE, DTLS,
//!    SRTP in `rtc`) and drains what comes out: for a publisher, decrypted
//!    RTP ([`ingest`] makes it one refcounted [`Fanout`]); for a viewer,
//!    RTCP feedback ([`egress`]: NACKs, keyframe requests, link reports).
//! 3. [`egress`]: `fanout` gives each packet to the subscribers of its
//!    producer on this worker and to every other worker that has some (a bounded
//!    queue each: a full queue drops, it never blocks the publisher's worker);
//!    `deliver` asks each viewer's [`crate::consumer::Consumer`] whether and with
//!    which header it gets the packet, writes it into the viewer's connection
//!    and queues the datagram.
//! 4. [`transmit`]: the wake-up's datagrams leave together (UDP GSO).
//!
//! Sessions come and go in [`lifecycle`]; [`rooms`] keeps each subscriber's
//! slots (and so the routing table) in step with its room; [`health`]
//! reports on them.
//!
//! No client can stall a worker: offers are turned into connections on
//! another thread (see [`crate::offer`]); each wake-up does a bounded amount
//! of work per source (socket, other workers' packets, commands, timers) and
//! the sources are polled in random order; commands come on a bounded queue;
//! and a panic while handling one peer closes that peer only. A panic
//! anywhere else restarts the worker, whose peers are told (closed).

mod egress;
mod health;
mod ingest;
mod lifecycle;
mod peer;
mod rooms;
mod routes;
mod transmit;

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info};

use crate::admission::Ticket;
use crate::error::SfuError;
use crate::events::SfuEvent;
use crate::health::{LayerState, PeerHealth};
use crate::layer::LayerCap;
use crate::metrics::Metrics;
use crate::offer::Prepared;
use crate::packet::Fanout;
use crate::registry::Shared;
use crate::session::SessionId;
use crate::room::Room;

pub(crate) use lifecycle::{end_producer, end_room};
use peer::{Peer, PeerRole};
use routes::Routes;
pub use transmit::Transmit;
pub(crate) use transmit::SocketTx;

/// How often the worker runs peer timers (and takes keyframe requests).
const TICK: Duration = Duration::from_millis(10);
/// Datagrams read from the socket in one wake-up.
const SOCKET_BUDGET: usize = 256;
/// Packets from other workers delivered in one wake-up.
const MEDIA_BUDGET: usize = 1024;
/// Commands handled in one wake-up.
const COMMAND_BUDGET: usize = 64;
/// Commands a worker's queue holds; past it the control plane answers
/// `503 capacity` instead of queueing without bound.
pub(crate) const COMMAND_QUEUE: usize = 1024;

/// Commands from the control plane (and from other workers).
pub(crate) enum Command {
    /// Installs a session whose connection [`crate::offer::prepare`] built.
    Open {
        id: SessionId,
        room: Arc<Room>,
        prepared: Box<Prepared>,
        ticket: Ticket,
        owner: Option<[u8; 32]>,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    /// Closes a session; `end_stream` on a publisher ends its producer at
    /// once (the platform ended it) instead of holding it for a reconnect.
    Close { id: SessionId, end_stream: bool, reply: oneshot::Sender<()> },
    SetCap { id: SessionId, cap: LayerCap, reply: oneshot::Sender<Result<LayerState, SfuError>> },
    /// A viewer's layer state, unchanged.
    ViewerLayer { id: SessionId, reply: oneshot::Sender<Result<LayerState, SfuError>> },
    Candidate { id: SessionId, candidate: String, reply: oneshot::Sender<Result<(), SfuError>> },
    Health { room: u64, reply: oneshot::Sender<Vec<PeerHealth>> },
    /// The room is over: close its subscribers here.
    EndRoom { room: u64 },
    /// The room changed (a host came or went, the layout moved): rebind its
    /// subscribers here now rather than at the next tick.
    RoomChanged { room: u64 },
    /// Test hook: the next time `id` is handled, or at once (`None`), panic.
    #[cfg(feature = "fault-injection")]
    Fault { id: Option<SessionId> },
    Shutdown,
}

pub(crate) struct WorkerHandle {
    pub commands: mpsc::Sender<Command>,
    pub local_addr: SocketAddr,
    /// The addresses put in this worker's ICE candidates.
    pub announce: Vec<SocketAddr>,
}

type Receivers = (mpsc::Receiver<Command>, mpsc::Receiver<Fanout>);
/// Every worker's command queue, by worker index.
type CommandQueues = Arc<Vec<mpsc::Sender<Command>>>;
/// Every worker's queue of packets from other workers, by worker index.
type MediaQueues = Arc<Vec<mpsc::Sender<Fanout>>>;

pub(crate) fn channels(n: usize, queue: usize) -> (CommandQueues, MediaQueues, Vec<Receivers>) {
    let mut cmd_txs = Vec::with_capacity(n);
    let mut media_txs = Vec::with_capacity(n);
    let mut rxs = Vec::with_capacity(n);
    for _ in 0..n {
        let (ct, cr) = mpsc::channel(COMMAND_QUEUE);
        let (mt, mr) = mpsc::channel(queue.max(16));
        cmd_txs.push(ct);
        media_txs.push(mt);
        rxs.push((cr, mr));
    }
    (Arc::new(cmd_txs), Arc::new(media_txs), rxs)
}

/// Starts worker `index` on its own thread; it runs until [`Command::Shutdown`]
/// (or the SFU's shutdown flag), and is restarted if it panics.
pub(crate) fn spawn(
    index: usize,
    socket: StdUdpSocket,
    rx: Receivers,
    cmd_txs: Arc<Vec<mpsc::Sender<Command>>>,
    media_txs: Arc<Vec<mpsc::Sender<Fanout>>>,
    shared: Arc<Shared>,
) -> std::io::Result<(WorkerHandle, std::thread::JoinHandle<()>)> {
    let local_addr = socket.local_addr()?;
    let announce = routes::announce_addrs(&shared, local_addr);
    let handle = WorkerHandle { commands: cmd_txs[index].clone(), local_addr, announce: announce.clone() };
    let thread = std::thread::Builder::new().name(format!("onair-worker-{index}")).spawn(move || {
        let (mut cmd_rx, mut media_rx) = rx;
        info!(worker = index, %local_addr, ?announce, "media worker started");
        loop {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return error!(worker = index, "cannot build the worker's runtime: {e}"),
            };
            let socket = match socket.try_clone().and_then(|s| {
                let _in_runtime = rt.enter();
                UdpSocket::from_std(s)
            }) {
                Ok(s) => Arc::new(s),
                Err(e) => return error!(worker = index, "cannot register the worker's socket: {e}"),
            };
            let tx = SocketTx::new(socket, shared.metrics.clone());
            let mut w = Worker::new(index, tx, local_addr, announce.clone(), shared.clone(), cmd_txs.clone(), media_txs.clone());
            let run = catch_unwind(AssertUnwindSafe(|| rt.block_on(w.run(&mut cmd_rx, &mut media_rx))));
            if run.is_ok() {
                break;
            }
            // A panic outside any one peer's handling: the worker's state
            // cannot be trusted. Its peers are closed (told, when their
            // connection still can say it) and a fresh worker takes over the
            // same socket and queues.
            Metrics::add(&shared.metrics.worker_restarts, 1);
            error!(worker = index, peers = w.peers.len(), "media worker panicked: closing its peers and restarting it");
            w.salvage();
            drop(w);
            drop(rt);
        }
        info!(worker = index, "media worker stopped");
    })?;
    Ok((handle, thread))
}

/// Something a peer's handling asks of the worker, done once the peer's
/// borrow is over (see `apply_actions`).
enum Action {
    /// A packet and the workers (bit mask) that have subscribers of its producer.
    Fanout(Fanout, u64),
    Close(SessionId, &'static str),
    /// A viewer connected: send it the cached group of pictures.
    Prime(SessionId),
    Event(SfuEvent),
}

pub(crate) struct Worker<T: Transmit> {
    index: usize,
    tx: T,
    local_addr: SocketAddr,
    announce: Vec<SocketAddr>,
    shared: Arc<Shared>,
    cmd_txs: Arc<Vec<mpsc::Sender<Command>>>,
    media_txs: Arc<Vec<mpsc::Sender<Fanout>>>,
    peers: std::collections::HashMap<SessionId, Peer>,
    routes: Routes,
    /// Subscribers on this worker consuming each producer.
    consumers_of: std::collections::HashMap<crate::producer::ProducerId, Vec<SessionId>>,
    /// Rooms with subscribers on this worker.
    rooms_here: std::collections::HashMap<u64, RoomHere>,
    epoch: Instant,
    actions: Vec<Action>,
    /// Producers whose publisher left from this worker, held until the
    /// deadline for it to come back (see `MediaConfig::publisher_hold`).
    held: Vec<(Arc<crate::producer::Producer>, Instant)>,
}

/// A room with subscribers on this worker.
struct RoomHere {
    room: Arc<Room>,
    /// The room version the subscribers here were bound at.
    version: u64,
    subscribers: Vec<SessionId>,
}

impl Worker<SocketTx> {
    async fn run(&mut self, cmd_rx: &mut mpsc::Receiver<Command>, media_rx: &mut mpsc::Receiver<Fanout>) {
        let socket = self.tx.socket();
        let mut buf = vec![0u8; 2048];
        let mut commands = Vec::with_capacity(COMMAND_BUDGET);
        let mut packets = Vec::with_capacity(MEDIA_BUDGET);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_second = Instant::now();
        // Not `biased`: the branches are polled in random order, and each
        // does a bounded amount of work, so a flood on one (datagrams,
        // commands, packets from other workers) cannot starve the others.
        loop {
            tokio::select! {
                n = cmd_rx.recv_many(&mut commands, COMMAND_BUDGET) => {
                    if n == 0 {
                        break; // the handle is gone
                    }
                    for cmd in commands.drain(..) {
                        if let Command::Shutdown = cmd {
                            return self.close_all("shutdown");
                        }
                        self.on_command(cmd);
                    }
                },
                ready = socket.readable() => {
                    if ready.is_ok() {
                        for _ in 0..SOCKET_BUDGET {
                            match socket.try_recv_from(&mut buf) {
                                Ok((n, from)) => self.on_datagram(&buf[..n], from, Instant::now()),
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                                Err(e) => { debug!(worker = self.index, "recv error: {e}"); break; }
                            }
                        }
                    }
                },
                n = media_rx.recv_many(&mut packets, MEDIA_BUDGET) => {
                    if n > 0 {
                        let now = Instant::now();
                        for p in packets.drain(..) {
                            self.deliver(&p, now);
                        }
                        self.apply_actions();
                    }
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    self.on_tick(now);
                    if now.duration_since(last_second) >= Duration::from_secs(1) {
                        last_second = now;
                        self.on_second(now);
                    }
                },
            }
            // The end of a wake-up: what it produced leaves now, batched.
            self.tx.flush();
            if self.shared.shutting_down.load(Ordering::Relaxed) {
                break;
            }
        }
        self.close_all("shutdown");
    }
}

impl<T: Transmit> Worker<T> {
    /// A worker with no peers yet.
    pub(crate) fn new(
        index: usize,
        tx: T,
        local_addr: SocketAddr,
        announce: Vec<SocketAddr>,
        shared: Arc<Shared>,
        cmd_txs: Arc<Vec<mpsc::Sender<Command>>>,
        media_txs: Arc<Vec<mpsc::Sender<Fanout>>>,
    ) -> Self {
        Worker {
            index,
            tx,
            local_addr,
            announce,
            shared,
            cmd_txs,
            media_txs,
            peers: Default::default(),
            routes: Routes::default(),
            consumers_of: Default::default(),
            rooms_here: Default::default(),
            epoch: Instant::now(),
            actions: Vec::new(),
            held: Vec::new(),
        }
    }

    /// Sends what the last wake-up queued.
    pub(crate) fn flush(&mut self) {
        self.tx.flush();
    }

    fn us(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Runs `f`, which handles the peer `id`. If it panics, that peer alone
    /// is closed (a bug or a hostile input reached through one connection
    /// must cost nobody else their stream) and `None` is returned.
    fn isolate<R>(&mut self, id: SessionId, f: impl FnOnce(&mut Self) -> R) -> Option<R> {
        let queued = self.actions.len();
        match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(r) => Some(r),
            Err(_) => {
                Metrics::add(&self.shared.metrics.peer_panics, 1);
                error!(worker = self.index, session = %id, "panic while handling a peer: closing it");
                // What the panicking call queued is half-done work.
                self.actions.truncate(queued);
                self.close_after_panic(id);
                None
            }
        }
    }

    pub(crate) fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Open { id, room, prepared, ticket, owner, reply } => {
                let r = self.install(id, room, *prepared, ticket, owner);
                let _ = reply.send(r);
            }
            Command::Close { id, end_stream, reply } => {
                if let Some(Peer { role: PeerRole::Publisher(p), .. }) = self.peers.get(&id).filter(|_| end_stream) {
                    p.producer.ended.store(true, Ordering::Relaxed);
                }
                self.close(id, "closed by request");
                let _ = reply.send(());
            }
            Command::SetCap { id, cap, reply } => {
                let r = self.isolate(id, |w| w.set_cap(id, cap)).unwrap_or(Err(SfuError::SessionNotFound));
                let _ = reply.send(r);
                self.apply_actions();
            }
            Command::ViewerLayer { id, reply } => {
                let r = match self.peers.get(&id) {
                    Some(Peer { role: PeerRole::Viewer(sub), .. }) => Ok(layer_state(sub)),
                    Some(_) => Err(SfuError::BadOffer("layers apply to viewers only".into())),
                    None => Err(SfuError::SessionNotFound),
                };
                let _ = reply.send(r);
            }
            Command::Candidate { id, candidate, reply } => {
                let r = self
                    .isolate(id, |w| match w.peers.get_mut(&id) {
                        Some(p) => {
                            let init = RTCIceCandidateInit { candidate, ..Default::default() };
                            p.pc.add_remote_candidate(init).map_err(|e| SfuError::BadOffer(format!("bad candidate: {e}")))
                        }
                        None => Err(SfuError::SessionNotFound),
                    })
                    .unwrap_or(Err(SfuError::SessionNotFound));
                let _ = reply.send(r);
            }
            Command::Health { room, reply } => {
                let now_us = self.us(Instant::now());
                let ids: Vec<SessionId> = self.peers.values().filter(|p| p.room.id == room).map(|p| p.id).collect();
                let list = ids.into_iter().filter_map(|id| self.isolate(id, |w| w.peers.get_mut(&id).map(|p| p.health(now_us))).flatten()).collect();
                let _ = reply.send(list);
            }
            Command::EndRoom { room } => {
                let ids = self.rooms_here.get(&room).map(|r| r.subscribers.clone()).unwrap_or_default();
                for id in ids {
                    self.close(id, "stream ended");
                }
            }
            Command::RoomChanged { room } => {
                self.rebind_room(room, Instant::now());
                self.apply_actions();
            }
            #[cfg(feature = "fault-injection")]
            Command::Fault { id } => match id.and_then(|id| self.peers.get_mut(&id)) {
                Some(p) => p.poisoned = true,
                None => panic!("injected fault: the whole worker"),
            },
            Command::Shutdown => {}
        }
    }

    fn set_cap(&mut self, id: SessionId, cap: LayerCap) -> Result<LayerState, SfuError> {
        let now_us = self.us(Instant::now());
        match self.peers.get_mut(&id) {
            Some(Peer { role: PeerRole::Viewer(sub), .. }) => {
                sub.set_cap(cap);
                for slot in &mut sub.slots {
                    if let (Some(video), Some(layer)) = (&slot.video, slot.consumer.keyframe_wanted(now_us)) {
                        video.request_keyframe(layer);
                    }
                }
                Ok(layer_state(sub))
            }
            Some(_) => Err(SfuError::BadOffer("layer selection applies to viewers only".into())),
            None => Err(SfuError::SessionNotFound),
        }
    }

    /// A datagram from the socket, as one unit of work.
    pub(crate) fn on_datagram(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        let Some(route) = self.routes.route(data, from, now, &self.announce, self.local_addr, &self.shared.metrics) else { return };
        let id = route.peer;
        self.isolate(id, |w| {
            let Some(peer) = w.peers.get_mut(&id) else { return };
            peer.check_fault();
            peer.last_recv = now;
            let msg = TaggedBytesMut {
                now,
                transport: TransportContext { local_addr: route.local, peer_addr: from, ecn: None, transport_protocol: TransportProtocol::UDP },
                message: BytesMut::from(data),
            };
            if let Err(e) = peer.pc.handle_read(msg) {
                debug!(session = %id, "handle_read: {e}");
            }
            w.pump(id, now);
        });
        self.apply_actions();
    }

    /// Drains a peer's connection: reads (media, feedback), events, writes.
    fn pump(&mut self, id: SessionId, now: Instant) {
        let now_us = self.us(now);
        let now_ms = crate::producer::mono_ms_at(now);
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let metrics = &self.shared.metrics;
        // Events first: a track's OnOpen is queued with its first packet, and
        // the packet needs the track's receiver.
        peer.pump_events(&mut self.actions);
        let mut media_seen = false;
        while let Some(TaggedRTCMessage { message, .. }) = peer.pc.poll_read() {
            match message {
                RTCMessage::RtpPacket(track_id, packet) => {
                    let PeerRole::Publisher(p) = &peer.role else { continue };
                    let producer = p.producer.clone();
                    if !media_seen {
                        media_seen = true;
                        producer.media_at_ms.store(now_ms, Ordering::Relaxed);
                    }
                    if let Some(fp) = peer.on_rtp(&track_id, packet, now_us, now_ms, metrics) {
                        producer.sinks.feed(&fp);
                        let mask = producer.viewer_workers.load(Ordering::Relaxed);
                        self.actions.push(Action::Fanout(fp, mask));
                    }
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    peer.on_sender_reports(&packets);
                    peer.on_rtcp(&packets, now, now_us, metrics)
                }
                _ => {}
            }
        }
        peer.pump_events(&mut self.actions);
        transmit::flush_writes(&mut peer.pc, &mut self.tx);
        peer.deadline = peer.pc.poll_timeout();
    }

    fn apply_actions(&mut self) {
        while !self.actions.is_empty() {
            let actions = std::mem::take(&mut self.actions);
            for a in actions {
                match a {
                    Action::Fanout(p, mask) => self.fanout(p, mask),
                    Action::Close(id, why) => self.close(id, why),
                    Action::Prime(id) => {
                        self.isolate(id, |w| w.prime(id));
                    }
                    Action::Event(e) => self.shared.emit(e),
                }
            }
        }
    }

    /// Every 10 ms: the peers' connection timers, then the publishers'.
    pub(crate) fn on_tick(&mut self, now: Instant) {
        let due: Vec<SessionId> = self.peers.values().filter(|p| p.deadline.is_some_and(|d| d <= now)).map(|p| p.id).collect();
        for id in due {
            self.isolate(id, |w| {
                if let Some(p) = w.peers.get_mut(&id) {
                    let _ = p.pc.handle_timeout(now);
                }
                w.pump(id, now);
            });
        }
        self.publisher_timers(now);
        self.rebind_changed_rooms(now);
        self.apply_actions();
    }

    /// Once a second: held producers, timeouts, layer bookkeeping.
    pub(crate) fn on_second(&mut self, now: Instant) {
        self.expire_held(now);
        self.close_stale(now);
        let now_us = self.us(now);
        let ids: Vec<SessionId> = self.peers.keys().copied().collect();
        for id in ids {
            self.isolate(id, |w| {
                let Some(p) = w.peers.get_mut(&id) else { return };
                p.second(now_us);
            });
        }
        self.apply_actions();
    }
}

/// A subscriber's layer state as the layer API shows it: its main slot's.
fn layer_state(sub: &crate::subscriber::Subscriber) -> LayerState {
    let main = sub.main();
    LayerState { max_layer: sub.cap.as_str().into(), current_layer: main.and_then(|c| c.current), target_layer: main.and_then(|c| c.target) }
}
