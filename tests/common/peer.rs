//! Real WebRTC test peers on webrtc-rs `rtc`, each driven by its own task and
//! UDP socket on 127.0.0.1.
//!
//! The publisher sends synthetic but well-formed VP8 (RFC 7741 descriptors,
//! 15-bit picture ids, TL0PICIDX, keyframe headers) on three simulcast rids
//! plus Opus-sized audio. Byte 0 of each VP8 frame body after the frame header
//! carries the layer index, so a viewer can tell which layer it was given.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::http;

pub const RIDS: [&str; 3] = ["q", "h", "f"];

/// One RTP packet as a viewer received it.
#[derive(Debug, Clone)]
pub struct Rx {
    pub ssrc: u32,
    pub pt: u8,
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
    pub payload: Bytes,
    pub at: Instant,
}

impl Rx {
    /// VP8: the layer index the publisher stamped into the frame (first packet of a frame only).
    pub fn vp8_layer(&self) -> Option<u8> {
        let d = onair_media::codec::vp8::parse(&self.payload)?;
        if self.payload[0] & 0x10 == 0 {
            return None; // not the start of a partition: no frame header here
        }
        let body = d.header_len + if d.is_keyframe { 10 } else { 3 };
        self.payload.get(body).copied()
    }

    /// VP8: the publisher's frame counter stamped after the layer index (first packet of a frame only).
    pub fn frame(&self) -> Option<u32> {
        let d = onair_media::codec::vp8::parse(&self.payload)?;
        if self.payload[0] & 0x10 == 0 {
            return None;
        }
        let body = d.header_len + if d.is_keyframe { 10 } else { 3 } + 1;
        let b = self.payload.get(body..body + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The publisher's tag (see `PublishOpts::tag`), from any video packet
    /// (audio: its second byte).
    pub fn tag(&self) -> Option<u8> {
        if self.pt == 111 {
            return self.payload.get(1).copied();
        }
        if self.payload.first().is_some_and(|b| b & 0x80 == 0) {
            // H.264 (see `h264_packet`): a VP8 descriptor always has its X bit set here.
            return self.payload.get(6).copied();
        }
        let d = onair_media::codec::vp8::parse(&self.payload)?;
        let frame_header = if self.payload[0] & 0x10 == 0 { 0 } else if d.is_keyframe { 10 } else { 3 };
        self.payload.get(d.header_len + frame_header + 5).copied()
    }

    pub fn is_vp8_keyframe(&self) -> bool {
        onair_media::codec::vp8::parse(&self.payload).is_some_and(|d| d.is_keyframe)
    }

    pub fn picture_id(&self) -> Option<u16> {
        onair_media::codec::vp8::parse(&self.payload).and_then(|d| d.picture_id)
    }
}

/// What a peer saw, shared with the test.
#[derive(Debug, Default)]
pub struct Seen {
    pub state: Option<RTCPeerConnectionState>,
    pub received: Vec<Rx>,
    pub plis: u64,
    /// PLIs ever received (`plis` is consumed by the frame loop).
    pub plis_total: u64,
    pub sent: u64,
    pub keyframes_sent: [u64; 3],
    /// (ssrc, seq) of the datagram dropped on purpose.
    pub dropped: Option<(u32, u16)>,
    /// PLIs a viewer sent (see `WatchOpts::pli_per_second`).
    pub plis_sent: u64,
    /// A publisher sends nothing on its top layer (see [`TestPeer::pause_top_layer`]).
    pub top_paused: bool,
}

/// A running test peer.
pub struct TestPeer {
    pub seen: Arc<Mutex<Seen>>,
    pub location: String,
    pub answer: http::Response,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl TestPeer {
    pub fn connected(&self) -> bool {
        self.seen.lock().unwrap().state == Some(RTCPeerConnectionState::Connected)
    }

    pub fn state(&self) -> Option<RTCPeerConnectionState> {
        self.seen.lock().unwrap().state
    }

    pub fn video(&self) -> Vec<Rx> {
        self.seen.lock().unwrap().received.iter().filter(|r| r.pt != 111).cloned().collect()
    }

    pub fn audio(&self) -> Vec<Rx> {
        self.seen.lock().unwrap().received.iter().filter(|r| r.pt == 111).cloned().collect()
    }

    /// A publisher stops (or resumes) its top simulcast layer, as a browser
    /// short of CPU or uplink does; its other layers go on.
    pub fn pause_top_layer(&self, paused: bool) {
        self.seen.lock().unwrap().top_paused = paused;
    }

    /// Stops the peer without telling the server (like a crashed browser).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn media_engine() -> (MediaEngine, Registry) {
    let mut me = MediaEngine::default();
    me.register_default_codecs().unwrap();
    me.register_header_extension(
        rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability { uri: onair_media::negotiate::AUDIO_LEVEL_URI.into() },
        RtpCodecKind::Audio,
        None,
    )
    .unwrap();
    // Like the SFU, the test peers look at the RTCP they get (PLIs), which
    // `rtc` only hands over when an interceptor marks it for delivery.
    let registry = onair_media::feedback::deliver_feedback(register_default_interceptors(Registry::new(), &mut me).unwrap());
    (me, registry)
}

async fn new_pc() -> (RTCPeerConnection, UdpSocket, SocketAddr) {
    let (me, registry) = media_engine();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(me)
        .with_interceptor_registry(registry)
        .build(Instant::now())
        .unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // A viewer of a room is primed with a group of pictures per slot at
    // once: a browser's socket buffer takes that burst, the default one not.
    onair_media::udp::grow_buffers(std::os::fd::AsRawFd::as_raw_fd(&socket));
    let local = socket.local_addr().unwrap();
    let cand = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".into(),
            address: local.ip().to_string(),
            port: local.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .unwrap();
    pc.add_local_candidate(RTCIceCandidate::from(&cand).to_json().unwrap()).unwrap();
    (pc, socket, local)
}

fn offer(pc: &mut RTCPeerConnection) -> String {
    let offer = pc.create_offer(None).unwrap();
    pc.set_local_description(Instant::now(), offer).unwrap();
    pc.local_description().unwrap().sdp
}

/// Publisher options.
#[derive(Clone)]
pub struct PublishOpts {
    pub simulcast: bool,
    pub audio: bool,
    pub keyframe_every: u32,
    /// Send two padding-only packets (bandwidth probes, as browsers do) on
    /// every layer every this many frames; 0 = never.
    pub padding_every: u32,
    /// Packets per frame of the top layer (lower layers send one).
    pub top_packets: usize,
    /// A byte stamped into every video and audio payload (see [`Rx::tag`]),
    /// to tell hosts of a room apart.
    pub tag: Option<u8>,
    /// Send H.264 (constrained baseline, packetization mode 1: OBS's)
    /// instead of VP8: single NAL unit packets, an IDR slice heading each
    /// keyframe.
    pub h264: bool,
}

impl Default for PublishOpts {
    fn default() -> Self {
        PublishOpts { simulcast: true, audio: true, keyframe_every: 90, padding_every: 10, top_packets: 3, tag: None, h264: false }
    }
}

struct VideoOut {
    sender: RTCRtpSenderId,
    ssrcs: Vec<(u32, usize)>,
    mid_ext: u8,
    rid_ext: u8,
    mime: String,
}

/// Publishes over WHIP; returns the peer or the server's error response.
pub async fn publish(http_addr: SocketAddr, key: &str, opts: PublishOpts) -> Result<TestPeer, http::Response> {
    publish_via(opts, async |sdp: String| http::post_sdp(http_addr, "/whip", Some(key), &sdp).await).await
}

/// Publishes with the offer sent by `signal`, which answers as WHIP would
/// (201 with the answer SDP, or an error response).
pub async fn publish_via(opts: PublishOpts, signal: impl AsyncFnOnce(String) -> http::Response) -> Result<TestPeer, http::Response> {
    let (mut pc, socket, local) = new_pc().await;
    let rids: Vec<&str> = if opts.simulcast { RIDS.to_vec() } else { vec!["f"] };
    let vp8 = if opts.h264 {
        rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
            mime_type: "video/H264".into(),
            clock_rate: 90_000,
            sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".into(),
            ..Default::default()
        }
    } else {
        rtc::rtp_transceiver::rtp_sender::RTCRtpCodec { mime_type: "video/VP8".into(), clock_rate: 90_000, ..Default::default() }
    };
    let video_mime = vp8.mime_type.clone();
    let mut encodings = Vec::new();
    let mut ssrcs = Vec::new();
    for (i, rid) in rids.iter().enumerate() {
        let ssrc = rand::random::<u32>();
        let layer = if opts.simulcast { i } else { 2 };
        ssrcs.push((ssrc, layer));
        encodings.push(RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                rid: if opts.simulcast { rid.to_string() } else { String::new() },
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: vp8.clone(),
            ..Default::default()
        });
    }
    let video_track = MediaStreamTrack::new("pub".into(), "video".into(), "video".into(), RtpCodecKind::Video, encodings);
    let video_sender = pc.add_track(video_track).unwrap();
    let audio_ssrc = rand::random::<u32>();
    let audio_sender = if opts.audio {
        let opus = rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
            mime_type: "audio/opus".into(),
            clock_rate: 48_000,
            channels: 2,
            ..Default::default()
        };
        let t = MediaStreamTrack::new(
            "pub".into(),
            "audio".into(),
            "audio".into(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(audio_ssrc), ..Default::default() },
                codec: opus,
                ..Default::default()
            }],
        );
        Some(pc.add_track(t).unwrap())
    } else {
        None
    };
    let sdp = offer(&mut pc);
    let res = signal(sdp).await;
    if res.status != 201 {
        return Err(res);
    }
    pc.set_remote_description(Instant::now(), RTCSessionDescription::answer(res.body.clone()).unwrap()).unwrap();
    let ext = |pc: &mut RTCPeerConnection, uri: &str| -> u8 {
        let mut s = pc.rtp_sender(video_sender).unwrap();
        s.get_parameters().rtp_parameters.header_extensions.iter().find(|e| e.uri == uri).map(|e| e.id as u8).unwrap_or(0)
    };
    let mid_ext = ext(&mut pc, "urn:ietf:params:rtp-hdrext:sdes:mid");
    let rid_ext = ext(&mut pc, "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id");
    let video = VideoOut { sender: video_sender, ssrcs, mid_ext, rid_ext, mime: video_mime };
    let audio_level_ext = match audio_sender {
        Some(a) => {
            let mut s = pc.rtp_sender(a).unwrap();
            s.get_parameters().rtp_parameters.header_extensions.iter().find(|e| e.uri == onair_media::negotiate::AUDIO_LEVEL_URI).map(|e| e.id as u8).unwrap_or(0)
        }
        None => 0,
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (stop, stop_rx) = watch::channel(false);
    let location = res.header("location").unwrap_or_default().to_owned();
    let task = tokio::spawn(run_publisher(pc, socket, local, video, audio_sender.map(|s| (s, audio_ssrc, audio_level_ext)), opts, seen.clone(), stop_rx));
    Ok(TestPeer { seen, location, answer: res, stop, task })
}

