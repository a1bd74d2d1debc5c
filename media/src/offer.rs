//! An offer turned into a ready peer connection and an answer, away from the
//! workers.
//!
//! Parsing SDP and building a connection costs about a millisecond of CPU:
//! done on a worker it would stall forwarding for every peer there, and a
//! flood of offers (WHEP needs no login) would stall it for good. So the
//! handle builds the connection on the blocking pool ([`prepare`]) and hands
//! the worker a finished peer to install.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodecParameters, RtpCodecKind};

use crate::error::SfuError;
use crate::consumer::{Consumer, DownTrack, Rtx};
use crate::room::Room;
use crate::subscriber::Subscriber;
use crate::layer::LayerCap;
use crate::negotiate::{self, IceCredentials, StreamCodecs};
use crate::producer::Producer;

/// A connection built from an offer, ready for a worker.
pub(crate) struct Prepared {
    pub pc: RTCPeerConnection,
    pub ice: IceCredentials,
    pub answer: String,
    pub part: PreparedPart,
}

/// What the connection is for.
pub(crate) enum PreparedPart {
    /// A publisher: its producer, and the codecs it negotiated.
    Publisher { producer: Arc<Producer>, codecs: StreamCodecs },
    /// A viewer, with a consumer (outgoing tracks) per slot.
    Viewer(Box<Subscriber>),
}

/// Who the connection is for.
pub(crate) enum Part {
    /// The publisher of this producer.
    Publisher(Arc<Producer>),
    /// A viewer with this layer cap; `exclude` is a host watching its own
    /// room (its own producer is left out).
    Viewer { cap: LayerCap, exclude: Option<String> },
}

/// What to build.
pub(crate) struct Request {
    pub offer: String,
    pub room: Arc<Room>,
    pub part: Part,
    /// The candidates of the worker that will hold the session.
    pub announce: Vec<SocketAddr>,
    pub certificate: RTCCertificate,
}

/// Builds the connection and the answer for `req`.
pub(crate) fn prepare(req: Request, now: Instant) -> Result<Prepared, SfuError> {
    let ice = IceCredentials::random();
    let Request { offer, room, part, announce, certificate } = req;
    let codecs = matches!(part, Part::Viewer { .. }).then(|| room.codecs());
    // WHEP forbids renegotiation: a viewer's slots are its offer's m-lines.
    let slots = count_slots(&offer);
    // A one-slot player of a lone host is answered with that host's codec
    // only: every other codec with its RTX made each such viewer's
    // connection about 30 KB larger and its answer slower (measured,
    // docs/benchmarks.md). Should its program later move to a co-host whose
    // codec it lacks, it is closed and reconnects (see the workers' `bind`),
    // to an answer with them all.
    let alternates = slots.0 > 1 || room.producers().len() > 1 || room.linked().is_some();
    let viewer = codecs.clone().map(|room| negotiate::ViewerCodecs { room, alternates });
    let mut tracks: Vec<(Option<DownTrack>, Option<DownTrack>)> = Vec::new();
    let (mut pc, answer) = negotiate::answer(&offer, &ice, &announce, viewer.as_ref(), certificate, now, |pc| {
        let Some(codecs) = &codecs else { return Ok(()) };
        for i in 0..slots.0.max(slots.1) {
            // Each slot its own media stream id, so a browser groups a host's audio with its video.
            let label = if i == 0 { room.name.clone() } else { format!("{}-{i}", room.name) };
            let video = match &codecs.video {
                Some(v) if i < slots.0 => Some(add_down_track(pc, &label, RtpCodecKind::Video, v)?),
                _ => None,
            };
            let audio = match &codecs.audio {
                Some(a) if i < slots.1 => Some(add_down_track(pc, &label, RtpCodecKind::Audio, a)?),
                _ => None,
            };
            tracks.push((video, audio));
        }
        Ok(())
    })?;
    let part = match part {
        Part::Publisher(producer) => {
            let codecs = negotiate::negotiated_codecs(&mut pc);
            if codecs.video.is_none() && codecs.audio.is_none() {
                return Err(SfuError::UnsupportedCodec("no audio or video track could be negotiated".into()));
            }
            PreparedPart::Publisher { producer, codecs }
        }
        Part::Viewer { cap, exclude } => {
            if tracks.iter().all(|(v, a)| v.is_none() && a.is_none()) {
                return Err(SfuError::UnsupportedCodec("the offer accepts none of the stream's codecs".into()));
            }
            let consumers = tracks.into_iter().map(|(video, audio)| Consumer::new(video, audio, cap)).collect();
            PreparedPart::Viewer(Box::new(Subscriber::new(consumers, codecs.unwrap_or_default(), cap, exclude)))
        }
    };
    Ok(Prepared { pc, ice, answer, part })
}

/// The video and audio m-lines of an offer, at most [`crate::room::MAX_HOSTS`] each.
fn count_slots(offer: &str) -> (usize, usize) {
    let count = |kind: &str| offer.lines().filter(|l| l.starts_with(kind)).count().min(crate::room::MAX_HOSTS);
    (count("m=video "), count("m=audio "))
}

/// The mids of an SDP's slots: the i-th video and i-th audio m-line's.
pub(crate) fn slot_mids(sdp: &str) -> Vec<SlotMids> {
    let (mut video, mut audio) = (Vec::new(), Vec::new());
    let mut kind = None;
    for line in sdp.lines() {
        if line.starts_with("m=") {
            kind = if line.starts_with("m=video ") { Some(true) } else if line.starts_with("m=audio ") { Some(false) } else { None };
        } else if let (Some(k), Some(mid)) = (kind, line.strip_prefix("a=mid:")) {
            if k { &mut video } else { &mut audio }.push(mid.trim().to_owned());
            kind = None;
        }
    }
    let n = video.len().max(audio.len()).min(crate::room::MAX_HOSTS);
    (0..n).map(|i| SlotMids { video: video.get(i).cloned(), audio: audio.get(i).cloned() }).collect()
}

/// Which mids of a viewer's connection make one slot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlotMids {
    /// The slot's video m-line's mid.
    pub video: Option<String>,
    /// The slot's audio m-line's mid.
    pub audio: Option<String>,
}

/// Adds an outgoing track to a viewer's connection and returns its down
/// track: our SSRC, the payload type the viewer negotiated and, for video,
/// the RTX stream (RFC 4588) when the viewer offered it.
fn add_down_track(pc: &mut RTCPeerConnection, stream: &str, kind: RtpCodecKind, codec: &RTCRtpCodecParameters) -> Result<DownTrack, SfuError> {
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
    let video_codecs = codecs
        .iter()
        .filter(|c| crate::codec::Codec::from_mime(&c.rtp_codec.mime_type).is_video())
        .map(|c| (c.clone(), negotiate::rtx_payload_type(&codecs, c.payload_type)))
        .collect();
    Ok(track.with_retransmission(rtx).with_codecs(video_codecs))
}

#[cfg(test)]
mod tests {
    #[test]
    fn slot_mids_pair_the_nth_video_with_the_nth_audio() {
        let sdp = "v=0\r\nm=video 9 X 96\r\na=mid:0\r\nm=audio 9 X 111\r\na=mid:1\r\nm=video 9 X 96\r\na=mid:v2\r\nm=application 9 X\r\na=mid:9\r\n";
        let m = super::slot_mids(sdp);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].video.as_deref(), m[0].audio.as_deref()), (Some("0"), Some("1")));
        assert_eq!((m[1].video.as_deref(), m[1].audio.as_deref()), (Some("v2"), None));
    }
}
