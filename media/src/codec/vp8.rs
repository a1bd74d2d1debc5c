//! VP8 RTP payload descriptor (RFC 7741, section 4.2).
//!
//! An SFU needs three things from a VP8 packet: whether it starts a keyframe
//! (to switch simulcast layers cleanly), the temporal layer id (to drop
//! temporal layers), and the PictureID / TL0PICIDX fields, which it must
//! rewrite in place so that a viewer sees one continuous picture numbering
//! when it is moved from one simulcast layer to another.
//!
//! ```text
//!        0 1 2 3 4 5 6 7
//!       +-+-+-+-+-+-+-+-+
//!       |X|R|N|S|R| PID | (REQUIRED)
//!       +-+-+-+-+-+-+-+-+
//!  X:   |I|L|T|K| RSV   | (OPTIONAL)
//!       +-+-+-+-+-+-+-+-+
//!  I:   |M| PictureID   | (OPTIONAL, 7 or 15 bits)
//!       +-+-+-+-+-+-+-+-+
//!       |   PictureID   |
//!       +-+-+-+-+-+-+-+-+
//!  L:   |   TL0PICIDX   | (OPTIONAL)
//!       +-+-+-+-+-+-+-+-+
//!  T/K: |TID|Y| KEYIDX  | (OPTIONAL)
//!       +-+-+-+-+-+-+-+-+
//! ```
//!
//! The descriptor is followed by the VP8 bitstream; when S=1 and PID=0 its
//! first byte is the VP8 payload header `|Size0|H| VER |P|` where P=0 marks a
//! key frame (RFC 7741 section 4.3).

const X_BIT: u8 = 0x80;
const S_BIT: u8 = 0x10;
const PID_MASK: u8 = 0x07;
const I_BIT: u8 = 0x80;
const L_BIT: u8 = 0x40;
const T_BIT: u8 = 0x20;
const K_BIT: u8 = 0x10;
const M_BIT: u8 = 0x80;

/// The parsed VP8 payload descriptor of one RTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Vp8Descriptor {
    /// Length of the payload descriptor in bytes; the VP8 bitstream starts here.
    pub header_len: usize,
    /// PictureID, 7 or 15 bits wide (see `picture_id_15bit`), if present.
    pub picture_id: Option<u16>,
    /// True when the PictureID field is the two-byte, 15-bit form (M=1).
    pub picture_id_15bit: bool,
    /// TL0PICIDX, if present (L=1).
    pub tl0picidx: Option<u8>,
    /// Temporal layer index, if present (T=1).
    pub tid: Option<u8>,
    /// Layer sync bit Y (only meaningful, and only reported, when T=1).
    pub layer_sync: bool,
    /// Temporal key frame index, if present (K=1).
    pub keyidx: Option<u8>,
    /// S bit: this packet starts a VP8 partition.
    pub start_of_partition: bool,
    /// Partition index (PID field, 0..=7).
    pub partition_id: u8,
    /// This packet is the first packet of a key frame.
    pub is_keyframe: bool,
}

impl Vp8Descriptor {
    /// Byte offset of the PictureID field, if present.
    fn picture_id_offset(&self) -> Option<usize> {
        self.picture_id.map(|_| 2)
    }

    /// Byte offset of the TL0PICIDX field, if present.
    fn tl0picidx_offset(&self) -> Option<usize> {
        let pid_len = match (self.picture_id, self.picture_id_15bit) {
            (None, _) => 0,
            (Some(_), false) => 1,
            (Some(_), true) => 2,
        };
        self.tl0picidx.map(|_| 2 + pid_len)
    }
}

