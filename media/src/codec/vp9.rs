//! VP9 RTP payload descriptor (RFC 9628, formerly draft-ietf-payload-vp9).
//!
//! ```text
//!        0 1 2 3 4 5 6 7
//!       +-+-+-+-+-+-+-+-+
//!       |I|P|L|F|B|E|V|Z| (REQUIRED)
//!       +-+-+-+-+-+-+-+-+
//!  I:   |M| PICTURE ID  | (7 or 15 bits)
//!  M:   | EXTENDED PID  |
//!       +-+-+-+-+-+-+-+-+
//!  L:   | TID |U| SID |D|
//!       +-+-+-+-+-+-+-+-+
//!       |   TL0PICIDX   | (only in non-flexible mode, F=0)
//!       +-+-+-+-+-+-+-+-+
//!  P,F: | P_DIFF      |N| (flexible mode only, up to 3 times)
//!       +-+-+-+-+-+-+-+-+
//!  V:   | SS            | (scalability structure, section 4.2.1)
//!       +-+-+-+-+-+-+-+-+
//! ```
//!
//! Z was a reserved bit in early drafts; it is reported but never needed
//! here. The whole descriptor is walked (including the SS) so that
//! `header_len` is exact and truncated packets are rejected.
//!
//! A viewer can start decoding at a picture whose spatial layer 0 frame is
//! not inter-picture predicted (P=0). The keyframe start is therefore the
//! packet with B=1 (start of frame), P=0 and SID=0 (SID is 0 when the layer
//! indices are absent, i.e. the stream has no spatial layers). Higher spatial
//! layers with P=0 are only switching points *within* an SVC stream and still
//! depend on the lower layer of the same picture, so they do not count.

const I_BIT: u8 = 0x80;
const P_BIT: u8 = 0x40;
const L_BIT: u8 = 0x20;
const F_BIT: u8 = 0x10;
const B_BIT: u8 = 0x08;
const E_BIT: u8 = 0x04;
const V_BIT: u8 = 0x02;
const Z_BIT: u8 = 0x01;
const M_BIT: u8 = 0x80;

/// The parsed VP9 payload descriptor of one RTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Vp9Descriptor {
    /// Length of the payload descriptor in bytes; the VP9 frame data starts here.
    pub header_len: usize,
    /// PICTURE ID, 7 or 15 bits wide, if present (I=1).
    pub picture_id: Option<u16>,
    /// True when the PICTURE ID is the 15-bit form (M=1).
    pub picture_id_15bit: bool,
    /// Temporal layer id, if the layer indices are present (L=1).
    pub tid: Option<u8>,
    /// Spatial layer id, if the layer indices are present (L=1).
    pub sid: Option<u8>,
    /// U: switching up point (only meaningful when L=1).
    pub switching_up: bool,
    /// D: the frame depends on the lower spatial layer of the same picture.
    pub inter_layer_dependency: bool,
    /// TL0PICIDX, present in non-flexible mode with L=1.
    pub tl0picidx: Option<u8>,
    /// F: flexible mode.
    pub flexible: bool,
    /// P: the frame uses inter-picture prediction.
    pub inter_picture_predicted: bool,
    /// B: first packet of a frame (of one spatial layer).
    pub start_of_frame: bool,
    /// E: last packet of a frame (of one spatial layer).
    pub end_of_frame: bool,
    /// V: a scalability structure is present.
    pub has_scalability_structure: bool,
    /// Z: the frame is not used for prediction by upper spatial layers.
    pub not_upper_reference: bool,
    /// First packet of a keyframe of spatial layer 0 (B=1, P=0, SID=0).
    pub is_keyframe: bool,
}

/// Reads bytes from the front of a slice, failing on truncation.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        if end > self.buf.len() {
            return None;
        }
        self.pos = end;
        Some(())
    }
}

/// Parses the payload descriptor at the start of a VP9 RTP payload.
/// Returns `None` if the payload is shorter than its own flags announce.
pub fn parse(payload: &[u8]) -> Option<Vp9Descriptor> {
    let mut r = Reader {
        buf: payload,
        pos: 0,
    };
    let first = r.byte()?;
    let mut d = Vp9Descriptor {
        flexible: first & F_BIT != 0,
        inter_picture_predicted: first & P_BIT != 0,
        start_of_frame: first & B_BIT != 0,
        end_of_frame: first & E_BIT != 0,
        has_scalability_structure: first & V_BIT != 0,
        not_upper_reference: first & Z_BIT != 0,
        ..Vp9Descriptor::default()
    };

    if first & I_BIT != 0 {
        let b = r.byte()?;
        if b & M_BIT != 0 {
            let lo = r.byte()?;
            d.picture_id = Some(u16::from(b & 0x7F) << 8 | u16::from(lo));
            d.picture_id_15bit = true;
        } else {
            d.picture_id = Some(u16::from(b & 0x7F));
        }
    }

    if first & L_BIT != 0 {
        let b = r.byte()?;
        d.tid = Some(b >> 5);
        d.switching_up = b & 0x10 != 0;
        d.sid = Some((b >> 1) & 0x07);
        d.inter_layer_dependency = b & 0x01 != 0;
        if !d.flexible {
            d.tl0picidx = Some(r.byte()?);
        }
    }

    if d.flexible && d.inter_picture_predicted {
        // Up to three reference indices, each with an N bit saying whether
        // another one follows.
        for i in 0..3 {
            let p_diff = r.byte()?;
            if p_diff & 0x01 == 0 {
                break;
            }
            if i == 2 {
                return None; // N=1 on the third P_DIFF: malformed.
            }
        }
    }

    if d.has_scalability_structure {
        skip_scalability_structure(&mut r)?;
    }

    d.header_len = r.pos;
    d.is_keyframe = d.start_of_frame && !d.inter_picture_predicted && d.sid.unwrap_or(0) == 0;
    Some(d)
}

