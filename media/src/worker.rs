//! A worker: one thread, one UDP socket, one event loop, many peers.
//!
//! The data path, packet in to packet out:
//! 1. `on_datagram` routes a datagram to its peer (by remote address, or for a
//!    new address by the STUN USERNAME's ufrag) and hands it to that peer's
//!    `RTCPeerConnection` (ICE, DTLS, SRTP decryption happen in `rtc`).
//! 2. `pump` drains what the connection produced: for a publisher, decrypted
//!    RTP becomes one refcounted [`ForwardPacket`]; for a viewer, RTCP
//!    feedback (PLI, REMB, receiver reports).
//! 3. `fanout` gives each packet to the viewers of its stream on this worker,
//!    and to every other worker that has viewers of it (a bounded queue each:
//!    a full queue drops, it never blocks the publisher's worker).
//! 4. `deliver` asks each viewer's [`Viewer`] whether and with which header it
//!    gets the packet, writes it to the viewer's connection (SRTP encryption in
//!    `rtc`) and sends the result on the socket without waiting.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use crate::audio_level;
use crate::codec::{self, Codec};
use crate::error::SfuError;
use crate::forward::{DownTrack, Fanout, ForwardPacket, Kind, OutHeader, Rtx, Viewer};
use crate::layer::{Layer, LayerCap};
use crate::metrics::Metrics;
use crate::nack::NackTracker;
use crate::negotiate::{self, IceCredentials, AUDIO_LEVEL_URI};
use crate::ratemeter::RateMeter;
use crate::sfu::{LayerState, PeerHealth, Role, SessionId, SessionInfo, SfuEvent, Shared, StreamShared, TrackHealth};
use crate::stun;
use crate::udp::{self, UdpBatch};

/// How often the worker checks peer timers and link state.
const TICK: Duration = Duration::from_millis(10);
/// A connection not up after this long is given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A connected peer silent for this long is gone (browsers send ICE consent
/// checks every few seconds, RFC 7675).
const SILENCE_TIMEOUT: Duration = Duration::from_secs(15);
/// At most one PLI per layer toward a publisher in this interval, however many
/// viewers ask.
const PLI_INTERVAL: Duration = Duration::from_millis(500);

/// Commands from the control plane (and from other workers).
pub(crate) enum Command {
    Open {
        id: SessionId,
        stream: Arc<StreamShared>,
        role: Role,
        cap: LayerCap,
        offer: String,
        reply: oneshot::Sender<Result<String, SfuError>>,
    },
    /// Closes a session; `end_stream` on a publisher ends its stream at once
    /// (the platform ended it) instead of holding it for a reconnect.
    Close { id: SessionId, end_stream: bool, reply: oneshot::Sender<()> },
    SetCap { id: SessionId, cap: LayerCap, reply: oneshot::Sender<Result<LayerState, SfuError>> },
    /// A viewer's layer state, unchanged.
    ViewerLayer { id: SessionId, reply: oneshot::Sender<Result<LayerState, SfuError>> },
    Candidate { id: SessionId, candidate: String, reply: oneshot::Sender<Result<(), SfuError>> },
    Health { stream: u64, reply: oneshot::Sender<Vec<PeerHealth>> },
    /// A viewer elsewhere wants a keyframe of `layer` from this worker's publisher.
    Keyframe { publisher: SessionId, layer: Layer },
    /// The stream is over: close its viewers here.
    EndStream { stream: u64 },
    /// A held stream's publisher is back as `new`: its viewers here move to
    /// `new` (or are closed, when `keep` is false: the codecs changed).
    Adopt { old: Arc<StreamShared>, new: Arc<StreamShared>, keep: bool },
    Shutdown,
}

pub(crate) struct WorkerHandle {
    pub commands: mpsc::UnboundedSender<Command>,
    pub local_addr: SocketAddr,
}

type Receivers = (mpsc::UnboundedReceiver<Command>, mpsc::Receiver<Fanout>);

pub(crate) fn channels(
    n: usize,
    queue: usize,
) -> (Arc<Vec<mpsc::UnboundedSender<Command>>>, Arc<Vec<mpsc::Sender<Fanout>>>, Vec<Receivers>) {
    let mut cmd_txs = Vec::with_capacity(n);
    let mut media_txs = Vec::with_capacity(n);
    let mut rxs = Vec::with_capacity(n);
    for _ in 0..n {
        let (ct, cr) = mpsc::unbounded_channel();
        let (mt, mr) = mpsc::channel(queue.max(16));
        cmd_txs.push(ct);
        media_txs.push(mt);
        rxs.push((cr, mr));
    }
    (Arc::new(cmd_txs), Arc::new(media_txs), rxs)
}

pub(crate) fn spawn(
    index: usize,
    socket: StdUdpSocket,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    media_rx: mpsc::Receiver<Fanout>,
    cmd_txs: Arc<Vec<mpsc::UnboundedSender<Command>>>,
    media_txs: Arc<Vec<mpsc::Sender<Fanout>>>,
    shared: Arc<Shared>,
) -> std::io::Result<WorkerHandle> {
    let local_addr = socket.local_addr()?;
    let commands = cmd_txs[index].clone();
    std::thread::Builder::new().name(format!("onair-worker-{index}")).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("worker runtime");
        rt.block_on(async move {
            let socket = Arc::new(UdpSocket::from_std(socket).expect("register worker socket"));
            let announce = announce_addrs(&shared, local_addr);
            info!(worker = index, %local_addr, ?announce, "media worker started");
            let tx = SocketTx { socket, batch: UdpBatch::default(), metrics: shared.metrics.clone(), reported: Default::default() };
            let mut w = Worker::new(index, tx, local_addr, announce, shared, cmd_txs, media_txs);
            w.run(cmd_rx, media_rx).await;
        });
    })?;
    Ok(WorkerHandle { commands, local_addr })
}

/// The addresses put in our ICE candidates for this worker's socket.
fn announce_addrs(shared: &Shared, local: SocketAddr) -> Vec<SocketAddr> {
    let port = local.port();
    if !shared.config.announce_ips.is_empty() {
        return shared.config.announce_ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
    }
    if !local.ip().is_unspecified() {
        return vec![local];
    }
    let mut ips = crate::interfaces::local_ipv4();
    if ips.is_empty() {
        ips.push(std::net::Ipv4Addr::LOCALHOST);
    }
    ips.into_iter().map(|ip| SocketAddr::new(ip.into(), port)).collect()
}

