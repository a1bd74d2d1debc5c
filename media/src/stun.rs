//! Just enough STUN (RFC 8489) to route a datagram to its peer.
//!
//! All peers of a worker share one UDP socket. The first packet from a new
//! remote address is a STUN binding request whose USERNAME is
//! `<our ufrag>:<their ufrag>`; our ufrag is unique per session, so it names
//! the peer. Later packets from that address are routed by address.

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// True when the datagram looks like STUN (RFC 7983 demultiplexing: first
/// byte 0..=3, and the magic cookie in place).
pub fn is_stun(buf: &[u8]) -> bool {
    buf.len() >= 20 && buf[0] < 4 && buf[4..8] == MAGIC_COOKIE
}

/// Our ufrag from a STUN message's USERNAME attribute (the part before ':').
pub fn local_ufrag(buf: &[u8]) -> Option<&str> {
    if !is_stun(buf) {
        return None;
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let end = (20 + len).min(buf.len());
    let mut at = 20;
    while at + 4 <= end {
        let typ = u16::from_be_bytes([buf[at], buf[at + 1]]);
        let alen = u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize;
        let vstart = at + 4;
        if vstart + alen > end {
            return None;
        }
        if typ == ATTR_USERNAME {
            let user = std::str::from_utf8(&buf[vstart..vstart + alen]).ok()?;
            return Some(user.split(':').next().unwrap_or(user));
        }
        at = vstart + ((alen + 3) & !3);
    }
    None
}

/// A STUN binding request carrying `username` (no integrity): enough for
/// routing tests.
#[cfg(test)]
pub(crate) fn binding_request(username: &str) -> Vec<u8> {
    tests::binding_request(username)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        // A PRIORITY attribute after it, to check we walk attributes.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7u8; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn finds_our_ufrag() {
        let m = binding_request("abcd1234:xyz");
        assert!(is_stun(&m));
        assert_eq!(local_ufrag(&m), Some("abcd1234"));
    }

    #[test]
    fn rejects_non_stun_and_truncated() {
        assert!(!is_stun(&[0x80; 40])); // RTP
        assert_eq!(local_ufrag(&[0u8; 10]), None);
        let mut m = binding_request("abcd1234:xyz");
        m.truncate(26); // attribute header promises more than is there
        assert_eq!(local_ufrag(&m), None);
    }
}
