//! A room (mediasoup's Router): the producers of one live stream, one per
//! host, their order and layout, and who is speaking.
//!
//! A single-host stream is a room with one producer. A co-host room has up
//! to [`MAX_HOSTS`]. Workers never lock a room on the packet path: packets
//! carry their producer's id, and a subscriber asks the room which producer
//! goes in which of its slots only when the room's [`Room::version`] moved
//! (a host joined or left, the layout or the active speaker changed).
//!
//! Two rooms can be linked (a PK battle: mediasoup's pipeToRouter, Janus's
//! remote publishers): each room's hosts then also fill the other room's
//! multi-slot subscribers, after its own hosts, with no re-publishing. The
//! link is a reference to the other room, so a relay from another node can
//! later stand in for it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use serde::Serialize;

use crate::audio_level::{ActiveSpeakerDetector, AudioLevel};
use crate::negotiate::StreamCodecs;
use crate::producer::{lock, Producer, ProducerId};

/// Hosts a room holds at most.
pub const MAX_HOSTS: usize = 9;

/// How a room's hosts are arranged on viewers' screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayoutKind {
    /// Equal tiles (2x2 up to four hosts, 3x3 beyond); one-slot viewers get
    /// the active speaker.
    #[default]
    Grid,
    /// The focus host fills the screen.
    Spotlight,
    /// The focus host large, the others in a column.
    Sidebar,
    /// The focus host full, one other in a small inset.
    Pip,
}

/// A room's layout: its kind, the host in focus, and the order of the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// Grid, spotlight, sidebar or picture-in-picture.
    pub kind: LayoutKind,
    /// The host shown large (and given to one-slot viewers), by host name.
    pub focus: Option<String>,
    /// Preferred order of the hosts (names); hosts not named follow in the
    /// order they joined.
    pub order: Vec<String>,
}

/// What a subscriber with some number of slots gets: for each slot, the
/// producer of its video and of its audio (`None`: the slot sends nothing).
#[derive(Debug, Clone, Default)]
pub struct SlotMap {
    /// Video producer per slot.
    pub video: Vec<Option<Arc<Producer>>>,
    /// Audio producer per slot.
    pub audio: Vec<Option<Arc<Producer>>>,
}

/// Who is speaking in a room.
#[derive(Debug, Default)]
struct Speakers {
    detector: ActiveSpeakerDetector,
    /// The dominant speaker's producer.
    active: Option<ProducerId>,
}

/// One live stream's hosts.
#[derive(Debug)]
pub struct Room {
    /// Unique id.
    pub id: u64,
    /// The stream's name.
    pub name: String,
    /// Live and held producers, in the order their hosts joined.
    producers: RwLock<Vec<Arc<Producer>>>,
    layout: Mutex<Layout>,
    speakers: Mutex<Speakers>,
    /// Bumped at every change a subscriber's slots may depend on.
    version: AtomicU64,
    /// Set once: the room is over.
    pub ended: AtomicBool,
    /// Hosts removed from the room: they cannot publish into it again.
    removed: Mutex<HashSet<String>>,
    /// The room this one is linked with (a battle), if any.
    link: RwLock<Option<Weak<Room>>>,
}

impl Room {
    /// An empty room.
    pub fn new(id: u64, name: &str) -> Room {
        Room {
            id,
            name: name.to_owned(),
            producers: RwLock::new(Vec::new()),
            layout: Mutex::new(Layout::default()),
            speakers: Mutex::new(Speakers::default()),
            version: AtomicU64::new(1),
            ended: AtomicBool::new(false),
            removed: Mutex::new(HashSet::new()),
            link: RwLock::new(None),
        }
    }

    /// Changes with every host, layout or active-speaker change, here or in
    /// the linked room (its changes move this room's slots too): this
    /// room's own counter in the high half, the linked room's in the low
    /// half (0 once it ended). Linking and unlinking move the high half.
    pub fn version(&self) -> u64 {
        let own = self.version.load(Ordering::Acquire) << 32;
        let linked = self.linked().map_or(0, |l| if l.is_ended() { 0 } else { l.version.load(Ordering::Acquire) & 0xffff_ffff });
        own | linked
    }