/// Which of our announced candidates a datagram from `from` arrived at.
///
/// A socket bound to 0.0.0.0 does not say which address a datagram was sent
/// to, but ICE only accepts checks on a known local candidate. Loopback
/// clients reach the loopback candidate; everyone else reaches the first
/// other one (a LAN address, or the public IP of a 1:1 NAT). Hosts with
/// several non-loopback addresses should set ONAIR_PUBLIC_IP or bind one.
fn candidate_for(announce: &[SocketAddr], bound: SocketAddr, from: SocketAddr) -> SocketAddr {
    if !bound.ip().is_unspecified() && announce.contains(&bound) {
        return bound;
    }
    let same_family = |a: &&SocketAddr| a.is_ipv4() == from.is_ipv4();
    let loopback = from.ip().is_loopback();
    announce
        .iter()
        .filter(same_family)
        .find(|a| a.ip().is_loopback() == loopback)
        .or_else(|| announce.iter().find(same_family))
        .copied()
        .unwrap_or(bound)
}

enum Action {
    /// A packet and the workers (bit mask) that have viewers of its stream.
    Fanout(Fanout, u64),
    Close(SessionId, &'static str),
    Keyframe(Arc<StreamShared>, Layer),
    /// A viewer connected: send it the cached group of pictures.
    Prime(SessionId),
    Event(SfuEvent),
}

/// Where datagrams from one remote address go.
#[derive(Clone, Copy)]
struct Route {
    peer: SessionId,
    /// The announced candidate this address reaches us at (what ICE matches on).
    local: SocketAddr,
}

/// A peer may use several addresses at once: browsers keep checking backup
/// candidate pairs (Chrome every 25 s) while media flows on the selected one.
/// Beyond this many, the oldest is forgotten.
const MAX_REMOTES: usize = 8;

struct Peer {
    id: SessionId,
    pc: RTCPeerConnection,
    stream: Arc<StreamShared>,
    ufrag: String,
    /// Every address this peer proved with a STUN check (see `on_datagram`).
    remotes: Vec<SocketAddr>,
    created: Instant,
    last_recv: Instant,
    connected: bool,
    deadline: Option<Instant>,
    role: PeerRole,
}

enum PeerRole {
    Publisher(Publisher),
    Viewer(Viewer),
}

#[cfg(test)]
mod tests {
    use super::candidate_for;
    use std::net::SocketAddr;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn picks_the_candidate_a_client_reaches() {
        let announce = [a("192.168.1.20:8189"), a("127.0.0.1:8189")];
        let any = a("0.0.0.0:8189");
        assert_eq!(candidate_for(&announce, any, a("127.0.0.1:5000")), a("127.0.0.1:8189"));
        assert_eq!(candidate_for(&announce, any, a("192.168.1.7:5000")), a("192.168.1.20:8189"));
        // 1:1 NAT: only the public IP is announced; everyone reaches it.
        let nat = [a("203.0.113.7:8189")];
        assert_eq!(candidate_for(&nat, any, a("198.51.100.2:5000")), a("203.0.113.7:8189"));
        assert_eq!(candidate_for(&nat, any, a("127.0.0.1:5000")), a("203.0.113.7:8189"));
        // Bound to one address: that is the candidate.
        assert_eq!(candidate_for(&[a("127.0.0.1:9")], a("127.0.0.1:9"), a("127.0.0.1:5000")), a("127.0.0.1:9"));
    }

    #[test]
    fn a_peer_keeps_every_address_it_proved() {
        use crate::harness::Harness;
        let fp = (0..32).map(|i| format!("{:02X}", i * 7 % 256)).collect::<Vec<_>>().join(":");
        let offer = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=fingerprint:sha-256 {fp}\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:test\r\na=ice-pwd:testtesttesttesttesttest\r\n\
             a=setup:actpass\r\na=rtcp-mux\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n"
        );
        let mut h = Harness::new();
        let (_, answer) = h.publish("s", &offer).expect("publish");
        let ufrag = answer.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:")).expect("ufrag").trim().to_owned();
        let check = crate::stun::binding_request(&format!("{ufrag}:test"));
        let media = [0x80u8, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7, 0xAB, 0xCD];
        let unknown = |h: &Harness| h.metrics().unknown_datagrams.load(std::sync::atomic::Ordering::Relaxed);
        // The selected pair's address, then a backup pair's (Chrome pings it every 25 s).
        h.datagram(&check, a("127.0.0.1:5000"));
        h.datagram(&check, a("10.1.2.3:5000"));
        h.datagram(&media, a("127.0.0.1:5000"));
        h.datagram(&media, a("10.1.2.3:5000"));
        assert_eq!(unknown(&h), 0, "both proven addresses still reach the peer");
        h.datagram(&media, a("127.0.0.1:6000"));
        assert_eq!(unknown(&h), 1, "an address never proven by a STUN check is refused");
    }
}

/// What a publisher's SSRC carries.
struct Source {
    kind: Kind,
    layer: Layer,
    rid: Option<String>,
    codec: Codec,
    mime: String,
    receiver: RTCRtpReceiverId,
    audio_level_ext: Option<u8>,
    level: Option<audio_level::AudioLevel>,
    rate: RateMeter,
    packets: u64,
    lost: u64,
    last_seq: Option<u16>,
    /// Missing packets to ask for again (video only).
    nack: Option<NackTracker>,
    /// Padding-only packets received in order since the last media packet.
    padding_run: u16,
}

#[derive(Default)]
struct Publisher {
    receivers: HashMap<String, RTCRtpReceiverId>,
    sources: HashMap<u32, Source>,
    last_pli: [Option<Instant>; 3],
    /// Who is talking, from the audio levels (one participant today; a
    /// co-host room feeds all its hosts into one detector).
    speakers: audio_level::ActiveSpeakerDetector,
    speaking: bool,
}

pub(crate) struct Worker<T: Transmit> {
    index: usize,
    tx: T,
    local_addr: SocketAddr,
    announce: Vec<SocketAddr>,
    shared: Arc<Shared>,
    cmd_txs: Arc<Vec<mpsc::UnboundedSender<Command>>>,
    media_txs: Arc<Vec<mpsc::Sender<Fanout>>>,
    peers: HashMap<SessionId, Peer>,
    by_addr: HashMap<SocketAddr, Route>,
    by_ufrag: HashMap<String, SessionId>,
    /// Viewers on this worker, by stream id.
    viewers_of: HashMap<u64, Vec<SessionId>>,
    epoch: Instant,
    actions: Vec<Action>,
    /// Streams whose publisher left from this worker, held until the
    /// deadline for it to come back (see `MediaConfig::publisher_hold`).
    held: Vec<(Arc<StreamShared>, Instant)>,
}

