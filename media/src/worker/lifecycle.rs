//! Sessions coming and going on a worker: installed from a prepared offer,
//! closed (by request, by their connection, for never connecting or going
//! silent, after a panic); producers held for a publisher that may come
//! back, and ended; rooms ended with their primary host.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::sansio::Protocol;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::ingest::Publisher;
use super::peer::{Peer, PeerRole};
use super::transmit::{flush_writes, Transmit};
use super::{Command, Worker};
use crate::admission::Ticket;
use crate::error::SfuError;
use crate::events::SfuEvent;
use crate::metrics::Metrics;
use crate::offer::{Prepared, PreparedPart};
use crate::registry::{SessionInfo, Shared};
use crate::session::{Role, SessionId};
use crate::producer::{lock, Producer};
use crate::room::Room;

/// A connected peer silent for this long is gone (browsers send ICE consent
/// checks every few seconds, RFC 7675).
const SILENCE_TIMEOUT: Duration = Duration::from_secs(15);

impl<T: Transmit> Worker<T> {
    /// Installs a session whose connection was built off this thread.
    pub(super) fn install(&mut self, id: SessionId, room: Arc<Room>, prepared: Prepared, ticket: Ticket, owner: Option<[u8; 32]>) -> Result<(), SfuError> {
        let Prepared { pc, ice, answer, part } = prepared;
        let (role, part, host, slots) = match part {
            PreparedPart::Publisher { producer, codecs } => {
                *lock(&producer.codecs) = codecs;
                let host = (!producer.host.is_empty()).then(|| producer.host.clone());
                (Role::Publisher, PeerRole::Publisher(Publisher::new(producer)), host, Arc::new(Vec::new()))
            }
            PreparedPart::Viewer(sub) => {
                if room.is_ended() {
                    return Err(SfuError::StreamNotFound(room.name.clone()));
                }
                let host = sub.exclude.clone();
                let mut mids = crate::offer::slot_mids(&answer);
                mids.resize(sub.slots.len(), crate::offer::SlotMids { video: None, audio: None });
                let slots = Arc::new(mids);
                (Role::Viewer, PeerRole::Viewer(*sub), host, slots)
            }
        };
        let now = Instant::now();
        let mut pc = pc;
        let deadline = pc.poll_timeout();
        self.shared.sessions.insert(id, SessionInfo { worker: self.index, room: room.clone(), host, role, slots, owner });
        if role == Role::Viewer {
            Metrics::add(&self.shared.metrics.viewers, 1);
        } else {
            Metrics::add(&self.shared.metrics.publishers, 1);
        }
        Metrics::add(&self.shared.metrics.sessions_opened, 1);
        self.routes.add_peer(&ice.ufrag, &ice.pwd, id);
        self.peers.insert(
            id,
            Peer {
                id,
                pc,
                room,
                ufrag: ice.ufrag,
                created: now,
                last_recv: now,
                connected: false,
                deadline,
                role: part,
                keyframe_request_us: None,
                _ticket: ticket,
                #[cfg(feature = "fault-injection")]
                poisoned: false,
            },
        );
        if role == Role::Viewer {
            self.add_subscriber(id, now);
        }
        debug!(worker = self.index, session = %id, ?role, "session opened");
        Ok(())
    }

    /// Closes a session: tells its peer (DTLS close), forgets its routes, and
    /// for a publisher ends or holds its producer.
    pub(super) fn close(&mut self, id: SessionId, why: &'static str) {
        let Some(mut peer) = self.peers.remove(&id) else { return };
        let _ = peer.pc.close();
        flush_writes(&mut peer.pc, &mut self.tx);
        self.forget(peer, why);
    }

    /// Closes a session whose handling panicked. Its connection may be in
    /// any state, so telling the peer is tried, and given up if that panics too.
    pub(super) fn close_after_panic(&mut self, id: SessionId) {
        let Some(mut peer) = self.peers.remove(&id) else { return };
        let tx = &mut self.tx;
        let told = catch_unwind(AssertUnwindSafe(|| {
            let _ = peer.pc.close();
            flush_writes(&mut peer.pc, tx);
        }));
        if told.is_err() {
            warn!(worker = self.index, session = %id, "could not close the connection of a peer that panicked");
        }
        self.forget(peer, "panicked");
    }

