//! VP8 RTP payload descriptor (RFC 7741 section 4.2).
//!
//! ```text
//!  X R N S R PID     first byte
//!  I L T K RSV       present if X
//!  M PictureID       present if I (M: 15-bit)
//!  TL0PICIDX         present if L
//!  TID Y KEYIDX      present if T or K
//! ```
//! After the descriptor, on the first packet of a frame (S=1, PID=0), comes
//! the VP8 frame tag whose lowest bit is 0 for a keyframe.

/// What an SFU needs from a VP8 payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// Bytes of descriptor before the VP8 payload.
    pub header_len: usize,
    /// Picture id, if present.
    pub picture_id: Option<u16>,
    /// True for a 15-bit picture id (M bit).
    pub picture_id_15bit: bool,
    /// Where the picture id starts.
    picture_id_at: usize,
    /// TL0PICIDX, if present.
    pub tl0picidx: Option<u8>,
    /// Where TL0PICIDX is.
    tl0_at: usize,
    /// Temporal layer id, if present.
    pub tid: Option<u8>,
    /// Start of a VP8 partition.
    pub start_of_partition: bool,
    /// Partition index.
    pub partition_id: u8,
    /// First packet of a keyframe.
    pub is_keyframe: bool,
}

/// Parses the descriptor; `None` when the packet is too short for what it claims.
pub fn parse(p: &[u8]) -> Option<Vp8Descriptor> {
    let b0 = *p.first()?;
    let mut at = 1;
    let (mut picture_id, mut fifteen, mut picture_id_at, mut tl0, mut tl0_at, mut tid) = (None, false, 0, None, 0, None);
    if b0 & 0x80 != 0 {
        let x = *p.get(at)?;
        at += 1;
        if x & 0x80 != 0 {
            let m = *p.get(at)?;
            picture_id_at = at;
            if m & 0x80 != 0 {
                picture_id = Some((u16::from(m & 0x7f) << 8) | u16::from(*p.get(at + 1)?));
                fifteen = true;
                at += 2;
            } else {
                picture_id = Some(u16::from(m));
                at += 1;
            }
        }
        if x & 0x40 != 0 {
            tl0 = Some(*p.get(at)?);
            tl0_at = at;
            at += 1;
        }
        if x & 0x30 != 0 {
            let t = *p.get(at)?;
            if x & 0x20 != 0 {
                tid = Some(t >> 6);
            }
            at += 1;
        }
    }
    let start_of_partition = b0 & 0x10 != 0;
    let partition_id = b0 & 0x0f;
    let is_keyframe = start_of_partition && partition_id == 0 && p.get(at).is_some_and(|tag| tag & 0x01 == 0);
    Some(Vp8Descriptor {
        header_len: at,
        picture_id,
        picture_id_15bit: fifteen,
        picture_id_at,
        tl0picidx: tl0,
        tl0_at,
        tid,
        start_of_partition,
        partition_id,
        is_keyframe,
    })
}

/// Writes a new picture id and TL0PICIDX into the fields `d` found in `p`
/// (same widths; absent fields are left alone).
pub fn rewrite(p: &mut [u8], d: &Vp8Descriptor, picture_id: u16, tl0picidx: u8) {
    if d.picture_id.is_some() {
        if d.picture_id_15bit {
            if let Some(s) = p.get_mut(d.picture_id_at..d.picture_id_at + 2) {
                s[0] = 0x80 | ((picture_id >> 8) as u8 & 0x7f);
                s[1] = picture_id as u8;
            }
        } else if let Some(b) = p.get_mut(d.picture_id_at) {
            *b = picture_id as u8 & 0x7f;
        }
    }
    if d.tl0picidx.is_some() {
        if let Some(b) = p.get_mut(d.tl0_at) {
            *b = tl0picidx;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_15_bit_picture_id_and_tl0() {
        // X S | I L T | M pid=0x1234 | tl0=9 | tid=2,Y | keyframe tag
        let p = [0x90, 0xE0, 0x92, 0x34, 0x09, 0x80, 0x10, 0x02, 0x00];
        let d = parse(&p).unwrap();
        assert_eq!(d.picture_id, Some(0x1234));
        assert!(d.picture_id_15bit);
        assert_eq!(d.tl0picidx, Some(9));
        assert_eq!(d.tid, Some(2));
        assert_eq!(d.header_len, 6);
        assert!(d.is_keyframe);
    }

    #[test]
    fn delta_frames_and_continuations_are_not_keyframes() {
        assert!(!parse(&[0x90, 0x80, 0x05, 0x01]).unwrap().is_keyframe); // P bit set
        assert!(!parse(&[0x80, 0x80, 0x05, 0x00]).unwrap().is_keyframe); // S=0
        assert!(parse(&[0x10, 0x00]).unwrap().is_keyframe); // minimal descriptor
        assert!(parse(&[0x90, 0x80, 0x80]).is_none()); // 15-bit id cut short
        assert!(parse(&[]).is_none());
    }

    #[test]
    fn rewrites_in_place() {
        let mut p = [0x90, 0xC0, 0x92, 0x34, 0x09, 0x10];
        let d = parse(&p).unwrap();
        rewrite(&mut p, &d, 0x7fff, 200);
        let d2 = parse(&p).unwrap();
        assert_eq!(d2.picture_id, Some(0x7fff));
        assert_eq!(d2.tl0picidx, Some(200));
        assert!(d2.is_keyframe, "payload untouched");
        // 7-bit id keeps 7 bits.
        let mut p = [0x90, 0x80, 0x05, 0x10];
        let d = parse(&p).unwrap();
        rewrite(&mut p, &d, 0x1ff, 0);
        assert_eq!(parse(&p).unwrap().picture_id, Some(0x7f));
        // TL0PICIDX without a picture id.
        let mut p = [0x90, 0x40, 0x07, 0x10];
        let d = parse(&p).unwrap();
        rewrite(&mut p, &d, 1, 42);
        assert_eq!(parse(&p).unwrap().tl0picidx, Some(42));
    }
}
