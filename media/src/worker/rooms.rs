//! Subscribers bound to their room's slots: the worker's routing table
//! (which subscribers here consume which producer) kept in step with the
//! rooms.
//!
//! A room moves its version when a host comes or goes, the layout changes
//! or the active speaker does. Every tick the worker compares each room it
//! has subscribers of with the version they were bound at, and rebinds them
//! when it moved: one atomic load per room per tick on the quiet path.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::peer::{Peer, PeerRole};
use super::transmit::Transmit;
use super::{RoomHere, Worker};
use crate::session::SessionId;

impl<T: Transmit> Worker<T> {
    /// Starts tracking a new subscriber of its room and binds its slots.
    pub(super) fn add_subscriber(&mut self, id: SessionId, now: Instant) {
        let Some(peer) = self.peers.get(&id) else { return };
        let room = peer.room.clone();
        let here = self.rooms_here.entry(room.id).or_insert_with(|| RoomHere { version: room.version(), room: room.clone(), subscribers: Vec::new() });
        here.subscribers.push(id);
        self.bind(id, now);
    }

    /// Forgets a subscriber that is going away: out of the routing table
    /// and its room's list.
    pub(super) fn remove_subscriber(&mut self, peer: &Peer) {
        let PeerRole::Viewer(sub) = &peer.role else { return };
        for slot in &sub.slots {
            for producer in [&slot.video, &slot.audio].into_iter().flatten() {
                self.unroute(peer.id, producer);
            }
        }
        if let Some(here) = self.rooms_here.get_mut(&peer.room.id) {
            here.subscribers.retain(|s| *s != peer.id);
            if here.subscribers.is_empty() {
                self.rooms_here.remove(&peer.room.id);
            }
        }
    }

    /// Every tick: rebinds the subscribers of rooms that changed, and
    /// closes those of rooms that ended.
    pub(super) fn rebind_changed_rooms(&mut self, now: Instant) {
        let changed: Vec<u64> = self.rooms_here.values().filter(|h| h.room.version() != h.version || h.room.is_ended()).map(|h| h.room.id).collect();
        for room in changed {
            self.rebind_room(room, now);
        }
    }

    /// Rebinds every subscriber of `room` here (or closes them all if it ended).
    pub(super) fn rebind_room(&mut self, room: u64, now: Instant) {
        let Some(here) = self.rooms_here.get_mut(&room) else { return };
        let ids = here.subscribers.clone();
        if here.room.is_ended() {
            for id in ids {
                self.close(id, "stream ended");
            }
            return;
        }
        here.version = here.room.version();
        for id in ids {
            self.isolate(id, |w| w.bind(id, now));
        }
    }

    /// Binds one subscriber's slots to what its room says now. A slot is
    /// left empty rather than fed a producer whose codecs the subscriber did
    /// not negotiate; a one-slot subscriber (a plain player) that can no
    /// longer take its program is closed, so that it reconnects and
    /// negotiates again.
    fn bind(&mut self, id: SessionId, now: Instant) {
        let now_us = self.us(now);
        let Some(Peer { room, role: PeerRole::Viewer(sub), connected, .. }) = self.peers.get_mut(&id) else { return };
        let version = room.version();
        let mut map = room.slots(sub.slots.len(), sub.exclude.as_deref());
        let mut refused = false;
        for list in [&mut map.video, &mut map.audio] {
            for entry in list.iter_mut() {
                if entry.as_ref().is_some_and(|p| !sub.can_take(&crate::producer::lock(&p.codecs))) {
                    *entry = None;
                    refused = true;
                }
            }
        }
        if refused && sub.slots.len() == 1 {
            self.close(id, "the program's codecs changed");
            return;
        }
        let layout = room.layout().kind;
        let rebound = sub.bind(&map, layout, version, now_us);
        let connected = *connected;
        for (producer, layer) in &rebound.keyframes {
            if connected {
                producer.request_keyframe(*layer);
            }
        }
        for producer in &rebound.dropped {
            self.unroute(id, producer);
        }
        for producer in &rebound.added {
            self.consumers_of.entry(producer.id).or_default().push(id);
            producer.viewer_workers.fetch_or(1 << self.index, Ordering::Relaxed);
        }
    }

    /// Takes `id` off the list of consumers of `producer` here.
    fn unroute(&mut self, id: SessionId, producer: &crate::producer::Producer) {
        if let Some(list) = self.consumers_of.get_mut(&producer.id) {
            list.retain(|v| *v != id);
            if list.is_empty() {
                self.consumers_of.remove(&producer.id);
                producer.viewer_workers.fetch_and(!(1 << self.index), Ordering::Relaxed);
            }
        }
    }
}
