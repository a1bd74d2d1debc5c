//! The publisher: replays encoded clips (see [`crate::media`]) as RTP at
//! their real frame rate, looping, with no encoding cost. VP8 goes out as
//! three simulcast layers (rids `q`, `h`, `f`), H.264 as one; Opus with
//! either.
//!
//! Like an encoder, it answers a PLI or FIR with a keyframe: that layer's
//! clip jumps to its next keyframe (at most one jump per layer every 200 ms).
//! Every payload's send time goes into [`SendTimes`] for the viewers'
//! latency measurement.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use tokio::sync::watch;

use crate::measure::SendTimes;
use crate::media::{self, Clip, Codec};
use crate::peer::Peer;
use crate::target::Target;

/// Which media the publisher sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PublishMedia {
    /// VP8 in three simulcast layers, and Opus.
    Vp8,
    /// H.264 (one layer), and Opus.
    H264,
}

const RIDS: [&str; 3] = ["q", "h", "f"];
const KEYFRAME_MIN_GAP: Duration = Duration::from_millis(200);

/// Counters the publisher keeps; read at any time.
#[derive(Default)]
pub struct PublisherStats {
    pub connected: AtomicBool,
    /// RTP packets sent per video layer (q, h, f; H.264 counts as f).
    pub video_packets: [AtomicU64; 3],
    pub audio_packets: AtomicU64,
    /// PLIs and FIRs received.
    pub keyframe_requests: AtomicU64,
    pub keyframes_sent: AtomicU64,
}

impl PublisherStats {
    /// Packets of the top layer plus audio: what each viewer of the top layer should get.
    pub fn top_and_audio(&self) -> u64 {
        self.video_packets[2].load(Ordering::Relaxed) + self.audio_packets.load(Ordering::Relaxed)
    }

    pub fn total(&self) -> u64 {
        self.video_packets.iter().map(|p| p.load(Ordering::Relaxed)).sum::<u64>() + self.audio_packets.load(Ordering::Relaxed)
    }
}

/// A running publisher.
pub struct Publisher {
    pub stats: Arc<PublisherStats>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One outgoing video layer.
struct Layer {
    clip: Clip,
    ssrc: u32,
    rid: Option<&'static str>,
    pos: usize,
    seq: u16,
    ts: u32,
    picture_id: u16,
    keyframe_wanted: bool,
    last_keyframe: Option<Instant>,
    index: usize,
}

impl Layer {
    fn new(clip: Clip, rid: Option<&'static str>, index: usize) -> Layer {
        Layer {
            clip,
            ssrc: rand::random(),
            rid,
            pos: 0,
            seq: rand::random(),
            ts: rand::random(),
            picture_id: rand::random::<u16>() & 0x7fff,
            keyframe_wanted: false,
            last_keyframe: None,
            index,
        }
    }

