//! AV1 RTP payload inspection (AOMedia "RTP Payload Format for AV1",
//! section 4.4 aggregation header, section 4.3 OBU elements).
//!
//! Every AV1 RTP payload starts with a one-byte aggregation header:
//!
//! ```text
//!  0 1 2 3 4 5 6 7
//! +-+-+-+-+-+-+-+-+
//! |Z|Y| W |N|-|-|-|
//! +-+-+-+-+-+-+-+-+
//! ```
//!
//! * Z: the first OBU element continues an OBU fragment from the previous packet;
//! * Y: the last OBU element continues in the next packet;
//! * W: number of OBU elements (0 = each element carries a LEB128 length;
//!   1..=3 = all but the last one carry a length, the last fills the packet);
//! * N: this packet is the first packet of a coded video sequence.
//!
//! A coded video sequence starts with a key frame (and its sequence header),
//! so the keyframe start a viewer can switch at is N=1 with Z=0.

const Z_BIT: u8 = 0x80;
const Y_BIT: u8 = 0x40;
const W_MASK: u8 = 0x30;
const N_BIT: u8 = 0x08;

/// OBU type: sequence header.
pub const OBU_SEQUENCE_HEADER: u8 = 1;
/// OBU type: temporal delimiter (should not be sent over RTP).
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;
/// OBU type: frame header.
pub const OBU_FRAME_HEADER: u8 = 3;
/// OBU type: tile group.
pub const OBU_TILE_GROUP: u8 = 4;
/// OBU type: metadata.
pub const OBU_METADATA: u8 = 5;
/// OBU type: frame (frame header + tile group).
pub const OBU_FRAME: u8 = 6;

/// The AV1 aggregation header of one RTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Av1AggregationHeader {
    /// Z: the first OBU element is the continuation of a fragment.
    pub continues_previous: bool,
    /// Y: the last OBU element continues in the next packet.
    pub continues_next: bool,
    /// W: the number of OBU elements, or 0 when each carries a length.
    pub obu_count: u8,
    /// N: first packet of a coded video sequence.
    pub new_sequence: bool,
}

impl Av1AggregationHeader {
    /// Decodes the aggregation header byte.
    pub fn from_byte(b: u8) -> Self {
        Av1AggregationHeader {
            continues_previous: b & Z_BIT != 0,
            continues_next: b & Y_BIT != 0,
            obu_count: (b & W_MASK) >> 4,
            new_sequence: b & N_BIT != 0,
        }
    }
}

/// Parses the aggregation header; `None` for an empty payload.
pub fn parse(payload: &[u8]) -> Option<Av1AggregationHeader> {
    payload.first().map(|&b| Av1AggregationHeader::from_byte(b))
}

/// True when `payload` is the first packet of a new coded video sequence
/// (N=1) and does not start with the tail of an earlier OBU (Z=0).
pub fn is_keyframe_start(payload: &[u8]) -> bool {
    parse(payload).is_some_and(|h| h.new_sequence && !h.continues_previous)
}

/// The OBU elements of `payload` (each one a whole OBU, or a fragment when
/// it is the first with Z=1 or the last with Y=1), without allocating.
/// Iteration stops at the first malformed element (bad LEB128, length past
/// the end of the packet, or an empty element).
pub fn obu_elements(payload: &[u8]) -> ObuElements<'_> {
    match payload.split_first() {
        Some((&b, rest)) => ObuElements {
            rest,
            remaining: Av1AggregationHeader::from_byte(b).obu_count,
        },
        None => ObuElements {
            rest: &[],
            remaining: 0,
        },
    }
}

/// The OBU type (`obu_type`, 4 bits) from the OBU header at the start of an
/// element. Meaningless for an element that continues a fragment.
pub fn obu_type(element: &[u8]) -> Option<u8> {
    element.first().map(|b| (b >> 3) & 0x0F)
}

/// The type of the first OBU of `payload`, or `None` when the packet starts
/// with a fragment continuation (Z=1) or holds no valid element.
pub fn first_obu_type(payload: &[u8]) -> Option<u8> {
    if parse(payload)?.continues_previous {
        return None;
    }
    obu_type(obu_elements(payload).next()?)
}

/// Iterator returned by [`obu_elements`].
#[derive(Clone, Debug)]
pub struct ObuElements<'a> {
    rest: &'a [u8],
    /// W from the aggregation header, counting down; 0 = length-prefixed
    /// elements until the packet ends.
    remaining: u8,
}

impl<'a> Iterator for ObuElements<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let element = if self.remaining == 1 {
            // The last of W elements has no length field.
            std::mem::take(&mut self.rest)
        } else {
            let parsed = read_leb128(self.rest).and_then(|(len, used)| {
                let len = usize::try_from(len).ok()?;
                let end = used.checked_add(len)?;
                (len > 0 && end <= self.rest.len()).then_some((used, end))
            });
            let Some((start, end)) = parsed else {
                self.rest = &[];
                return None;
            };
            let element = &self.rest[start..end];
            self.rest = &self.rest[end..];
            element
        };
        self.remaining = self.remaining.saturating_sub(1);
        Some(element)
    }
}