impl Worker<SocketTx> {
    async fn run(&mut self, mut cmd_rx: mpsc::UnboundedReceiver<Command>, mut media_rx: mpsc::Receiver<Fanout>) {
        let socket = self.tx.socket.clone();
        let mut buf = vec![0u8; 2048];
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_second = Instant::now();
        loop {
            tokio::select! {
                biased;
                cmd = cmd_rx.recv() => match cmd {
                    Some(Command::Shutdown) | None => break,
                    Some(cmd) => self.on_command(cmd),
                },
                ready = socket.readable() => {
                    if ready.is_ok() {
                        // Drain the socket: one wake-up, many datagrams.
                        for _ in 0..256 {
                            match socket.try_recv_from(&mut buf) {
                                Ok((n, from)) => self.on_datagram(&buf[..n], from),
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                                Err(e) => { debug!(worker = self.index, "recv error: {e}"); break; }
                            }
                        }
                    }
                },
                pkt = media_rx.recv() => if let Some(pkt) = pkt {
                    self.deliver(&pkt);
                    while let Ok(more) = media_rx.try_recv() { self.deliver(&more); }
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    self.on_tick(now);
                    if now.duration_since(last_second) >= Duration::from_secs(1) {
                        last_second = now;
                        self.on_second(now);
                    }
                },
            }
            // The end of a wake-up: what it produced leaves now, batched.
            self.tx.flush();
        }
        let ids: Vec<_> = self.peers.keys().copied().collect();
        for id in ids {
            self.close(id, "shutdown");
        }
        self.tx.flush();
    }
}

impl<T: Transmit> Worker<T> {
    /// A worker with no peers yet.
    pub(crate) fn new(
        index: usize,
        tx: T,
        local_addr: SocketAddr,
        announce: Vec<SocketAddr>,
        shared: Arc<Shared>,
        cmd_txs: Arc<Vec<mpsc::UnboundedSender<Command>>>,
        media_txs: Arc<Vec<mpsc::Sender<Fanout>>>,
    ) -> Self {
        Worker {
            index,
            tx,
            local_addr,
            announce,
            shared,
            cmd_txs,
            media_txs,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            viewers_of: HashMap::new(),
            epoch: Instant::now(),
            actions: Vec::new(),
            held: Vec::new(),
        }
    }

