//! A peer's statistics for the health API.

use super::peer::{Peer, PeerRole};
use crate::health::{PeerHealth, TrackHealth};
use crate::packet::Kind;
use crate::session::Role;

impl Peer {
    pub(super) fn health(&mut self, now_us: u64) -> PeerHealth {
        self.check_fault();
        let state = if self.connected { "connected" } else { "connecting" }.to_owned();
        let mut h = PeerHealth {
            session: self.id.tag(),
            role: Role::Publisher,
            state,
            bitrate_bps: 0,
            packets: 0,
            loss: 0.0,
            rtt_ms: None,
            jitter_ms: None,
            estimate_bps: None,
            layer: None,
            target_layer: None,
            max_layer: None,
            layer_switches: 0,
            quality: None,
            tracks: Vec::new(),
        };
        match &mut self.role {
            PeerRole::Publisher(p) => {
                let mut srcs: Vec<_> = p.sources.values_mut().collect();
                srcs.sort_by_key(|s| (s.kind == Kind::Video, s.layer));
                for s in srcs {
                    let bps = s.rate.bps(now_us);
                    h.bitrate_bps += bps;
                    h.packets += s.packets;
                    h.tracks.push(TrackHealth {
                        kind: if s.kind == Kind::Video { "video" } else { "audio" },
                        codec: s.mime.clone(),
                        rid: s.rid.clone(),
                        bitrate_bps: bps,
                        packets: s.packets,
                        lost: s.lost,
                        audio_level_dbov: s.level.map(|l| l.level_dbov),
                        voice: s.level.map(|l| l.voice),
                        speaking: (s.kind == Kind::Audio).then_some(p.speaking),
                    });
                }
            }
            PeerRole::Viewer(sub) => {
                // Totals over the slots; link and layer figures from the main slot.
                h.role = Role::Viewer;
                for slot in sub.slots.iter_mut() {
                    h.bitrate_bps += slot.consumer.rate.bps(now_us);
                    h.packets += slot.consumer.packets;
                    h.layer_switches += slot.consumer.switches;
                }
                h.estimate_bps = sub.estimate_bps;
                h.max_layer = Some(sub.cap.as_str().to_owned());
                if let Some(main) = sub.main_mut() {
                    h.loss = main.loss;
                    h.rtt_ms = main.rtt_ms;
                    h.jitter_ms = main.jitter_ms;
                    h.layer = main.current;
                    h.target_layer = main.target;
                    h.quality = Some(main.quality(now_us));
                }
            }
        }
        h
    }
}
