//! H.264 RTP payload inspection (RFC 6184).
//!
//! An H.264 RTP payload starts with a one-byte NAL unit header
//! `|F|NRI|Type|` (1, 2 and 5 bits). Types 1..=23 are a single NAL unit
//! (section 5.6); type 24 (STAP-A, section 5.7.1) aggregates several NAL
//! units, each preceded by a 16-bit size; type 28 (FU-A, section 5.8)
//! carries a fragment of one NAL unit, with an FU header `|S|E|R|Type|` whose
//! S bit marks the first fragment and whose Type is the fragmented unit's.
//!
//! A viewer may start decoding at an IDR picture (type 5), and in practice
//! the encoder sends the sequence parameter set (type 7) right before it, so
//! the first packet carrying either is a keyframe start. Only the
//! non-interleaved packetization mode used by WebRTC is understood (STAP-B,
//! MTAPs and FU-B are treated as opaque).

/// NAL unit type: coded slice of an IDR picture.
pub const NAL_IDR: u8 = 5;
/// NAL unit type: supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// NAL unit type: sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type: picture parameter set.
pub const NAL_PPS: u8 = 8;
/// Payload type: single-time aggregation packet, type A.
pub const STAP_A: u8 = 24;
/// Payload type: fragmentation unit, type A.
pub const FU_A: u8 = 28;

const TYPE_MASK: u8 = 0x1F;
const FU_START: u8 = 0x80;

/// True when `payload` is the first packet of an H.264 keyframe: a single
/// IDR or SPS NAL unit, a STAP-A containing an IDR or SPS, or the first
/// fragment (S=1) of an FU-A carrying an IDR or SPS.
pub fn is_keyframe_start(payload: &[u8]) -> bool {
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & TYPE_MASK {
        NAL_IDR | NAL_SPS => true,
        STAP_A => nal_types(payload).any(|t| t == NAL_IDR || t == NAL_SPS),
        FU_A => payload
            .get(1)
            .is_some_and(|&fu| fu & FU_START != 0 && matches!(fu & TYPE_MASK, NAL_IDR | NAL_SPS)),
        _ => false,
    }
}

/// The picture size a packet's sequence parameter set announces (a single
/// SPS NAL unit, or one in a STAP-A), cropping applied: what a decoder shows.
pub fn sps_size(payload: &[u8]) -> Option<(u32, u32)> {
    let header = *payload.first()?;
    match header & TYPE_MASK {
        NAL_SPS => sps::size(&payload[1..]),
        STAP_A => {
            let mut rest = payload.get(1..)?;
            while let [hi, lo, after @ ..] = rest {
                let size = usize::from(u16::from_be_bytes([*hi, *lo]));
                if size == 0 || size > after.len() {
                    return None;
                }
                let (nal, next) = after.split_at(size);
                if nal[0] & TYPE_MASK == NAL_SPS {
                    return sps::size(&nal[1..]);
                }
                rest = next;
            }
            None
        }
        _ => None,
    }
}

/// Just enough of an SPS (H.264 section 7.3.2.1.1) to reach the picture size.
mod sps {
    /// Reads bits of an RBSP (emulation-prevention bytes removed).
    struct Bits {
        data: Vec<u8>,
        pos: usize,
    }

    impl Bits {
        fn new(ebsp: &[u8]) -> Bits {
            let mut data = Vec::with_capacity(ebsp.len());
            let mut zeros = 0;
            for &b in ebsp {
                if zeros >= 2 && b == 3 {
                    zeros = 0;
                    continue;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                data.push(b);
            }
            Bits { data, pos: 0 }
        }

        fn bit(&mut self) -> Option<u32> {
            let byte = *self.data.get(self.pos / 8)?;
            let b = (byte >> (7 - self.pos % 8)) & 1;
            self.pos += 1;
            Some(u32::from(b))
        }

        fn bits(&mut self, n: u32) -> Option<u32> {
            (0..n).try_fold(0u32, |v, _| Some((v << 1) | self.bit()?))
        }

        /// Exp-Golomb, unsigned.
        fn ue(&mut self) -> Option<u32> {
            let mut zeros = 0;
            while self.bit()? == 0 {
                zeros += 1;
                if zeros > 31 {
                    return None;
                }
            }
            Some((1u32 << zeros) - 1 + self.bits(zeros)?)
        }

        /// Exp-Golomb, signed.
        fn se(&mut self) -> Option<i32> {
            let k = self.ue()?;
            Some(if k % 2 == 1 { k.div_ceil(2) as i32 } else { -((k / 2) as i32) })
        }
    }