/// Parses the payload descriptor at the start of a VP8 RTP payload.
///
/// Returns `None` when the payload is too short to hold the descriptor its
/// own flags announce. A descriptor that is not followed by any VP8 data is
/// accepted (so that it can still be rewritten) but is never a keyframe.
pub fn parse(payload: &[u8]) -> Option<Vp8Descriptor> {
    let first = *payload.first()?;
    let mut desc = Vp8Descriptor {
        start_of_partition: first & S_BIT != 0,
        partition_id: first & PID_MASK,
        ..Vp8Descriptor::default()
    };
    let mut pos = 1;

    if first & X_BIT != 0 {
        let ext = *payload.get(pos)?;
        pos += 1;

        if ext & I_BIT != 0 {
            let b = *payload.get(pos)?;
            pos += 1;
            if b & M_BIT != 0 {
                let lo = *payload.get(pos)?;
                pos += 1;
                desc.picture_id = Some(u16::from(b & 0x7F) << 8 | u16::from(lo));
                desc.picture_id_15bit = true;
            } else {
                desc.picture_id = Some(u16::from(b & 0x7F));
            }
        }
        if ext & L_BIT != 0 {
            desc.tl0picidx = Some(*payload.get(pos)?);
            pos += 1;
        }
        if ext & (T_BIT | K_BIT) != 0 {
            let b = *payload.get(pos)?;
            pos += 1;
            if ext & T_BIT != 0 {
                desc.tid = Some(b >> 6);
                desc.layer_sync = b & 0x20 != 0;
            }
            if ext & K_BIT != 0 {
                desc.keyidx = Some(b & 0x1F);
            }
        }
    }

    desc.header_len = pos;
    desc.is_keyframe = desc.start_of_partition
        && desc.partition_id == 0
        && payload
            .get(pos)
            .is_some_and(|vp8_header| vp8_header & 0x01 == 0);
    Some(desc)
}

/// True when `payload` is the first packet of a VP8 key frame.
pub fn is_keyframe_start(payload: &[u8]) -> bool {
    parse(payload).is_some_and(|d| d.is_keyframe)
}

