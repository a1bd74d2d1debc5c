//! One peer on a worker: its connection, its room, and its part
//! (a publisher's producer, or a viewer's subscriber).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::RTCPeerConnection;
use rtc::sansio::Protocol;

use super::ingest::Publisher;
use super::Action;
use crate::admission::Ticket;
use crate::events::SfuEvent;
use crate::packet::Kind;
use crate::session::SessionId;
use crate::room::Room;
use crate::subscriber::Subscriber;

pub(super) struct Peer {
    pub id: SessionId,
    pub pc: RTCPeerConnection,
    pub room: Arc<Room>,
    /// Our ICE ufrag (its routes are dropped with it).
    pub ufrag: String,
    pub created: Instant,
    pub last_recv: Instant,
    pub connected: bool,
    pub deadline: Option<Instant>,
    pub role: PeerRole,
    /// When a keyframe request of this viewer last counted (see `egress`).
    pub keyframe_request_us: Option<u64>,
    /// The session's place under the admission caps, given back on drop.
    pub _ticket: Ticket,
    /// Test hook: panic the next time this peer is handled.
    #[cfg(feature = "fault-injection")]
    pub poisoned: bool,
}

// One per peer, built once and never moved: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum PeerRole {
    Publisher(Publisher),
    Viewer(Subscriber),
}

impl Peer {
    /// Panics if a test asked for it (see `Command::Fault`); nothing otherwise.
    #[inline]
    pub fn check_fault(&self) {
        #[cfg(feature = "fault-injection")]
        if self.poisoned {
            panic!("injected fault in session {}", self.id);
        }
    }

    /// Drains the connection's events: connection state, new tracks.
    pub fn pump_events(&mut self, actions: &mut Vec<Action>) {
        while let Some(ev) = self.pc.poll_event() {
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                    RTCPeerConnectionState::Connected if !self.connected => {
                        self.connected = true;
                        // A new viewer's first frame: from the cache, now.
                        if let PeerRole::Viewer(_) = &self.role {
                            actions.push(Action::Prime(self.id));
                        }
                        let stream = self.room.name.clone();
                        match &self.role {
                            PeerRole::Publisher(p) => {
                                if !p.producer.host.is_empty() {
                                    actions.push(Action::Event(SfuEvent::HostJoined { stream: stream.clone(), host: p.producer.host.clone(), session: self.id }));
                                }
                                if p.producer.primary {
                                    actions.push(Action::Event(SfuEvent::StreamLive { stream }));
                                }
                            }
                            PeerRole::Viewer(_) => actions.push(Action::Event(SfuEvent::ViewerJoined { stream, session: self.id })),
                        }
                    }
                    // Disconnected may recover (WebRTC's own definition); a
                    // peer that stays silent is closed by `close_stale`.
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        actions.push(Action::Close(self.id, "connection lost"));
                    }
                    _ => {}
                },
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    if let PeerRole::Publisher(p) = &mut self.role {
                        p.receivers.insert(init.track_id.clone(), init.receiver_id);
                    }
                }
                _ => {}
            }
        }
    }

    /// Keeps the keyframe cache fresh for the next viewer of a stream that
    /// has none: a keyframe is asked of every layer whose newest one is
    /// older than [`crate::cache::KEYFRAME_REFRESH`]. Browsers send
    /// keyframes only when asked, so without this the first viewer of a
    /// running stream found a stale one and waited a round trip. Streams
    /// with viewers are left alone: their keyframes would reach every viewer
    /// (a burst each time, which the automatic layer choice reads as
    /// congestion); a join there asks, as before. An encoder with a short
    /// keyframe interval (OBS, FFmpeg at 1-2 s) is never asked.
    fn refresh_keyframes(&self, p: &Publisher) {
        if !self.connected || p.producer.viewer_workers.load(Ordering::Relaxed) != 0 {
            return;
        }
        let cache = crate::producer::lock(&p.producer.cache);
        for layer in p.sources.values().filter(|s| s.kind == Kind::Video && s.forwardable()).map(|s| s.layer) {
            if cache.keyframe_age(layer).is_none_or(|age| age > crate::cache::KEYFRAME_REFRESH) {
                p.producer.request_keyframe(layer);
            }
        }
    }

    /// Once a second: a publisher publishes its layer rates; a viewer
    /// follows the layers there are and asks again for a keyframe it waits for.
    pub fn second(&mut self, now_us: u64) {
        self.check_fault();
        match &mut self.role {
            PeerRole::Publisher(p) => {
                let mut seen = 0u64;
                for s in p.sources.values_mut().filter(|s| s.kind == Kind::Video) {
                    let bps = s.rate.bps(now_us);
                    p.producer.layer_bps[s.layer.index()].store(bps, Ordering::Relaxed);
                    // Present while it sends media: a layer the browser stopped
                    // is no longer a target (viewers move to one that is sent).
                    if s.sending(now_us) {
                        seen |= 1 << s.layer.index();
                    }
                }
                p.producer.layers_seen.store(seen, Ordering::Relaxed);
            }
            PeerRole::Viewer(sub) => {
                for slot in &mut sub.slots {
                    let Some(video) = &slot.video else { continue };
                    slot.consumer.retarget(video);
                    if self.connected {
                        if let Some(layer) = slot.consumer.keyframe_wanted(now_us) {
                            video.request_keyframe(layer);
                        }
                    }
                }
            }
        }
        if let PeerRole::Publisher(p) = &self.role {
            self.refresh_keyframes(p);
        }
    }
}