/// An H.264 single NAL unit packet: an IDR slice (type 5) heading a
/// keyframe, else a non-IDR slice (type 1); then the layer, the frame
/// number and the tag, as in [`vp8_packet`].
fn h264_packet(first: bool, key: bool, layer: u8, frame: u32, size: usize, tag: Option<u8>) -> Bytes {
    let mut b = BytesMut::with_capacity(size);
    b.extend_from_slice(&[if first && key { 0x65 } else { 0x41 }, layer]);
    b.extend_from_slice(&frame.to_be_bytes());
    if let Some(tag) = tag {
        b.extend_from_slice(&[tag]);
    }
    while b.len() < size {
        b.extend_from_slice(&[0xAB]);
    }
    b.freeze()
}

#[allow(clippy::too_many_arguments)]
fn vp8_packet(pid: u16, tl0: u8, first: bool, key: bool, layer: u8, frame: u32, size: usize, tag: Option<u8>) -> Bytes {
    let mut b = BytesMut::with_capacity(size);
    b.extend_from_slice(&[if first { 0x90 } else { 0x80 }, 0xC0, 0x80 | (pid >> 8) as u8, pid as u8, tl0]);
    if first {
        if key {
            // Frame tag (P=0, show_frame), start code, 320x180.
            b.extend_from_slice(&[0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00]);
        } else {
            b.extend_from_slice(&[0x11, 0x00, 0x00]);
        }
    }
    b.extend_from_slice(&[layer]);
    b.extend_from_slice(&frame.to_be_bytes());
    if let Some(tag) = tag {
        b.extend_from_slice(&[tag]);
    }
    while b.len() < size {
        b.extend_from_slice(&[0xAB]);
    }
    b.freeze()
}