    /// Sends what the last wake-up queued.
    pub(crate) fn flush(&mut self) {
        self.tx.flush();
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    pub(crate) fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Open { id, stream, role, cap, offer, reply } => {
                let r = self.open(id, stream, role, cap, &offer);
                let _ = reply.send(r);
            }
            Command::Close { id, end_stream, reply } => {
                if let Some(p) = self.peers.get(&id).filter(|p| end_stream && matches!(p.role, PeerRole::Publisher(_))) {
                    p.stream.ended.store(true, Ordering::Relaxed);
                }
                self.close(id, "closed by request");
                let _ = reply.send(());
            }
            Command::SetCap { id, cap, reply } => {
                let r = match self.peers.get_mut(&id) {
                    Some(Peer { role: PeerRole::Viewer(vp), stream, .. }) => {
                        vp.cap = cap;
                        vp.retarget(stream);
                        Ok(LayerState { max_layer: cap.as_str().into(), current_layer: vp.current, target_layer: vp.target })
                    }
                    Some(_) => Err(SfuError::BadOffer("layer selection applies to viewers only".into())),
                    None => Err(SfuError::SessionNotFound),
                };
                let _ = reply.send(r);
                self.request_wanted_keyframes(id);
                self.apply_actions();
            }
            Command::ViewerLayer { id, reply } => {
                let r = match self.peers.get(&id) {
                    Some(Peer { role: PeerRole::Viewer(vp), .. }) => Ok(LayerState { max_layer: vp.cap.as_str().into(), current_layer: vp.current, target_layer: vp.target }),
                    Some(_) => Err(SfuError::BadOffer("layers apply to viewers only".into())),
                    None => Err(SfuError::SessionNotFound),
                };
                let _ = reply.send(r);
            }
            Command::Candidate { id, candidate, reply } => {
                let r = match self.peers.get_mut(&id) {
                    Some(p) => {
                        let init = RTCIceCandidateInit { candidate, ..Default::default() };
                        p.pc.add_remote_candidate(init).map_err(|e| SfuError::BadOffer(format!("bad candidate: {e}")))
                    }
                    None => Err(SfuError::SessionNotFound),
                };
                let _ = reply.send(r);
            }
            Command::Health { stream, reply } => {
                let now_us = self.now_us();
                let list = self.peers.values_mut().filter(|p| p.stream.id == stream).map(|p| p.health(now_us)).collect();
                let _ = reply.send(list);
            }
            Command::Keyframe { publisher, layer } => self.send_pli(publisher, layer),
            Command::EndStream { stream } => {
                for id in self.viewers_of.remove(&stream).unwrap_or_default() {
                    self.close(id, "stream ended");
                }
            }
            Command::Adopt { old, new, keep } => self.adopt(&old, &new, keep),
            Command::Shutdown => {}
        }
    }

    /// Moves this worker's viewers of `old` to `new` (see [`Command::Adopt`]).
    fn adopt(&mut self, old: &Arc<StreamShared>, new: &Arc<StreamShared>, keep: bool) {
        let Some(ids) = self.viewers_of.remove(&old.id) else { return };
        old.viewer_workers.fetch_and(!(1 << self.index), Ordering::Relaxed);
        if !keep {
            for id in ids {
                self.close(id, "the publisher came back with other codecs");
            }
            return;
        }
        for id in &ids {
            if let Some(peer) = self.peers.get_mut(id) {
                peer.stream = new.clone();
                if let PeerRole::Viewer(vp) = &mut peer.role {
                    // The new publisher's packets are a new source: forward
                    // from its first keyframe on, numbered on from the old one.
                    vp.publisher_changed();
                    vp.retarget(new);
                }
            }
            if let Some(mut info) = self.shared.sessions.get_mut(id) {
                info.stream = new.clone();
            }
        }
        new.viewer_workers.fetch_or(1 << self.index, Ordering::Relaxed);
        self.viewers_of.entry(new.id).or_default().extend(ids);
    }

    /// Ends held streams whose publisher did not come back in time.
    fn expire_held(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].1 <= now || self.held[i].0.ended.load(Ordering::Relaxed) {
                let (stream, _) = self.held.swap_remove(i);
                if !stream.ended.swap(true, Ordering::Relaxed) {
                    info!(worker = self.index, stream = %stream.name, "publisher did not come back: stream ended");
                    end_everywhere(&self.shared, self.cmd_txs.iter(), &stream, true);
                }
            } else {
                i += 1;
            }
        }
    }

    fn open(&mut self, id: SessionId, stream: Arc<StreamShared>, role: Role, cap: LayerCap, offer: &str) -> Result<String, SfuError> {
        if role == Role::Viewer && stream.ended.load(Ordering::Relaxed) {
            return Err(SfuError::StreamNotFound(stream.name.clone()));
        }
        let ice = IceCredentials::random();
        let now = Instant::now();
        let codecs = if role == Role::Viewer { Some(stream.codecs.lock().expect("codecs lock").clone()) } else { None };
        let mut tracks = (None, None);
        let (mut pc, answer) = negotiate::answer(offer, &ice, &self.announce, codecs.as_ref(), now, |pc| {
            let Some(codecs) = &codecs else { return Ok(()) };
            if let Some(v) = &codecs.video {
                tracks.0 = Some(add_down_track(pc, &stream.name, RtpCodecKind::Video, v)?);
            }
            if let Some(a) = &codecs.audio {
                tracks.1 = Some(add_down_track(pc, &stream.name, RtpCodecKind::Audio, a)?);
            }
            Ok(())
        })?;
        let role_state = match role {
            Role::Publisher => {
                let codecs = negotiate::negotiated_codecs(&mut pc);
                if codecs.video.is_none() && codecs.audio.is_none() {
                    return Err(SfuError::UnsupportedCodec("no audio or video track could be negotiated".into()));
                }
                *stream.codecs.lock().expect("codecs lock") = codecs;
                PeerRole::Publisher(Publisher::default())
            }
            Role::Viewer => {
                let (video, audio) = tracks;
                if video.is_none() && audio.is_none() {
                    return Err(SfuError::UnsupportedCodec("the offer accepts none of the stream's codecs".into()));
                }
                let mut v = Viewer::new(video, audio, cap);
                v.retarget(&stream);
                PeerRole::Viewer(v)
            }
        };
        let deadline = pc.poll_timeout();
        self.shared.sessions.insert(id, SessionInfo { worker: self.index, stream: stream.clone(), role });
        if role == Role::Viewer {
            self.viewers_of.entry(stream.id).or_default().push(id);
            stream.viewer_workers.fetch_or(1 << self.index, Ordering::Relaxed);
            Metrics::add(&self.shared.metrics.viewers, 1);
        } else {
            Metrics::add(&self.shared.metrics.publishers, 1);
        }
        Metrics::add(&self.shared.metrics.sessions_opened, 1);
        self.by_ufrag.insert(ice.ufrag.clone(), id);
        self.peers.insert(
            id,
            Peer { id, pc, stream, ufrag: ice.ufrag, remotes: Vec::new(), created: now, last_recv: now, connected: false, deadline, role: role_state },
        );
        debug!(worker = self.index, session = %id, ?role, "session opened");
        Ok(answer)
    }

    fn close(&mut self, id: SessionId, why: &'static str) {
        let Some(mut peer) = self.peers.remove(&id) else { return };
        let _ = peer.pc.close();
        flush_writes(&mut peer.pc, &mut self.tx);
        self.by_ufrag.remove(&peer.ufrag);
        for addr in &peer.remotes {
            self.by_addr.remove(addr);
        }
        self.shared.sessions.remove(&id);
        Metrics::add(&self.shared.metrics.sessions_closed, 1);
        let stream = peer.stream.clone();
        self.shared.emit(SfuEvent::SessionClosed { stream: stream.name.clone(), session: id.to_string() });
        match peer.role {
            PeerRole::Publisher(_) => {
                Metrics::dec(&self.shared.metrics.publishers);
                let hold = self.shared.config.publisher_hold;
                // `ended` set already: the platform ended the stream.
                if hold.is_zero() || why == "shutdown" || stream.ended.load(Ordering::Relaxed) {
                    stream.ended.store(true, Ordering::Relaxed);
                    end_everywhere(&self.shared, self.cmd_txs.iter(), &stream, peer.connected);
                } else {
                    // Viewers stay; a publish of this stream within the hold
                    // takes them over (see `Sfu::publish`).
                    stream.publisher_gone.store(true, Ordering::Relaxed);
                    self.held.push((stream.clone(), Instant::now() + hold));
                    if peer.connected {
                        self.shared.emit(SfuEvent::PublisherLeft { stream: stream.name.clone() });
                    }
                }
                info!(worker = self.index, session = %id, stream = %stream.name, why, held = !stream.ended.load(Ordering::Relaxed), "publisher left");
            }
            PeerRole::Viewer(_) => {
                Metrics::dec(&self.shared.metrics.viewers);
                if let Some(list) = self.viewers_of.get_mut(&stream.id) {
                    list.retain(|v| *v != id);
                    if list.is_empty() {
                        self.viewers_of.remove(&stream.id);
                        stream.viewer_workers.fetch_and(!(1 << self.index), Ordering::Relaxed);
                    }
                }
                if peer.connected {
                    self.shared.emit(SfuEvent::ViewerLeft { stream: stream.name.clone(), session: id.to_string() });
                }
                debug!(worker = self.index, session = %id, why, "viewer left");
            }
        }
    }

    pub(crate) fn on_datagram(&mut self, data: &[u8], from: SocketAddr) {
        let route = match self.by_addr.get(&from) {
            Some(route) => *route,
            None => {
                // A new address: only a STUN check naming a session's ufrag
                // may open it (first contact, a backup candidate pair, or a
                // client that moved).
                let Some(id) = stun::local_ufrag(data).and_then(|u| self.by_ufrag.get(u)).copied() else {
                    Metrics::add(&self.shared.metrics.unknown_datagrams, 1);
                    return;
                };
                let route = Route { peer: id, local: candidate_for(&self.announce, self.local_addr, from) };
                if let Some(p) = self.peers.get_mut(&id) {
                    if p.remotes.len() >= MAX_REMOTES {
                        let oldest = p.remotes.remove(0);
                        self.by_addr.remove(&oldest);
                    }
                    p.remotes.push(from);
                }
                self.by_addr.insert(from, route);
                route
            }
        };
        let id = route.peer;
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let now = Instant::now();
        peer.last_recv = now;
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext { local_addr: route.local, peer_addr: from, ecn: None, transport_protocol: TransportProtocol::UDP },
            message: BytesMut::from(data),
        };
        if let Err(e) = peer.pc.handle_read(msg) {
            debug!(session = %id, "handle_read: {e}");
        }
        self.pump(id);
        self.apply_actions();
    }

    /// Drains a peer's connection: reads (media, feedback), events, writes.
    fn pump(&mut self, id: SessionId) {
        let now = Instant::now();
        let now_us = self.now_us();
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let metrics = &self.shared.metrics;
        // Events first: a track's OnOpen is queued with its first packet, and
        // the packet needs the track's receiver.
        Self::pump_events(id, peer, &mut self.actions);
        let mut media_seen = false;
        while let Some(TaggedRTCMessage { message, .. }) = peer.pc.poll_read() {
            match message {
                RTCMessage::RtpPacket(track_id, packet) => {
                    if !media_seen {
                        media_seen = true;
                        peer.stream.media_at_ms.store(crate::sfu::mono_ms_at(now), Ordering::Relaxed);
                    }
                    if let Some(fp) = peer.on_rtp(&track_id, packet, now_us, metrics) {
                        let mask = peer.stream.viewer_workers.load(Ordering::Relaxed);
                        self.actions.push(Action::Fanout(fp, mask));
                    }
                }
                RTCMessage::RtcpPacket(_, packets) => peer.on_rtcp(&packets, now, now_us, metrics, &mut self.actions),
                _ => {}
            }
        }
        Self::pump_events(id, peer, &mut self.actions);
        flush_writes(&mut peer.pc, &mut self.tx);
        peer.deadline = peer.pc.poll_timeout();
    }

    fn pump_events(id: SessionId, peer: &mut Peer, actions: &mut Vec<Action>) {
        while let Some(ev) = peer.pc.poll_event() {
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                    RTCPeerConnectionState::Connected if !peer.connected => {
                        peer.connected = true;
                        // A new viewer's first frame: from the cache, now.
                        if let PeerRole::Viewer(_) = &peer.role {
                            actions.push(Action::Prime(id));
                        }
                        let stream = peer.stream.name.clone();
                        actions.push(Action::Event(match peer.role {
                            PeerRole::Publisher(_) => SfuEvent::StreamLive { stream },
                            PeerRole::Viewer(_) => SfuEvent::ViewerJoined { stream, session: id.to_string() },
                        }));
                    }
                    // Disconnected may recover (WebRTC's own definition); a
                    // peer that stays silent is closed by `on_second`.
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        actions.push(Action::Close(id, "connection lost"));
                    }
                    _ => {}
                },
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    if let PeerRole::Publisher(p) = &mut peer.role {
                        p.receivers.insert(init.track_id.clone(), init.receiver_id);
                    }
                }
                _ => {}
            }
        }
    }

    fn apply_actions(&mut self) {
        while !self.actions.is_empty() {
            let actions = std::mem::take(&mut self.actions);
            for a in actions {
                match a {
                    Action::Fanout(p, mask) => self.fanout(p, mask),
                    Action::Close(id, why) => self.close(id, why),
                    Action::Keyframe(stream, layer) => self.request_keyframe(&stream, layer),
                    Action::Prime(id) => self.prime(id),
                    Action::Event(e) => self.shared.emit(e),
                }
            }
        }
    }

    /// Sends a publisher's packet to every viewer, here and on other workers.
    fn fanout(&mut self, p: Fanout, mask: u64) {
        for w in 0..self.media_txs.len() {
            if w != self.index && mask & (1 << w) != 0 {
                if self.media_txs[w].try_send(p.clone()).is_err() {
                    Metrics::add(&self.shared.metrics.queue_drops, 1);
                }
            }
        }
        self.deliver(&p);
    }

    /// Sends a packet to this worker's viewers of its stream.
    pub(crate) fn deliver(&mut self, p: &ForwardPacket) {
        let Some(viewers) = self.viewers_of.get(&p.stream) else { return };
        let now = Instant::now();
        let now_us = self.now_us();
        for id in viewers {
            let Some(peer) = self.peers.get_mut(id) else { continue };
            if peer.connected {
                let before = peer.layer();
                peer.forward(p, now, now_us, &self.shared.metrics, &mut self.tx);
                announce_layer(&self.shared, peer, before);
            }
        }
    }

    /// A viewer just connected: give it the stream's current group of
    /// pictures from the cache, so its first frame needs no round trip to
    /// the publisher. When only a keyframe could be given, or nothing, the
    /// viewer waits for the next keyframe and asks for it.
    fn prime(&mut self, id: SessionId) {
        let now = Instant::now();
        let now_us = self.now_us();
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let PeerRole::Viewer(vp) = &mut peer.role else { return };
        vp.retarget(&peer.stream);
        let Some(layer) = vp.target else { return };
        let gop = peer.stream.cache.lock().expect("cache lock").gop(layer);
        if let Some(gop) = gop {
            let before = peer.layer();
            for p in &gop.packets {
                peer.forward(p, now, now_us, &self.shared.metrics, &mut self.tx);
            }
            announce_layer(&self.shared, peer, before);
            Metrics::add(&self.shared.metrics.first_frames_from_cache, 1);
            if gop.complete {
                return;
            }
            if let PeerRole::Viewer(vp) = &mut peer.role {
                vp.await_keyframe();
            }
        }
        self.request_wanted_keyframes(id);
    }

    fn request_wanted_keyframes(&mut self, id: SessionId) {
        let now_us = self.now_us();
        if let Some(Peer { role: PeerRole::Viewer(vp), stream, .. }) = self.peers.get_mut(&id) {
            if let Some(layer) = vp.keyframe_wanted(now_us) {
                self.actions.push(Action::Keyframe(stream.clone(), layer));
            }
        }
    }

    fn request_keyframe(&mut self, stream: &StreamShared, layer: Layer) {
        if stream.publisher_worker == self.index {
            self.send_pli(stream.publisher, layer);
        } else if let Some(tx) = self.cmd_txs.get(stream.publisher_worker) {
            let _ = tx.send(Command::Keyframe { publisher: stream.publisher, layer });
        }
    }

    /// Sends a PLI for `layer` to the publisher, at most once per `PLI_INTERVAL`.
    fn send_pli(&mut self, publisher: SessionId, layer: Layer) {
        let Some(peer) = self.peers.get_mut(&publisher) else { return };
        let PeerRole::Publisher(p) = &mut peer.role else { return };
        let now = Instant::now();
        if p.last_pli[layer.index()].is_some_and(|t| now.duration_since(t) < PLI_INTERVAL) {
            return;
        }
        let Some((&ssrc, src)) = p.sources.iter().find(|(_, s)| s.kind == Kind::Video && s.layer == layer) else { return };
        let receiver = src.receiver;
        p.last_pli[layer.index()] = Some(now);
        let pli = rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc };
        if write_rtcp(&mut peer.pc, receiver, now, Box::new(pli)) {
            Metrics::add(&self.shared.metrics.plis_sent, 1);
        }
        flush_writes(&mut peer.pc, &mut self.tx);
    }

    /// Every tick, for each publisher on this worker: NACK the packets its
    /// sources are missing (see [`crate::nack`]) and report who speaks.
    fn publisher_timers(&mut self, now: Instant) {
        use rtcp::transport_feedbacks::transport_layer_nack::{nack_pairs_from_sequence_numbers, TransportLayerNack};
        let now_us = self.now_us();
        let metrics = &self.shared.metrics;
        for peer in self.peers.values_mut() {
            let PeerRole::Publisher(p) = &mut peer.role else { continue };
            let now_ms = now_us / 1000;
            if let Some(id) = p.speakers.tick(now_ms) {
                let session = SessionId(id).to_string();
                self.actions.push(Action::Event(SfuEvent::ActiveSpeaker { stream: peer.stream.name.clone(), session }));
            }
            let speaking = p.speakers.speaking(peer.id.0, now_ms);
            if speaking != p.speaking {
                p.speaking = speaking;
                let session = peer.id.to_string();
                self.actions.push(Action::Event(SfuEvent::Speaking { stream: peer.stream.name.clone(), session, speaking }));
            }
            let mut sent = false;
            for (&ssrc, src) in p.sources.iter_mut() {
                let Some(tracker) = src.nack.as_mut() else { continue };
                let due = tracker.due(now_us);
                if due.is_empty() {
                    continue;
                }
                let nack = TransportLayerNack { sender_ssrc: 0, media_ssrc: ssrc, nacks: nack_pairs_from_sequence_numbers(&due) };
                if write_rtcp(&mut peer.pc, src.receiver, now, Box::new(nack)) {
                    Metrics::add(&metrics.nacks_sent, due.len() as u64);
                    sent = true;
                }
            }
            if sent {
                flush_writes(&mut peer.pc, &mut self.tx);
            }
        }
    }

    pub(crate) fn on_tick(&mut self, now: Instant) {
        let due: Vec<SessionId> = self.peers.values().filter(|p| p.deadline.is_some_and(|d| d <= now)).map(|p| p.id).collect();
        for id in due {
            if let Some(p) = self.peers.get_mut(&id) {
                let _ = p.pc.handle_timeout(now);
            }
            self.pump(id);
        }
        self.publisher_timers(now);
        self.apply_actions();
    }

    pub(crate) fn on_second(&mut self, now: Instant) {
        self.expire_held(now);
        let now_us = self.now_us();
        let mut stale = Vec::new();
        let mut wants = Vec::new();
        for p in self.peers.values_mut() {
            if !p.connected && now.duration_since(p.created) > CONNECT_TIMEOUT {
                stale.push((p.id, "never connected"));
            } else if p.connected && now.duration_since(p.last_recv) > SILENCE_TIMEOUT {
                stale.push((p.id, "silent"));
            }
            match &mut p.role {
                PeerRole::Publisher(pubr) => {
                    let mut seen = 0u64;
                    for s in pubr.sources.values_mut() {
                        if s.kind == Kind::Video {
                            let bps = s.rate.bps(now_us);
                            p.stream.layer_bps[s.layer.index()].store(bps, Ordering::Relaxed);
                            if bps > 0 || s.packets > 0 {
                                seen |= 1 << s.layer.index();
                            }
                        }
                    }
                    p.stream.layers_seen.store(seen, Ordering::Relaxed);
                }
                PeerRole::Viewer(vp) => {
                    vp.retarget(&p.stream);
                    if p.connected {
                        if let Some(layer) = vp.keyframe_wanted(now_us) {
                            wants.push((p.stream.clone(), layer));
                        }
                    }
                }
            }
        }
        for (id, why) in stale {
            self.close(id, why);
        }
        for (s, l) in wants {
            self.actions.push(Action::Keyframe(s, l));
        }
        self.refresh_keyframes();
        self.apply_actions();
    }

    /// Keeps the keyframe cache fresh for the next viewer of a stream that
    /// has none: asks its publisher (on this worker) for a keyframe of every
    /// layer it sends whose newest one is older than
    /// [`crate::cache::KEYFRAME_REFRESH`]. Browsers send keyframes only when
    /// asked, so without this the first viewer of a running stream found a
    /// stale one and waited a round trip. Streams with viewers are left
    /// alone: their keyframes would reach every viewer (a burst each time,
    /// which the automatic layer choice reads as congestion); a join there
    /// asks, as before. An encoder with a short keyframe interval (OBS,
    /// FFmpeg at 1-2 s) is never asked.
    fn refresh_keyframes(&mut self) {
        let mut due = Vec::new();
        for peer in self.peers.values() {
            let PeerRole::Publisher(p) = &peer.role else { continue };
            if !peer.connected || peer.stream.viewer_workers.load(Ordering::Relaxed) != 0 {
                continue;
            }
            let cache = peer.stream.cache.lock().expect("cache lock");
            for src in p.sources.values().filter(|s| s.kind == Kind::Video && s.codec != Codec::Other) {
                if cache.keyframe_age(src.layer).is_none_or(|age| age > crate::cache::KEYFRAME_REFRESH) {
                    due.push((peer.id, src.layer));
                }
            }
        }
        for (publisher, layer) in due {
            self.send_pli(publisher, layer);
        }
    }
}