    /// The bookkeeping of a peer's end (its connection is dealt with).
    fn forget(&mut self, peer: Peer, why: &'static str) {
        let id = peer.id;
        self.routes.remove_peer(&peer.ufrag);
        self.shared.sessions.remove(&id);
        Metrics::add(&self.shared.metrics.sessions_closed, 1);
        let room = peer.room.clone();
        self.shared.emit(SfuEvent::SessionClosed { stream: room.name.clone(), session: id });
        match &peer.role {
            PeerRole::Publisher(p) => {
                Metrics::dec(&self.shared.metrics.publishers);
                let producer = p.producer.clone();
                let hold = self.shared.config.publisher_hold;
                // `ended` set already: the platform ended it, or removed the host.
                if hold.is_zero() || why == "shutdown" || producer.is_ended() || room.is_ended() {
                    let workers: Vec<_> = self.cmd_txs.iter().collect();
                    end_producer(&self.shared, &workers, &room, &producer, peer.connected);
                } else {
                    // Its consumers stay; a publish of the same host within
                    // the hold takes them over (see `Sfu::publish_host`).
                    producer.publisher_gone.store(true, Ordering::Relaxed);
                    self.held.push((producer.clone(), Instant::now() + hold));
                    if peer.connected && producer.primary {
                        self.shared.emit(SfuEvent::PublisherLeft { stream: room.name.clone() });
                    }
                }
                info!(worker = self.index, session = %id, stream = %room.name, host = %producer.host, why, held = !producer.is_ended(), "publisher left");
            }
            PeerRole::Viewer(_) => {
                Metrics::dec(&self.shared.metrics.viewers);
                self.remove_subscriber(&peer);
                if peer.connected {
                    self.shared.emit(SfuEvent::ViewerLeft { stream: room.name.clone(), session: id });
                }
                debug!(worker = self.index, session = %id, why, "viewer left");
            }
        }
        // Dropping the peer gives its admission ticket back.
    }

    /// Closes every session (shutdown).
    pub(super) fn close_all(&mut self, why: &'static str) {
        let ids: Vec<_> = self.peers.keys().copied().collect();
        for id in ids {
            self.close(id, why);
        }
        self.tx.flush();
    }

    /// After the worker itself panicked: close every peer, each on its own
    /// (one that panics again is forgotten without its connection's word).
    pub(super) fn salvage(&mut self) {
        let ids: Vec<_> = self.peers.keys().copied().collect();
        for id in ids {
            if catch_unwind(AssertUnwindSafe(|| self.close(id, "worker restarted"))).is_err() {
                if let Some(peer) = self.peers.remove(&id) {
                    let _ = catch_unwind(AssertUnwindSafe(|| self.forget(peer, "worker restarted")));
                }
            }
        }
        let _ = catch_unwind(AssertUnwindSafe(|| self.tx.flush()));
    }

    /// Ends held producers whose publisher did not come back in time (one
    /// replaced by its returning publisher is ended already: let go).
    pub(super) fn expire_held(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].1 <= now || self.held[i].0.is_ended() {
                let (producer, _) = self.held.swap_remove(i);
                if !producer.is_ended() {
                    info!(worker = self.index, stream = %producer.name, host = %producer.host, "publisher did not come back: producer ended");
                    if let Some(room) = self.shared.rooms.get(&producer.name).map(|r| r.clone()) {
                        let workers: Vec<_> = self.cmd_txs.iter().collect();
                        end_producer(&self.shared, &workers, &room, &producer, true);
                    }
                    producer.ended.store(true, Ordering::Relaxed);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Closes sessions that never connected in time or went silent.
    pub(super) fn close_stale(&mut self, now: Instant) {
        let connect_timeout = self.shared.config.connect_timeout;
        let mut stale = Vec::new();
        for p in self.peers.values() {
            if !p.connected && now.duration_since(p.created) > connect_timeout {
                stale.push((p.id, "never connected"));
                Metrics::add(&self.shared.metrics.sessions_timed_out, 1);
            } else if p.connected && now.duration_since(p.last_recv) > SILENCE_TIMEOUT {
                stale.push((p.id, "silent"));
            }
        }
        for (id, why) in stale {
            self.close(id, why);
        }
    }
}

/// Ends `producer` for good: it leaves its room, whose subscribers rebind
/// at their workers' next tick. The room ends with it when it was the
/// primary host's or the last one.
pub(crate) fn end_producer(shared: &Shared, workers: &[&mpsc::Sender<Command>], room: &Arc<Room>, producer: &Producer, announce: bool) {
    producer.ended.store(true, Ordering::Relaxed);
    producer.sinks.end();
    let removed = room.remove(producer);
    if producer.primary || room.producers().is_empty() {
        end_room(shared, workers, room, announce);
    } else if removed && !producer.host.is_empty() {
        shared.emit(SfuEvent::HostLeft { stream: room.name.clone(), host: producer.host.clone() });
    }
}

/// Ends `room` for good (once): it leaves the directory, its publishers
/// are closed, every worker closes its subscribers, and the platform hears
/// `StreamEnded` when `announce`. A worker whose queue is full closes them
/// at its next tick anyway (it sees the room ended).
pub(crate) fn end_room(shared: &Shared, workers: &[&mpsc::Sender<Command>], room: &Arc<Room>, announce: bool) {
    if room.ended.swap(true, Ordering::AcqRel) {
        return;
    }
    shared.rooms.remove_if(&room.name, |_, r| r.id == room.id);
    for producer in room.producers() {
        producer.ended.store(true, Ordering::Relaxed);
        producer.sinks.end();
        if let Some(w) = shared.sessions.get(&producer.publisher).map(|s| s.worker) {
            let (reply, _) = oneshot::channel();
            let _ = workers[w].try_send(Command::Close { id: producer.publisher, end_stream: true, reply });
        }
    }
    for tx in workers {
        let _ = tx.try_send(Command::EndRoom { room: room.id });
    }
    if announce {
        shared.emit(SfuEvent::StreamEnded { stream: room.name.clone() });
    }
}