#[allow(clippy::too_many_arguments)]
async fn run_publisher(
    mut pc: RTCPeerConnection,
    socket: UdpSocket,
    local: SocketAddr,
    video: VideoOut,
    audio: Option<(RTCRtpSenderId, u32, u8)>,
    opts: PublishOpts,
    seen: Arc<Mutex<Seen>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 2048];
    let mut frame_tick = tokio::time::interval(Duration::from_millis(33));
    let mut audio_tick = tokio::time::interval(Duration::from_millis(20));
    let mut frame: u32 = 0;
    let mut audio_seq: u16 = rand::random();
    let mut audio_ts: u32 = rand::random();
    // Per layer: seq, ts, picture id, tl0, force keyframe.
    let mut layer_state: HashMap<u32, (u16, u32, u16, u8, bool)> =
        video.ssrcs.iter().map(|(s, _)| (*s, (rand::random(), rand::random(), rand::random::<u16>() & 0x7fff, rand::random(), true))).collect();
    loop {
        drain(&mut pc, &socket, &seen);
        let connected = seen.lock().unwrap().state == Some(RTCPeerConnectionState::Connected);
        let timeout = pc.poll_timeout().map(|t| t.saturating_duration_since(Instant::now())).unwrap_or(Duration::from_secs(1));
        tokio::select! {
            _ = stop.changed() => break,
            r = socket.recv_from(&mut buf) => if let Ok((n, from)) = r {
                feed(&mut pc, local, from, &buf[..n]);
            },
            _ = tokio::time::sleep(timeout) => { let _ = pc.handle_timeout(Instant::now()); },
            _ = frame_tick.tick(), if connected => {
                frame += 1;
                let plis = std::mem::take(&mut seen.lock().unwrap().plis);
                for (ssrc, layer) in &video.ssrcs {
                    if *layer == 2 && seen.lock().unwrap().top_paused {
                        continue;
                    }
                    let st = layer_state.get_mut(ssrc).unwrap();
                    let key = st.4 || plis > 0 || frame % opts.keyframe_every == 0;
                    st.4 = false;
                    let packets = if *layer == 2 { opts.top_packets } else { 1 };
                    let probes = if opts.padding_every > 0 && frame % opts.padding_every == 5 { 2 } else { 0 };
                    st.2 = (st.2 + 1) & 0x7fff;
                    st.3 = st.3.wrapping_add(1);
                    st.1 = st.1.wrapping_add(3000);
                    for i in 0..packets + probes {
                        st.0 = st.0.wrapping_add(1);
                        let probe = i >= packets;
                        let payload = if probe {
                            Bytes::new()
                        } else if opts.h264 {
                            h264_packet(i == 0, key, *layer as u8, frame, 300 + 300 * *layer, opts.tag)
                        } else {
                            vp8_packet(st.2, st.3, i == 0, key, *layer as u8, frame, 300 + 300 * *layer, opts.tag)
                        };
                        let mut header = rtc::rtp::header::Header {
                            version: 2,
                            padding: probe,
                            marker: i + 1 == packets,
                            payload_type: 96,
                            sequence_number: st.0,
                            timestamp: st.1,
                            ssrc: *ssrc,
                            ..Default::default()
                        };
                        if opts.simulcast && video.mid_ext != 0 && video.rid_ext != 0 {
                            header.extension = true;
                            header.extension_profile = 0xBEDE;
                            let _ = header.set_extension(video.mid_ext, Bytes::from_static(b"0"));
                            let _ = header.set_extension(video.rid_ext, Bytes::from(RIDS[*layer].as_bytes().to_vec()));
                        }
                        let pt = pc.rtp_sender(video.sender).unwrap().get_parameters().rtp_parameters.codecs.iter().find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&video.mime)).map(|c| c.payload_type).unwrap_or(96);
                        header.payload_type = pt;
                        if pc.rtp_sender(video.sender).unwrap().write_rtp(Instant::now(), rtc::rtp::Packet { header, payload }).is_ok() {
                            let mut s = seen.lock().unwrap();
                            if !probe { s.sent += 1; }
                            if key && i == 0 { s.keyframes_sent[*layer] += 1; }
                        }
                    }
                }
            },
            _ = audio_tick.tick(), if connected && audio.is_some() => {
                let (sender, ssrc, audio_level_ext) = audio.unwrap();
                audio_seq = audio_seq.wrapping_add(1);
                audio_ts = audio_ts.wrapping_add(960);
                let mut header = rtc::rtp::header::Header { version: 2, payload_type: 111, sequence_number: audio_seq, timestamp: audio_ts, ssrc, ..Default::default() };
                if audio_level_ext != 0 {
                    header.extension = true;
                    header.extension_profile = 0xBEDE;
                    let _ = header.set_extension(audio_level_ext, Bytes::from_static(&[0x80 | 30]));
                }
                let _ = pc.rtp_sender(sender).unwrap().write_rtp(Instant::now(), rtc::rtp::Packet { header, payload: audio_payload(opts.tag) });
            },
        }
    }
    let _ = pc.close();
    drain(&mut pc, &socket, &seen);
}