    /// The live room this one is linked with.
    pub fn linked(&self) -> Option<Arc<Room>> {
        self.link.read().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().and_then(Weak::upgrade).filter(|r| !r.is_ended())
    }

    /// Links `a` and `b` both ways. Fails (changing nothing) if either is
    /// linked to a live room already, or they are the same room.
    pub fn link(a: &Arc<Room>, b: &Arc<Room>) -> Result<(), LinkError> {
        if a.id == b.id {
            return Err(LinkError::SameRoom);
        }
        // Lock in id order, so two links made at once cannot deadlock.
        let (first, second) = if a.id < b.id { (a, b) } else { (b, a) };
        let mut l1 = first.link.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut l2 = second.link.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let live = |l: &Option<Weak<Room>>| l.as_ref().and_then(Weak::upgrade).is_some_and(|r| !r.is_ended());
        if live(&l1) {
            return Err(LinkError::Linked(first.name.clone()));
        }
        if live(&l2) {
            return Err(LinkError::Linked(second.name.clone()));
        }
        *l1 = Some(Arc::downgrade(second));
        *l2 = Some(Arc::downgrade(first));
        drop((l1, l2));
        a.changed();
        b.changed();
        Ok(())
    }

    /// Undoes [`Room::link`] of `a` and `b`; false if they were not linked.
    pub fn unlink(a: &Arc<Room>, b: &Arc<Room>) -> bool {
        let (first, second) = if a.id < b.id { (a, b) } else { (b, a) };
        let mut l1 = first.link.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut l2 = second.link.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let points_to = |l: &Option<Weak<Room>>, r: &Room| l.as_ref().and_then(Weak::upgrade).is_some_and(|x| x.id == r.id);
        if !points_to(&l1, second) || !points_to(&l2, first) {
            return false;
        }
        *l1 = None;
        *l2 = None;
        drop((l1, l2));
        a.changed();
        b.changed();
        true
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether the room is over.
    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// Its producers (live and held), in join order.
    pub fn producers(&self) -> Vec<Arc<Producer>> {
        self.producers.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The producer of `host`.
    pub fn producer(&self, host: &str) -> Option<Arc<Producer>> {
        self.producers().into_iter().find(|p| p.host == host)
    }

    /// The primary host's producer.
    pub fn primary(&self) -> Option<Arc<Producer>> {
        self.producers().into_iter().find(|p| p.primary)
    }

    /// Adds `producer`. A held producer of the same host (its publisher
    /// left and may come back) is replaced and returned, for its consumers
    /// to move to the new one. Fails when the host publishes already, was
    /// removed from the room, or the room is full.
    pub fn add(&self, producer: Arc<Producer>) -> Result<Option<Arc<Producer>>, AddError> {
        if lock(&self.removed).contains(&producer.host) {
            return Err(AddError::Removed);
        }
        let mut list = self.producers.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = match list.iter().position(|p| p.host == producer.host) {
            Some(i) if !list[i].publisher_gone.load(Ordering::Relaxed) && !list[i].is_ended() => return Err(AddError::Busy),
            Some(i) => Some(std::mem::replace(&mut list[i], producer)),
            None if list.len() >= MAX_HOSTS => return Err(AddError::Full),
            None => {
                list.push(producer);
                None
            }
        };
        drop(list);
        self.changed();
        Ok(held)
    }

    /// Takes `producer` out (it ended). True if it was there.
    pub fn remove(&self, producer: &Producer) -> bool {
        let mut list = self.producers.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = list.len();
        list.retain(|p| p.id != producer.id);
        let removed = list.len() != before;
        drop(list);
        if removed {
            let mut s = lock(&self.speakers);
            s.detector.remove(producer.id);
            if s.active == Some(producer.id) {
                s.active = None;
            }
            drop(s);
            self.changed();
        }
        removed
    }

    /// Puts back a producer that [`Room::add`] replaced, when the new one
    /// failed to connect.
    pub fn restore(&self, failed: &Producer, held: Arc<Producer>) {
        let mut list = self.producers.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match list.iter().position(|p| p.id == failed.id) {
            Some(i) => list[i] = held,
            None => list.push(held),
        }
        drop(list);
        self.changed();
    }

    /// The codecs viewers are offered: the primary host's, and for a kind
    /// it does not send, the first other host's that does.
    pub fn codecs(&self) -> StreamCodecs {
        let mut producers = self.producers();
        producers.sort_by_key(|p| !p.primary);
        let mut out = StreamCodecs::default();
        for p in producers {
            let c = lock(&p.codecs);
            if out.video.is_none() {
                out.video = c.video.clone();
            }
            if out.audio.is_none() {
                out.audio = c.audio.clone();
            }
        }
        out
    }

    /// Bars `host` from publishing into the room again (kicked).
    pub fn bar(&self, host: &str) {
        lock(&self.removed).insert(host.to_owned());
    }

    /// The layout now.
    pub fn layout(&self) -> Layout {
        lock(&self.layout).clone()
    }

    /// Sets the layout.
    pub fn set_layout(&self, layout: Layout) {
        *lock(&self.layout) = layout;
        self.changed();
    }

    /// An audio level heard from `producer`.
    pub fn observe_level(&self, producer: ProducerId, level: AudioLevel, now_ms: u64) {
        lock(&self.speakers).detector.observe(producer, level, now_ms);
    }

    /// Moves the active speaker on; returns the new one when it changed.
    pub fn speaker_tick(&self, now_ms: u64) -> Option<ProducerId> {
        let mut s = lock(&self.speakers);
        let changed = s.detector.tick(now_ms)?;
        s.active = Some(changed);
        drop(s);
        self.changed();
        Some(changed)
    }

    /// Whether `producer` is speaking.
    pub fn speaking(&self, producer: ProducerId, now_ms: u64) -> bool {
        lock(&self.speakers).detector.speaking(producer, now_ms)
    }

    /// The dominant speaker's producer, if any.
    pub fn active_speaker(&self) -> Option<ProducerId> {
        lock(&self.speakers).active
    }

    /// The hosts in the order viewers see them: the focus first (the
    /// layout's, or in a grid the active speaker), then the layout's order,
    /// then join order; `exclude` (a host watching the room) left out.
    pub fn ranked(&self, exclude: Option<&str>) -> Vec<Arc<Producer>> {
        self.ranked_in(&self.layout(), exclude)
    }

    /// [`Room::ranked`] for a layout already read.
    fn ranked_in(&self, layout: &Layout, exclude: Option<&str>) -> Vec<Arc<Producer>> {
        let producers = self.producers();
        let focus = layout.focus.as_deref().and_then(|f| producers.iter().find(|p| p.host == f));
        let mut out: Vec<Arc<Producer>> = Vec::with_capacity(producers.len());
        let mut push = |p: &Arc<Producer>| {
            if Some(p.host.as_str()) != exclude && !out.iter().any(|o| o.id == p.id) {
                out.push(p.clone());
            }
        };
        if let Some(f) = focus {
            push(f);
        }
        for name in &layout.order {
            if let Some(p) = producers.iter().find(|p| &p.host == name) {
                push(p);
            }
        }
        for p in &producers {
            push(p);
        }
        out
    }

    /// Which producer goes in which of `count` slots. With one slot (a
    /// plain WHEP player) the video is the program: the focus host, or in a
    /// grid the active speaker; the audio is the active speaker. With more,
    /// each slot carries one host's video and audio, in [`Room::ranked`] order.
    ///
    /// In a linked room, the other room's hosts follow this room's own, in
    /// its order, and get at least one slot; a one-slot subscriber keeps
    /// this room's program, unless this room has nobody else to show (a
    /// lone host watching: it gets the other room's program).
    pub fn slots(&self, count: usize, exclude: Option<&str>) -> SlotMap {
        match self.linked() {
            Some(other) if count == 1 && self.ranked(exclude).is_empty() => other.slots(1, None),
            Some(other) if count > 1 => {
                let own = self.slots_here(count, exclude);
                let theirs = other.slots_here(count, None);
                let theirs_n = theirs.video.iter().flatten().count();
                // The other side gets what this side leaves, and at least one.
                let own_n = own.video.iter().flatten().count().min(count - theirs_n.min(1)).min(count);
                let mut map = SlotMap { video: own.video[..own_n].to_vec(), audio: own.audio[..own_n].to_vec() };
                map.video.extend(theirs.video.into_iter().flatten().take(count - own_n).map(Some));
                map.audio.extend(theirs.audio.into_iter().flatten().take(count - own_n).map(Some));
                map.video.resize(count, None);
                map.audio.resize(count, None);
                map
            }
            _ => self.slots_here(count, exclude),
        }
    }

    /// [`Room::slots`] from this room's own hosts only.
    fn slots_here(&self, count: usize, exclude: Option<&str>) -> SlotMap {
        // One read of the layout for both the order and the program.
        let layout = self.layout();
        let ranked = self.ranked_in(&layout, exclude);
        let mut map = SlotMap { video: vec![None; count], audio: vec![None; count] };
        if count == 0 {
            return map;
        }
        if count == 1 {
            let active = self.active_speaker().and_then(|id| ranked.iter().find(|p| p.id == id).cloned());
            let focus_set = layout.focus.as_deref().is_some_and(|f| ranked.iter().any(|p| p.host == f));
            let program = if layout.kind == LayoutKind::Grid && !focus_set { active.clone().or_else(|| ranked.first().cloned()) } else { ranked.first().cloned() };
            map.audio[0] = active.or_else(|| program.clone());
            map.video[0] = program;
            return map;
        }
        for (i, p) in ranked.into_iter().take(count).enumerate() {
            map.video[i] = Some(p.clone());
            map.audio[i] = Some(p);
        }
        map
    }
}

/// Why two rooms could not be linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// A room cannot be linked with itself.
    SameRoom,
    /// This room is linked with another one already.
    Linked(String),
}

/// Why a producer could not join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddError {
    /// The host publishes into the room already.
    Busy,
    /// The room has [`MAX_HOSTS`] hosts.
    Full,
    /// The host was removed from the room.
    Removed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionId;

