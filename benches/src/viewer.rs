//! A viewer: a real WebRTC peer (ICE, DTLS-SRTP, receiver reports, NACKs,
//! as a browser) that counts what it gets instead of decoding it.
//!
//! Per viewer: RTP packets and frames, loss from sequence-number gaps, the
//! time from its WHEP request (or Janus "join") to the last packet of its
//! first complete keyframe, and simulcast layer switches (seen as a change of
//! the keyframe's picture size). For every packet whose send time the
//! publisher recorded, the latency the server added goes into the shared
//! histogram; packets sent before the viewer joined (a server's keyframe
//! cache) are not latency and are left out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use tokio::sync::watch;

use crate::measure::{LatencyHistogram, SendTimes};
use crate::media::{self, Codec};
use crate::peer::{PayloadTypes, Peer};
use crate::target::{Session, Target};

/// What all viewers share: the clock origin, the publisher's send times, the latency histogram.
pub struct Shared {
    pub epoch: Instant,
    pub send_times: Arc<SendTimes>,
    pub latency: LatencyHistogram,
}

/// One viewer's counters; the harness reads them while it runs.
#[derive(Default)]
pub struct ViewerStats {
    pub connected: AtomicBool,
    /// The connection failed or closed.
    pub failed: AtomicBool,
    /// Media RTP packets (not retransmissions).
    pub packets: AtomicU64,
    /// Retransmissions on an RTX payload type.
    pub rtx_packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Video frames (marker bits).
    pub frames: AtomicU64,
    /// Packets the sequence numbers say were sent.
    pub expected: AtomicU64,
    pub layer_switches: AtomicU64,
    /// Width of the last keyframe (0 before the first).
    pub width: AtomicU64,
    /// WHEP request to the first complete keyframe, in microseconds (0: none yet).
    pub first_frame_us: AtomicU64,
    /// Where the first frame's time went, each from the WHEP request, in
    /// microseconds (0: not yet): the answer received, the connection up
    /// (ICE and DTLS), the first media packet.
    pub answer_us: AtomicU64,
    pub connected_us: AtomicU64,
    pub first_packet_us: AtomicU64,
    /// (seconds since the epoch, width) at every change of picture size.
    pub layers: Mutex<Vec<(f64, u16)>>,
    /// Video streams (SSRCs: a room viewer's slots) with a first complete keyframe.
    pub video_streams_framed: AtomicU64,
    /// WHEP request to the moment `expect_video` streams had their first
    /// complete keyframe (every host of a room in view), in microseconds.
    pub all_first_frames_us: AtomicU64,
    /// The last keyframe width of each video stream.
    pub widths: Mutex<HashMap<u32, u16>>,
}

/// How a viewer joins.
#[derive(Default)]
pub struct JoinOpts {
    /// Video and audio m-lines offered (a co-host room's slots); 0 means 1.
    pub slots: usize,
    /// WHEP bearer: a host's access token (a host watching its room).
    pub bearer: Option<String>,
    /// Video streams whose first frames make `all_first_frames_us` (0: `slots`).
    pub expect_video: usize,
    /// A pre-bound socket (inside a network namespace).
    pub socket: Option<std::net::UdpSocket>,
    /// Keyframe requests sent per second once connected (abuse scenarios).
    pub plis_per_second: u32,
}

/// A running viewer.
pub struct Viewer {
    pub stats: Arc<ViewerStats>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    session: Option<Session>,
}

impl Viewer {
    /// Joins: signals with the server, then runs the connection in a task.
    /// `socket` is a pre-bound socket (a viewer inside a network namespace);
    /// otherwise one is bound on the target's peer address.
    pub async fn join(target: &Target, shared: Arc<Shared>, socket: Option<std::net::UdpSocket>) -> Result<Viewer, String> {
        Self::join_as(target, shared, socket, 0).await
    }

    /// [`Viewer::join`], for a viewer that also sends `plis_per_second`
    /// keyframe requests (PLI) once connected: a broken or hostile client,
    /// for the abuse scenarios.
    pub async fn join_as(target: &Target, shared: Arc<Shared>, socket: Option<std::net::UdpSocket>, plis_per_second: u32) -> Result<Viewer, String> {
        Self::join_with(target, shared, JoinOpts { socket, plis_per_second, ..Default::default() }).await
    }