/// An Opus-sized audio payload; the tag, if any, in its second byte.
fn audio_payload(tag: Option<u8>) -> Bytes {
    let mut p = vec![0xFCu8; 60];
    if let Some(tag) = tag {
        p[1] = tag;
    }
    Bytes::from(p)
}

fn feed(pc: &mut RTCPeerConnection, local: SocketAddr, from: SocketAddr, data: &[u8]) {
    let _ = pc.handle_read(TaggedBytesMut {
        now: Instant::now(),
        transport: TransportContext { local_addr: local, peer_addr: from, ecn: None, transport_protocol: TransportProtocol::UDP },
        message: BytesMut::from(data),
    });
}

fn drain(pc: &mut RTCPeerConnection, socket: &UdpSocket, seen: &Arc<Mutex<Seen>>) {
    while let Some(TaggedRTCMessage { message, .. }) = pc.poll_read() {
        match message {
            RTCMessage::RtpPacket(_, p) => seen.lock().unwrap().received.push(Rx {
                ssrc: p.header.ssrc,
                pt: p.header.payload_type,
                seq: p.header.sequence_number,
                ts: p.header.timestamp,
                marker: p.header.marker,
                payload: p.payload,
                at: Instant::now(),
            }),
            RTCMessage::RtcpPacket(_, pkts) => {
                for p in pkts {
                    if p.as_any().is::<rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>() {
                        let mut s = seen.lock().unwrap();
                        s.plis += 1;
                        s.plis_total += 1;
                    }
                }
            }
            _ => {}
        }
    }
    while let Some(ev) = pc.poll_event() {
        if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
            seen.lock().unwrap().state = Some(s);
        }
    }
    while let Some(msg) = pc.poll_write() {
        let _ = socket.try_send_to(&msg.message, msg.transport.peer_addr);
    }
}

