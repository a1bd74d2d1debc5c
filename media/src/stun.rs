//! Just enough STUN (RFC 8489) to route a datagram to its peer.
//!
//! All peers of a worker share one UDP socket. The first packet from a new
//! remote address is a STUN binding request whose USERNAME is
//! `<our ufrag>:<their ufrag>`; our ufrag is unique per session, so it names
//! the peer. The ufrag is no secret (it travels in the clear), so an
//! address is routed to a peer only once a check from it carries a valid
//! MESSAGE-INTEGRITY keyed with that peer's ICE password ([`verify`]).
//! Later packets from that address are routed by address.

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
const HEADER: usize = 20;

/// A binding request's routing facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check<'a> {
    /// Our ufrag, from USERNAME.
    pub ufrag: &'a str,
    /// The transaction id (a client makes a new one for every check).
    pub transaction: [u8; 12],
}

/// A binding request's USERNAME ufrag and transaction id (no integrity check).
pub fn binding_check(buf: &[u8]) -> Option<Check<'_>> {
    if !is_stun(buf) || buf[..2] != BINDING_REQUEST {
        return None;
    }
    let ufrag = local_ufrag(buf)?;
    let mut transaction = [0u8; 12];
    transaction.copy_from_slice(&buf[8..HEADER]);
    Some(Check { ufrag, transaction })
}

/// Whether the message carries a MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489
/// section 14.5) that `password` signed: over the message before the
/// attribute, with the header's length covering the attribute itself.
pub fn verify(buf: &[u8], password: &[u8]) -> bool {
    use ring::hmac;
    let Some(at) = attribute_offset(buf, ATTR_MESSAGE_INTEGRITY) else { return false };
    let Some(tag) = buf.get(at + 4..at + 24) else { return false };
    if u16::from_be_bytes([buf[at + 2], buf[at + 3]]) != 20 {
        return false;
    }
    // What was signed: the message before the attribute, its length field
    // covering the attribute. (Checks are rare, first contacts: a copy is fine.)
    let mut signed = buf[..at].to_vec();
    signed[2..4].copy_from_slice(&((at + 24 - HEADER) as u16).to_be_bytes());
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, password);
    // `hmac::verify` compares in constant time: a byte-by-byte compare would
    // tell how much of a forged tag was right.
    hmac::verify(&key, &signed, tag).is_ok()
}

/// Where the first attribute of type `wanted` starts, if the message has one.
fn attribute_offset(buf: &[u8], wanted: u16) -> Option<usize> {
    if !is_stun(buf) {
        return None;
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let end = (HEADER + len).min(buf.len());
    let mut at = HEADER;
    while at + 4 <= end {
        let typ = u16::from_be_bytes([buf[at], buf[at + 1]]);
        let alen = u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize;
        if at + 4 + alen > end {
            return None;
        }
        if typ == wanted {
            return Some(at);
        }
        at += 4 + ((alen + 3) & !3);
    }
    None
}

/// True when the datagram looks like STUN (RFC 7983 demultiplexing: first
/// byte 0..=3, and the magic cookie in place).
pub fn is_stun(buf: &[u8]) -> bool {
    buf.len() >= 20 && buf[0] < 4 && buf[4..8] == MAGIC_COOKIE
}

/// Our ufrag from a STUN message's USERNAME attribute (the part before ':').
pub fn local_ufrag(buf: &[u8]) -> Option<&str> {
    let at = attribute_offset(buf, ATTR_USERNAME)?;
    let alen = u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize;
    let user = std::str::from_utf8(&buf[at + 4..at + 4 + alen]).ok()?;
    Some(user.split(':').next().unwrap_or(user))
}

/// A STUN binding request carrying `username`, signed with `password`
/// when given: what a client's connectivity check looks like, for tests,
/// fuzzing and the abuse benchmarks.
pub fn binding_request(username: &str, password: Option<&[u8]>, transaction: [u8; 12]) -> Vec<u8> {
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
    attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attrs.extend_from_slice(username.as_bytes());
    while attrs.len() % 4 != 0 {
        attrs.push(0);
    }
    // A PRIORITY attribute after it, as clients send.
    attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
    let mut m = BINDING_REQUEST.to_vec();
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&MAGIC_COOKIE);
    m.extend_from_slice(&transaction);
    m.extend_from_slice(&attrs);
    if let Some(pwd) = password {
        use ring::hmac;
        let covered = (m.len() + 24 - HEADER) as u16;
        m[2..4].copy_from_slice(&covered.to_be_bytes());
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, pwd), &m);
        m.extend_from_slice(&ATTR_MESSAGE_INTEGRITY.to_be_bytes());
        m.extend_from_slice(&20u16.to_be_bytes());
        m.extend_from_slice(tag.as_ref());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_ufrag() {
        let m = binding_request("abcd1234:xyz", None, [7; 12]);
        assert!(is_stun(&m));
        assert_eq!(local_ufrag(&m), Some("abcd1234"));
        assert_eq!(binding_check(&m), Some(Check { ufrag: "abcd1234", transaction: [7; 12] }));
    }

    #[test]
    fn integrity_is_checked_with_the_password() {
        let m = binding_request("abcd1234:xyz", Some(b"secretsecretsecret"), [1; 12]);
        assert!(verify(&m, b"secretsecretsecret"));
        assert!(!verify(&m, b"othersecretothersecret"), "another password");
        assert!(!verify(&binding_request("abcd1234:xyz", None, [1; 12]), b"secretsecretsecret"), "no integrity at all");
        let mut tampered = m.clone();
        tampered[30] ^= 1; // inside USERNAME
        assert!(!verify(&tampered, b"secretsecretsecret"));
        let mut truncated = m.clone();
        truncated.truncate(m.len() - 3);
        assert!(!verify(&truncated, b"secretsecretsecret"));
    }

    #[test]
    fn a_check_signed_by_the_webrtc_stack_verifies() {
        // The same bytes rtc's own STUN code produces for a short-term credential.
        use rtc::stun::message::{Message, BINDING_REQUEST as REQ};
        use rtc::stun::textattrs::TextAttribute;
        use rtc::stun::attributes::ATTR_USERNAME as USER;
        use rtc::stun::integrity::MessageIntegrity;
        let provider = rtc::crypto::default_provider().unwrap();
        let mut m = Message::new();
        m.build(&[
            Box::new(REQ),
            Box::new(rtc::stun::message::TransactionId::new()),
            Box::new(TextAttribute::new(USER, "ufragA:ufragB".into())),
            Box::new(MessageIntegrity::new_short_term_integrity_with_provider("pwdpwdpwdpwdpwdpwdpwdpwd".into(), provider.crypto())),
        ])
        .unwrap();
        assert!(verify(&m.raw, b"pwdpwdpwdpwdpwdpwdpwdpwd"));
        assert_eq!(binding_check(&m.raw).map(|c| c.ufrag), Some("ufragA"));
    }

    #[test]
    fn rejects_non_stun_and_truncated() {
        assert!(!is_stun(&[0x80; 40])); // RTP
        assert_eq!(local_ufrag(&[0u8; 10]), None);
        let mut m = binding_request("abcd1234:xyz", None, [0; 12]);
        m.truncate(26); // attribute header promises more than is there
        assert_eq!(local_ufrag(&m), None);
    }
}
