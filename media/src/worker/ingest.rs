//! What comes in from a publisher: its RTP packets (classified by SSRC and
//! wrapped once for fan-out), and what we send back to it: NACKs for what
//! did not arrive, and keyframe requests (PLI) merged from every viewer.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp;
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpReceiverId;

use super::peer::{Peer, PeerRole};
use super::transmit::{flush_writes, Transmit};
use super::{Action, Worker};
use crate::audio_level;
use crate::codec::{self, Codec};
use crate::events::SfuEvent;
use crate::layer::Layer;
use crate::metrics::Metrics;
use crate::nack::NackTracker;
use crate::negotiate::AUDIO_LEVEL_URI;
use crate::packet::{Fanout, ForwardPacket, Kind};
use crate::ratemeter::RateMeter;
use crate::producer::{lock, mono_ms_at, Producer};

/// At most one PLI per layer toward a publisher in this interval, however many
/// viewers ask.
const PLI_INTERVAL: Duration = Duration::from_millis(500);

/// A video layer with no media for this long is no longer offered to
/// viewers. Browsers stop sending a simulcast layer when their CPU or uplink
/// is short; a viewer left waiting on it for a keyframe would freeze.
pub(super) const LAYER_GONE_US: u64 = 2_000_000;

/// What a publisher's SSRC carries.
pub(super) struct Source {
    pub kind: Kind,
    pub layer: Layer,
    pub rid: Option<String>,
    codec: Codec,
    pub mime: String,
    receiver: RTCRtpReceiverId,
    audio_level_ext: Option<u8>,
    pub level: Option<audio_level::AudioLevel>,
    pub rate: RateMeter,
    pub packets: u64,
    /// When its last media packet (not padding) arrived.
    pub last_media_us: Option<u64>,
    pub lost: u64,
    last_seq: Option<u16>,
    /// Missing packets to ask for again (video only).
    nack: Option<NackTracker>,
    /// Padding-only packets received in order since the last media packet.
    padding_run: u16,
}

impl Source {
    /// Whether viewers get its packets (not a repair stream or unknown codec).
    pub fn forwardable(&self) -> bool {
        self.codec != Codec::Other
    }

    /// Whether it is sending media now (see [`LAYER_GONE_US`]).
    pub fn sending(&self, now_us: u64) -> bool {
        sending(self.last_media_us, now_us)
    }
}

fn sending(last_media_us: Option<u64>, now_us: u64) -> bool {
    last_media_us.is_some_and(|t| now_us.saturating_sub(t) < LAYER_GONE_US)
}

/// The publisher part of a peer.
pub(super) struct Publisher {
    /// What it publishes into its room.
    pub producer: Arc<Producer>,
    pub receivers: HashMap<String, RTCRtpReceiverId>,
    pub sources: HashMap<u32, Source>,
    last_pli: [Option<Instant>; 3],
    /// Whether it was speaking at the last tick (the room's detector says).
    pub speaking: bool,
    /// Mutes seen at the last tick: a video unmute asks for a keyframe.
    video_muted: bool,
}

impl Publisher {
    pub fn new(producer: Arc<Producer>) -> Self {
        Publisher { producer, receivers: HashMap::new(), sources: HashMap::new(), last_pli: [None; 3], speaking: false, video_muted: false }
    }
}

