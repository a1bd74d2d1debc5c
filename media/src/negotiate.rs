//! Offer/answer: turning a client's SDP offer into an `RTCPeerConnection` and
//! our answer.
//!
//! Publishers get a media engine with every codec we forward and a TWCC
//! receiver (so the browser's send-side bandwidth estimation drives its
//! simulcast encoders). Viewers get a media engine holding exactly the codecs
//! the publisher negotiated, so no transcoding can ever be needed, plus
//! `goog-remb` so the browser reports the bandwidth it sees, and RTX
//! (RFC 4588) for retransmissions.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers,
    configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_RTX};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};

use crate::codec::Codec;
use crate::error::SfuError;

/// No ICE check for this long: the connection is "disconnected" (it may recover).
pub const ICE_DISCONNECTED_AFTER: Duration = Duration::from_secs(15);
/// No ICE check for this long: the connection has failed (consent expired).
pub const ICE_FAILED_AFTER: Duration = Duration::from_secs(30);

/// Largest SDP we accept; real offers are a few kilobytes.
pub const MAX_SDP_BYTES: usize = 64 * 1024;

/// The RFC 6464 audio level header extension.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// ICE credentials of one session; the ufrag routes the first STUN packet.
#[derive(Debug, Clone)]
pub struct IceCredentials {
    /// Our username fragment (unique per session).
    pub ufrag: String,
    /// Our password.
    pub pwd: String,
}

impl IceCredentials {
    /// Fresh random credentials.
    pub fn random() -> Self {
        use rand::distr::{Alphanumeric, SampleString};
        let mut rng = rand::rng();
        IceCredentials { ufrag: Alphanumeric.sample_string(&mut rng, 16), pwd: Alphanumeric.sample_string(&mut rng, 32) }
    }
}

/// The codecs a publisher negotiated (or a room's primary host: what
/// viewers are offered first).
#[derive(Debug, Clone, Default)]
pub struct StreamCodecs {
    /// The video codec, if the publisher sends video.
    pub video: Option<RTCRtpCodecParameters>,
    /// The audio codec, if the publisher sends audio.
    pub audio: Option<RTCRtpCodecParameters>,
}

impl StreamCodecs {
    /// Whether viewers negotiated for `self` can be fed `other` as they are:
    /// each kind `self` has is either absent in `other` or the same codec
    /// (for H.264, the same profile and packetization mode too).
    pub fn same_media(&self, other: &StreamCodecs) -> bool {
        fn same(a: &Option<RTCRtpCodecParameters>, b: &Option<RTCRtpCodecParameters>) -> bool {
            let (Some(a), Some(b)) = (a, b) else { return true };
            same_codec(a, b)
        }
        same(&self.video, &other.video) && same(&self.audio, &other.audio)
    }
}

/// Whether a stream sent as `a` can be received as `b` (payload types
/// aside): the same codec, and for H.264 the same profile and
/// packetization mode.
pub fn same_codec(a: &RTCRtpCodecParameters, b: &RTCRtpCodecParameters) -> bool {
    let (a, b) = (&a.rtp_codec, &b.rtp_codec);
    a.mime_type.eq_ignore_ascii_case(&b.mime_type)
        && a.clock_rate == b.clock_rate
        && a.channels == b.channels
        && (!a.mime_type.eq_ignore_ascii_case("video/H264") || h264_kind(&a.sdp_fmtp_line) == h264_kind(&b.sdp_fmtp_line))
}

/// An H.264 fmtp line's profile (first byte of `profile-level-id`) and
/// packetization mode: what a decoder set up for one needs of the other.
fn h264_kind(fmtp: &str) -> (String, String) {
    let param = |name: &str| {
        fmtp.split(';').filter_map(|kv| kv.trim().split_once('=')).find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_ascii_lowercase()).unwrap_or_default()
    };
    let profile = param("profile-level-id");
    (profile.get(..2).unwrap_or("").to_owned(), param("packetization-mode"))
}

