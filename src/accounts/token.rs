//! Access tokens: JWT (RFC 7519) signed with HMAC-SHA256 under the
//! server's signing keys (see [`super::signing`]), each named by a key id. Written over `ring` (already in the tree for SRTP and key hashes)
//! rather than taken from `jsonwebtoken`, whose current releases need either
//! aws-lc (a C build) or four RustCrypto signature stacks for this one HMAC.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: i64,
    /// Login session id (logout revokes it).
    pub sid: i64,
    /// Username, for logs and pages.
    pub usr: String,
    /// Role when issued.
    pub role: String,
    /// Issued at, seconds.
    pub iat: i64,
    /// Expires at, seconds.
    pub exp: i64,
}

/// One HMAC key and its id (`kid` in the token header).
#[derive(Clone)]
struct Key {
    kid: String,
    key: hmac::Key,
}

/// Signs and checks tokens: the first key signs, every key verifies (so a
/// rotated-out key keeps its tokens valid until they expire).
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<Key>,
}

/// A key's id: derived from the secret (stable across restarts and
/// processes, and saying nothing about it).
pub fn kid_of(secret: &[u8]) -> String {
    let mut input = b"onair-jwt-kid:".to_vec();
    input.extend_from_slice(secret);
    let d = ring::digest::digest(&ring::digest::SHA256, &input);
    d.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect()
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("kids", &self.kids()).finish()
    }
}

impl KeyRing {
    /// A ring from secrets (32+ random bytes each), the signing one first.
    pub fn new<S: AsRef<[u8]>>(secrets: &[S]) -> Self {
        assert!(!secrets.is_empty(), "a key ring needs a key");
        KeyRing { keys: secrets.iter().map(|s| Key { kid: kid_of(s.as_ref()), key: hmac::Key::new(hmac::HMAC_SHA256, s.as_ref()) }).collect() }
    }

    /// The ids, the signing key's first.
    pub fn kids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.kid.clone()).collect()
    }

    /// `header.claims.signature`, the header naming the signing key.
    pub fn sign(&self, claims: &Claims) -> String {
        let key = &self.keys[0];
        let header = serde_json::json!({ "alg": "HS256", "typ": "JWT", "kid": key.kid }).to_string();
        let body = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{}.{}", B64.encode(header), B64.encode(body));
        let tag = hmac::sign(&key.key, signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(tag.as_ref()))
    }

    /// The claims of a well-signed, unexpired token (`now` in seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, &'static str> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("not a JWT");
        };
        let header: serde_json::Value = B64.decode(h).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or("bad token header")?;
        // Only our algorithm: never "none", never one the token chooses.
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err("unsupported token algorithm");
        }
        let sig = B64.decode(s).map_err(|_| "bad token signature")?;
        let signed = &token.as_bytes()[..h.len() + 1 + c.len()];
        let ok = match header.get("kid") {
            Some(kid) => {
                let key = self.keys.iter().find(|k| Some(k.kid.as_str()) == kid.as_str()).ok_or("token signed with a key that is no longer in use")?;
                hmac::verify(&key.key, signed, &sig).is_ok()
            }
            // Tokens made before keys had ids (at most one access-token lifetime ago).
            None => self.keys.iter().any(|k| hmac::verify(&k.key, signed, &sig).is_ok()),
        };
        if !ok {
            return Err("bad token signature");
        }
        let claims: Claims = B64.decode(c).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or("bad token claims")?;
        if claims.exp <= now {
            return Err("token expired");
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims { sub: 7, sid: 3, usr: "ana".into(), role: "host".into(), iat: 100, exp }
    }

    const A: &[u8] = b"0123456789abcdef0123456789abcdef";
    const B: &[u8] = b"another secret, another server..";

    #[test]
    fn signs_and_verifies() {
        let k = KeyRing::new(&[A]);
        let t = k.sign(&claims(200));
        assert_eq!(k.verify(&t, 150).unwrap(), claims(200));
        assert_eq!(k.verify(&t, 200), Err("token expired"));
        let header: serde_json::Value = serde_json::from_slice(&B64.decode(t.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["kid"], kid_of(A), "the header names the key");
        let other = KeyRing::new(&[B]);
        assert_eq!(other.verify(&t, 150), Err("token signed with a key that is no longer in use"));
    }

    #[test]
    fn a_rotated_key_verifies_its_tokens_until_it_is_dropped() {
        let before = KeyRing::new(&[A]);
        let old = before.sign(&claims(200));
        let rotated = KeyRing::new(&[B, A]);
        assert_eq!(rotated.verify(&old, 150).unwrap(), claims(200), "the old key still verifies");
        let new = rotated.sign(&claims(200));
        assert_eq!(before.verify(&new, 150), Err("token signed with a key that is no longer in use"));
        assert!(rotated.verify(&new, 150).is_ok());
        assert_eq!(rotated.kids(), vec![kid_of(B), kid_of(A)]);
        assert!(KeyRing::new(&[B]).verify(&old, 150).is_err(), "dropped: its tokens end");
        // A token from before key ids: checked against every key.
        let mut parts: Vec<String> = old.split('.').map(str::to_owned).collect();
        parts[0] = B64.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, A), format!("{}.{}", parts[0], parts[1]).as_bytes());
        parts[2] = B64.encode(tag.as_ref());
        assert_eq!(rotated.verify(&parts.join("."), 150).unwrap(), claims(200));
        assert_eq!(KeyRing::new(&[B]).verify(&parts.join("."), 150), Err("bad token signature"));
    }

    #[test]
    fn rejects_tampering_and_alg_none() {
        let k = KeyRing::new(&[A]);
        let t = k.sign(&claims(200));
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let mut c = claims(200);
        c.role = "admin".into();
        parts[1] = B64.encode(serde_json::to_vec(&c).unwrap());
        assert_eq!(k.verify(&parts.join("."), 150), Err("bad token signature"));
        parts[0] = B64.encode(r#"{"alg":"none"}"#);
        parts[2] = String::new();
        assert_eq!(k.verify(&parts.join("."), 150), Err("unsupported token algorithm"));
        assert_eq!(k.verify("a.b", 150), Err("not a JWT"));
    }
}
