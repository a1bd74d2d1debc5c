//! What goes out to viewers: a producer's packets fanned out to every
//! worker with subscribers of it and delivered to each slot it feeds, with
//! the slot's rewritten header; the cached group of pictures for a joining
//! viewer; and the viewer's feedback (NACKs answered from the producer's
//! cache, keyframe requests within a budget, link reports for the layer
//! choice, shared among the slots by the stream allocator).
//!
//! A viewer's connection is written through one narrow interface,
//! [`write_rtp`]: rtc's per-viewer pipeline (interceptors, SRTP) today.

use std::time::Instant;

use bytes::{BufMut, BytesMut};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp;
use rtc::rtp;
use rtc::sansio::Protocol;

use super::peer::{Peer, PeerRole};
use super::transmit::{flush_writes, Transmit};
use super::Worker;
use crate::codec;
use crate::consumer::OutHeader;
use crate::metrics::Metrics;
use crate::packet::{Fanout, ForwardPacket, Kind};
use crate::session::SessionId;
use crate::producer::lock;

/// A viewer's keyframe requests (PLI, FIR) count at most once in this
/// interval: a browser asks a few times a second at worst, a hostile client
/// thousands of times, and each request makes the publisher's encoder spend
/// bits on a keyframe that every viewer receives.
const VIEWER_KEYFRAME_REQUEST_US: u64 = 500_000;

impl<T: Transmit> Worker<T> {
    /// Sends a publisher's packet to every viewer, here and on other workers.
    pub(super) fn fanout(&mut self, p: Fanout, mask: u64) {
        for w in 0..self.media_txs.len() {
            if w != self.index && mask & (1 << w) != 0 && self.media_txs[w].try_send(p.clone()).is_err() {
                Metrics::add(&self.shared.metrics.queue_drops, 1);
            }
        }
        self.deliver(&p, Instant::now());
    }

    /// Sends a packet to this worker's subscribers of its producer, in
    /// every slot it feeds.
    pub(crate) fn deliver(&mut self, p: &ForwardPacket, now: Instant) {
        let Some(viewers) = self.consumers_of.get(&p.producer) else { return };
        let now_us = self.us(now);
        let mut failed: Vec<SessionId> = Vec::new();
        for id in viewers {
            let Some(peer) = self.peers.get_mut(id) else { continue };
            if !peer.connected {
                continue;
            }
            let (shared, tx) = (&self.shared, &mut self.tx);
            let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                peer.check_fault();
                let before = peer.layer();
                let slots = match &peer.role {
                    PeerRole::Viewer(sub) => sub.slots.len(),
                    PeerRole::Publisher(_) => 0,
                };
                for slot in 0..slots {
                    if matches!(&peer.role, PeerRole::Viewer(sub) if sub.slots[slot].carries(p)) {
                        peer.forward(slot, p, now, now_us, &shared.metrics, tx);
                    }
                }
                peer.announce_layer(shared, before);
            }));
            if delivered.is_err() {
                failed.push(*id);
            }
        }
        // The same as `isolate`, outside the loop over the viewer list.
        for id in failed {
            Metrics::add(&self.shared.metrics.peer_panics, 1);
            tracing::error!(worker = self.index, session = %id, "panic while forwarding to a viewer: closing it");
            self.close_after_panic(id);
        }
    }

    /// A viewer just connected: give each slot its producer's current
    /// group of pictures from the cache, so its first frame needs no round
    /// trip to the publisher. When only a keyframe could be given, or
    /// nothing, the slot waits for the next keyframe and asks for it.
    pub(super) fn prime(&mut self, id: SessionId) {
        let now = Instant::now();
        let now_us = self.us(now);
        let Some(peer) = self.peers.get_mut(&id) else { return };
        peer.check_fault();
        let before = peer.layer();
        let PeerRole::Viewer(sub) = &peer.role else { return };
        for i in 0..sub.slots.len() {
            let PeerRole::Viewer(sub) = &mut peer.role else { return };
            let slot = &mut sub.slots[i];
            let Some(video) = slot.video.clone() else { continue };
            slot.consumer.retarget(&video);
            let Some(layer) = slot.consumer.target else { continue };
            let gop = lock(&video.cache).gop(layer);
            let mut complete = false;
            if let Some(gop) = gop {
                for p in &gop.packets {
                    peer.forward(i, p, now, now_us, &self.shared.metrics, &mut self.tx);
                }
                Metrics::add(&self.shared.metrics.first_frames_from_cache, 1);
                complete = gop.complete;
                if !complete {
                    if let PeerRole::Viewer(sub) = &mut peer.role {
                        sub.slots[i].consumer.await_keyframe();
                    }
                }
            }
            if !complete {
                if let PeerRole::Viewer(sub) = &mut peer.role {
                    if let Some(layer) = sub.slots[i].consumer.keyframe_wanted(now_us) {
                        video.request_keyframe(layer);
                    }
                }
            }
        }
        peer.announce_layer(&self.shared, before);
    }
}

