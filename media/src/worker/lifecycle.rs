//! Sessions coming and going on a worker: installed from a prepared offer,
//! closed (by request, by their connection, for never connecting or going
//! silent, after a panic), moved to a returning publisher, and streams held
//! for a publisher that may come back.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::sansio::Protocol;
use tokio::sync::mpsc;
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
use crate::stream::{lock, StreamShared};

/// A connected peer silent for this long is gone (browsers send ICE consent
/// checks every few seconds, RFC 7675).
const SILENCE_TIMEOUT: Duration = Duration::from_secs(15);

impl<T: Transmit> Worker<T> {
    /// Installs a session whose connection was built off this thread.
    pub(super) fn install(&mut self, id: SessionId, stream: Arc<StreamShared>, prepared: Prepared, ticket: Ticket, owner: Option<[u8; 32]>) -> Result<(), SfuError> {
        let Prepared { pc, ice, answer: _, part } = prepared;
        let (role, part) = match part {
            PreparedPart::Publisher(codecs) => {
                *lock(&stream.codecs) = codecs;
                (Role::Publisher, PeerRole::Publisher(Publisher::default()))
            }
            PreparedPart::Viewer(viewer) => {
                if stream.is_ended() {
                    return Err(SfuError::StreamNotFound(stream.name.clone()));
                }
                (Role::Viewer, PeerRole::Viewer(*viewer))
            }
        };
        let now = Instant::now();
        let mut pc = pc;
        let deadline = pc.poll_timeout();
        self.shared.sessions.insert(id, SessionInfo { worker: self.index, stream: stream.clone(), role, owner });
        if role == Role::Viewer {
            self.viewers_of.entry(stream.id).or_default().push(id);
            stream.viewer_workers.fetch_or(1 << self.index, Ordering::Relaxed);
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
                stream,
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
        debug!(worker = self.index, session = %id, ?role, "session opened");
        Ok(())
    }

    /// Closes a session: tells its peer (DTLS close), forgets its routes, and
    /// for a publisher ends or holds its stream.
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
        let stream = peer.stream.clone();
        self.shared.emit(SfuEvent::SessionClosed { stream: stream.name.clone(), session: id });
        match peer.role {
            PeerRole::Publisher(_) => {
                Metrics::dec(&self.shared.metrics.publishers);
                let hold = self.shared.config.publisher_hold;
                // `ended` set already: the platform ended the stream.
                if hold.is_zero() || why == "shutdown" || stream.is_ended() {
                    stream.ended.store(true, Ordering::Relaxed);
                    end_everywhere(&self.shared, self.cmd_txs.iter(), &stream, peer.connected);
                } else {
                    // Viewers stay; a publish of this stream within the hold
                    // takes them over (see `Sfu::publish`).
                    stream.publisher_gone.store(true, Ordering::Relaxed);
                    self.held.push((stream.clone(), Instant::now() + hold));
                    if peer.connected {
                        self.shared.emit(SfuEvent::PublisherLeft { stream: stream.name.clone() });
                    }
                }
                info!(worker = self.index, session = %id, stream = %stream.name, why, held = !stream.is_ended(), "publisher left");
            }
            PeerRole::Viewer(_) => {
                Metrics::dec(&self.shared.metrics.viewers);
                if let Some(list) = self.viewers_of.get_mut(&stream.id) {
                    list.retain(|v| *v != id);
                    if list.is_empty() {
                        self.viewers_of.remove(&stream.id);
                        stream.viewer_workers.fetch_and(!(1 << self.index), Ordering::Relaxed);
                    }
                }
                if peer.connected {
                    self.shared.emit(SfuEvent::ViewerLeft { stream: stream.name.clone(), session: id });
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

    /// Moves this worker's viewers of `old` to `new` (see [`Command::Adopt`]).
    pub(super) fn adopt(&mut self, old: &Arc<StreamShared>, new: &Arc<StreamShared>, keep: bool) {
        let Some(ids) = self.viewers_of.remove(&old.id) else { return };
        old.viewer_workers.fetch_and(!(1 << self.index), Ordering::Relaxed);
        if !keep {
            for id in ids {
                self.close(id, "the publisher came back with other codecs");
            }
            return;
        }
        for id in &ids {
            if let Some(peer) = self.peers.get_mut(id) {
                peer.stream = new.clone();
                if let PeerRole::Viewer(vp) = &mut peer.role {
                    // The new publisher's packets are a new source: forward
                    // from its first keyframe on, numbered on from the old one.
                    vp.publisher_changed();
                    vp.retarget(new);
                }
            }
            if let Some(mut info) = self.shared.sessions.get_mut(id) {
                info.stream = new.clone();
            }
        }
        new.viewer_workers.fetch_or(1 << self.index, Ordering::Relaxed);
        self.viewers_of.entry(new.id).or_default().extend(ids);
    }

    /// Ends held streams whose publisher did not come back in time.
    pub(super) fn expire_held(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].1 <= now || self.held[i].0.is_ended() {
                let (stream, _) = self.held.swap_remove(i);
                if !stream.ended.swap(true, Ordering::Relaxed) {
                    info!(worker = self.index, stream = %stream.name, "publisher did not come back: stream ended");
                    end_everywhere(&self.shared, self.cmd_txs.iter(), &stream, true);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Closes sessions that never connected in time or went silent, and
    /// settles viewers of a stream that is over (moved to its successor, or
    /// closed), should its `EndStream` or `Adopt` have found this worker's
    /// queue full.
    pub(super) fn close_stale(&mut self, now: Instant) {
        let connect_timeout = self.shared.config.connect_timeout;
        let mut stale = Vec::new();
        let mut orphaned: Vec<Arc<StreamShared>> = Vec::new();
        for p in self.peers.values() {
            if !p.connected && now.duration_since(p.created) > connect_timeout {
                stale.push((p.id, "never connected"));
                Metrics::add(&self.shared.metrics.sessions_timed_out, 1);
            } else if p.connected && now.duration_since(p.last_recv) > SILENCE_TIMEOUT {
                stale.push((p.id, "silent"));
            } else if matches!(p.role, PeerRole::Viewer(_)) && p.stream.is_ended() && !orphaned.iter().any(|s| s.id == p.stream.id) {
                orphaned.push(p.stream.clone());
            }
        }
        for (id, why) in stale {
            self.close(id, why);
        }
        for old in orphaned {
            match old.successor.get() {
                Some((new, keep)) => self.adopt(&old, &new.clone(), *keep),
                None => {
                    for id in self.viewers_of.remove(&old.id).unwrap_or_default() {
                        self.close(id, "stream ended");
                    }
                }
            }
        }
    }
}

/// Ends `stream` for good (its `ended` already set by the caller, once):
/// it leaves the directory, every worker closes its viewers, and the
/// platform hears `StreamEnded` when `announce`. A worker whose queue is
/// full closes them at its next second anyway (see `close_stale`).
pub(crate) fn end_everywhere<'a>(shared: &Shared, workers: impl Iterator<Item = &'a mpsc::Sender<Command>>, stream: &StreamShared, announce: bool) {
    shared.streams.remove_if(&stream.name, |_, s| s.id == stream.id);
    for tx in workers {
        let _ = tx.try_send(Command::EndStream { stream: stream.id });
    }
    if announce {
        shared.emit(SfuEvent::StreamEnded { stream: stream.name.clone() });
    }
}