/// Ends `stream` for good (its `ended` already set by the caller, once):
/// it leaves the directory, every worker closes its viewers, and the
/// platform hears `StreamEnded` when `announce`.
pub(crate) fn end_everywhere<'a>(
    shared: &Shared,
    workers: impl Iterator<Item = &'a mpsc::UnboundedSender<Command>>,
    stream: &StreamShared,
    announce: bool,
) {
    shared.streams.remove_if(&stream.name, |_, s| s.id == stream.id);
    for tx in workers {
        let _ = tx.send(Command::EndStream { stream: stream.id });
    }
    if announce {
        shared.emit(SfuEvent::StreamEnded { stream: stream.name.clone() });
    }
}

/// Where a worker's outgoing datagrams go: its UDP socket in production, an
/// in-memory sink in benchmarks (see [`crate::harness`]). Datagrams are
/// queued during a wake-up and flushed at its end (see [`crate::udp`]).
pub trait Transmit {
    /// Queues one datagram.
    fn send(&mut self, to: SocketAddr, data: BytesMut);
    /// Sends everything queued, without waiting.
    fn flush(&mut self);
}

/// A worker's socket and its send queue.
pub(crate) struct SocketTx {
    socket: Arc<UdpSocket>,
    batch: UdpBatch,
    metrics: Arc<Metrics>,
    reported: udp::SendStats,
}