impl Peer {
    /// The layer a viewer's main slot is forwarded now.
    fn layer(&self) -> Option<crate::layer::Layer> {
        match &self.role {
            PeerRole::Viewer(sub) => sub.main().and_then(|c| c.current),
            PeerRole::Publisher(_) => None,
        }
    }

    /// Tells the platform when a viewer's forwarded layer changed (its
    /// player shows what it decodes, not what it asked for).
    fn announce_layer(&self, shared: &crate::registry::Shared, before: Option<crate::layer::Layer>) {
        let now = self.layer();
        if let Some(layer) = now.filter(|_| now != before) {
            shared.emit(crate::events::SfuEvent::LayerChanged { stream: self.room.name.clone(), session: self.id, layer });
        }
    }

    /// A viewer's RTCP feedback.
    pub(super) fn on_rtcp(&mut self, packets: &[Box<dyn rtcp::Packet>], now: Instant, now_us: u64, metrics: &Metrics) {
        use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
        for pkt in packets {
            if let Some(nack) = pkt.as_any().downcast_ref::<TransportLayerNack>() {
                Metrics::add(&metrics.nacks_received, 1);
                let lost = nack.nacks.iter().flat_map(|pair| pair.packet_list());
                self.retransmit(nack.media_ssrc, lost, now, metrics);
            }
        }
        self.on_viewer_feedback(packets, now_us, metrics);
    }

    /// Keyframe requests and link reports from a viewer. A PLI or a
    /// receiver report names our SSRC: it concerns that slot. A REMB is the
    /// whole connection's: the allocator shares it among the slots.
    fn on_viewer_feedback(&mut self, packets: &[Box<dyn rtcp::Packet>], now_us: u64, metrics: &Metrics) {
        use rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
        use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        use rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
        use rtcp::receiver_report::ReceiverReport;
        let PeerRole::Viewer(sub) = &mut self.role else { return };
        // Slots whose link changed, and whether by a new estimate.
        let mut changed: Vec<(usize, bool)> = Vec::new();
        let mark = |changed: &mut Vec<(usize, bool)>, i: usize, estimate: bool| match changed.iter_mut().find(|c| c.0 == i) {
            Some(c) => c.1 |= estimate,
            None => changed.push((i, estimate)),
        };
        for pkt in packets {
            let any = pkt.as_any();
            let keyframe_ssrc = any
                .downcast_ref::<PictureLossIndication>()
                .map(|p| p.media_ssrc)
                .or_else(|| any.downcast_ref::<FullIntraRequest>().map(|f| f.fir.first().map_or(f.media_ssrc, |e| e.ssrc)));
            if let Some(ssrc) = keyframe_ssrc {
                Metrics::add(&metrics.keyframe_requests, 1);
                if self.keyframe_request_us.is_some_and(|t| now_us.saturating_sub(t) < VIEWER_KEYFRAME_REQUEST_US) {
                    Metrics::add(&metrics.keyframe_requests_ignored, 1);
                    continue;
                }
                self.keyframe_request_us = Some(now_us);
                // A FIR names no SSRC in its header the way a PLI does: fall back to the main slot.
                let slot = sub.slots.iter().position(|s| s.consumer.video.as_ref().is_some_and(|t| t.ssrc == ssrc)).unwrap_or(0);
                if let Some(s) = sub.slots.get(slot) {
                    if let (Some(video), Some(layer)) = (&s.video, s.consumer.current.or(s.consumer.target)) {
                        video.request_keyframe(layer);
                    }
                }
            } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                sub.allocate(remb.bitrate as u64, now_us);
                for i in 0..sub.slots.len() {
                    mark(&mut changed, i, true);
                }
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                for r in &rr.reports {
                    let Some(i) = sub.slots.iter().position(|s| s.consumer.video.as_ref().is_some_and(|t| t.ssrc == r.ssrc)) else { continue };
                    let c = &mut sub.slots[i].consumer;
                    c.loss = f64::from(r.fraction_lost) / 256.0;
                    c.jitter_ms = Some(f64::from(r.jitter) / 90.0);
                    if r.last_sender_report != 0 {
                        let rtt = ntp_middle_now().wrapping_sub(r.last_sender_report).wrapping_sub(r.delay);
                        let ms = f64::from(rtt) * 1000.0 / 65536.0;
                        if (0.0..10_000.0).contains(&ms) {
                            c.rtt_ms = Some(ms);
                        }
                    }
                    mark(&mut changed, i, false);
                }
            }
        }
        for (i, new_estimate) in changed {
            let slot = &mut sub.slots[i];
            let Some(video) = &slot.video else { continue };
            let before = slot.consumer.target;
            slot.consumer.observe_link(video, now_us, new_estimate);
            if slot.consumer.target != before {
                if let Some(layer) = slot.consumer.keyframe_wanted(now_us) {
                    video.request_keyframe(layer);
                }
            }
        }
    }

    /// Sends `p` to slot `slot` of this viewer if its layer decision says
    /// so: rewritten header, then SRTP and the socket.
    pub(super) fn forward(&mut self, slot: usize, p: &ForwardPacket, now: Instant, now_us: u64, metrics: &Metrics, tx: &mut impl Transmit) {
        let PeerRole::Viewer(sub) = &mut self.role else { return };
        let Some(slot) = sub.slots.get_mut(slot) else { return };
        let c = &mut slot.consumer;
        if c.target.is_none() && p.kind == Kind::Video {
            // The viewer joined before any video arrived.
            if let Some(video) = &slot.video {
                c.retarget(video);
            }
        }
        let switches = c.switches;
        let Some((track, out)) = c.route(p, now_us) else { return };
        let packet = out_packet(p, track.ssrc, track.payload_type, out, &p.payload, None);
        if c.switches != switches {
            Metrics::add(&metrics.layer_switches, 1);
        }
        let len = packet.payload.len();
        if write_rtp(&mut self.pc, now, packet) {
            c.sent(len, now_us);
            Metrics::add(&metrics.forwarded_packets, 1);
            Metrics::add(&metrics.forwarded_bytes, len as u64);
        }
        flush_writes(&mut self.pc, tx);
        // No `poll_timeout` here: writing media arms no timer, and
        // `on_second` refreshes every peer's deadline anyway.
    }

    /// Answers a viewer's NACK from the producer's packet cache: each named
    /// packet is rebuilt with the header it was first sent with and sent
    /// again, on the RTX stream when negotiated.
    fn retransmit(&mut self, media_ssrc: u32, lost: impl Iterator<Item = u16>, now: Instant, metrics: &Metrics) {
        let PeerRole::Viewer(sub) = &mut self.role else { return };
        let Some(slot) = sub.slot_by_video_ssrc(media_ssrc) else { return };
        let Some(producer) = slot.video.clone() else { return };
        let Some(track) = slot.consumer.video.as_mut() else { return };
        let Some(log) = track.sent.as_mut() else { return };
        let resends: Vec<_> = lost.filter_map(|seq| log.resend(seq)).collect();
        if resends.is_empty() {
            return;
        }
        let cached: Vec<_> = {
            let cache = lock(&producer.cache);
            resends.iter().map(|r| cache.get(r.source, r.source_seq)).collect()
        };
        for (r, p) in resends.iter().zip(cached) {
            let Some(p) = p else { continue };
            let packet = match track.rtx.as_mut() {
                Some(rtx) => {
                    rtx.seq = rtx.seq.wrapping_add(1);
                    let mut out = out_packet(&p, rtx.ssrc, rtx.payload_type, r.header, &p.payload, Some(r.header.seq));
                    out.header.sequence_number = rtx.seq;
                    out
                }
                None => out_packet(&p, track.ssrc, track.payload_type, r.header, &p.payload, None),
            };
            if write_rtp(&mut self.pc, now, packet) {
                Metrics::add(&metrics.retransmitted_packets, 1);
            }
        }
    }
}

