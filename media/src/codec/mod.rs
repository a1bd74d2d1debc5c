//! Codec identification and RTP payload inspection.
//!
//! The forwarding path never decodes media, but it has to look just far
//! enough into a packet to answer questions such as "is this the first packet
//! of a keyframe?" (needed before a viewer may switch to another simulcast
//! layer) or "where is the VP8 picture id?" (needed to rewrite it). Each codec
//! has its own payload format, so each lives in its own module:
//!
//! * [`vp8`]  – RFC 7741 (RTP Payload Format for VP8)
//! * [`h264`] – RFC 6184 (RTP Payload Format for H.264)
//! * [`vp9`]  – RFC 9628 (formerly draft-ietf-payload-vp9)
//! * [`av1`]  – AOMedia "RTP Payload Format for AV1"
//!
//! Everything here works on borrowed slices, never allocates and never panics,
//! whatever bytes it is handed.

pub mod av1;
pub mod h264;
pub mod vp8;
pub mod vp9;

/// The codecs the SFU knows how to inspect. Anything else is `Other` and is
/// forwarded blindly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    Vp8,
    Vp9,
    H264,
    Av1,
    Opus,
    Other,
}

impl Codec {
    /// Maps an SDP/WebRTC MIME type (`"video/VP8"`, `"audio/opus"`, ...) to a
    /// codec. The comparison is ASCII case-insensitive, as MIME types are.
    pub fn from_mime(mime: &str) -> Codec {
        const TABLE: [(&str, Codec); 5] = [
            ("video/vp8", Codec::Vp8),
            ("video/vp9", Codec::Vp9),
            ("video/h264", Codec::H264),
            ("video/av1", Codec::Av1),
            ("audio/opus", Codec::Opus),
        ];
        let mime = mime.trim();
        TABLE
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(mime))
            .map_or(Codec::Other, |&(_, codec)| codec)
    }

    /// True for the video codecs (the ones with keyframes and layers).
    pub fn is_video(self) -> bool {
        matches!(self, Codec::Vp8 | Codec::Vp9 | Codec::H264 | Codec::Av1)
    }

    /// The RTP clock rate these codecs always use in WebRTC
    /// (90 kHz for video, 48 kHz for Opus). `None` for `Other`.
    pub fn clock_rate(self) -> Option<u32> {
        match self {
            Codec::Vp8 | Codec::Vp9 | Codec::H264 | Codec::Av1 => Some(90_000),
            Codec::Opus => Some(48_000),
            Codec::Other => None,
        }
    }
}

/// True when `payload` (the RTP payload, after the RTP header and its
/// extensions, without padding) is the first packet of a keyframe, i.e. a
/// point at which a viewer can start decoding this stream.
///
/// Returns `false` for audio and unknown codecs: audio has no keyframes, and
/// a caller that switches audio streams does not need to wait for one.
pub fn is_keyframe_start(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => vp8::is_keyframe_start(payload),
        Codec::Vp9 => vp9::is_keyframe_start(payload),
        Codec::H264 => h264::is_keyframe_start(payload),
        Codec::Av1 => av1::is_keyframe_start(payload),
        Codec::Opus | Codec::Other => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_mime_is_case_insensitive() {
        assert_eq!(Codec::from_mime("video/VP8"), Codec::Vp8);
        assert_eq!(Codec::from_mime("VIDEO/vp8"), Codec::Vp8);
        assert_eq!(Codec::from_mime("video/vp9"), Codec::Vp9);
        assert_eq!(Codec::from_mime("video/H264"), Codec::H264);
        assert_eq!(Codec::from_mime("video/h264"), Codec::H264);
        assert_eq!(Codec::from_mime("video/AV1"), Codec::Av1);
        assert_eq!(Codec::from_mime("audio/opus"), Codec::Opus);
        assert_eq!(Codec::from_mime("audio/OPUS"), Codec::Opus);
    }

    #[test]
    fn from_mime_rejects_near_misses() {
        assert_eq!(Codec::from_mime("video/rtx"), Codec::Other);
        assert_eq!(Codec::from_mime("audio/VP8"), Codec::Other);
        assert_eq!(Codec::from_mime("video/VP8X"), Codec::Other);
        assert_eq!(Codec::from_mime("VP8"), Codec::Other);
        assert_eq!(Codec::from_mime(""), Codec::Other);
        // Non-ASCII must not trip up the case folding.
        assert_eq!(Codec::from_mime("video/VP8\u{e9}"), Codec::Other);
    }

    #[test]
    fn video_and_clock_rate() {
        for c in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1] {
            assert!(c.is_video());
            assert_eq!(c.clock_rate(), Some(90_000));
        }
        assert!(!Codec::Opus.is_video());
        assert!(!Codec::Other.is_video());
        assert_eq!(Codec::Opus.clock_rate(), Some(48_000));
        assert_eq!(Codec::Other.clock_rate(), None);
    }

    #[test]
    fn dispatch_keyframe_start() {
        // VP8: X=0, S=1, PID=0; VP8 header P bit 0.
        let vp8_key = [0x10, 0x00, 0x00, 0x00];
        assert!(is_keyframe_start(Codec::Vp8, &vp8_key));
        // H.264 IDR single NAL unit (nal_ref_idc 3, type 5).
        let h264_idr = [0x65, 0x88, 0x80];
        assert!(is_keyframe_start(Codec::H264, &h264_idr));
        // VP9: B=1, P=0, no other fields.
        assert!(is_keyframe_start(Codec::Vp9, &[0x08, 0x82]));
        // AV1: N=1, Z=0, W=1, then a sequence header OBU.
        assert!(is_keyframe_start(Codec::Av1, &[0x18, 0x08, 0x00]));

        // The same bytes mean nothing for audio / unknown codecs.
        for c in [Codec::Opus, Codec::Other] {
            assert!(!is_keyframe_start(c, &vp8_key));
            assert!(!is_keyframe_start(c, &h264_idr));
            assert!(!is_keyframe_start(c, &[]));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let codecs = [
            Codec::Vp8,
            Codec::Vp9,
            Codec::H264,
            Codec::Av1,
            Codec::Opus,
            Codec::Other,
        ];
        let mut state: u32 = 0x1234_5678;
        let mut buf = [0u8; 40];
        for round in 0..20_000 {
            for b in buf.iter_mut() {
                // xorshift32
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *b = state as u8;
            }
            let len = round % buf.len();
            for c in codecs {
                let _ = is_keyframe_start(c, &buf[..len]);
            }
        }
    }
}