impl Transmit for SocketTx {
    fn send(&mut self, to: SocketAddr, data: BytesMut) {
        self.batch.push(to, data);
        if self.batch.len() >= udp::FLUSH_AT {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.batch.flush(self.socket.as_raw_fd());
        let now = self.batch.stats();
        let m = &self.metrics;
        Metrics::add(&m.udp_datagrams_sent, now.datagrams - self.reported.datagrams);
        Metrics::add(&m.udp_send_calls, now.syscalls - self.reported.syscalls);
        Metrics::add(&m.udp_send_drops, now.dropped - self.reported.dropped);
        self.reported = now;
    }
}

/// Writes one RTP packet into a connection's pipeline (interceptors, SRTP).
///
/// Straight through `handle_write`: `RTCRtpSender::write_rtp` would rebuild
/// the sender's parameters for every packet only to re-check the SSRC and
/// payload type we chose at negotiation. The track id is unused on writes.
fn write_rtp(pc: &mut RTCPeerConnection, now: Instant, packet: rtp::Packet) -> bool {
    pc.handle_write(TaggedRTCMessage { now, message: RTCMessage::RtpPacket(String::new(), packet) }).is_ok()
}

/// Writes one RTCP packet to a publisher through the receiver of its track.
fn write_rtcp(pc: &mut RTCPeerConnection, receiver: RTCRtpReceiverId, now: Instant, packet: Box<dyn rtcp::Packet>) -> bool {
    pc.rtp_receiver(receiver).is_some_and(|mut r| r.write_rtcp(now, vec![packet]).is_ok())
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
        header: rtp::header::Header {
            version: 2,
            marker: p.marker,
            payload_type,
            sequence_number: out.seq,
            timestamp: out.timestamp,
            ssrc,
            ..Default::default()
        },
        payload,
    }
}