    /// The next frame's index, jumping ahead to a keyframe if one is owed.
    fn next_frame(&mut self, now: Instant) -> usize {
        let n = self.clip.frames.len();
        if self.keyframe_wanted && !self.clip.frames[self.pos].keyframe && self.last_keyframe.is_none_or(|t| now - t >= KEYFRAME_MIN_GAP) {
            if let Some(k) = (1..=n).map(|i| (self.pos + i) % n).find(|&i| self.clip.frames[i].keyframe) {
                self.pos = k;
            }
        }
        let i = self.pos;
        if self.clip.frames[i].keyframe {
            self.keyframe_wanted = false;
            self.last_keyframe = Some(now);
        }
        self.pos = (self.pos + 1) % n;
        i
    }
}

/// Who publishes, when it is not the target's own stream key: one host of
/// a co-host room among several.
#[derive(Debug, Clone, Default)]
pub struct PublishAs {
    /// The WHIP bearer (this host's stream key) instead of the target's.
    pub key: Option<String>,
    /// Marks this host's payloads (see [`Clip::tagged`]).
    pub tag: Option<u8>,
}

/// Connects a publisher to `target` and starts sending once connected.
pub async fn start(target: &Target, what: PublishMedia, send_times: Arc<SendTimes>) -> Result<Publisher, String> {
    start_as(target, what, send_times, &PublishAs::default()).await
}

/// [`start`], as one of several hosts.
pub async fn start_as(target: &Target, what: PublishMedia, send_times: Arc<SendTimes>, who: &PublishAs) -> Result<Publisher, String> {
    let mut peer = Peer::new(target.peer_ip()?).await?;
    let tag = |c: Clip| match who.tag {
        Some(t) => c.tagged(t),
        None => c,
    };
    let mut layers: Vec<Layer> = match what {
        PublishMedia::Vp8 => media::vp8_layers()?.into_iter().enumerate().map(|(i, c)| Layer::new(tag(c), Some(RIDS[i]), i)).collect(),
        PublishMedia::H264 => vec![Layer::new(tag(media::h264()?), None, 2)],
    };
    if target.rids_high_first() {
        layers.reverse();
    }
    let (mime, codec) = match what {
        PublishMedia::Vp8 => ("video/VP8", Codec::Vp8),
        PublishMedia::H264 => ("video/H264", Codec::H264),
    };
    let video_codec = RTCRtpCodec {
        mime_type: mime.into(),
        clock_rate: 90_000,
        // Constrained baseline, packetization-mode 1: what the clip is and what WHIP servers take.
        sdp_fmtp_line: if codec == Codec::H264 { "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".into() } else { String::new() },
        ..Default::default()
    };
    let encodings = layers
        .iter()
        .map(|l| RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { rid: l.rid.unwrap_or_default().to_owned(), ssrc: Some(l.ssrc), ..Default::default() },
            codec: video_codec.clone(),
            ..Default::default()
        })
        .collect();
    let track = MediaStreamTrack::new("bench".into(), "video".into(), "video".into(), RtpCodecKind::Video, encodings);
    let video = peer.pc.add_track(track).map_err(|e| e.to_string())?;
    let audio_clip = tag(media::opus()?);
    let audio_ssrc = rand::random::<u32>();
    let opus = RTCRtpCodec { mime_type: "audio/opus".into(), clock_rate: 48_000, channels: 2, sdp_fmtp_line: "minptime=10;useinbandfec=1".into(), ..Default::default() };
    let track = MediaStreamTrack::new(
        "bench".into(),
        "audio".into(),
        "audio".into(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters { rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(audio_ssrc), ..Default::default() }, codec: opus, ..Default::default() }],
    );
    let audio = peer.pc.add_track(track).map_err(|e| e.to_string())?;
    let offer = peer.pc.create_offer(None).map_err(|e| e.to_string())?;
    peer.pc.set_local_description(Instant::now(), offer).map_err(|e| e.to_string())?;
    let sdp = peer.pc.local_description().ok_or("no local description")?.sdp;
    let answer = target.publish_with(&sdp, who.key.as_deref()).await?;
    peer.pc
        .set_remote_description(Instant::now(), RTCSessionDescription::answer(answer).map_err(|e| e.to_string())?)
        .map_err(|e| format!("server's answer: {e}"))?;
    let negotiated = |peer: &mut Peer, sender: RTCRtpSenderId, mime: &str, uris: &[&str]| -> (u8, Vec<u8>) {
        let Some(mut s) = peer.pc.rtp_sender(sender) else { return (0, vec![0; uris.len()]) };
        let params = s.get_parameters().rtp_parameters.clone();
        let pt = params.codecs.iter().find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime)).map(|c| c.payload_type).unwrap_or(0);
        let ids = uris.iter().map(|u| params.header_extensions.iter().find(|e| e.uri == *u).map(|e| e.id as u8).unwrap_or(0)).collect();
        (pt, ids)
    };
    let (video_pt, ids) = negotiated(&mut peer, video, mime, &["urn:ietf:params:rtp-hdrext:sdes:mid", "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"]);
    let (audio_pt, _) = negotiated(&mut peer, audio, "audio/opus", &[]);
    if video_pt == 0 || audio_pt == 0 {
        return Err(format!("the server's answer does not accept {mime} and Opus"));
    }
    let out = Out { video, audio, video_pt, audio_pt, mid_ext: ids[0], rid_ext: ids[1], codec };
    let stats = Arc::new(PublisherStats::default());
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(peer, out, layers, (audio_clip, audio_ssrc), stats.clone(), send_times, stop_rx));
    Ok(Publisher { stats, stop, task })
}

struct Out {
    video: RTCRtpSenderId,
    audio: RTCRtpSenderId,
    video_pt: u8,
    audio_pt: u8,
    mid_ext: u8,
    rid_ext: u8,
    codec: Codec,
}