/// One junk datagram: its first byte makes it look like RTP/RTCP, DTLS or
/// STUN in turn (RFC 7983's demultiplexing ranges), the rest is random.
fn garbage(i: u32) -> Vec<u8> {
    let len = 1 + rand::random::<u32>() as usize % 1200;
    let mut d: Vec<u8> = (0..len).map(|_| rand::random()).collect();
    d[0] = match i % 4 {
        0 => 0x80 | (d[0] & 0x3f), // RTP/RTCP
        1 => 20 + d[0] % 44,       // DTLS
        2 => d[0] & 0x03,          // STUN
        _ => d[0],
    };
    if i % 4 == 2 && d.len() >= 8 {
        d[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]); // the magic cookie
    }
    d
}

/// Watch options.
#[derive(Clone, Default)]
pub struct WatchOpts {
    /// `?max_layer=` value.
    pub max_layer: Option<&'static str>,
    /// Drop the n-th incoming media datagram (counted after connecting), to provoke a NACK.
    pub drop_nth: Option<usize>,
    /// `Authorization: Bearer` (an access token, for closed streams).
    pub token: Option<String>,
    /// `X-OnAir-Viewer`: the page's viewer key.
    pub viewer: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// Keyframe requests (PLI) sent per second once connected: a hostile
    /// or broken client.
    pub pli_per_second: u32,
    /// Random datagrams sent from the peer's own address per second once
    /// connected (RTP-, RTCP-, DTLS- and STUN-looking junk).
    pub garbage_per_second: u32,
    /// Video and audio m-lines offered (a co-host room's slots); 0 means 1.
    pub slots: usize,
}

/// Watches over WHEP; returns the peer or the server's error response. A
/// stream whose publisher just connected is live for the platform a moment
/// later (its lifecycle hears of the connection): `stream_not_live` is
/// retried for a few seconds, as the watch page does.
pub async fn watch(http_addr: SocketAddr, stream: &str, opts: WatchOpts) -> Result<TestPeer, http::Response> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match watch_once(http_addr, stream, opts.clone()).await {
            Err(r) if r.status == 404 && r.body.contains("stream_not_live") && Instant::now() < end => tokio::time::sleep(Duration::from_millis(50)).await,
            other => return other,
        }
    }
}