fn flush_writes(pc: &mut RTCPeerConnection, tx: &mut impl Transmit) {
    while let Some(msg) = pc.poll_write() {
        tx.send(msg.transport.peer_addr, msg.message);
    }
}

/// Adds an outgoing track to a viewer's connection and returns its down
/// track: our SSRC, the payload type the viewer negotiated and, for video,
/// the RTX stream (RFC 4588) when the viewer offered it.
fn add_down_track(
    pc: &mut RTCPeerConnection,
    stream: &str,
    kind: RtpCodecKind,
    codec: &rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters,
) -> Result<DownTrack, SfuError> {
    use rtc::media_stream::MediaStreamTrack;
    use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters};
    let ssrc = rand::random::<u32>();
    let video = kind == RtpCodecKind::Video;
    let rtx_ssrc = rand::random::<u32>();
    let label = if video { "video" } else { "audio" };
    let track = MediaStreamTrack::new(
        format!("onair-{stream}"),
        format!("{label}-{ssrc:08x}"),
        label.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                rtx: video.then_some(RTCRtpRtxParameters { ssrc: rtx_ssrc }),
                ..Default::default()
            },
            codec: codec.rtp_codec.clone(),
            ..Default::default()
        }],
    );
    // The viewer's offer has the codec but not in a form the publisher's
    // stream matches (an H.264 profile, say): the viewer cannot take this
    // stream, which is not a server fault (422, not 500).
    let sender = pc
        .add_track(track)
        .map_err(|e| SfuError::UnsupportedCodec(format!("the viewer cannot receive the stream's {} ({}): {e}", codec.rtp_codec.mime_type, codec.rtp_codec.sdp_fmtp_line)))?;
    let codecs = pc.rtp_sender(sender).map(|mut s| s.get_parameters().rtp_parameters.codecs.clone()).unwrap_or_default();
    let pt = codecs
        .iter()
        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&codec.rtp_codec.mime_type))
        .map_or(codec.payload_type, |c| c.payload_type);
    let track = DownTrack::new(ssrc, pt, codec.rtp_codec.clock_rate);
    if !video {
        return Ok(track);
    }
    let rtx = negotiate::rtx_payload_type(&codecs, pt).map(|payload_type| Rtx { ssrc: rtx_ssrc, payload_type, seq: rand::random() });
    Ok(track.with_retransmission(rtx))
}

/// Tells the platform when a viewer's forwarded layer changed (its player
/// shows what it decodes, not what it asked for).
fn announce_layer(shared: &Shared, peer: &Peer, before: Option<Layer>) {
    let now = peer.layer();
    if let Some(layer) = now.filter(|_| now != before) {
        shared.emit(SfuEvent::LayerChanged { stream: peer.stream.name.clone(), session: peer.id.to_string(), layer });
    }
}

impl Peer {
    /// The layer a viewer is forwarded now.
    fn layer(&self) -> Option<Layer> {
        match &self.role {
            PeerRole::Viewer(vp) => vp.current,
            PeerRole::Publisher(_) => None,
        }
    }