/// Writes one RTP packet into a viewer's connection (interceptors, SRTP).
///
/// Straight through `handle_write`: `RTCRtpSender::write_rtp` would rebuild
/// the sender's parameters for every packet only to re-check the SSRC and
/// payload type we chose at negotiation. The track id is unused on writes.
fn write_rtp(pc: &mut RTCPeerConnection, now: Instant, packet: rtp::Packet) -> bool {
    pc.handle_write(TaggedRTCMessage { now, message: RTCMessage::RtpPacket(String::new(), packet) }).is_ok()
}

/// The packet a viewer gets for `p`: its own SSRC and payload type, the
/// rewritten header, and the payload (patched when VP8 ids changed; with
/// RFC 4588's original sequence number in front when `osn` is set).
fn out_packet(p: &ForwardPacket, ssrc: u32, payload_type: u8, out: OutHeader, payload: &bytes::Bytes, osn: Option<u16>) -> rtp::Packet {
    let payload = if out.vp8.is_none() && osn.is_none() {
        payload.clone() // the common case: shared, not copied
    } else {
        let mut b = BytesMut::with_capacity(payload.len() + 2);
        if let Some(osn) = osn {
            b.put_u16(osn);
        }
        let start = b.len();
        b.put_slice(payload);
        if let Some((pid, tl0)) = out.vp8 {
            if let Some(d) = codec::vp8::parse(&b[start..]) {
                codec::vp8::rewrite(&mut b[start..], &d, pid, tl0);
            }
        }
        b.freeze()
    };
    rtp::Packet {
        header: rtp::header::Header { version: 2, marker: p.marker, payload_type, sequence_number: out.seq, timestamp: out.timestamp, ssrc, ..Default::default() },
        payload,
    }
}

/// The middle 32 bits of the current NTP time, as RTCP's LSR field uses.
fn ntp_middle_now() -> u32 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (((secs & 0xffff) << 16) | (frac >> 16)) as u32
}