    fn producer(id: u64, host: &str, primary: bool) -> Arc<Producer> {
        Arc::new(Producer::for_host(id, "room", host, primary, SessionId::random(), 0))
    }

    fn hosts(list: &[Option<Arc<Producer>>]) -> Vec<Option<String>> {
        list.iter().map(|p| p.as_ref().map(|p| p.host.clone())).collect()
    }

    #[test]
    fn slots_follow_join_order_then_the_layout() {
        let room = Room::new(1, "room");
        for (i, h) in ["ann", "bob", "cat"].iter().enumerate() {
            room.add(producer(i as u64 + 1, h, i == 0)).unwrap();
        }
        let v0 = room.version();
        let m = room.slots(4, None);
        assert_eq!(hosts(&m.video), [Some("ann".into()), Some("bob".into()), Some("cat".into()), None]);
        assert_eq!(hosts(&m.audio), hosts(&m.video));
        room.set_layout(Layout { kind: LayoutKind::Spotlight, focus: Some("cat".into()), order: vec!["bob".into()] });
        assert!(room.version() > v0, "a layout change moves the version");
        assert_eq!(hosts(&room.slots(3, None).video), [Some("cat".into()), Some("bob".into()), Some("ann".into())]);
        assert_eq!(hosts(&room.slots(1, None).video), [Some("cat".into())], "one slot: the focus");
        assert_eq!(hosts(&room.slots(3, Some("cat")).video), [Some("bob".into()), Some("ann".into()), None], "a host does not get itself");
    }

