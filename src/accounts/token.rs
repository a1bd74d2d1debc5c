//! Access tokens: JWT (RFC 7519) signed with HMAC-SHA256 under a server
//! secret. Written over `ring` (already in the tree for SRTP and key hashes)
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

/// Signs and checks tokens.
#[derive(Clone)]
pub struct TokenKey {
    key: hmac::Key,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl TokenKey {
    /// A key from the server secret (32+ random bytes).
    pub fn new(secret: &[u8]) -> Self {
        TokenKey { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    /// `header.claims.signature`.
    pub fn sign(&self, claims: &Claims) -> String {
        let body = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{}.{}", B64.encode(HEADER), B64.encode(body));
        let tag = hmac::sign(&self.key, signing_input.as_bytes());
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
        hmac::verify(&self.key, &token.as_bytes()[..h.len() + 1 + c.len()], &sig).map_err(|_| "bad token signature")?;
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

    #[test]
    fn signs_and_verifies() {
        let k = TokenKey::new(b"0123456789abcdef0123456789abcdef");
        let t = k.sign(&claims(200));
        assert_eq!(k.verify(&t, 150).unwrap(), claims(200));
        assert_eq!(k.verify(&t, 200), Err("token expired"));
        let other = TokenKey::new(b"another secret, another server..");
        assert_eq!(other.verify(&t, 150), Err("bad token signature"));
    }

    #[test]
    fn rejects_tampering_and_alg_none() {
        let k = TokenKey::new(b"0123456789abcdef0123456789abcdef");
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
