//! One worker driven by hand: no socket, no thread, no timers of its own.
//!
//! Datagrams go in by call and come out into a sink. Benchmarks use it to
//! time exactly the forwarding path (decrypt once, route, encrypt per
//! viewer) without syscalls or scheduling noise; tests can use it to step a
//! worker deterministically.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::sync::oneshot;

use crate::config::MediaConfig;
use crate::error::SfuError;
use crate::layer::LayerCap;
use crate::metrics::Metrics;
use crate::offer;
use crate::registry::Shared;
use crate::session::{Role, SessionId};
use crate::udp::UdpBatch;
use crate::worker::{self, Command, Transmit, Worker};

/// Where the harness's worker sends.
#[derive(Debug, Default)]
pub struct SinkState {
    /// Keep the datagrams (else only count them).
    pub capture: bool,
    /// Captured datagrams.
    pub out: Vec<(Vec<u8>, SocketAddr)>,
    /// Datagrams sent.
    pub count: u64,
    /// Bytes sent.
    pub bytes: u64,
}

/// Sends for real, batched as the worker's socket does. Peers' addresses in
/// the harness are only names; `routes` maps each to a real socket, so that
/// every viewer is its own destination, as on a network.
#[derive(Debug)]
struct RealSend {
    socket: std::net::UdpSocket,
    routes: HashMap<SocketAddr, SocketAddr>,
    batch: UdpBatch,
}

/// A shared handle on the sink.
#[derive(Debug, Clone, Default)]
pub struct Sink(pub Rc<RefCell<SinkState>>, Option<Rc<RefCell<RealSend>>>);

impl Transmit for Sink {
    fn send(&mut self, to: SocketAddr, data: BytesMut) {
        {
            let mut s = self.0.borrow_mut();
            s.count += 1;
            s.bytes += data.len() as u64;
            if s.capture {
                s.out.push((data.to_vec(), to));
            }
        }
        if let Some(real) = &self.1 {
            let mut r = real.borrow_mut();
            if let Some(&dest) = r.routes.get(&to) {
                r.batch.push(dest, data);
            }
        }
    }

    fn flush(&mut self) {
        if let Some(real) = &self.1 {
            let mut r = real.borrow_mut();
            let fd = r.socket.as_raw_fd();
            r.batch.flush(fd);
        }
    }
}

/// A worker and its sink.
pub struct Harness {
    worker: Worker<Sink>,
    shared: Arc<Shared>,
    /// The sink the worker sends into.
    pub sink: Sink,
    /// The address the worker announces (clients "send" there).
    pub addr: SocketAddr,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// A harness announcing 127.0.0.1:9 (nothing is ever sent there).
    pub fn new() -> Harness {
        Self::build(Sink::default())
    }

    /// Like [`Harness::new`], but every outgoing datagram to a peer named in
    /// `routes` is also really sent from `socket`, to the real address it
    /// maps to, batched per wake-up as the worker's socket does: for
    /// benchmarks that count the system calls too.
    pub fn with_socket(socket: std::net::UdpSocket, routes: HashMap<SocketAddr, SocketAddr>) -> Harness {
        Self::build(Sink(Rc::default(), Some(Rc::new(RefCell::new(RealSend { socket, routes, batch: UdpBatch::default() })))))
    }

    fn build(sink: Sink) -> Harness {
        let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let shared = Arc::new(Shared::new(MediaConfig { workers: 1, ..MediaConfig::default() }).expect("SFU state"));
        let (cmd_txs, media_txs, _rxs) = worker::channels(1, 16);
        sink.0.borrow_mut().capture = true;
        let worker = Worker::new(0, sink.clone(), addr, vec![addr], shared.clone(), cmd_txs, media_txs);
        Harness { worker, shared, sink, addr }
    }

    fn open(&mut self, stream: &str, role: Role, cap: LayerCap, offer: &str) -> Result<(SessionId, String), SfuError> {
        let id = SessionId::random();
        let ticket = self.shared.admission.admit(None, Some(0))?;
        let (room, part, producer) = match role {
            Role::Publisher => {
                let (room, producer, _) = self.shared.register_producer(stream, "", true, id, 0)?;
                (room, offer::Part::Publisher(producer.clone()), Some(producer))
            }
            Role::Viewer => (self.shared.live_room(stream)?, offer::Part::Viewer { cap, exclude: None }, None),
        };
        let now = Instant::now();
        let certificate = self.shared.certificates.current(now)?;
        let request = offer::Request { offer: offer.to_owned(), room: room.clone(), part, announce: vec![self.addr], certificate };
        let res = offer::prepare(request, now).and_then(|prepared| {
            let answer = prepared.answer.clone();
            let (reply, mut rx) = oneshot::channel();
            self.worker.on_command(Command::Open { id, room: room.clone(), prepared: Box::new(prepared), ticket, owner: None, reply });
            rx.try_recv().map_err(|_| SfuError::Unavailable)?.map(|()| answer)
        });
        if let (Err(_), Some(producer)) = (&res, producer) {
            room.remove(&producer);
            self.shared.rooms.remove_if(stream, |_, r| r.producers().is_empty());
        }
        res.map(|sdp| (id, sdp))
    }

    /// Opens a publisher session; returns its id and the answer.
    pub fn publish(&mut self, stream: &str, offer: &str) -> Result<(SessionId, String), SfuError> {
        self.open(stream, Role::Publisher, LayerCap::Auto, offer)
    }

    /// Opens a viewer session; returns its id and the answer.
    pub fn play(&mut self, stream: &str, offer: &str, cap: LayerCap) -> Result<(SessionId, String), SfuError> {
        self.open(stream, Role::Viewer, cap, offer)
    }

    /// Feeds a datagram from `from`, as one wake-up of the worker.
    pub fn datagram(&mut self, data: &[u8], from: SocketAddr) {
        self.worker.on_datagram(data, from, Instant::now());
        self.worker.flush();
    }

    /// Feeds several datagrams from `from` in one wake-up (as the worker
    /// drains its socket): what they produce is sent together at the end.
    pub fn burst(&mut self, datagrams: &[Vec<u8>], from: SocketAddr) {
        let now = Instant::now();
        for d in datagrams {
            self.worker.on_datagram(d, from, now);
        }
        self.worker.flush();
    }

    /// What the real socket (see [`Harness::with_socket`]) sent.
    pub fn send_stats(&self) -> Option<crate::udp::SendStats> {
        self.sink.1.as_ref().map(|r| r.borrow().batch.stats())
    }

    /// Runs due timers (what the event loop does every 10 ms) and the
    /// once-a-second housekeeping when `second` is set.
    pub fn tick(&mut self, second: bool) {
        let now = Instant::now();
        self.worker.on_tick(now);
        if second {
            self.worker.on_second(now);
        }
        self.worker.flush();
    }

    /// Takes the captured datagrams.
    pub fn take_output(&mut self) -> Vec<(Vec<u8>, SocketAddr)> {
        std::mem::take(&mut self.sink.0.borrow_mut().out)
    }

    /// Keep (true) or only count (false) outgoing datagrams.
    pub fn capture(&mut self, on: bool) {
        self.sink.0.borrow_mut().capture = on;
    }

    /// Datagrams sent so far.
    pub fn sent(&self) -> u64 {
        self.sink.0.borrow().count
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }
}