    /// Joins as `opts` say: several slots, as a host.
    pub async fn join_with(target: &Target, shared: Arc<Shared>, opts: JoinOpts) -> Result<Viewer, String> {
        let JoinOpts { slots, bearer, expect_video, socket, plis_per_second } = opts;
        let slots = slots.max(1);
        let mut peer = match socket {
            Some(s) => Peer::from_std(s)?,
            None => Peer::new(target.peer_ip()?).await?,
        };
        let joined_at = Instant::now();
        let (session, sdp) = if target.viewer_offers() {
            for _ in 0..slots {
                for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
                    let init = RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() };
                    peer.pc.add_transceiver_from_kind(kind, Some(init)).map_err(|e| e.to_string())?;
                }
            }
            let offer = peer.pc.create_offer(None).map_err(|e| e.to_string())?;
            peer.pc.set_local_description(Instant::now(), offer).map_err(|e| e.to_string())?;
            let sdp = peer.pc.local_description().ok_or("no local description")?.sdp;
            let (answer, session) = target.whep_with(&sdp, bearer.as_deref()).await?;
            let desc = RTCSessionDescription::answer(answer.clone()).map_err(|e| e.to_string())?;
            peer.pc.set_remote_description(Instant::now(), desc).map_err(|e| format!("server's answer: {e}"))?;
            (session, answer)
        } else {
            let sub = target.janus_subscribe().await?;
            let desc = RTCSessionDescription::offer(sub.offer_sdp.clone()).map_err(|e| e.to_string())?;
            peer.pc.set_remote_description(Instant::now(), desc).map_err(|e| format!("server's offer: {e}"))?;
            let answer = peer.pc.create_answer(None).map_err(|e| e.to_string())?;
            peer.pc.set_local_description(Instant::now(), answer).map_err(|e| e.to_string())?;
            let sdp = peer.pc.local_description().ok_or("no local description")?.sdp;
            let session = target.janus_answer(&sub, &sdp).await?;
            (session, sub.offer_sdp)
        };
        let pts = PayloadTypes::from_sdp(&sdp);
        let stats = Arc::new(ViewerStats::default());
        stats.answer_us.store(joined_at.elapsed().as_micros().max(1) as u64, Ordering::Relaxed);
        let (stop, stop_rx) = watch::channel(false);
        let expect_video = if expect_video == 0 { slots } else { expect_video };
        let task = tokio::spawn(run(peer, pts, joined_at, expect_video, shared, stats.clone(), stop_rx, plis_per_second));
        Ok(Viewer { stats, stop, task, session: Some(session) })
    }

    /// Leaves: tells the server, then stops the connection.
    pub async fn leave(mut self, target: &Target) -> Result<(), String> {
        let r = match self.session.take() {
            Some(s) => target.leave(s).await,
            None => Ok(()),
        };
        let _ = self.stop.send(true);
        let _ = self.task.await;
        r
    }
}

/// Sequence numbers of one incoming stream.
struct SeqTrack {
    highest: u64,
}

/// The first keyframe being assembled.
struct FirstFrame {
    start_seq: u64,
    packets: u64,
}

struct State {
    pts: PayloadTypes,
    joined_at: Instant,
    expect_video: usize,
    shared: Arc<Shared>,
    stats: Arc<ViewerStats>,
    seqs: HashMap<u32, SeqTrack>,
    /// Per video SSRC: its first keyframe being assembled, then `None` once complete.
    first: HashMap<u32, Option<FirstFrame>>,
    widths: HashMap<u32, u16>,
}

#[allow(clippy::too_many_arguments)]
async fn run(
    mut peer: Peer,
    pts: PayloadTypes,
    joined_at: Instant,
    expect_video: usize,
    shared: Arc<Shared>,
    stats: Arc<ViewerStats>,
    mut stop: watch::Receiver<bool>,
    plis_per_second: u32,
) {
    let mut st = State { pts, joined_at, expect_video, shared, stats, seqs: HashMap::new(), first: HashMap::new(), widths: HashMap::new() };
    let mut buf = vec![0u8; 2048];
    let mut flood = tokio::time::interval(std::time::Duration::from_millis(10));
    loop {
        st.drain(&mut peer, Instant::now());
        while let Some(ev) = peer.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
                st.stats.connected.store(s == RTCPeerConnectionState::Connected, Ordering::Relaxed);
                if s == RTCPeerConnectionState::Connected && st.stats.connected_us.load(Ordering::Relaxed) == 0 {
                    st.stats.connected_us.store(st.joined_at.elapsed().as_micros().max(1) as u64, Ordering::Relaxed);
                }
                if matches!(s, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
                    st.stats.failed.store(true, Ordering::Relaxed);
                }
            }
        }
        peer.flush().await;
        let timeout = peer.timeout();
        tokio::select! {
            _ = stop.changed() => break,
            r = peer.socket.recv_from(&mut buf) => if let Ok((n, from)) = r {
                // The arrival time, taken before decryption, is what latency is measured to.
                let now = Instant::now();
                peer.feed(from, &buf[..n], now);
                st.drain(&mut peer, now);
            },
            _ = tokio::time::sleep(timeout) => peer.tick(),
            _ = flood.tick(), if plis_per_second > 0 && st.stats.connected.load(Ordering::Relaxed) => {
                let media_ssrc = st.seqs.keys().next().copied().unwrap_or(0);
                let receivers: Vec<_> = peer.pc.get_receivers().collect();
                for _ in 0..plis_per_second / 100 {
                    if let Some(mut r) = receivers.first().and_then(|id| peer.pc.rtp_receiver(*id)) {
                        let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication { sender_ssrc: 1, media_ssrc };
                        let _ = r.write_rtcp(Instant::now(), vec![Box::new(pli)]);
                    }
                }
            },
        }
    }
    let _ = peer.pc.close();
    peer.flush().await;
}