/// Quick checks on an offer before any WebRTC state is built, so that bad
/// input gets a precise message.
pub fn check_offer(sdp: &str) -> Result<(), SfuError> {
    if sdp.len() > MAX_SDP_BYTES {
        return Err(SfuError::BadOffer(format!("SDP is {} bytes; at most {MAX_SDP_BYTES} are accepted", sdp.len())));
    }
    if !sdp.starts_with("v=0") {
        return Err(SfuError::BadOffer("SDP must start with 'v=0'".into()));
    }
    let mut media = 0;
    let mut forwardable = false;
    for line in sdp.lines() {
        if line.starts_with("m=audio") || line.starts_with("m=video") {
            media += 1;
        }
        if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let name = rest.split_whitespace().nth(1).unwrap_or("");
            let codec = name.split('/').next().unwrap_or("");
            if ["video", "audio"].iter().any(|kind| Codec::from_mime(&format!("{kind}/{codec}")) != Codec::Other) {
                forwardable = true;
            }
        }
    }
    if media == 0 {
        return Err(SfuError::BadOffer("offer has no audio or video m= section".into()));
    }
    if !forwardable {
        return Err(SfuError::UnsupportedCodec("offer has none of Opus, VP8, VP9, H264, AV1".into()));
    }
    Ok(())
}

/// What publishers may send: every codec OnAir forwards, and no RTX.
///
/// Without RTX a publisher answers our NACKs by resending on the media SSRC.
/// With it, browsers sending simulcast put retransmissions on SSRCs that
/// only a `repaired-rtp-stream-id` header names, which `rtc` 0.21 cannot
/// map back to their layer, so they would be lost.
const PUBLISHER_CODECS: &[(&str, u32, u16, &str, u8)] = &[
    (MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1", 111),
    ("video/VP8", 90_000, 0, "", 96),
    ("video/VP9", 90_000, 0, "profile-id=0", 98),
    ("video/VP9", 90_000, 0, "profile-id=2", 100),
    ("video/H264", 90_000, 0, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", 102),
    ("video/H264", 90_000, 0, "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f", 127),
    ("video/H264", 90_000, 0, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", 125),
    ("video/H264", 90_000, 0, "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f", 108),
    ("video/H264", 90_000, 0, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032", 123),
    ("video/AV1", 90_000, 0, "profile-id=0", 41),
];

fn media_engine_for_publisher() -> Result<(MediaEngine, Registry), SfuError> {
    let mut me = MediaEngine::default();
    for &(mime, clock_rate, channels, fmtp, payload_type) in PUBLISHER_CODECS {
        let video = mime.starts_with("video/");
        let codec = RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.to_owned(),
                clock_rate,
                channels,
                sdp_fmtp_line: fmtp.to_owned(),
                // NACKs toward publishers come from the worker (see `nack`),
                // not from `rtc`'s generator; transport-cc is added below.
                rtcp_feedback: if video { vec![fb("ccm", "fir"), fb("nack", ""), fb("nack", "pli")] } else { vec![] },
            },
            payload_type,
        };
        me.register_codec(codec, if video { RtpCodecKind::Video } else { RtpCodecKind::Audio }).map_err(internal)?;
    }
    register_audio_level(&mut me)?;
    let registry = Registry::new();
    configure_simulcast_extension_headers(&mut me).map_err(internal)?;
    let registry = configure_twcc_receiver_only(registry, &mut me).map_err(internal)?;
    let registry = configure_rtcp_reports(registry);
    Ok((me, registry))
}

/// A dynamic payload type not in `taken`, for an RTX stream (the offer's
/// own number wins in the answer).
fn free_payload_type(taken: &[u8]) -> Option<u8> {
    (96..=127).chain(35..=63).find(|pt| !taken.contains(pt))
}

/// What a viewer's connection is answered with.
#[derive(Debug, Clone)]
pub struct ViewerCodecs {
    /// The room's codecs (its primary host's): offered first.
    pub room: StreamCodecs,
    /// Every other video codec OnAir forwards too, for a viewer whose slots
    /// may carry hosts of other codecs.
    pub alternates: bool,
}

fn media_engine_for_viewer(viewer: &ViewerCodecs) -> Result<(MediaEngine, Registry), SfuError> {
    let codecs = &viewer.room;
    let mut me = MediaEngine::default();
    if let Some(first) = &codecs.video {
        // Hosts of one room may send different codecs (a browser VP8, OBS
        // H.264), and a slot moves between hosts: the viewer gets every
        // video codec OnAir forwards that it offered, the room's primary
        // host's first, each with its RTX; each packet then goes out with
        // its producer's codec's payload type.
        let others = PUBLISHER_CODECS.iter().filter(|c| viewer.alternates && c.0.starts_with("video/")).map(|&(mime, clock_rate, channels, fmtp, payload_type)| RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec { mime_type: mime.to_owned(), clock_rate, channels, sdp_fmtp_line: fmtp.to_owned(), rtcp_feedback: vec![] },
            payload_type,
        });
        let mut video: Vec<RTCRtpCodecParameters> = vec![first.clone()];
        for c in others {
            if !video.iter().any(|v| same_codec(v, &c) || v.payload_type == c.payload_type) {
                video.push(c);
            }
        }
        let mut taken: Vec<u8> = video.iter().map(|v| v.payload_type).collect();
        if let Some(a) = &codecs.audio {
            taken.push(a.payload_type);
        }
        for mut v in video {
            v.rtp_codec.rtcp_feedback = vec![fb("goog-remb", ""), fb("ccm", "fir"), fb("nack", ""), fb("nack", "pli")];
            let Some(rtx_pt) = free_payload_type(&taken) else { break };
            taken.push(rtx_pt);
            let rtx = RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_RTX.to_owned(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: format!("apt={}", v.payload_type),
                    rtcp_feedback: vec![],
                },
                payload_type: rtx_pt,
            };
            me.register_codec(v, RtpCodecKind::Video).map_err(internal)?;
            me.register_codec(rtx, RtpCodecKind::Video).map_err(internal)?;
        }
    }
    if let Some(a) = &codecs.audio {
        me.register_codec(a.clone(), RtpCodecKind::Audio).map_err(internal)?;
    }
    // No NACK interceptor: the worker answers viewers' NACKs from the
    // stream's shared packet cache instead of a copy per viewer. Their
    // feedback must reach the worker at all: see `feedback`.
    let registry = crate::feedback::deliver_feedback(configure_rtcp_reports(Registry::new()));
    Ok((me, registry))
}