    /// Width and height of the SPS whose payload (after the NAL header) is `ebsp`.
    pub fn size(ebsp: &[u8]) -> Option<(u32, u32)> {
        let mut r = Bits::new(ebsp);
        let profile = r.bits(8)?;
        r.bits(16)?; // constraint flags, level
        r.ue()?; // seq_parameter_set_id
        let mut chroma = 1;
        if matches!(profile, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
            chroma = r.ue()?;
            if chroma == 3 {
                r.bit()?; // separate_colour_plane_flag
            }
            r.ue()?; // bit_depth_luma_minus8
            r.ue()?; // bit_depth_chroma_minus8
            r.bit()?; // qpprime_y_zero_transform_bypass_flag
            if r.bit()? == 1 {
                for i in 0..if chroma == 3 { 12 } else { 8 } {
                    if r.bit()? == 1 {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        r.ue()?; // log2_max_frame_num_minus4
        match r.ue()? {
            0 => {
                r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
            }
            1 => {
                r.bit()?;
                r.se()?;
                r.se()?;
                for _ in 0..r.ue()?.min(255) {
                    r.se()?;
                }
            }
            _ => {}
        }
        r.ue()?; // max_num_ref_frames
        r.bit()?; // gaps_in_frame_num_value_allowed_flag
        let width_mbs = r.ue()?.checked_add(1)?;
        let height_units = r.ue()?.checked_add(1)?;
        let frame_mbs_only = r.bit()?;
        if frame_mbs_only == 0 {
            r.bit()?; // mb_adaptive_frame_field_flag
        }
        r.bit()?; // direct_8x8_inference_flag
        let (mut w, mut h) = (width_mbs.checked_mul(16)?, (2 - frame_mbs_only).checked_mul(height_units)?.checked_mul(16)?);
        if r.bit()? == 1 {
            let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
            // Cropping is counted in chroma samples (4:2:0 halves both ways).
            let (sub_w, sub_h) = match chroma {
                0 | 3 => (1, 1),
                2 => (2, 1),
                _ => (2, 2),
            };
            w = w.checked_sub(sub_w * left.checked_add(right)?)?;
            h = h.checked_sub(sub_h * (2 - frame_mbs_only) * top.checked_add(bottom)?)?;
        }
        (w > 0 && h > 0).then_some((w, h))
    }

    fn skip_scaling_list(r: &mut Bits, n: usize) -> Option<()> {
        let (mut last, mut next) = (8i32, 8i32);
        for _ in 0..n {
            if next != 0 {
                next = (last + r.se()? + 256) % 256;
            }
            if next != 0 {
                last = next;
            }
        }
        Some(())
    }
}

/// True when `payload` is an FU-A fragment with its start bit set.
pub fn is_fu_a_start(payload: &[u8]) -> bool {
    payload.first().is_some_and(|h| h & TYPE_MASK == FU_A)
        && payload.get(1).is_some_and(|fu| fu & FU_START != 0)
}

/// The types of the NAL units carried by `payload`, without allocating:
///
/// * single NAL unit packet (types 1..=23): its own type;
/// * STAP-A: the type of every aggregated unit, stopping at the first one
///   whose size field is truncated, zero, or runs past the end;
/// * FU-A: the type of the fragmented unit (for every fragment; use
///   [`is_fu_a_start`] to tell the first one);
/// * anything else (type 0, STAP-B, MTAP, FU-B, 30, 31): nothing.
pub fn nal_types(payload: &[u8]) -> NalTypes<'_> {
    let state = match payload.first().map(|h| h & TYPE_MASK) {
        Some(t @ 1..=23) => State::Single(t),
        Some(STAP_A) => State::Stap(payload.get(1..).unwrap_or(&[])),
        Some(FU_A) => match payload.get(1) {
            Some(fu) => State::Single(fu & TYPE_MASK),
            None => State::Done,
        },
        _ => State::Done,
    };
    NalTypes { state }
}

/// Iterator returned by [`nal_types`].
#[derive(Clone, Debug)]
pub struct NalTypes<'a> {
    state: State<'a>,
}

#[derive(Clone, Debug)]
enum State<'a> {
    Single(u8),
    /// Remaining bytes of a STAP-A after its header.
    Stap(&'a [u8]),
    Done,
}

impl Iterator for NalTypes<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Single(t) => Some(t),
            State::Stap(rest) => {
                let [hi, lo, ref after @ ..] = *rest else {
                    return None;
                };
                let size = usize::from(u16::from_be_bytes([hi, lo]));
                if size == 0 || size > after.len() {
                    return None;
                }
                let (nal, remaining) = after.split_at(size);
                self.state = State::Stap(remaining);
                Some(nal[0] & TYPE_MASK)
            }
            State::Done => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // NAL header bytes as produced by common encoders (NRI=3 for parameter
    // sets and IDR slices, NRI=2 for non-IDR slices).
    const SPS: u8 = 0x67;
    const PPS: u8 = 0x68;
    const IDR: u8 = 0x65;
    const SLICE: u8 = 0x41;

    fn types(p: &[u8]) -> Vec<u8> {
        nal_types(p).collect()
    }

    #[test]
    fn sps_sizes() {
        // From x264 (FFmpeg's testsrc): constrained baseline 640x360 (40x23
        // macroblocks, cropped by 8 rows), high 1280x720 and high 1920x1080 (cropped).
        let sps_640x360 = [
            0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x58, 0xba, 0x80,
        ];
        assert_eq!(sps_size(&sps_640x360), Some((640, 360)));
        let sps_720p = [
            0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
        ];
        assert_eq!(sps_size(&sps_720p), Some((1280, 720)));
        let sps_1080p = [
            0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58,
        ];
        assert_eq!(sps_size(&sps_1080p), Some((1920, 1080)));
        // The same SPS in a STAP-A, after an SEI.
        let mut stap = vec![0x78, 0x00, 0x02, 0x06, 0x05];
        stap.extend_from_slice(&(sps_640x360.len() as u16).to_be_bytes());
        stap.extend_from_slice(&sps_640x360);
        assert_eq!(sps_size(&stap), Some((640, 360)));
        assert_eq!(sps_size(&[0x65, 0x88, 0x84]), None, "an IDR slice has no size");
        assert_eq!(sps_size(&sps_640x360[..6]), None, "cut off");
    }

    #[test]
    fn single_nal_units() {
        assert!(is_keyframe_start(&[IDR, 0x88, 0x84]));
        assert!(is_keyframe_start(&[SPS, 0x42, 0xC0, 0x1F]));
        assert!(!is_keyframe_start(&[PPS, 0xCE, 0x3C, 0x80]));
        assert!(!is_keyframe_start(&[SLICE, 0x9A]));
        assert!(!is_keyframe_start(&[0x06, 0x05])); // SEI
        assert_eq!(types(&[SPS, 0x42]), vec![NAL_SPS]);
        // A header alone is still a (degenerate) single NAL unit.
        assert!(is_keyframe_start(&[IDR]));
    }

    #[test]
    fn stap_a_with_sps_pps_idr() {
        // STAP-A header (NRI=3), then SPS (4 bytes), PPS (2), IDR (3).
        let p = [
            0x78, //
            0x00, 0x04, SPS, 0x42, 0xC0, 0x1F, //
            0x00, 0x02, PPS, 0xCE, //
            0x00, 0x03, IDR, 0x88, 0x84,
        ];
        assert_eq!(types(&p), vec![NAL_SPS, NAL_PPS, NAL_IDR]);
        assert!(is_keyframe_start(&p));
    }

    #[test]
    fn stap_a_without_keyframe_units() {
        let p = [0x78, 0x00, 0x02, PPS, 0xCE, 0x00, 0x02, 0x06, 0x05];
        assert_eq!(types(&p), vec![NAL_PPS, NAL_SEI]);
        assert!(!is_keyframe_start(&p));
    }

    #[test]
    fn stap_a_truncated_and_bogus_sizes() {
        // Second unit's size runs past the end: only the first is reported,
        // and an IDR hiding in the broken tail is not believed.
        let p = [0x78, 0x00, 0x02, PPS, 0xCE, 0x00, 0x09, IDR, 0x88];
        assert_eq!(types(&p), vec![NAL_PPS]);
        assert!(!is_keyframe_start(&p));
        // Zero size stops the walk.
        assert_eq!(types(&[0x78, 0x00, 0x00, SPS]), Vec::<u8>::new());
        // Half a size field.
        assert_eq!(types(&[0x78, 0x00, 0x01, PPS, 0x00]), vec![NAL_PPS]);
        // Just the STAP-A header.
        assert_eq!(types(&[0x78]), Vec::<u8>::new());
        assert!(!is_keyframe_start(&[0x78]));
        // A size of 0xFFFF on a short packet.
        assert!(!is_keyframe_start(&[0x78, 0xFF, 0xFF, SPS]));
    }

    #[test]
    fn fu_a_fragments() {
        // FU indicator: F=0 NRI=3 type 28 -> 0x7C. FU header S=1, type 5 -> 0x85.
        let start = [0x7C, 0x85, 0x88, 0x84];
        let middle = [0x7C, 0x05, 0x00];
        let end = [0x7C, 0x45, 0x00];
        assert!(is_keyframe_start(&start));
        assert!(is_fu_a_start(&start));
        assert!(!is_keyframe_start(&middle));
        assert!(!is_keyframe_start(&end));
        assert!(!is_fu_a_start(&end));
        assert_eq!(types(&middle), vec![NAL_IDR]);

        // Fragmented SPS (unusual, but allowed).
        assert!(is_keyframe_start(&[0x7C, 0x87, 0x42]));
        // Start of a non-IDR slice.
        assert!(!is_keyframe_start(&[0x5C, 0x81, 0x9A]));
        // FU indicator alone.
        assert!(!is_keyframe_start(&[0x7C]));
        assert!(!is_fu_a_start(&[0x7C]));
        assert_eq!(types(&[0x7C]), Vec::<u8>::new());
    }

    #[test]
    fn unsupported_packet_types() {
        assert!(!is_keyframe_start(&[]));
        // Type 0 (unspecified), STAP-B (25), MTAP16 (26), FU-B (29), 30, 31.
        for t in [0u8, 25, 26, 27, 29, 30, 31] {
            let p = [0x60 | t, 0x85, 0x00, 0x02, SPS, 0x00];
            assert!(!is_keyframe_start(&p), "type {t}");
            assert_eq!(types(&p), Vec::<u8>::new(), "type {t}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut state: u32 = 0x0BAD_F00D;
        let mut buf = [0u8; 24];
        for round in 0..50_000 {
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *b = state as u8;
            }
            // Bias towards STAP-A with small sizes so the walk is exercised.
            if round % 2 == 0 {
                buf[0] = 0x78;
                buf[1] = 0;
                buf[2] %= 8;
            }
            let len = round % (buf.len() + 1);
            let p = &buf[..len];
            let _ = is_keyframe_start(p);
            let _ = is_fu_a_start(p);
            // The walk terminates and never yields more units than bytes.
            assert!(nal_types(p).count() <= len);
        }
    }
}