/// The picture size of a key frame, from its first packet: after the
/// 3-byte frame tag come the start code `9d 01 2a` and the 14-bit width and
/// height (RFC 6386 section 9.1).
pub fn keyframe_size(payload: &[u8]) -> Option<(u32, u32)> {
    let d = parse(payload)?;
    if !d.is_keyframe {
        return None;
    }
    let b = payload.get(d.header_len..d.header_len + 10)?;
    if b[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([b[6], b[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([b[8], b[9]]) & 0x3fff);
    (w > 0 && h > 0).then_some((w, h))
}

/// Overwrites the PictureID and TL0PICIDX fields of `payload` in place.
///
/// `desc` must be the result of [`parse`] on this same payload. Only fields
/// that exist are written: a 7-bit PictureID receives the low 7 bits of
/// `picture_id`, a 15-bit one the low 15 bits; absent fields are left alone
/// (the descriptor never grows or shrinks). If `payload` is shorter than
/// `desc` claims, nothing is written.
pub fn rewrite(payload: &mut [u8], desc: &Vp8Descriptor, picture_id: u16, tl0picidx: u8) {
    if payload.len() < desc.header_len {
        return;
    }
    if let Some(off) = desc.picture_id_offset() {
        if desc.picture_id_15bit {
            if let Some(field) = payload.get_mut(off..off + 2) {
                field[0] = M_BIT | ((picture_id >> 8) as u8 & 0x7F);
                field[1] = picture_id as u8;
            }
        } else if let Some(field) = payload.get_mut(off) {
            *field = picture_id as u8 & 0x7F;
        }
    }
    if let Some(off) = desc.tl0picidx_offset() {
        if let Some(field) = payload.get_mut(off) {
            *field = tl0picidx;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chrome-style first packet of a key frame: X=1, S=1, PID=0;
    /// I,L,T set; 15-bit PictureID 0x1234; TL0PICIDX 0x56; TID=0, Y=1;
    /// then the VP8 payload header of a key frame (P=0), e.g. 0x50.
    const KEY: [u8; 8] = [0x90, 0xE0, 0x92, 0x34, 0x56, 0x20, 0x50, 0x9D];

    #[test]
    fn keyframe_size_from_the_frame_header() {
        // Descriptor (X, I with 15-bit id, L), frame tag of a keyframe, start code, 320x180.
        let key = [0x90, 0xC0, 0x80, 0x01, 0x05, 0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00];
        assert_eq!(keyframe_size(&key), Some((320, 180)));
        let mut delta = key;
        delta[5] = 0x11; // P=1: an inter frame
        assert_eq!(keyframe_size(&delta), None);
        assert_eq!(keyframe_size(&key[..12]), None, "cut off");
    }

    #[test]
    fn parses_full_descriptor() {
        let d = parse(&KEY).unwrap();
        assert_eq!(d.header_len, 6);
        assert_eq!(d.picture_id, Some(0x1234));
        assert!(d.picture_id_15bit);
        assert_eq!(d.tl0picidx, Some(0x56));
        assert_eq!(d.tid, Some(0));
        assert!(d.layer_sync);
        assert_eq!(d.keyidx, None);
        assert!(d.start_of_partition);
        assert_eq!(d.partition_id, 0);
        assert!(d.is_keyframe);
        assert!(is_keyframe_start(&KEY));
    }

    #[test]
    fn minimal_descriptor() {
        // X=0: one-byte descriptor. 0x9D01 2A is the VP8 key frame start code,
        // but the first bitstream byte is what matters: 0x50 -> P=0.
        let d = parse(&[0x10, 0x50, 0x01]).unwrap();
        assert_eq!(d.header_len, 1);
        assert_eq!(d.picture_id, None);
        assert_eq!(d.tl0picidx, None);
        assert_eq!(d.tid, None);
        assert!(d.is_keyframe);
    }

    #[test]
    fn seven_bit_picture_id_and_keyidx() {
        // X=1, N=1, S=0, PID=3 ; I and K ; M=0 PictureID=0x7F ; KEYIDX=0x15
        let p = [0xA3, 0x90, 0x7F, 0x15, 0x00];
        let d = parse(&p).unwrap();
        assert_eq!(d.header_len, 4);
        assert_eq!(d.picture_id, Some(0x7F));
        assert!(!d.picture_id_15bit);
        assert_eq!(d.tid, None, "T=0: the TID bits are not a temporal id");
        assert!(!d.layer_sync);
        assert_eq!(d.keyidx, Some(0x15));
        assert!(!d.start_of_partition);
        assert_eq!(d.partition_id, 3);
        assert!(!d.is_keyframe);
    }

    #[test]
    fn tid_two_without_sync() {
        // X=1, S=1; T only; TID=2, Y=0, KEYIDX bits set but K=0.
        let d = parse(&[0x90, 0x20, 0x9F, 0x51]).unwrap();
        assert_eq!(d.tid, Some(2));
        assert!(!d.layer_sync);
        assert_eq!(d.keyidx, None);
        assert_eq!(d.header_len, 3);
        // The bitstream byte 0x51 has P=1: an inter frame.
        assert!(!d.is_keyframe);
    }

    #[test]
    fn not_keyframe_cases() {
        // Inter frame: P=1.
        assert!(!is_keyframe_start(&[0x10, 0x51]));
        // Key frame bitstream byte but not the start of a partition.
        assert!(!is_keyframe_start(&[0x00, 0x50]));
        // Start of partition 1, not of the frame.
        assert!(!is_keyframe_start(&[0x11, 0x50]));
        // Descriptor only, no VP8 data.
        let d = parse(&[0x10]).unwrap();
        assert!(!d.is_keyframe);
        assert_eq!(d.header_len, 1);
    }

    #[test]
    fn truncated_descriptors_are_rejected() {
        assert_eq!(parse(&[]), None);
        for len in 1..6 {
            // Every prefix shorter than the descriptor is invalid (except the
            // ones that are the descriptor itself).
            assert_eq!(parse(&KEY[..len]), None, "prefix of {len} bytes");
        }
        assert!(parse(&KEY[..6]).is_some());
        // X=1 with K only but no T/K byte.
        assert_eq!(parse(&[0x80, 0x10]), None);
        // I with M=1 but missing the low PictureID byte.
        assert_eq!(parse(&[0x80, 0x80, 0x80]), None);
    }

    #[test]
    fn rewrite_fifteen_bit_in_place() {
        let mut p = KEY;
        let d = parse(&p).unwrap();
        rewrite(&mut p, &d, 0x7FFF, 0xAB);
        let d2 = parse(&p).unwrap();
        assert_eq!(d2.picture_id, Some(0x7FFF));
        assert_eq!(d2.tl0picidx, Some(0xAB));
        assert_eq!(d2.tid, Some(0));
        assert!(d2.layer_sync);
        assert!(d2.is_keyframe);
        // Everything else untouched.
        assert_eq!(p[0..2], KEY[0..2]);
        assert_eq!(p[5..], KEY[5..]);
        // The 16th bit of picture_id never leaks into the M bit position.
        rewrite(&mut p, &d, 0x8001, 0);
        assert_eq!(parse(&p).unwrap().picture_id, Some(0x0001));
        assert_eq!(p[2], 0x80);
    }

    #[test]
    fn rewrite_seven_bit_keeps_width() {
        // X=1 S=1; I and L; M=0 PictureID 5; TL0PICIDX 9; data.
        let mut p = [0x90, 0xC0, 0x05, 0x09, 0x50];
        let d = parse(&p).unwrap();
        rewrite(&mut p, &d, 0x1234, 200);
        let d2 = parse(&p).unwrap();
        assert!(!d2.picture_id_15bit);
        assert_eq!(d2.picture_id, Some(0x34));
        assert_eq!(d2.tl0picidx, Some(200));
        assert_eq!(d2.header_len, 4);
        assert_eq!(p[4], 0x50);
    }

    #[test]
    fn rewrite_leaves_absent_fields_alone() {
        // Only TL0PICIDX present.
        let mut p = [0x90, 0x40, 0x07, 0x50];
        let d = parse(&p).unwrap();
        rewrite(&mut p, &d, 0x1234, 0x08);
        assert_eq!(p, [0x90, 0x40, 0x08, 0x50]);

        // Only PictureID present.
        let mut p = [0x90, 0x80, 0x07, 0x50];
        let d = parse(&p).unwrap();
        rewrite(&mut p, &d, 0x11, 0xEE);
        assert_eq!(p, [0x90, 0x80, 0x11, 0x50]);

        // No X byte at all: nothing to write.
        let mut p = [0x10, 0x50];
        let d = parse(&p).unwrap();
        rewrite(&mut p, &d, 0x11, 0xEE);
        assert_eq!(p, [0x10, 0x50]);
    }

    #[test]
    fn rewrite_with_mismatched_descriptor_does_not_panic() {
        let d = parse(&KEY).unwrap();
        let mut short = [0x90, 0xE0, 0x92];
        rewrite(&mut short, &d, 1, 2);
        assert_eq!(short, [0x90, 0xE0, 0x92]);
        let mut empty: [u8; 0] = [];
        rewrite(&mut empty, &d, 1, 2);
        let bogus = Vp8Descriptor {
            header_len: 0,
            picture_id: Some(1),
            picture_id_15bit: true,
            tl0picidx: Some(1),
            ..Vp8Descriptor::default()
        };
        let mut p = [0u8; 3];
        rewrite(&mut p, &bogus, 0x7FFF, 7);
        let mut p = [0u8; 1];
        rewrite(&mut p, &bogus, 0x7FFF, 7);
    }

    #[test]
    fn garbage_never_panics_and_header_fits() {
        let mut state: u32 = 0xDEAD_BEEF;
        let mut buf = [0u8; 12];
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
                assert!(d.header_len <= 6);
                let mut copy = buf;
                rewrite(&mut copy[..len], &d, state as u16, state as u8);
                // Rewriting never changes the layout.
                let d2 = parse(&copy[..len]).unwrap();
                assert_eq!(d2.header_len, d.header_len);
                assert_eq!(d2.tid, d.tid);
                assert_eq!(d2.is_keyframe, d.is_keyframe);
            }
        }
    }
}