    #[test]
    fn a_one_slot_viewer_of_a_grid_gets_the_active_speaker() {
        let room = Room::new(1, "room");
        let (a, b) = (producer(1, "ann", true), producer(2, "bob", false));
        room.add(a.clone()).unwrap();
        room.add(b.clone()).unwrap();
        assert_eq!(hosts(&room.slots(1, None).video), [Some("ann".into())], "nobody spoke: the first host");
        let loud = AudioLevel { voice: true, level_dbov: 20 };
        let mut changed = None;
        for ms in (0..2_000).step_by(20) {
            room.observe_level(b.id, loud, ms);
            changed = changed.or(room.speaker_tick(ms));
        }
        assert_eq!(changed, Some(b.id));
        let m = room.slots(1, None);
        assert_eq!(hosts(&m.video), [Some("bob".into())]);
        assert_eq!(hosts(&m.audio), [Some("bob".into())]);
        // A spotlight keeps the video on its focus; the audio stays the speaker.
        room.set_layout(Layout { kind: LayoutKind::Spotlight, focus: Some("ann".into()), order: vec![] });
        let m = room.slots(1, None);
        assert_eq!((hosts(&m.video), hosts(&m.audio)), (vec![Some("ann".into())], vec![Some("bob".into())]));
    }

    #[test]
    fn hosts_are_capped_unique_and_replace_their_held_producer() {
        let room = Room::new(1, "room");
        for i in 0..MAX_HOSTS as u64 {
            room.add(producer(i + 1, &format!("h{i}"), i == 0)).unwrap();
        }
        assert_eq!(room.add(producer(100, "tenth", false)).err(), Some(AddError::Full));
        assert_eq!(room.add(producer(101, "h3", false)).err(), Some(AddError::Busy), "one producer per host");
        let h3 = room.producer("h3").unwrap();
        h3.publisher_gone.store(true, Ordering::Relaxed);
        let held = room.add(producer(102, "h3", false)).unwrap().expect("the held producer is handed back");
        assert_eq!(held.id, h3.id);
        assert_eq!(room.producer("h3").unwrap().id, 102);
        assert!(room.remove(&room.producer("h5").unwrap()));
        room.bar("h5");
        assert_eq!(room.add(producer(103, "h5", false)).err(), Some(AddError::Removed));
    }

