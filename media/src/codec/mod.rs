//! Just enough of each RTP payload format for an SFU: is this packet the
//! start of a keyframe (so a viewer may switch layers here), and for VP8 the
//! picture ids that must be rewritten across switches.

pub mod h264;
pub mod vp8;

/// The codecs OnAir forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// VP8 (RFC 7741).
    Vp8,
    /// VP9 (RFC 9628).
    Vp9,
    /// H.264 (RFC 6184).
    H264,
    /// AV1 (AOM RTP payload format).
    Av1,
    /// Opus (RFC 7587).
    Opus,
    /// Anything else (never forwarded).
    Other,
}

impl Codec {
    /// From an SDP mime type such as `video/VP8` (case-insensitive).
    pub fn from_mime(mime: &str) -> Codec {
        let name = mime.rsplit('/').next().unwrap_or("");
        if name.eq_ignore_ascii_case("vp8") {
            Codec::Vp8
        } else if name.eq_ignore_ascii_case("vp9") {
            Codec::Vp9
        } else if name.eq_ignore_ascii_case("h264") {
            Codec::H264
        } else if name.eq_ignore_ascii_case("av1") {
            Codec::Av1
        } else if name.eq_ignore_ascii_case("opus") {
            Codec::Opus
        } else {
            Codec::Other
        }
    }

    /// True for video codecs.
    pub fn is_video(self) -> bool {
        matches!(self, Codec::Vp8 | Codec::Vp9 | Codec::H264 | Codec::Av1)
    }
}

/// True when `payload` is the first packet of a keyframe. False for audio.
pub fn is_keyframe_start(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => vp8::parse(payload).is_some_and(|d| d.is_keyframe),
        Codec::H264 => h264::is_keyframe_start(payload),
        Codec::Vp9 => vp9_keyframe_start(payload),
        Codec::Av1 => av1_keyframe_start(payload),
        Codec::Opus | Codec::Other => false,
    }
}

/// VP9 (RFC 9628): B (start of frame) set and P (inter-predicted) clear, on
/// spatial layer 0 when layer indices are present.
fn vp9_keyframe_start(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let (i, pbit, l, f, b) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x20 != 0, b0 & 0x10 != 0, b0 & 0x08 != 0);
    if !b || pbit {
        return false;
    }
    if !l {
        return true;
    }
    let mut at = 1;
    if i {
        let Some(&pid) = p.get(at) else { return false };
        at += if pid & 0x80 != 0 { 2 } else { 1 };
    }
    let Some(&layer) = p.get(at) else { return false };
    let _ = f;
    (layer >> 1) & 0x07 == 0
}

/// AV1: the aggregation header's N bit (first packet of a coded video
/// sequence) with Z clear (not a continuation).
fn av1_keyframe_start(p: &[u8]) -> bool {
    p.first().is_some_and(|h| h & 0x08 != 0 && h & 0x80 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_names() {
        assert_eq!(Codec::from_mime("video/VP8"), Codec::Vp8);
        assert_eq!(Codec::from_mime("video/h264"), Codec::H264);
        assert_eq!(Codec::from_mime("audio/OPUS"), Codec::Opus);
        assert_eq!(Codec::from_mime("audio/PCMU"), Codec::Other);
        assert!(Codec::Av1.is_video() && !Codec::Opus.is_video());
    }

    #[test]
    fn vp9_and_av1_keyframes() {
        assert!(vp9_keyframe_start(&[0x08])); // B, not P, no L
        assert!(!vp9_keyframe_start(&[0x48])); // P set
        assert!(!vp9_keyframe_start(&[0x00])); // not start of frame
        assert!(vp9_keyframe_start(&[0xA8, 0x05, 0x00])); // I (7-bit), L, sid 0
        assert!(!vp9_keyframe_start(&[0xA8, 0x05, 0x02])); // sid 1
        assert!(av1_keyframe_start(&[0x18]));
        assert!(!av1_keyframe_start(&[0x98])); // Z set
        assert!(!av1_keyframe_start(&[0x10]));
        assert!(!is_keyframe_start(Codec::Opus, &[0xff; 10]));
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..24 {
            for seed in 0..=255u8 {
                let p: Vec<u8> = (0..len).map(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 17)).collect();
                for c in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1] {
                    let _ = is_keyframe_start(c, &p);
                }
                let _ = vp8::parse(&p);
            }
        }
    }
}
