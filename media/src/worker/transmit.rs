//! Where a worker's outgoing datagrams go: its UDP socket in production, an
//! in-memory sink in benchmarks and tests (see [`crate::harness`]).
//! Datagrams are queued during a wake-up and flushed at its end (see
//! [`crate::udp`]: GSO batches per destination).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use bytes::BytesMut;
use rtc::peer_connection::RTCPeerConnection;
use rtc::sansio::Protocol;
use tokio::net::UdpSocket;

use crate::metrics::Metrics;
use crate::udp::{self, UdpBatch};

/// A sink for outgoing datagrams.
pub trait Transmit {
    /// Queues one datagram.
    fn send(&mut self, to: SocketAddr, data: BytesMut);
    /// Sends everything queued, without waiting.
    fn flush(&mut self);
}

/// A worker's socket and its send queue.
pub(crate) struct SocketTx {
    socket: Arc<UdpSocket>,
    batch: UdpBatch,
    metrics: Arc<Metrics>,
    reported: udp::SendStats,
}

impl SocketTx {
    pub fn new(socket: Arc<UdpSocket>, metrics: Arc<Metrics>) -> Self {
        SocketTx { socket, batch: UdpBatch::default(), metrics, reported: Default::default() }
    }

    pub fn socket(&self) -> Arc<UdpSocket> {
        self.socket.clone()
    }
}

impl Transmit for SocketTx {
    fn send(&mut self, to: SocketAddr, data: BytesMut) {
        self.batch.push(to, data);
        if self.batch.len() >= udp::FLUSH_AT {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.batch.flush(self.socket.as_raw_fd());
        let now = self.batch.stats();
        let m = &self.metrics;
        Metrics::add(&m.udp_datagrams_sent, now.datagrams - self.reported.datagrams);
        Metrics::add(&m.udp_send_calls, now.syscalls - self.reported.syscalls);
        Metrics::add(&m.udp_send_drops, now.dropped - self.reported.dropped);
        self.reported = now;
    }
}

/// Queues what a connection wants to send.
pub(super) fn flush_writes(pc: &mut RTCPeerConnection, tx: &mut impl Transmit) {
    while let Some(msg) = pc.poll_write() {
        tx.send(msg.transport.peer_addr, msg.message);
    }
}
