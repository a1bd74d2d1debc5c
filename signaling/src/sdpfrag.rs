//! Request bodies: SDP offers and trickle-ICE fragments (RFC 8840).

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};

use crate::{ApiError, MAX_BODY_BYTES};

/// Checks the content type and reads a UTF-8 body of at most `MAX_BODY_BYTES`.
pub async fn read_body(headers: &HeaderMap, body: Body, want: &'static str) -> Result<String, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case(want) {
        let got = if ct.is_empty() { "none".to_owned() } else { format!("'{ct}'") };
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "wrong_content_type", format!("Content-Type must be {want}, got {got}")));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("body is larger than {MAX_BODY_BYTES} bytes"))
    })?;
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_sdp", "body is not UTF-8"))?;
    if text.trim().is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_sdp", "body is empty"));
    }
    Ok(text)
}

/// What a trickle-ICE fragment carries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fragment {
    /// `candidate:...` values (without `a=`).
    pub candidates: Vec<String>,
    /// `a=ice-ufrag`, present when the client restarts ICE.
    pub ufrag: Option<String>,
}

/// Parses an `application/trickle-ice-sdpfrag` body.
pub fn parse_fragment(body: &str) -> Fragment {
    let mut f = Fragment::default();
    for line in body.lines().map(str::trim) {
        if let Some(c) = line.strip_prefix("a=candidate:") {
            f.candidates.push(format!("candidate:{c}"));
        } else if let Some(u) = line.strip_prefix("a=ice-ufrag:") {
            f.ufrag = Some(u.to_owned());
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_candidates_and_restart() {
        let body = "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\na=end-of-candidates\r\n";
        let f = parse_fragment(body);
        assert_eq!(f.candidates.len(), 1);
        assert!(f.candidates[0].starts_with("candidate:1387637174 1 udp"));
        assert_eq!(f.ufrag.as_deref(), Some("EsAw"));
    }
}