impl Peer {
    /// A publisher's RTP packet: classify its SSRC once, then wrap it for fan-out.
    pub(super) fn on_rtp(&mut self, track_id: &str, packet: rtp::Packet, now_us: u64, now_ms: u64, metrics: &Metrics) -> Option<Fanout> {
        let PeerRole::Publisher(p) = &mut self.role else { return None };
        let ssrc = packet.header.ssrc;
        if !p.sources.contains_key(&ssrc) {
            let receiver = *p.receivers.get(track_id)?;
            let mut r = self.pc.rtp_receiver(receiver)?;
            let params = r.get_parameters();
            let codec_params = params.rtp_parameters.codecs.iter().find(|c| c.payload_type == packet.header.payload_type)?;
            let mime = codec_params.rtp_codec.mime_type.clone();
            let codec = Codec::from_mime(&mime);
            let audio_level_ext = params.rtp_parameters.header_extensions.iter().find(|e| e.uri == AUDIO_LEVEL_URI).map(|e| e.id as u8);
            let rid = r.track().rid(ssrc).map(|s| s.to_owned());
            let kind = if codec.is_video() { Kind::Video } else { Kind::Audio };
            let layer = if kind == Kind::Video { Layer::from_rid(rid.as_deref()) } else { Layer::F };
            p.sources.insert(
                ssrc,
                Source {
                    kind,
                    layer,
                    rid,
                    codec,
                    mime,
                    receiver,
                    audio_level_ext,
                    level: None,
                    rate: RateMeter::default(),
                    packets: 0,
                    last_media_us: None,
                    lost: 0,
                    last_seq: None,
                    nack: (kind == Kind::Video).then(NackTracker::default),
                    padding_run: 0,
                },
            );
        }
        let src = p.sources.get_mut(&ssrc)?;
        if let Some(tracker) = src.nack.as_mut() {
            tracker.on_packet(packet.header.sequence_number, now_us);
        }
        src.packets += 1;
        src.rate.add(packet.payload.len(), now_us);
        if !packet.payload.is_empty() {
            // A layer back after a pause is offered again at once, not at the next second.
            if src.kind == Kind::Video && !src.sending(now_us) {
                p.producer.layers_seen.fetch_or(1 << src.layer.index(), Ordering::Relaxed);
            }
            src.last_media_us = Some(now_us);
        }
        let gap = src.last_seq.map_or(1, |last| packet.header.sequence_number.wrapping_sub(last));
        let in_order = gap == 1;
        if gap > 1 && gap < 0x8000 {
            src.lost += u64::from(gap - 1);
        }
        if gap < 0x8000 {
            src.last_seq = Some(packet.header.sequence_number);
        }
        Metrics::add(&metrics.received_packets, 1);
        Metrics::add(&metrics.received_bytes, packet.payload.len() as u64);
        // Muted by the room: nothing of this kind goes further, whatever
        // the client sends (and a muted microphone does not speak).
        if p.producer.muted(src.kind) {
            return None;
        }
        if let Some(id) = src.audio_level_ext {
            if let Some(ext) = packet.header.get_extension(id) {
                if let Some(level) = audio_level::parse(&ext) {
                    src.level = Some(level);
                    self.room.observe_level(p.producer.id, level, now_ms);
                }
            }
        }
        if packet.payload.is_empty() {
            // A padding-only bandwidth probe: not forwarded, but the next
            // packet tells viewers' rewriters to close the hole it leaves.
            src.padding_run = if in_order { src.padding_run.saturating_add(1) } else { 0 };
            return None;
        }
        let padding_before = if in_order { std::mem::take(&mut src.padding_run) } else { 0 };
        src.padding_run = 0;
        if src.codec == Codec::Other {
            return None; // a repair stream (RTX, FEC) or a codec viewers cannot get
        }
        let keyframe = src.kind == Kind::Video && codec::is_keyframe_start(src.codec, &packet.payload);
        let fp = Arc::new(ForwardPacket {
            producer: p.producer.id,
            kind: src.kind,
            layer: src.layer,
            codec: src.codec,
            ssrc,
            seq: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            marker: packet.header.marker,
            payload: packet.payload,
            keyframe,
            arrival_us: now_us,
            padding_before,
        });
        if fp.kind == Kind::Video {
            lock(&p.producer.cache).insert(&fp);
        }
        Some(fp)
    }

    /// A publisher's sender reports go to its producer's sinks (a recorder
    /// lines audio up with video from them).
    pub(super) fn on_sender_reports(&self, packets: &[Box<dyn rtcp::Packet>]) {
        let PeerRole::Publisher(p) = &self.role else { return };
        for pkt in packets {
            if let Some(sr) = pkt.as_any().downcast_ref::<rtcp::sender_report::SenderReport>() {
                p.producer.sinks.sender_report(sr.ssrc, sr.ntp_time, sr.rtp_time);
            }
        }
    }

