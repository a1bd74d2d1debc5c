//! The forwarding path, timed: one SRTP packet in from a publisher, N
//! SRTP-encrypted packets out to N viewers.
//!
//! Real peers (webrtc-rs `rtc`) complete ICE and DTLS with one OnAir worker
//! through memory (`onair_media::harness`), so what is timed is exactly the
//! worker's work per packet: SRTP decrypt once, route, and for each viewer
//! the layer decision, header rewrite, interceptors and SRTP encrypt.
//!
//! Three groups:
//! - `forward_one_packet`: outgoing datagrams are only counted (the SFU's own
//!   work, no system calls);
//! - `forward_one_packet_udp`: every datagram is really sent on loopback to a
//!   socket another thread drains, each incoming packet its own wake-up, so
//!   one `sendto` per packet per viewer (loopback also charges the receive
//!   path to the sender);
//! - `forward_frame_udp`: the same, with incoming packets in bursts of four
//!   (one video frame arriving together, as publishers send frames), so each
//!   viewer's four packets leave in one UDP GSO send (see `onair_media::udp`).
//!
//! What is measured is the CPU time of the thread running the worker (user
//! and kernel, `CLOCK_THREAD_CPUTIME_ID`), the "server CPU" of the target,
//! not wall time: the drain thread and the kernel's loopback work share the
//! machine's two cores, and waiting for them is not the worker's cost.
//! Criterion reports it per element; one element is one packet forwarded to
//! one viewer.
//!
//! Run: `cargo bench -p onair-bench --bench forwarding`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use onair_media::harness::Harness;
use onair_media::LayerCap;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

struct Client {
    pc: RTCPeerConnection,
    addr: SocketAddr,
    connected: bool,
}

fn client(port: u16) -> Client {
    let mut me = MediaEngine::default();
    me.register_default_codecs().unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut me).unwrap();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(me)
        .with_interceptor_registry(registry)
        .build(Instant::now())
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cand = CandidateHostConfig {
        base_config: CandidateConfig { network: "udp".into(), address: "127.0.0.1".into(), port, component: 1, ..Default::default() },
        ..Default::default()
    }
    .new_candidate_host()
    .unwrap();
    pc.add_local_candidate(RTCIceCandidate::from(&cand).to_json().unwrap()).unwrap();
    Client { pc, addr, connected: false }
}

fn offer(c: &mut Client) -> String {
    let o = c.pc.create_offer(None).unwrap();
    c.pc.set_local_description(Instant::now(), o).unwrap();
    c.pc.local_description().unwrap().sdp
}

