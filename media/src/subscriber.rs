//! A subscriber: one viewer connection's slots, each a [`Consumer`] of
//! whichever producers the room puts there, and the stream allocator that
//! shares the connection's bandwidth estimate among them.
//!
//! WHEP forbids renegotiation, so a viewer declares its slots up front: an
//! offer with K video and K audio m-lines gets K slots. A plain player (one
//! of each) has one slot and gets the room's program (see
//! [`crate::room::Room::slots`]). Which producer feeds a slot changes with
//! the room; the SDP never does.

use std::sync::Arc;

use crate::consumer::Consumer;
use crate::layer::{Layer, LayerCap};
use crate::packet::{ForwardPacket, Kind};
use crate::negotiate::StreamCodecs;
use crate::producer::Producer;
use crate::room::{LayoutKind, SlotMap};

/// One slot: a consumer and the producers feeding its video and audio.
#[derive(Debug)]
pub struct Slot {
    /// The forwarding state (down tracks, rewriters, layer choice).
    pub consumer: Consumer,
    /// Where its video comes from now.
    pub video: Option<Arc<Producer>>,
    /// Where its audio comes from now.
    pub audio: Option<Arc<Producer>>,
}

impl Slot {
    /// Whether this slot takes `p` (its producer feeds this slot's track of that kind).
    #[inline]
    pub fn carries(&self, p: &ForwardPacket) -> bool {
        let from = match p.kind {
            Kind::Video => &self.video,
            Kind::Audio => &self.audio,
        };
        from.as_ref().is_some_and(|f| f.id == p.producer)
    }
}

/// A slot's producers changed: what the routing table must learn.
#[derive(Debug, Default)]
pub struct Rebound {
    /// Producers this subscriber no longer consumes at all.
    pub dropped: Vec<Arc<Producer>>,
    /// Producers it consumes now and did not before.
    pub added: Vec<Arc<Producer>>,
    /// Producers whose keyframe a slot now waits for, and of which layer.
    pub keyframes: Vec<(Arc<Producer>, Layer)>,
}

/// One viewer connection's slots.
#[derive(Debug)]
pub struct Subscriber {
    /// Its slots, in the order of the offer's m-lines.
    pub slots: Vec<Slot>,
    /// The layer cap the viewer asked for (its focus slot's, or every
    /// slot's in a grid).
    pub cap: LayerCap,
    /// A host watching its own room: its own producer is left out.
    pub exclude: Option<String>,
    /// The room version its slots were last bound at.
    pub room_version: u64,
    /// The room's layout kind at that time.
    pub layout: LayoutKind,
    /// The connection's latest bandwidth estimate (REMB).
    pub estimate_bps: Option<u64>,
    /// The room's codecs when it connected (its audio codec is the one
    /// every producer must send to feed it; video: see [`Subscriber::can_take`]).
    pub codecs: StreamCodecs,
}

impl Subscriber {
    /// A subscriber whose slots are `consumers` (none bound yet).
    pub fn new(consumers: Vec<Consumer>, codecs: StreamCodecs, cap: LayerCap, exclude: Option<String>) -> Self {
        let slots = consumers.into_iter().map(|consumer| Slot { consumer, video: None, audio: None }).collect();
        Subscriber { slots, cap, exclude, room_version: 0, layout: LayoutKind::Grid, estimate_bps: None, codecs }
    }

    /// Whether its connection can take what `producer` sends: a video codec
    /// its video tracks negotiated, its audio codec.
    pub fn can_take(&self, producer: &StreamCodecs) -> bool {
        let video = match &producer.video {
            None => true,
            Some(codec) => self.slots.iter().filter_map(|s| s.consumer.video.as_ref()).all(|t| t.can_carry(codec)),
        };
        video && self.codecs.same_media(&StreamCodecs { video: None, audio: producer.audio.clone() })
    }

    /// The slot that shows the most (the focus, or the program).
    pub fn main(&self) -> Option<&Consumer> {
        self.slots.first().map(|s| &s.consumer)
    }

    /// Mutable [`Subscriber::main`].
    pub fn main_mut(&mut self) -> Option<&mut Consumer> {
        self.slots.first_mut().map(|s| &mut s.consumer)
    }