    /// Sends a PLI for `layer`, at most once per `PLI_INTERVAL`.
    fn send_pli(&mut self, layer: Layer, now: Instant, metrics: &Metrics, tx: &mut impl Transmit) {
        let PeerRole::Publisher(p) = &mut self.role else { return };
        if p.last_pli[layer.index()].is_some_and(|t| now.duration_since(t) < PLI_INTERVAL) {
            return;
        }
        let Some((&ssrc, src)) = p.sources.iter().find(|(_, s)| s.kind == Kind::Video && s.layer == layer) else { return };
        let receiver = src.receiver;
        p.last_pli[layer.index()] = Some(now);
        let pli = rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc };
        if write_rtcp(&mut self.pc, receiver, now, Box::new(pli)) {
            Metrics::add(&metrics.plis_sent, 1);
        }
        flush_writes(&mut self.pc, tx);
    }

    /// A publisher's periodic work: the keyframes viewers wait for, NACKs
    /// for what its sources miss (see [`crate::nack`]), and who speaks.
    fn publisher_tick(&mut self, now: Instant, now_us: u64, metrics: &Metrics, tx: &mut impl Transmit, actions: &mut Vec<Action>) {
        use rtcp::transport_feedbacks::transport_layer_nack::{nack_pairs_from_sequence_numbers, TransportLayerNack};
        self.check_fault();
        let PeerRole::Publisher(p) = &mut self.role else { return };
        let mut wanted = p.producer.take_wanted_keyframes();
        let video_muted = p.producer.video_muted.load(Ordering::Relaxed);
        if p.video_muted && !video_muted {
            wanted = 0b111; // unmuted: every consumer waits for a keyframe
        }
        p.video_muted = video_muted;
        for layer in Layer::ALL.into_iter().filter(|l| wanted & (1 << l.index()) != 0) {
            self.send_pli(layer, now, metrics, tx);
        }
        let PeerRole::Publisher(p) = &mut self.role else { return };
        let now_ms = mono_ms_at(now);
        // The room's detector holds every host; whichever publisher's tick
        // sees the change first announces it.
        if let Some(active) = self.room.speaker_tick(now_ms) {
            if let Some(speaker) = self.room.producers().into_iter().find(|x| x.id == active) {
                actions.push(Action::Event(SfuEvent::ActiveSpeaker { stream: self.room.name.clone(), session: speaker.publisher, host: speaker.host.clone() }));
            }
        }
        let speaking = self.room.speaking(p.producer.id, now_ms);
        if speaking != p.speaking {
            p.speaking = speaking;
            actions.push(Action::Event(SfuEvent::Speaking { stream: self.room.name.clone(), session: self.id, host: p.producer.host.clone(), speaking }));
        }
        let mut sent = false;
        for (&ssrc, src) in p.sources.iter_mut() {
            let Some(tracker) = src.nack.as_mut() else { continue };
            let due = tracker.due(now_us);
            if due.is_empty() {
                continue;
            }
            let nack = TransportLayerNack { sender_ssrc: 0, media_ssrc: ssrc, nacks: nack_pairs_from_sequence_numbers(&due) };
            if write_rtcp(&mut self.pc, src.receiver, now, Box::new(nack)) {
                Metrics::add(&metrics.nacks_sent, due.len() as u64);
                sent = true;
            }
        }
        if sent {
            flush_writes(&mut self.pc, tx);
        }
    }
}

impl<T: Transmit> Worker<T> {
    /// Every tick, for each publisher on this worker: see [`Peer::publisher_tick`].
    pub(super) fn publisher_timers(&mut self, now: Instant) {
        let now_us = self.us(now);
        let ids: Vec<_> = self.peers.values().filter(|p| matches!(p.role, PeerRole::Publisher(_))).map(|p| p.id).collect();
        for id in ids {
            self.isolate(id, |w| {
                if let Some(peer) = w.peers.get_mut(&id) {
                    peer.publisher_tick(now, now_us, &w.shared.metrics, &mut w.tx, &mut w.actions);
                }
            });
        }
    }
}

/// Writes one RTCP packet to a publisher through the receiver of its track.
fn write_rtcp(pc: &mut RTCPeerConnection, receiver: RTCRtpReceiverId, now: Instant, packet: Box<dyn rtcp::Packet>) -> bool {
    pc.rtp_receiver(receiver).is_some_and(|mut r| r.write_rtcp(now, vec![packet]).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_is_sent_until_its_media_stops_for_the_timeout() {
        assert!(!sending(None, 5_000_000), "never sent: not offered");
        assert!(sending(Some(1_000_000), 1_000_000));
        assert!(sending(Some(1_000_000), 1_000_000 + LAYER_GONE_US - 1));
        assert!(!sending(Some(1_000_000), 1_000_000 + LAYER_GONE_US), "stopped for the timeout: gone");
        // A clock read before the arrival (time passed in from another thread) is not a gap.
        assert!(sending(Some(2_000_000), 1_000_000));
    }
}