/// The RTX payload type a viewer's connection negotiated for `video_pt`, if any.
pub fn rtx_payload_type(codecs: &[RTCRtpCodecParameters], video_pt: u8) -> Option<u8> {
    codecs
        .iter()
        .filter(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_RTX))
        .find(|c| c.rtp_codec.sdp_fmtp_line.split(';').any(|kv| kv.trim() == format!("apt={video_pt}")))
        .map(|c| c.payload_type)
}

fn fb(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback { typ: typ.to_owned(), parameter: parameter.to_owned() }
}

fn register_audio_level(me: &mut MediaEngine) -> Result<(), SfuError> {
    me.register_header_extension(
        RTCRtpHeaderExtensionCapability { uri: AUDIO_LEVEL_URI.to_owned() },
        RtpCodecKind::Audio,
        None,
    )
    .map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> SfuError {
    SfuError::Internal(e.to_string())
}

/// Builds an ICE-lite peer connection answering `offer`.
///
/// `add_tracks` runs after the remote description is set and before the
/// answer is created; viewers add their outgoing tracks there.
pub fn answer(
    offer: &str,
    ice: &IceCredentials,
    candidates: &[SocketAddr],
    for_viewer: Option<&ViewerCodecs>,
    certificate: RTCCertificate,
    now: Instant,
    add_tracks: impl FnOnce(&mut RTCPeerConnection) -> Result<(), SfuError>,
) -> Result<(RTCPeerConnection, String), SfuError> {
    check_offer(offer)?;
    let (media_engine, registry) = match for_viewer {
        None => media_engine_for_publisher()?,
        Some(codecs) => media_engine_for_viewer(codecs)?,
    };
    let settings = SettingEngineBuilder::new()
        .with_lite(true)
        // An ICE-lite server only hears the client's checks: Firefox sends
        // consent checks every 4-6 s (RFC 7675), so rtc's 5 s default
        // declared Firefox publishers disconnected mid-stream. RFC 7675
        // expires consent after 30 s without one.
        .with_ice_timeouts(Some(ICE_DISCONNECTED_AFTER), Some(ICE_FAILED_AFTER), None)
        .with_ice_credentials(ice.ufrag.clone(), ice.pwd.clone())
        .with_answering_dtls_role(RTCDtlsRole::Server)
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        // The process's certificate (see `certificate`): without one, the
        // connection would generate a key pair of its own.
        .with_configuration(RTCConfigurationBuilder::new().with_certificates(vec![certificate]).build())
        .with_setting_engine(settings)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)
        .map_err(internal)?;

    let offer = RTCSessionDescription::offer(offer.to_owned()).map_err(|e| SfuError::BadOffer(e.to_string()))?;
    pc.set_remote_description(now, offer).map_err(|e| SfuError::BadOffer(e.to_string()))?;
    add_tracks(&mut pc)?;
    for addr in candidates {
        let cand = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: addr.ip().to_string(),
                port: addr.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .map_err(internal)?;
        let init = RTCIceCandidate::from(&cand).to_json().map_err(internal)?;
        pc.add_local_candidate(init).map_err(internal)?;
    }
    let answer = pc.create_answer(None).map_err(|e| SfuError::BadOffer(e.to_string()))?;
    pc.set_local_description(now, answer).map_err(internal)?;
    let sdp = pc.local_description().map(|d| d.sdp).ok_or_else(|| internal("no local description"))?;
    if !sdp.contains("m=") {
        return Err(SfuError::BadOffer("nothing in the offer could be answered".into()));
    }
    Ok((pc, sdp))
}