impl State {
    fn drain(&mut self, peer: &mut Peer, at: Instant) {
        while let Some(TaggedRTCMessage { message, .. }) = peer.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, p) = message {
                self.on_rtp(&p, at);
            }
        }
    }

    fn on_rtp(&mut self, p: &rtc::rtp::Packet, at: Instant) {
        let Some(&codec) = self.pts.codecs.get(&p.header.payload_type) else {
            self.stats.rtx_packets.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let stats = &self.stats;
        if stats.packets.fetch_add(1, Ordering::Relaxed) == 0 {
            stats.first_packet_us.store(at.saturating_duration_since(self.joined_at).as_micros().max(1) as u64, Ordering::Relaxed);
        }
        stats.bytes.fetch_add(p.payload.len() as u64, Ordering::Relaxed);
        // Extended sequence number, and how many packets it says were sent.
        let seq = p.header.sequence_number;
        let ext = match self.seqs.get_mut(&p.header.ssrc) {
            None => {
                self.seqs.insert(p.header.ssrc, SeqTrack { highest: 0x1_0000 + seq as u64 });
                stats.expected.fetch_add(1, Ordering::Relaxed);
                0x1_0000 + seq as u64
            }
            Some(t) => {
                let delta = seq.wrapping_sub(t.highest as u16) as i16 as i64;
                let ext = (t.highest as i64 + delta).max(0) as u64;
                if ext > t.highest {
                    stats.expected.fetch_add(ext - t.highest, Ordering::Relaxed);
                    t.highest = ext;
                }
                ext
            }
        };
        if let Some(sent) = self.shared.send_times.lookup(&p.payload) {
            if sent >= self.joined_at && at >= sent {
                self.shared.latency.record(at - sent);
            }
        }
        if codec == Codec::Opus || p.payload.is_empty() {
            return;
        }
        if p.header.marker {
            stats.frames.fetch_add(1, Ordering::Relaxed);
        }
        let ssrc = p.header.ssrc;
        if let Some(info) = media::keyframe_start(codec, &p.payload) {
            stats.width.store(info.width as u64, Ordering::Relaxed);
            let before = self.widths.insert(ssrc, info.width);
            if before != Some(info.width) {
                if before.is_some() {
                    stats.layer_switches.fetch_add(1, Ordering::Relaxed);
                }
                let t = at.saturating_duration_since(self.shared.epoch).as_secs_f64();
                stats.layers.lock().unwrap().push((t, info.width));
                stats.widths.lock().unwrap().insert(ssrc, info.width);
            }
            // A keyframe starts (or, after a loss, restarts) the first frame.
            if !matches!(self.first.get(&ssrc), Some(None)) {
                self.first.insert(ssrc, Some(FirstFrame { start_seq: ext, packets: 0 }));
            }
        }
        if let Some(Some(f)) = self.first.get_mut(&ssrc) {
            if ext >= f.start_seq {
                f.packets += 1;
            }
            // Complete when its last packet is in and none is missing.
            if p.header.marker && ext >= f.start_seq && f.packets == ext - f.start_seq + 1 {
                let us = at.saturating_duration_since(self.joined_at).as_micros().max(1) as u64;
                if stats.first_frame_us.load(Ordering::Relaxed) == 0 {
                    stats.first_frame_us.store(us, Ordering::Relaxed);
                }
                self.first.insert(ssrc, None);
                let framed = stats.video_streams_framed.fetch_add(1, Ordering::Relaxed) + 1;
                if framed as usize == self.expect_video {
                    stats.all_first_frames_us.store(us, Ordering::Relaxed);
                }
            }
        }
    }
}
