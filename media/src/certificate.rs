//! The process's DTLS certificate.
//!
//! WebRTC peers authenticate a DTLS certificate by the fingerprint in the
//! SDP, not by a chain, so one certificate serves every session. Making one
//! per session (what a peer connection does when given none) costs a key
//! generation per offer: a flood of offers would buy CPU on the thread that
//! builds them. One is made at start-up and replaced on a schedule, as
//! browsers do; a session keeps the certificate it was answered with.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rtc::crypto::SignatureScheme;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};

use crate::error::SfuError;
use crate::producer::lock;

/// How long one certificate is used for new sessions.
pub const ROTATE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The certificate new sessions get, and when it was made.
pub(crate) struct Certificates {
    current: Mutex<(RTCCertificate, Instant)>,
    rotate_after: Duration,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates").field("rotate_after", &self.rotate_after).finish_non_exhaustive()
    }
}

impl Certificates {
    /// Makes the first certificate.
    pub fn new(now: Instant, rotate_after: Duration) -> Result<Certificates, SfuError> {
        Ok(Certificates { current: Mutex::new((generate()?, now)), rotate_after })
    }

    /// The certificate for a session answered at `now` (a new one when the
    /// current one has served its time; made by the caller, which is never
    /// a worker thread).
    pub fn current(&self, now: Instant) -> Result<RTCCertificate, SfuError> {
        let mut cur = lock(&self.current);
        if now.saturating_duration_since(cur.1) >= self.rotate_after {
            *cur = (generate()?, now);
        }
        Ok(cur.0.clone())
    }
}

/// A self-signed ECDSA P-256 certificate, the kind browsers make for WebRTC.
fn generate() -> Result<RTCCertificate, SfuError> {
    let err = |e: &dyn std::fmt::Display| SfuError::Internal(format!("DTLS certificate: {e}"));
    let provider = rtc::crypto::default_provider().map_err(|e| err(&e))?;
    let params = CertificateParams::new(vec!["onair".to_owned()]).map_err(|e| err(&e))?;
    RTCCertificate::generate(provider.crypto(), SignatureScheme::EcdsaP256Sha256, params).map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_certificate_until_it_is_due_then_a_new_one() {
        let t0 = Instant::now();
        let certs = Certificates::new(t0, Duration::from_secs(60)).unwrap();
        let a = certs.current(t0).unwrap();
        assert!(a == certs.current(t0 + Duration::from_secs(59)).unwrap(), "the same certificate within its time");
        let b = certs.current(t0 + Duration::from_secs(60)).unwrap();
        assert!(a != b, "rotated once due");
        assert!(b == certs.current(t0 + Duration::from_secs(61)).unwrap());
    }
}
