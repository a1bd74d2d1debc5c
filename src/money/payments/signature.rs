//! Webhook signatures in Stripe's scheme.
//!
//! The header `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`
//! carries one `v1` per signing secret in use (two while a secret is being
//! rolled), each the hex HMAC-SHA256 under that secret of `"<t>.<raw
//! body>"`. A receiver accepts the request if any `v1` matches any of its
//! secrets (compared in constant time) and `t` is within the tolerance of
//! its clock, so a captured request cannot be replayed later.

use std::fmt;

/// Stripe's default tolerance, in seconds.
pub const TOLERANCE_S: i64 = 300;

/// Why a signature was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// No header, or no `t` or `v1` in it.
    Malformed,
    /// `t` is more than the tolerance away from now.
    Stale {
        /// Seconds between `t` and now.
        age: i64,
    },
    /// No `v1` matches any secret.
    Mismatch,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::Malformed => write!(f, "the Stripe-Signature header is missing or malformed (t=<unix>,v1=<hex>)"),
            SignatureError::Stale { age } => write!(f, "the signature's timestamp is {age} s away from now (tolerance {TOLERANCE_S} s)"),
            SignatureError::Mismatch => write!(f, "no v1 signature matches the webhook secret"),
        }
    }
}

fn key(secret: &str) -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes())
}

fn signed_payload(t: i64, payload: &[u8]) -> Vec<u8> {
    let mut m = format!("{t}.").into_bytes();
    m.extend_from_slice(payload);
    m
}

/// The header for `payload` sent at `t`: one `v1` per secret.
pub fn sign(secrets: &[String], t: i64, payload: &[u8]) -> String {
    let msg = signed_payload(t, payload);
    let mut header = format!("t={t}");
    for s in secrets {
        let tag = ring::hmac::sign(&key(s), &msg);
        header.push_str(",v1=");
        header.extend(tag.as_ref().iter().map(|b| format!("{b:02x}")));
    }
    header
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Verifies a `Stripe-Signature` header against the raw body, any of
/// `secrets`, and the clock (`now`, Unix seconds).
pub fn verify(header: &str, payload: &[u8], secrets: &[String], now: i64, tolerance: i64) -> Result<(), SignatureError> {
    let mut t: Option<i64> = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let Some((k, v)) = item.trim().split_once('=') else { continue };
        match k {
            "t" => t = v.parse().ok(),
            "v1" => v1.extend(unhex(v)),
            _ => {} // v0 (test mode) and future schemes are ignored, as Stripe's libraries do
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if v1.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let msg = signed_payload(t, payload);
    // ring's verify compares in constant time.
    let matched = secrets.iter().any(|s| {
        let k = key(s);
        v1.iter().any(|sig| ring::hmac::verify(&k, &msg, sig).is_ok())
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let age = now - t;
    if age.abs() > tolerance {
        return Err(SignatureError::Stale { age });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_hmac() {
        // HMAC-SHA256("whsec_test", "1700000000.{}"), computed with Python's hmac module.
        let h = sign(&["whsec_test".into()], 1_700_000_000, b"{}");
        assert_eq!(h, "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91");
    }

    #[test]
    fn verifies_rotation_tolerance_and_tampering() {
        let old = "whsec_old".to_string();
        let new = "whsec_new".to_string();
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
        let both = sign(&[new.clone(), old.clone()], 1_000, body);
        assert_eq!(both.matches("v1=").count(), 2);
        // A receiver that knows only the old secret, or only the new one, accepts.
        assert_eq!(verify(&both, body, std::slice::from_ref(&old), 1_000, TOLERANCE_S), Ok(()));
        assert_eq!(verify(&both, body, std::slice::from_ref(&new), 1_010, TOLERANCE_S), Ok(()));
        // A receiver with both secrets accepts a sender with either.
        let only_new = sign(std::slice::from_ref(&new), 1_000, body);
        assert_eq!(verify(&only_new, body, &[old.clone(), new.clone()], 1_000, TOLERANCE_S), Ok(()));
        assert_eq!(verify(&only_new, body, std::slice::from_ref(&old), 1_000, TOLERANCE_S), Err(SignatureError::Mismatch));
        assert_eq!(verify(&only_new, b"{}", std::slice::from_ref(&new), 1_000, TOLERANCE_S), Err(SignatureError::Mismatch), "the body is signed");
        assert_eq!(verify(&only_new, body, std::slice::from_ref(&new), 1_301, TOLERANCE_S), Err(SignatureError::Stale { age: 301 }));
        assert_eq!(verify(&only_new.replace("t=1000", "t=1001"), body, std::slice::from_ref(&new), 1_001, TOLERANCE_S), Err(SignatureError::Mismatch), "the time is signed");
        for bad in ["", "t=1000", "v1=00", "t=x,v1=zz"] {
            assert_eq!(verify(bad, body, std::slice::from_ref(&new), 1_000, TOLERANCE_S), Err(SignatureError::Malformed), "{bad}");
        }
    }
}