/// Skips the scalability structure (RFC 9628 section 4.2.1):
///
/// ```text
/// V:   | N_S |Y|G|-|-|-|
///      |  WIDTH (16)   |  (N_S + 1) times, if Y
///      |  HEIGHT (16)  |
///      |      N_G      |  if G
///      |TID|U| R |-|-| |  N_G times, each followed by R P_DIFF bytes
/// ```
fn skip_scalability_structure(r: &mut Reader<'_>) -> Option<()> {
    let b = r.byte()?;
    let spatial_layers = usize::from(b >> 5) + 1;
    if b & 0x10 != 0 {
        r.skip(spatial_layers * 4)?;
    }
    if b & 0x08 != 0 {
        let groups = r.byte()?;
        for _ in 0..groups {
            let g = r.byte()?;
            let refs = usize::from((g >> 2) & 0x03);
            r.skip(refs)?;
        }
    }
    Some(())
}

/// True when `payload` is the first packet of a VP9 keyframe of spatial
/// layer 0.
pub fn is_keyframe_start(payload: &[u8]) -> bool {
    parse(payload).is_some_and(|d| d.is_keyframe)
}

/// Overwrites the PICTURE ID and TL0PICIDX fields of `payload` in place,
/// keeping their width (7 or 15 bits). Absent fields are left alone; nothing
/// is written if `payload` is shorter than `desc` claims. `desc` must come
/// from [`parse`] on this payload.
pub fn rewrite(payload: &mut [u8], desc: &Vp9Descriptor, picture_id: u16, tl0picidx: u8) {
    if payload.len() < desc.header_len {
        return;
    }
    let mut pos = 1;
    if desc.picture_id.is_some() {
        if desc.picture_id_15bit {
            if let Some(field) = payload.get_mut(pos..pos + 2) {
                field[0] = M_BIT | ((picture_id >> 8) as u8 & 0x7F);
                field[1] = picture_id as u8;
            }
            pos += 2;
        } else {
            if let Some(field) = payload.get_mut(pos) {
                *field = picture_id as u8 & 0x7F;
            }
            pos += 1;
        }
    }
    if desc.tl0picidx.is_some() {
        // The layer index byte sits between PICTURE ID and TL0PICIDX.
        if let Some(field) = payload.get_mut(pos + 1) {
            *field = tl0picidx;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_flexible_keyframe_with_ss() {
        // I=1 P=0 L=1 F=0 B=1 E=0 V=1 Z=0 -> 0xAA
        // PICTURE ID M=1 0x0102; TID=0 U=0 SID=0 D=0; TL0PICIDX 7;
        // SS: N_S=1 (two spatial layers), Y=1, G=1 -> 0x38
        //   320x180, 640x360
        //   N_G=2: [TID=0 U=0 R=1 | P_DIFF 1], [TID=1 U=1 R=1 | P_DIFF 1]
        // then VP9 frame data 0x82.
        let p = [
            0xAA, 0x81, 0x02, 0x00, 0x07, //
            0x38, 0x01, 0x40, 0x00, 0xB4, 0x02, 0x80, 0x01, 0x68, //
            0x02, 0x04, 0x01, 0x34, 0x01, //
            0x82, 0x49,
        ];
        let d = parse(&p).unwrap();
        assert_eq!(d.picture_id, Some(0x0102));
        assert!(d.picture_id_15bit);
        assert_eq!(d.tid, Some(0));
        assert_eq!(d.sid, Some(0));
        assert_eq!(d.tl0picidx, Some(7));
        assert!(!d.flexible);
        assert!(d.has_scalability_structure);
        assert!(d.start_of_frame);
        assert!(!d.end_of_frame);
        assert!(d.is_keyframe);
        assert_eq!(d.header_len, 19);
        assert_eq!(p[d.header_len], 0x82);
        assert!(is_keyframe_start(&p));

        // Every truncation inside the descriptor is detected.
        for len in 0..19 {
            assert_eq!(parse(&p[..len]), None, "prefix {len}");
        }
    }

    #[test]
    fn ss_without_resolutions_or_groups() {
        // B=1 V=1; SS with N_S=0, Y=0, G=0.
        let d = parse(&[0x0A, 0x00, 0x82]).unwrap();
        assert_eq!(d.header_len, 2);
        assert!(d.is_keyframe);
        // G=1 with N_G=0.
        let d = parse(&[0x0A, 0x08, 0x00, 0x82]).unwrap();
        assert_eq!(d.header_len, 3);
    }

    #[test]
    fn flexible_mode_layers() {
        // I=1 P=1 L=1 F=1 B=1 E=1 -> 0xFC ; 7-bit PICTURE ID 0x55;
        // TID=2 U=1 SID=1 D=1 -> 0b010_1_001_1 = 0x53 ;
        // P_DIFF 1 with N=1 (0x03), P_DIFF 2 with N=0 (0x04).
        let p = [0xFC, 0x55, 0x53, 0x03, 0x04, 0x00];
        let d = parse(&p).unwrap();
        assert_eq!(d.picture_id, Some(0x55));
        assert!(!d.picture_id_15bit);
        assert_eq!(d.tid, Some(2));
        assert!(d.switching_up);
        assert_eq!(d.sid, Some(1));
        assert!(d.inter_layer_dependency);
        assert_eq!(d.tl0picidx, None, "no TL0PICIDX in flexible mode");
        assert!(d.flexible);
        assert!(d.start_of_frame && d.end_of_frame);
        assert_eq!(d.header_len, 5);
        assert!(!d.is_keyframe);
    }

    #[test]
    fn flexible_mode_too_many_p_diffs() {
        // Three P_DIFFs all with N=1: a fourth is not allowed.
        assert_eq!(parse(&[0xD8, 0x01, 0x03, 0x03, 0x03, 0x03, 0x00]), None);
        // Exactly three, last N=0.
        let d = parse(&[0xD8, 0x01, 0x03, 0x03, 0x02, 0x00]).unwrap();
        assert_eq!(d.header_len, 5);
        // P_DIFF missing entirely.
        assert_eq!(parse(&[0xD8, 0x01]), None);
    }

    #[test]
    fn keyframe_depends_on_spatial_layer_zero() {
        // Non-flexible, L=1, B=1, P=0, SID=1 (upper spatial layer of a key
        // picture): not a place where a viewer can start.
        // 0x28 = L|B ; layer byte SID=1 D=1 -> 0x03 ; TL0PICIDX 0.
        assert!(!is_keyframe_start(&[0x28, 0x03, 0x00, 0x82]));
        // Same with SID=0.
        assert!(is_keyframe_start(&[0x28, 0x00, 0x00, 0x82]));
        // P=1: inter predicted.
        assert!(!is_keyframe_start(&[0x68, 0x00, 0x00, 0x82]));
        // B=0: middle of the key frame.
        assert!(!is_keyframe_start(&[0x20, 0x00, 0x00, 0x82]));
        // No layer indices at all: single spatial layer, B=1, P=0.
        assert!(is_keyframe_start(&[0x88, 0x10, 0x82]));
        assert!(!is_keyframe_start(&[]));
    }

    #[test]
    fn z_bit_is_reported() {
        let d = parse(&[0x0D, 0x82]).unwrap();
        assert!(d.not_upper_reference);
        assert!(d.end_of_frame);
    }

    #[test]
    fn rewrite_in_place() {
        // Non-flexible, 15-bit PICTURE ID 0x7FFF, layers, TL0PICIDX 0xFF.
        let mut p = [0xA8, 0xFF, 0xFF, 0x20, 0xFF, 0x82];
        let d = parse(&p).unwrap();
        rewrite(&mut p, &d, 0, 0);
        assert_eq!(p, [0xA8, 0x80, 0x00, 0x20, 0x00, 0x82]);
        let d2 = parse(&p).unwrap();
        assert_eq!(d2.picture_id, Some(0));
        assert_eq!(d2.tl0picidx, Some(0));
        assert_eq!(d2.tid, d.tid);

        // 7-bit PICTURE ID keeps 7 bits.
        let mut p = [0x88, 0x05, 0x82];
        let d = parse(&p).unwrap();
        rewrite(&mut p, &d, 0x1FF, 9);
        assert_eq!(p, [0x88, 0x7F, 0x82]);

        // No PICTURE ID, TL0PICIDX present.
        let mut p = [0x28, 0x00, 0x05, 0x82];
        let d = parse(&p).unwrap();
        rewrite(&mut p, &d, 0x1FF, 6);
        assert_eq!(p, [0x28, 0x00, 0x06, 0x82]);

        // Mismatched, too-short payload: untouched, no panic.
        let mut short = [0xA8, 0xFF];
        rewrite(&mut short, &d2, 1, 1);
        assert_eq!(short, [0xA8, 0xFF]);
    }

    #[test]
    fn garbage_never_panics() {
        let mut state: u32 = 0xC0FF_EE11;
        let mut buf = [0u8; 32];
        for round in 0..50_000 {
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *b = state as u8;
            }
            let len = round % (buf.len() + 1);
            if let Some(d) = parse(&buf[..len]) {
                assert!(d.header_len <= len);
                let mut copy = buf;
                rewrite(&mut copy[..len], &d, state as u16, state as u8);
                let d2 = parse(&copy[..len]).unwrap();
                assert_eq!(d2.header_len, d.header_len);
                assert_eq!((d2.tid, d2.sid), (d.tid, d.sid));
            }
        }
    }
}
