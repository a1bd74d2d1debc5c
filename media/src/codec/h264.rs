//! H.264 RTP payloads (RFC 6184): find IDR and SPS NAL units.
//!
//! A keyframe starts with an SPS (7) or an IDR slice (5), carried as a single
//! NAL unit, inside a STAP-A aggregate (24), or as the first fragment of an
//! FU-A (28).

const IDR: u8 = 5;
const SPS: u8 = 7;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

fn starts_keyframe(nal_type: u8) -> bool {
    nal_type == IDR || nal_type == SPS
}

/// True when the payload begins a keyframe.
pub fn is_keyframe_start(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    match b0 & 0x1f {
        STAP_A => {
            let mut at = 1;
            while at + 2 < p.len() {
                let size = usize::from(u16::from_be_bytes([p[at], p[at + 1]]));
                if size == 0 || at + 2 + size > p.len() {
                    return false;
                }
                if starts_keyframe(p[at + 2] & 0x1f) {
                    return true;
                }
                at += 2 + size;
            }
            false
        }
        FU_A => p.get(1).is_some_and(|fu| fu & 0x80 != 0 && starts_keyframe(fu & 0x1f)),
        t => starts_keyframe(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_nal_units() {
        assert!(is_keyframe_start(&[0x65, 0x88])); // IDR
        assert!(is_keyframe_start(&[0x67, 0x42])); // SPS
        assert!(!is_keyframe_start(&[0x41, 0x9a])); // non-IDR slice
        assert!(!is_keyframe_start(&[]));
    }

    #[test]
    fn stap_a_with_sps_pps() {
        // STAP-A: [len=2, SPS 67 42] [len=2, PPS 68 ce]
        assert!(is_keyframe_start(&[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]));
        // STAP-A of two non-IDR slices.
        assert!(!is_keyframe_start(&[0x78, 0x00, 0x02, 0x41, 0x00, 0x00, 0x02, 0x41, 0x00]));
        // Truncated aggregate.
        assert!(!is_keyframe_start(&[0x78, 0x00, 0x09, 0x67]));
    }

    #[test]
    fn fu_a_start_only() {
        assert!(is_keyframe_start(&[0x7c, 0x85, 0xaa])); // FU-A start, IDR
        assert!(!is_keyframe_start(&[0x7c, 0x05, 0xaa])); // continuation
        assert!(!is_keyframe_start(&[0x7c, 0x81, 0xaa])); // start of non-IDR
    }
}