/// Reads an unsigned LEB128 value (at most 8 bytes, as AV1 allows).
/// Returns the value and the number of bytes it took.
fn read_leb128(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().take(8).enumerate() {
        value |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(p: &[u8]) -> Vec<&[u8]> {
        obu_elements(p).collect()
    }

    /// First packet of a key frame as libwebrtc sends it: W=2, N=1;
    /// a sequence header OBU (type 1, header 0x08) with a length prefix,
    /// then a frame OBU (type 6, header 0x30) filling the rest.
    const KEY: [u8; 10] = [0x28, 0x04, 0x08, 0x00, 0x00, 0x00, 0x30, 0x10, 0x00, 0x00];

    #[test]
    fn keyframe_start() {
        let h = parse(&KEY).unwrap();
        assert!(h.new_sequence);
        assert!(!h.continues_previous);
        assert!(!h.continues_next);
        assert_eq!(h.obu_count, 2);
        assert!(is_keyframe_start(&KEY));
        assert_eq!(first_obu_type(&KEY), Some(OBU_SEQUENCE_HEADER));
        let els = collect(&KEY);
        assert_eq!(els.len(), 2);
        assert_eq!(els[0], &[0x08, 0x00, 0x00, 0x00][..]);
        assert_eq!(obu_type(els[1]), Some(OBU_FRAME));
    }

    #[test]
    fn not_keyframe_start() {
        // N=1 but Z=1: cannot be the first packet of the sequence.
        assert!(!is_keyframe_start(&[0x88, 0x30, 0x00]));
        assert_eq!(first_obu_type(&[0x88, 0x30, 0x00]), None);
        // Ordinary delta frame packet: W=1, a frame OBU.
        assert!(!is_keyframe_start(&[0x10, 0x30, 0x00]));
        // Middle fragment: Z=1 Y=1 W=1.
        assert!(!is_keyframe_start(&[0xD0, 0x12, 0x34]));
        assert!(!is_keyframe_start(&[]));
        // Aggregation header alone with N=1: still a keyframe start by the
        // header (the caller gets the payload as sent).
        assert!(is_keyframe_start(&[0x08]));
    }

    #[test]
    fn w_zero_length_prefixed_elements() {
        // W=0: every element has a length, including the last.
        let p = [0x00, 0x02, 0x30, 0xAA, 0x01, 0x28, 0x03, 0x08, 0x01, 0x02];
        let els = collect(&p);
        assert_eq!(
            els,
            vec![&[0x30, 0xAA][..], &[0x28][..], &[0x08, 0x01, 0x02][..]]
        );
        assert_eq!(obu_type(els[1]), Some(OBU_METADATA));
        // Length running past the end stops the walk.
        let p = [0x00, 0x01, 0x30, 0x05, 0x08];
        assert_eq!(collect(&p), vec![&[0x30][..]]);
    }

    #[test]
    fn multi_byte_leb128_length() {
        // A 200-byte element: length 200 = 0xC8 0x01 in LEB128.
        let mut p = [0u8; 1 + 2 + 200 + 2];
        p[0] = 0x20; // W=2
        p[1] = 0xC8;
        p[2] = 0x01;
        p[3] = 0x30;
        p[203] = 0x18; // second element, OBU type 3
        let els = collect(&p);
        assert_eq!(els.len(), 2);
        assert_eq!(els[0].len(), 200);
        assert_eq!(els[1], &[0x18, 0x00][..]);
        assert_eq!(obu_type(els[1]), Some(OBU_FRAME_HEADER));
        assert_eq!(read_leb128(&[0xC8, 0x01]), Some((200, 2)));
        assert_eq!(read_leb128(&[0x80; 9]), None);
        assert_eq!(
            read_leb128(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
            Some((u32::MAX.into(), 5))
        );
        assert_eq!(read_leb128(&[]), None);
    }

    #[test]
    fn w_counts_are_respected() {
        // W=3: two length-prefixed elements, the last unprefixed.
        let p = [0x30, 0x01, 0x08, 0x01, 0x28, 0x30, 0x01, 0x02];
        assert_eq!(
            collect(&p),
            vec![&[0x08][..], &[0x28][..], &[0x30, 0x01, 0x02][..]]
        );
        // W=2 but the packet ends after the first element.
        assert_eq!(collect(&[0x20, 0x01, 0x08]), vec![&[0x08][..]]);
        // W=1 with nothing after the header.
        assert_eq!(collect(&[0x10]), Vec::<&[u8]>::new());
        // Zero-length prefixed element is malformed.
        assert_eq!(collect(&[0x20, 0x00, 0x08]), Vec::<&[u8]>::new());
    }

    #[test]
    fn garbage_never_panics() {
        let mut state: u32 = 0x5EED_1234;
        let mut buf = [0u8; 24];
        for round in 0..50_000 {
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *b = state as u8;
            }
            let len = round % (buf.len() + 1);
            let p = &buf[..len];
            let _ = is_keyframe_start(p);
            let _ = first_obu_type(p);
            let total: usize = obu_elements(p).map(|e| e.len()).sum();
            assert!(total <= len);
            assert!(obu_elements(p).count() <= len);
        }
    }
}