async fn run(
    mut peer: Peer,
    out: Out,
    mut layers: Vec<Layer>,
    (audio_clip, audio_ssrc): (Clip, u32),
    stats: Arc<PublisherStats>,
    send_times: Arc<SendTimes>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 2048];
    let frame_interval = layers[0].clip.frame_interval;
    let mut video_tick = tokio::time::interval(frame_interval);
    let mut audio_tick = tokio::time::interval(audio_clip.frame_interval);
    let (mut audio_pos, mut audio_seq, mut audio_ts) = (0usize, rand::random::<u16>(), rand::random::<u32>());
    let video_step = (frame_interval.as_secs_f64() * 90_000.0).round() as u32;
    let mut connected = false;
    let mut sent: Vec<Bytes> = Vec::with_capacity(64);
    loop {
        poll(&mut peer, &mut connected, &stats, &mut layers);
        peer.flush().await;
        let timeout = peer.timeout();
        tokio::select! {
            _ = stop.changed() => break,
            r = peer.socket.recv_from(&mut buf) => if let Ok((n, from)) = r {
                peer.feed(from, &buf[..n], Instant::now());
            },
            _ = tokio::time::sleep(timeout) => peer.tick(),
            _ = video_tick.tick(), if connected => {
                let now = Instant::now();
                sent.clear();
                for layer in layers.iter_mut() {
                    let i = layer.next_frame(now);
                    let frame = &layer.clip.frames[i];
                    if frame.keyframe {
                        stats.keyframes_sent.fetch_add(1, Ordering::Relaxed);
                    }
                    layer.ts = layer.ts.wrapping_add(video_step);
                    layer.picture_id = (layer.picture_id + 1) & 0x7fff;
                    let last = frame.payloads.len().saturating_sub(1);
                    for (k, payload) in frame.payloads.iter().enumerate() {
                        layer.seq = layer.seq.wrapping_add(1);
                        let payload = if out.codec == Codec::Vp8 {
                            let mut p = BytesMut::from(&payload[..]);
                            media::set_vp8_picture_id(&mut p, layer.picture_id);
                            p.freeze()
                        } else {
                            payload.clone()
                        };
                        let mut header = rtc::rtp::header::Header {
                            version: 2,
                            marker: k == last,
                            payload_type: out.video_pt,
                            sequence_number: layer.seq,
                            timestamp: layer.ts,
                            ssrc: layer.ssrc,
                            ..Default::default()
                        };
                        if let (Some(rid), true) = (layer.rid, out.mid_ext != 0 && out.rid_ext != 0) {
                            header.extension = true;
                            header.extension_profile = 0xBEDE;
                            let _ = header.set_extension(out.mid_ext, Bytes::from_static(b"0"));
                            let _ = header.set_extension(out.rid_ext, Bytes::from_static(rid.as_bytes()));
                        }
                        sent.push(payload.clone());
                        if let Some(mut s) = peer.pc.rtp_sender(out.video) {
                            if s.write_rtp(now, rtc::rtp::Packet { header, payload }).is_ok() {
                                stats.video_packets[layer.index].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                peer.flush().await;
                let at = Instant::now();
                for p in &sent {
                    send_times.sent(p, at);
                }
            },
            _ = audio_tick.tick(), if connected => {
                let frame = &audio_clip.frames[audio_pos];
                audio_pos = (audio_pos + 1) % audio_clip.frames.len();
                audio_ts = audio_ts.wrapping_add(960);
                for payload in &frame.payloads {
                    audio_seq = audio_seq.wrapping_add(1);
                    let header = rtc::rtp::header::Header { version: 2, payload_type: out.audio_pt, sequence_number: audio_seq, timestamp: audio_ts, ssrc: audio_ssrc, ..Default::default() };
                    if let Some(mut s) = peer.pc.rtp_sender(out.audio) {
                        if s.write_rtp(Instant::now(), rtc::rtp::Packet { header, payload: payload.clone() }).is_ok() {
                            stats.audio_packets.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                peer.flush().await;
                let at = Instant::now();
                for p in &frame.payloads {
                    send_times.sent(p, at);
                }
            },
        }
    }
    let _ = peer.pc.close();
    peer.flush().await;
}

/// Handles what the connection has for us: state changes and keyframe requests.
fn poll(peer: &mut Peer, connected: &mut bool, stats: &PublisherStats, layers: &mut [Layer]) {
    while let Some(TaggedRTCMessage { message, .. }) = peer.pc.poll_read() {
        if let RTCMessage::RtcpPacket(_, packets) = message {
            for p in packets {
                let any = p.as_any();
                let ssrc = if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                    Some(pli.media_ssrc)
                } else {
                    any.downcast_ref::<FullIntraRequest>().map(|f| f.fir.first().map(|e| e.ssrc).unwrap_or(f.media_ssrc))
                };
                if let Some(ssrc) = ssrc {
                    stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                    for l in layers.iter_mut().filter(|l| l.ssrc == ssrc || ssrc == 0) {
                        l.keyframe_wanted = true;
                    }
                }
            }
        }
    }
    while let Some(ev) = peer.pc.poll_event() {
        if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
            *connected = s == RTCPeerConnectionState::Connected;
            stats.connected.store(*connected, Ordering::Relaxed);
        }
    }
}