/// Moves datagrams between the clients and the worker until nothing moves.
fn pump(h: &mut Harness, clients: &mut [Client], server_addr: SocketAddr) {
    for _ in 0..50 {
        let mut moved = false;
        let now = Instant::now();
        for c in clients.iter_mut() {
            if c.pc.poll_timeout().is_some_and(|t| t <= now) {
                let _ = c.pc.handle_timeout(now);
            }
            while let Some(m) = c.pc.poll_write() {
                h.datagram(&m.message, c.addr);
                moved = true;
            }
            while let Some(ev) = c.pc.poll_event() {
                if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
                    c.connected = s == RTCPeerConnectionState::Connected;
                }
            }
            while c.pc.poll_read().is_some() {}
        }
        h.tick(false);
        for (data, to) in h.take_output() {
            if let Some(c) = clients.iter_mut().find(|c| c.addr == to) {
                let _ = c.pc.handle_read(TaggedBytesMut {
                    now: Instant::now(),
                    transport: TransportContext { local_addr: c.addr, peer_addr: server_addr, ecn: None, transport_protocol: TransportProtocol::UDP },
                    message: BytesMut::from(&data[..]),
                });
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
}

/// A VP8 packet (RFC 7741 descriptor with 15-bit picture id), `size` bytes.
fn vp8(pid: u16, key: bool, size: usize) -> Bytes {
    let mut b = vec![0x90, 0x80, 0x80 | (pid >> 8) as u8, pid as u8, if key { 0x10 } else { 0x11 }, 0, 0];
    b.resize(size, 0xAB);
    Bytes::from(b)
}

struct Setup {
    h: Harness,
    publisher: Client,
    sender: RTCRtpSenderId,
    ssrc: u32,
    seq: u16,
    ts: u32,
    pid: u16,
}

impl Setup {
    fn new(viewers: usize, udp: bool) -> Setup {
        let mut h = if udp {
            // One real loopback socket per viewer (and the publisher), drained
            // by another thread so no kernel queue fills and drops early.
            let mut routes = std::collections::HashMap::new();
            let mut sockets = Vec::new();
            for port in std::iter::once(20_000).chain((0..viewers).map(|i| 30_000 + i as u16)) {
                let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                rx.set_nonblocking(true).unwrap();
                routes.insert(SocketAddr::from(([127, 0, 0, 1], port)), rx.local_addr().unwrap());
                sockets.push(rx);
            }
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                loop {
                    let mut got = false;
                    for rx in &sockets {
                        while rx.recv(&mut buf).is_ok() {
                            got = true;
                        }
                    }
                    if !got {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            });
            Harness::with_socket(std::net::UdpSocket::bind("127.0.0.1:0").unwrap(), routes)
        } else {
            Harness::new()
        };
        let server = h.addr;
        let mut publisher = client(20_000);
        let ssrc = 0x1234_5678;
        let track = MediaStreamTrack::new(
            "pub".into(),
            "video".into(),
            "video".into(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                codec: RTCRtpCodec { mime_type: "video/VP8".into(), clock_rate: 90_000, ..Default::default() },
                ..Default::default()
            }],
        );
        let sender = publisher.pc.add_track(track).unwrap();
        let sdp = offer(&mut publisher);
        let (_, answer) = h.publish("bench", &sdp).unwrap();
        publisher.pc.set_remote_description(Instant::now(), RTCSessionDescription::answer(answer).unwrap()).unwrap();
        let mut all = vec![publisher];
        pump(&mut h, &mut all, server);
        for i in 0..viewers {
            let mut v = client(30_000 + i as u16);
            for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
                v.pc.add_transceiver_from_kind(kind, Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() }))
                    .unwrap();
            }
            let sdp = offer(&mut v);
            let (_, answer) = h.play("bench", &sdp, LayerCap::Auto).unwrap();
            v.pc.set_remote_description(Instant::now(), RTCSessionDescription::answer(answer).unwrap()).unwrap();
            all.push(v);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !all.iter().all(|c| c.connected) {
            assert!(Instant::now() < deadline, "peers did not connect");
            pump(&mut h, &mut all, server);
            std::thread::sleep(Duration::from_millis(1));
        }
        let publisher = all.remove(0);
        let mut s = Setup { h, publisher, sender, ssrc, seq: 1000, ts: 90_000, pid: 1 };
        // One keyframe so every viewer starts forwarding; then count only.
        let kf = s.packet(true);
        s.h.datagram(&kf, s.publisher.addr);


        s.h.capture(false);
        s
    }

    /// The next publisher packet, SRTP-encrypted by the publisher's stack.
    fn packet(&mut self, key: bool) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(3000);
        self.pid = (self.pid + 1) & 0x7fff;
        let header = rtc::rtp::header::Header {
            version: 2,
            marker: true,
            payload_type: 96,
            sequence_number: self.seq,
            timestamp: self.ts,
            ssrc: self.ssrc,
            ..Default::default()
        };
        let pt = {
            let mut s = self.publisher.pc.rtp_sender(self.sender).unwrap();
            s.get_parameters().rtp_parameters.codecs[0].payload_type
        };
        let packet = rtc::rtp::Packet { header: rtc::rtp::header::Header { payload_type: pt, ..header }, payload: vp8(self.pid, key, 1100) };
        self.publisher.pc.rtp_sender(self.sender).unwrap().write_rtp(Instant::now(), packet).unwrap();
        let mut out = None;
        while let Some(m) = self.publisher.pc.poll_write() {
            if m.message.len() > 1000 {
                out = Some(m.message.to_vec());
            }
        }
        out.expect("publisher produced no RTP")
    }
}

/// CPU time this thread has used, user and kernel.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn forwarding(c: &mut Criterion) {
    group(c, "forward_one_packet", &[1, 10, 100, 200], false, 1);
    group(c, "forward_one_packet_udp", &[10, 100, 200], true, 1);
    group(c, "forward_frame_udp", &[10, 100, 200], true, 4);
}

fn group(c: &mut Criterion, name: &str, sizes: &[usize], udp: bool, burst: usize) {
    let mut group = c.benchmark_group(name);
    group.sample_size(20).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(2));
    for &viewers in sizes {
        let mut s = Setup::new(viewers, udp);
        group.throughput(Throughput::Elements(viewers as u64));
        group.bench_with_input(BenchmarkId::from_parameter(viewers), &viewers, |b, &n| {
            b.iter_custom(|iters| {
                // Encrypting on the publisher's side is not the SFU's work: done untimed.
                let packets: Vec<Vec<u8>> = (0..iters).map(|_| s.packet(false)).collect();
                let before = s.h.sent();
                let start = thread_cpu();
                for frame in packets.chunks(burst) {
                    s.h.burst(frame, s.publisher.addr);
                }
                let elapsed = thread_cpu() - start;
                let sent = s.h.sent() - before;
                assert!(sent >= iters * n as u64, "forwarded {sent} of {} packets", iters * n as u64);
                if let Some(st) = s.h.send_stats() {
                    assert_eq!(st.dropped, 0, "the kernel refused datagrams: {st:?}");
                }
                elapsed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, forwarding);
criterion_main!(benches);
