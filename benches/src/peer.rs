//! One WebRTC peer of the harness: a webrtc-rs `rtc` peer connection (sans
//! I/O) and the UDP socket it talks through. The publisher and every viewer
//! are one of these, each driven by its own task.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;

use crate::media::Codec;

/// A peer connection and its socket.
pub struct Peer {
    pub pc: RTCPeerConnection,
    pub socket: UdpSocket,
    pub local: SocketAddr,
}

impl Peer {
    /// A peer with a host candidate on `ip` (an address the server can reach).
    pub async fn new(ip: IpAddr) -> Result<Peer, String> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await.map_err(|e| format!("bind {ip}: {e}"))?;
        Self::with_socket(Self::connection()?, socket)
    }

    fn connection() -> Result<RTCPeerConnection, String> {
        let mut me = MediaEngine::default();
        me.register_default_codecs().map_err(|e| e.to_string())?;
        // Default interceptors: receiver and sender reports, NACK generation
        // and response, as a browser has. RTCP is handed to the harness only
        // when marked for delivery (the publisher reads PLIs).
        let registry = register_default_interceptors(Registry::new(), &mut me).map_err(|e| e.to_string())?;
        let registry = onair_media::feedback::deliver_feedback(registry);
        RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(me)
            .with_interceptor_registry(registry)
            .build(Instant::now())
            .map_err(|e| e.to_string())
    }

    /// A peer on a socket bound elsewhere (inside a network namespace).
    pub fn from_std(socket: std::net::UdpSocket) -> Result<Peer, String> {
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let socket = UdpSocket::from_std(socket).map_err(|e| e.to_string())?;
        Self::with_socket(Self::connection()?, socket)
    }

    fn with_socket(mut pc: RTCPeerConnection, socket: UdpSocket) -> Result<Peer, String> {
        let local = socket.local_addr().map_err(|e| e.to_string())?;
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
        .map_err(|e| e.to_string())?;
        let init = RTCIceCandidate::from(&cand).to_json().map_err(|e| e.to_string())?;
        pc.add_local_candidate(init).map_err(|e| e.to_string())?;
        Ok(Peer { pc, socket, local })
    }

    /// Hands one received datagram to the connection.
    pub fn feed(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        let _ = self.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext { local_addr: self.local, peer_addr: from, ecn: None, transport_protocol: TransportProtocol::UDP },
            message: BytesMut::from(data),
        });
    }

    /// Sends everything the connection has queued.
    pub async fn flush(&mut self) {
        while let Some(msg) = self.pc.poll_write() {
            if self.socket.try_send_to(&msg.message, msg.transport.peer_addr).is_err() {
                // A full socket buffer: wait for room rather than drop our own packet.
                let _ = self.socket.send_to(&msg.message, msg.transport.peer_addr).await;
            }
        }
    }

    /// How long until the connection's next timer.
    pub fn timeout(&mut self) -> Duration {
        self.pc.poll_timeout().map(|t| t.saturating_duration_since(Instant::now())).unwrap_or(Duration::from_millis(200)).min(Duration::from_millis(200))
    }

    pub fn tick(&mut self) {
        let _ = self.pc.handle_timeout(Instant::now());
    }
}

/// The local address this machine uses to reach `server`, so candidates
/// name an address the server can send to (loopback, a veth, a LAN).
pub fn route_ip(server: IpAddr) -> Result<IpAddr, String> {
    let any: SocketAddr = if server.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
    let s = std::net::UdpSocket::bind(any).map_err(|e| e.to_string())?;
    s.connect(SocketAddr::new(server, 9)).map_err(|e| format!("no route to {server}: {e}"))?;
    Ok(s.local_addr().map_err(|e| e.to_string())?.ip())
}

/// Payload types of an SDP: which codec each carries, and which are RTX.
#[derive(Debug, Default, Clone)]
pub struct PayloadTypes {
    pub codecs: HashMap<u8, Codec>,
}

impl PayloadTypes {
    pub fn from_sdp(sdp: &str) -> PayloadTypes {
        let mut codecs = HashMap::new();
        for line in sdp.lines() {
            let Some(rest) = line.trim().strip_prefix("a=rtpmap:") else { continue };
            let Some((pt, name)) = rest.split_once(' ') else { continue };
            let Ok(pt) = pt.parse::<u8>() else { continue };
            let name = name.split('/').next().unwrap_or_default().to_ascii_lowercase();
            let codec = match name.as_str() {
                "vp8" => Codec::Vp8,
                "h264" => Codec::H264,
                "opus" => Codec::Opus,
                _ => continue,
            };
            codecs.insert(pt, codec);
        }
        PayloadTypes { codecs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_types_skip_rtx_and_unknown_codecs() {
        let sdp = "v=0\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=rtpmap:102 H264/90000\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n";
        let p = PayloadTypes::from_sdp(sdp);
        assert_eq!(p.codecs.get(&96), Some(&Codec::Vp8));
        assert_eq!(p.codecs.get(&102), Some(&Codec::H264));
        assert_eq!(p.codecs.get(&111), Some(&Codec::Opus));
        assert_eq!(p.codecs.get(&97), None);
        assert_eq!(p.codecs.len(), 3);
    }

    #[test]
    fn loopback_routes_over_loopback() {
        assert_eq!(route_ip("127.0.0.1".parse().unwrap()).unwrap(), "127.0.0.1".parse::<IpAddr>().unwrap());
    }
}