    /// A publisher's RTP packet: classify its SSRC once, then wrap it for fan-out.
    fn on_rtp(&mut self, track_id: &str, packet: rtp::Packet, now_us: u64, metrics: &Metrics) -> Option<Fanout> {
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
            if kind == Kind::Video {
                self.stream.layers_seen.fetch_or(1 << layer.index(), Ordering::Relaxed);
            }
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
        if let Some(id) = src.audio_level_ext {
            if let Some(ext) = packet.header.get_extension(id) {
                if let Some(level) = audio_level::parse(&ext) {
                    src.level = Some(level);
                    p.speakers.observe(self.id.0, level, now_us / 1000);
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
            stream: self.stream.id,
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
            self.stream.cache.lock().expect("cache lock").insert(&fp);
        }
        Some(fp)
    }

    /// A viewer's RTCP feedback.
    fn on_rtcp(&mut self, packets: &[Box<dyn rtcp::Packet>], now: Instant, now_us: u64, metrics: &Metrics, actions: &mut Vec<Action>) {
        use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
        for pkt in packets {
            if let Some(nack) = pkt.as_any().downcast_ref::<TransportLayerNack>() {
                Metrics::add(&metrics.nacks_received, 1);
                let lost = nack.nacks.iter().flat_map(|pair| pair.packet_list());
                self.retransmit(nack.media_ssrc, lost, now, metrics);
            }
        }
        self.on_viewer_feedback(packets, now_us, metrics, actions);
    }

    /// Keyframe requests and link reports from a viewer.
    fn on_viewer_feedback(&mut self, packets: &[Box<dyn rtcp::Packet>], now_us: u64, metrics: &Metrics, actions: &mut Vec<Action>) {
        use rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
        use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        use rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
        use rtcp::receiver_report::ReceiverReport;
        let PeerRole::Viewer(vp) = &mut self.role else { return };
        let mut link_changed = false;
        let mut new_estimate = false;
        for pkt in packets {
            let any = pkt.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                Metrics::add(&metrics.keyframe_requests, 1);
                if let Some(layer) = vp.current.or(vp.target) {
                    actions.push(Action::Keyframe(self.stream.clone(), layer));
                }
            } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                vp.estimate_bps = Some(remb.bitrate as u64);
                link_changed = true;
                new_estimate = true;
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                let video_ssrc = vp.video.as_ref().map(|t| t.ssrc);
                for r in &rr.reports {
                    if Some(r.ssrc) == video_ssrc || video_ssrc.is_none() {
                        vp.loss = f64::from(r.fraction_lost) / 256.0;
                        vp.jitter_ms = Some(f64::from(r.jitter) / 90.0);
                        if r.last_sender_report != 0 {
                            let rtt = ntp_middle_now().wrapping_sub(r.last_sender_report).wrapping_sub(r.delay);
                            let ms = f64::from(rtt) * 1000.0 / 65536.0;
                            if ms >= 0.0 && ms < 10_000.0 {
                                vp.rtt_ms = Some(ms);
                            }
                        }
                        link_changed = true;
                    }
                }
            }
        }
        if link_changed {
            let before = vp.target;
            vp.observe_link(&self.stream, now_us, new_estimate);
            if vp.target != before {
                if let Some(layer) = vp.keyframe_wanted(now_us) {
                    actions.push(Action::Keyframe(self.stream.clone(), layer));
                }
            }
        }
    }

    /// Sends `p` to this viewer if its layer decision says so: rewritten
    /// header, then SRTP and the socket.
    fn forward(&mut self, p: &ForwardPacket, now: Instant, now_us: u64, metrics: &Metrics, tx: &mut impl Transmit) {
        let PeerRole::Viewer(vp) = &mut self.role else { return };
        if vp.target.is_none() && p.kind == Kind::Video {
            // The viewer joined before any video arrived.
            vp.retarget(&self.stream);
        }
        let switches = vp.switches;
        let Some((track, out)) = vp.route(p, now_us) else { return };
        let packet = out_packet(p, track.ssrc, track.payload_type, out, &p.payload, None);
        if vp.switches != switches {
            Metrics::add(&metrics.layer_switches, 1);
        }
        let len = packet.payload.len();
        if write_rtp(&mut self.pc, now, packet) {
            vp.sent(len, now_us);
            Metrics::add(&metrics.forwarded_packets, 1);
            Metrics::add(&metrics.forwarded_bytes, len as u64);
        }
        flush_writes(&mut self.pc, tx);
        // No `poll_timeout` here: writing media arms no timer, and
        // `on_second` refreshes every peer's deadline anyway.
    }

    /// Answers a viewer's NACK from the stream's packet cache: each named
    /// packet is rebuilt with the header it was first sent with and sent
    /// again, on the RTX stream when negotiated.
    fn retransmit(&mut self, media_ssrc: u32, lost: impl Iterator<Item = u16>, now: Instant, metrics: &Metrics) {
        let PeerRole::Viewer(vp) = &mut self.role else { return };
        let Some(track) = vp.video.as_mut().filter(|t| t.ssrc == media_ssrc) else { return };
        let Some(log) = track.sent.as_mut() else { return };
        let mut resends = Vec::new();
        for seq in lost {
            if let Some(r) = log.resend(seq) {
                resends.push(r);
            }
        }
        if resends.is_empty() {
            return;
        }
        let cached: Vec<_> = {
            let cache = self.stream.cache.lock().expect("cache lock");
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

    fn health(&mut self, now_us: u64) -> PeerHealth {
        let state = if self.connected { "connected" } else { "connecting" }.to_owned();
        let mut h = PeerHealth {
            session: self.id.to_string(),
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
            PeerRole::Viewer(v) => {
                h.role = Role::Viewer;
                h.bitrate_bps = v.rate.bps(now_us);
                h.packets = v.packets;
                h.loss = v.loss;
                h.rtt_ms = v.rtt_ms;
                h.jitter_ms = v.jitter_ms;
                h.estimate_bps = v.estimate_bps;
                h.layer = v.current;
                h.target_layer = v.target;
                h.max_layer = Some(v.cap.as_str().to_owned());
                h.layer_switches = v.switches;
                h.quality = Some(v.quality(now_us));
            }
        }
        h
    }
}

/// The middle 32 bits of the current NTP time, as RTCP's LSR field uses.
fn ntp_middle_now() -> u32 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (((secs & 0xffff) << 16) | (frac >> 16)) as u32
}