/// The codecs a publisher's connection ended up receiving.
pub fn negotiated_codecs(pc: &mut RTCPeerConnection) -> StreamCodecs {
    let mut out = StreamCodecs::default();
    let ids: Vec<_> = pc.get_receivers().collect();
    for id in ids {
        let Some(mut receiver) = pc.rtp_receiver(id) else { continue };
        let params = receiver.get_parameters();
        for c in params.rtp_parameters.codecs.iter() {
            let codec = Codec::from_mime(&c.rtp_codec.mime_type);
            if matches!(codec, Codec::Other) {
                continue;
            }
            let slot = if codec.is_video() { &mut out.video } else { &mut out.audio };
            if slot.is_none() {
                *slot = Some(c.clone());
            }
            break;
        }
    }
    out
}

/// True when this codec is Opus (audio forwarding needs no keyframes).
pub fn is_opus(c: &RTCRtpCodecParameters) -> bool {
    c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_OPUS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_offers_with_reasons() {
        assert!(matches!(check_offer("hello"), Err(SfuError::BadOffer(_))));
        assert!(matches!(check_offer("v=0\r\ns=-\r\n"), Err(SfuError::BadOffer(_))));
        let pcmu = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n";
        assert!(matches!(check_offer(pcmu), Err(SfuError::UnsupportedCodec(_))));
        let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(20_000));
        assert!(matches!(check_offer(&huge), Err(SfuError::BadOffer(m)) if m.contains("bytes")));
        let ok = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert!(check_offer(ok).is_ok());
    }

    fn codec(mime: &str, pt: u8, fmtp: &str) -> Option<RTCRtpCodecParameters> {
        let rtp_codec = RTCRtpCodec { mime_type: mime.into(), clock_rate: 90_000, channels: 0, sdp_fmtp_line: fmtp.into(), rtcp_feedback: vec![] };
        Some(RTCRtpCodecParameters { rtp_codec, payload_type: pt })
    }

    #[test]
    fn a_returning_publisher_keeps_its_viewers_only_with_the_same_codecs() {
        let vp8 = StreamCodecs { video: codec("video/VP8", 96, ""), audio: None };
        let vp8_other_pt = StreamCodecs { video: codec("video/vp8", 120, ""), audio: None };
        let h264 = |fmtp: &str| StreamCodecs { video: codec("video/H264", 102, fmtp), audio: None };
        assert!(vp8.same_media(&vp8_other_pt), "payload types are per viewer");
        assert!(!vp8.same_media(&h264("")), "another codec");
        let base = h264("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f");
        assert!(base.same_media(&h264("profile-level-id=42e034;packetization-mode=1")), "only the level differs");
        assert!(!base.same_media(&h264("profile-level-id=640c1f;packetization-mode=1")), "high profile");
        assert!(!base.same_media(&h264("profile-level-id=42e01f;packetization-mode=0")), "packetization mode");
        assert!(vp8.same_media(&StreamCodecs::default()), "nothing new to feed is not a mismatch");
    }
}