async fn watch_once(http_addr: SocketAddr, stream: &str, opts: WatchOpts) -> Result<TestPeer, http::Response> {
    let path = match opts.max_layer {
        Some(l) => format!("/whep/{stream}?max_layer={l}"),
        None => format!("/whep/{stream}"),
    };
    let auth = opts.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/sdp")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    if let Some(v) = &opts.viewer {
        headers.push(("X-OnAir-Viewer", v.as_str()));
    }
    if let Some(ua) = &opts.user_agent {
        headers.push(("User-Agent", ua.as_str()));
    }
    watch_via(opts.clone(), async |sdp: String| http::request(http_addr, "POST", &path, &headers, sdp.as_bytes()).await).await
}

/// Watches with the offer sent by `signal`, which answers as WHEP would.
pub async fn watch_via(opts: WatchOpts, signal: impl AsyncFnOnce(String) -> http::Response) -> Result<TestPeer, http::Response> {
    let (mut pc, socket, local) = new_pc().await;
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        for _ in 0..opts.slots.max(1) {
            pc.add_transceiver_from_kind(kind, Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() }))
                .unwrap();
        }
    }
    let sdp = offer(&mut pc);
    let res = signal(sdp).await;
    if res.status != 201 {
        return Err(res);
    }
    pc.set_remote_description(Instant::now(), RTCSessionDescription::answer(res.body.clone()).unwrap()).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (stop, mut stop_rx) = watch::channel(false);
    let location = res.header("location").unwrap_or_default().to_owned();
    let s2 = seen.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        let mut media_datagrams = 0usize;
        let mut abuse_tick = tokio::time::interval(Duration::from_millis(10));
        let abusive = opts.pli_per_second > 0 || opts.garbage_per_second > 0;
        let server = std::sync::OnceLock::new();
        loop {
            drain(&mut pc, &socket, &s2);
            let timeout = pc.poll_timeout().map(|t| t.saturating_duration_since(Instant::now())).unwrap_or(Duration::from_secs(1));
            let connected = s2.lock().unwrap().state == Some(RTCPeerConnectionState::Connected);
            tokio::select! {
                _ = stop_rx.changed() => break,
                _ = abuse_tick.tick(), if abusive && connected => {
                    let media_ssrc = s2.lock().unwrap().received.iter().find(|r| r.pt != 111).map_or(0, |r| r.ssrc);
                    let receivers: Vec<_> = pc.get_receivers().collect();
                    for _ in 0..opts.pli_per_second / 100 {
                        for id in &receivers {
                            let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication { sender_ssrc: 1, media_ssrc };
                            if let Some(mut r) = pc.rtp_receiver(*id) {
                                let _ = r.write_rtcp(Instant::now(), vec![Box::new(pli)]);
                            }
                        }
                        s2.lock().unwrap().plis_sent += 1;
                    }
                    if let Some(to) = server.get() {
                        for i in 0..opts.garbage_per_second / 100 {
                            let _ = socket.try_send_to(&garbage(i), *to);
                        }
                    }
                },
                r = socket.recv_from(&mut buf) => if let Ok((n, from)) = r {
                    let _ = server.set(from);
                    // RTP/RTCP (first byte 128..=191) after connecting counts toward drop_nth.
                    // Video-sized RTP (audio packets here are under 100 bytes).
                    let is_media = n > 200 && (128..=191).contains(&buf[0]) && !(192..=223).contains(&buf[1]);
                    if is_media && s2.lock().unwrap().state == Some(RTCPeerConnectionState::Connected) {
                        media_datagrams += 1;
                        if Some(media_datagrams) == opts.drop_nth {
                            s2.lock().unwrap().dropped = Some((u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]), u16::from_be_bytes([buf[2], buf[3]])));
                            continue;
                        }
                    }
                    feed(&mut pc, local, from, &buf[..n]);
                },
                _ = tokio::time::sleep(timeout) => { let _ = pc.handle_timeout(Instant::now()); },
            }
        }
        let _ = pc.close();
        drain(&mut pc, &socket, &s2);
    });
    Ok(TestPeer { seen, location, answer: res, stop, task })
}