    #[test]
    fn linked_rooms_show_each_other_after_their_own_hosts_until_unlinked() {
        let (a, b) = (Arc::new(Room::new(1, "a")), Arc::new(Room::new(2, "b")));
        a.add(producer(1, "ann", true)).unwrap();
        a.add(producer(2, "al", false)).unwrap();
        b.add(producer(3, "bob", true)).unwrap();
        let (va, vb) = (a.version(), b.version());
        Room::link(&a, &b).unwrap();
        assert!(a.version() != va && b.version() != vb, "linking moves both versions");
        assert_eq!(Room::link(&a, &Arc::new(Room::new(3, "c"))), Err(LinkError::Linked("a".into())), "one link at a time");
        assert_eq!(hosts(&a.slots(4, None).video), [Some("ann".into()), Some("al".into()), Some("bob".into()), None]);
        assert_eq!(hosts(&a.slots(2, None).video), [Some("ann".into()), Some("bob".into())], "the other side keeps a slot");
        assert_eq!(hosts(&b.slots(3, None).video), [Some("bob".into()), Some("ann".into()), Some("al".into())]);
        assert_eq!(hosts(&a.slots(1, None).video), [Some("ann".into())], "a one-slot player keeps its own program");
        assert_eq!(hosts(&b.slots(1, Some("bob")).video), [Some("ann".into())], "a lone host hears the other side");
        assert_eq!(hosts(&b.slots(2, Some("bob")).video), [Some("ann".into()), Some("al".into())]);

        // A change in the other room moves this room's version.
        let va = a.version();
        b.set_layout(Layout::default());
        assert_ne!(a.version(), va);

        assert!(Room::unlink(&b, &a));
        assert!(!Room::unlink(&a, &b), "unlinked once");
        assert_eq!(hosts(&a.slots(3, None).video), [Some("ann".into()), Some("al".into()), None]);
        assert!(b.slots(1, Some("bob")).video[0].is_none());

        // An ended room's link lapses: its side leaves the slots.
        let c = Arc::new(Room::new(4, "c"));
        c.add(producer(4, "cy", true)).unwrap();
        Room::link(&a, &c).unwrap();
        let va = a.version();
        c.ended.store(true, Ordering::Relaxed);
        assert_ne!(a.version(), va, "the other room ending moves the version");
        assert_eq!(hosts(&a.slots(3, None).video), [Some("ann".into()), Some("al".into()), None]);
        Room::link(&a, &b).expect("a lapsed link does not block a new one");
    }
}