    /// The producers this subscriber consumes (each once).
    pub fn producers(&self) -> Vec<Arc<Producer>> {
        let mut out: Vec<Arc<Producer>> = Vec::new();
        for s in &self.slots {
            for p in [&s.video, &s.audio].into_iter().flatten() {
                if !out.iter().any(|o| o.id == p.id) {
                    out.push(p.clone());
                }
            }
        }
        out
    }

    /// The slot whose video track has `ssrc` (our SSRC toward the viewer).
    pub fn slot_by_video_ssrc(&mut self, ssrc: u32) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.consumer.video.as_ref().is_some_and(|t| t.ssrc == ssrc))
    }

    /// Binds the slots to `map` (from [`crate::room::Room::slots`]) at room
    /// version `version`. A slot whose producer changed resumes from the new
    /// one's next keyframe, numbered on; its layer cap follows the layout.
    pub fn bind(&mut self, map: &SlotMap, layout: LayoutKind, version: u64, now_us: u64) -> Rebound {
        let before = self.producers();
        self.room_version = version;
        self.layout = layout;
        let mut keyframes = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let video = map.video.get(i).cloned().flatten();
            let audio = map.audio.get(i).cloned().flatten();
            if video.as_ref().map(|p| p.id) != slot.video.as_ref().map(|p| p.id) {
                slot.consumer.video_source_changed();
                if let (Some(p), Some(track)) = (&video, &mut slot.consumer.video) {
                    if let Some(codec) = &crate::producer::lock(&p.codecs).video {
                        track.use_codec(codec);
                    }
                }
                slot.video = video;
            }
            if audio.as_ref().map(|p| p.id) != slot.audio.as_ref().map(|p| p.id) {
                slot.consumer.audio_source_changed();
                slot.audio = audio;
            }
        }
        let caps = self.slot_caps();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            slot.consumer.cap = caps[i];
            if let Some(v) = &slot.video {
                slot.consumer.retarget(v);
                if let Some(layer) = slot.consumer.keyframe_wanted(now_us) {
                    keyframes.push((v.clone(), layer));
                }
            }
        }
        let after = self.producers();
        Rebound {
            dropped: before.iter().filter(|b| !after.iter().any(|a| a.id == b.id)).cloned().collect(),
            added: after.iter().filter(|a| !before.iter().any(|b| b.id == a.id)).cloned().collect(),
            keyframes,
        }
    }

    /// Each slot's layer cap. Layers follow the layout: the focus tile
    /// (slot 0) gets the viewer's cap and small tiles the low layer; in a
    /// grid every tile is the same size: the middle layer for a 2x2 grid,
    /// the low one for 3x3 (a tile a third of the screen wide needs no
    /// more), the viewer's cap for a single tile.
    fn slot_caps(&self) -> Vec<LayerCap> {
        let shown = self.slots.iter().filter(|s| s.video.is_some()).count();
        let grid = match shown {
            0 | 1 => None,
            2..=4 => Some(Layer::H),
            _ => Some(Layer::Q),
        };
        let tile = |small: Layer| match self.cap {
            LayerCap::Max(l) if l < small => self.cap,
            _ => LayerCap::Max(small),
        };
        (0..self.slots.len())
            .map(|i| match (self.layout, grid) {
                (LayoutKind::Grid, Some(l)) => tile(l),
                (LayoutKind::Grid, None) => self.cap,
                _ if i == 0 => self.cap,
                _ => tile(Layer::Q),
            })
            .collect()
    }

    /// Sets the viewer's cap (applied to the slots as the layout says).
    pub fn set_cap(&mut self, cap: LayerCap) {
        self.cap = cap;
        let caps = self.slot_caps();
        for (slot, cap) in self.slots.iter_mut().zip(caps) {
            slot.consumer.cap = cap;
            if let Some(v) = &slot.video {
                slot.consumer.retarget(v);
            }
        }
    }

    /// The stream allocator: shares the connection's estimate among the
    /// slots that have video. Small tiles are given what their layer sends
    /// now; the focus slot gets the rest, so that it is the one that moves
    /// up or down with the link. In a grid the estimate is shared equally.
    pub fn allocate(&mut self, estimate_bps: u64, now_us: u64) {
        self.estimate_bps = Some(estimate_bps);
        let active: Vec<usize> = (0..self.slots.len()).filter(|&i| self.slots[i].video.is_some()).collect();
        if active.is_empty() {
            return;
        }
        if self.layout == LayoutKind::Grid || active.len() == 1 {
            let share = estimate_bps / active.len() as u64;
            for i in active {
                self.slots[i].consumer.estimate_bps = Some(share);
            }
            return;
        }
        let mut rest = estimate_bps;
        for &i in active.iter().filter(|&&i| i != 0) {
            let sent = self.slots[i].consumer.rate.bps(now_us);
            self.slots[i].consumer.estimate_bps = Some(sent.max(estimate_bps / (4 * active.len() as u64)));
            rest = rest.saturating_sub(sent);
        }
        if let Some(first) = self.slots.first_mut().filter(|s| s.video.is_some()) {
            first.consumer.estimate_bps = Some(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::DownTrack;
    use crate::room::{Layout, Room};
    use crate::session::SessionId;

    fn subscriber(slots: usize) -> Subscriber {
        let consumers = (0..slots).map(|i| Consumer::new(Some(DownTrack::new(10 + i as u32, 96, 90_000)), Some(DownTrack::new(20 + i as u32, 111, 48_000)), LayerCap::Auto)).collect();
        Subscriber::new(consumers, StreamCodecs::default(), LayerCap::Auto, None)
    }

    fn room(hosts: &[&str]) -> Room {
        let room = Room::new(1, "r");
        for (i, h) in hosts.iter().enumerate() {
            let p = Producer::for_host(i as u64 + 1, "r", h, i == 0, SessionId::random(), 0);
            p.layers_seen.store(0b111, std::sync::atomic::Ordering::Relaxed);
            room.add(Arc::new(p)).unwrap();
        }
        room
    }

    #[test]
    fn binding_reports_what_the_routing_table_and_the_publishers_must_do() {
        let r = room(&["ann", "bob", "cat"]);
        let mut s = subscriber(2);
        let first = s.bind(&r.slots(2, None), LayoutKind::Grid, r.version(), 0);
        let ids = |l: &[Arc<Producer>]| l.iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(ids(&first.added), vec![1, 2]);
        assert!(first.dropped.is_empty());
        assert_eq!(first.keyframes.iter().map(|(p, l)| (p.id, *l)).collect::<Vec<_>>(), vec![(1, Layer::H), (2, Layer::H)]);
        assert!(s.slots.iter().all(|s| s.consumer.cap == LayerCap::Max(Layer::H)), "a 2x2 grid's tiles get the middle layer");
        r.set_layout(Layout { kind: LayoutKind::Sidebar, focus: Some("cat".into()), order: vec![] });
        let second = s.bind(&r.slots(2, None), LayoutKind::Sidebar, r.version(), 10);
        assert_eq!(ids(&second.added), vec![3]);
        assert_eq!(ids(&second.dropped), vec![2]);
        assert_eq!(s.slots[0].video.as_ref().unwrap().host, "cat");
        assert_eq!(s.slots[0].consumer.cap, LayerCap::Auto, "the focus tile gets the viewer's cap");
        assert_eq!(s.slots[1].consumer.cap, LayerCap::Max(Layer::Q), "a small tile gets the low layer");
        assert_eq!(s.slots[1].consumer.target, Some(Layer::Q));
    }

    #[test]
    fn the_allocator_gives_the_focus_what_small_tiles_leave() {
        let r = room(&["ann", "bob"]);
        let mut s = subscriber(2);
        r.set_layout(Layout { kind: LayoutKind::Spotlight, focus: None, order: vec![] });
        s.bind(&r.slots(2, None), LayoutKind::Spotlight, r.version(), 0);
        s.slots[1].consumer.rate.add(25_000, 0); // 200 kbit/s over the meter's window
        let small = s.slots[1].consumer.rate.bps(1_000_000);
        s.allocate(2_000_000, 1_000_000);
        assert_eq!(s.slots[0].consumer.estimate_bps, Some(2_000_000 - small));
        assert_eq!(s.slots[1].consumer.estimate_bps, Some(small.max(2_000_000 / 8)));
        s.bind(&r.slots(2, None), LayoutKind::Grid, r.version(), 0);
        s.allocate(2_000_000, 1_000_000);
        assert_eq!(s.slots[0].consumer.estimate_bps, Some(1_000_000), "a grid shares equally");
    }
}
