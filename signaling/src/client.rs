//! Who is asking: the client's address, user agent, credentials and viewer
//! key, read once from a request for the platform's decisions.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Extensions, HeaderMap, Uri};

/// Header a page sends with its viewer key (one per browser), so that its
/// WebRTC session and its open page count as one viewer.
pub const VIEWER_HEADER: &str = "x-onair-viewer";
/// Header a load-test client may send instead of saying so in its User-Agent.
pub const LOAD_TEST_HEADER: &str = "x-onair-load-test";

/// The requesting client.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// Peer address (no proxy headers are trusted).
    pub ip: Option<IpAddr>,
    /// `User-Agent`, at most 512 bytes.
    pub user_agent: String,
    /// `Authorization: Bearer ...`, or a `token` query parameter (browsers
    /// cannot set headers on a WebSocket).
    pub bearer: Option<String>,
    /// The page's viewer key (header or `viewer` query parameter).
    pub viewer_key: Option<String>,
    /// A load-test client (its User-Agent starts `onair-bench/` or says `(load test)`, or the header
    /// is set): recorded, never counted in public figures.
    pub load_test: bool,
}

impl Client {
    /// Reads a client from request headers, query and peer address.
    pub fn from_parts_sync(headers: &HeaderMap, query: Option<&str>, peer: Option<SocketAddr>) -> Client {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty());
        let mut user_agent = text(header::USER_AGENT.as_str()).unwrap_or("").to_owned();
        user_agent.truncate(floor_char_boundary(&user_agent, 512));
        let bearer = text(header::AUTHORIZATION.as_str())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .or_else(|| query_param(query, "token"));
        let viewer_key = text(VIEWER_HEADER).map(str::to_owned).or_else(|| query_param(query, "viewer")).filter(|k| valid_viewer_key(k));
        // The harness says `onair-bench/<version> (load test)`; any `onair-bench/` client is one.
        let load_test = user_agent.starts_with("onair-bench/") || user_agent.contains("(load test)") || text(LOAD_TEST_HEADER).is_some_and(|v| v != "0");
        Client { ip: peer.map(|a| a.ip()), user_agent, bearer, viewer_key, load_test }
    }
}

/// Viewer keys are the page's own random ids: 8-64 of `[A-Za-z0-9_-]`.
pub fn valid_viewer_key(k: &str) -> bool {
    (8..=64).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    (0..=max).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0)
}

/// One percent-decoded query parameter.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v)).filter(|v| !v.is_empty())
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Client {
    /// Reads a client from a request's head (the peer address comes from
    /// axum's `ConnectInfo`, when the server was started with it).
    pub fn of_request(headers: &HeaderMap, uri: &Uri, extensions: &Extensions) -> Client {
        let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        Client::from_parts_sync(headers, uri.query(), peer)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Client::of_request(&parts.headers, &parts.uri, &parts.extensions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn reads_bearer_viewer_and_load_test() {
        let mut h = HeaderMap::new();
        h.insert(header::USER_AGENT, HeaderValue::from_static("onair-bench/0.1.0 (load test)"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc.def"));
        h.insert(VIEWER_HEADER, HeaderValue::from_static("v_12345678"));
        let c = Client::from_parts_sync(&h, None, Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(c.bearer.as_deref(), Some("abc.def"));
        assert_eq!(c.viewer_key.as_deref(), Some("v_12345678"));
        assert!(c.load_test);
        assert_eq!(c.ip, Some("127.0.0.1".parse().unwrap()));

        let c = Client::from_parts_sync(&HeaderMap::new(), Some("a=1&token=x%2By%3D&viewer=short"), None);
        assert_eq!(c.bearer.as_deref(), Some("x+y="));
        assert_eq!(c.viewer_key, None, "too short a viewer key is ignored");
        assert!(!c.load_test);

        for (ua, load) in [("onair-bench/1.0", true), ("Mozilla/5.0 (X11) onair-bench/1.0", false), ("curl/8 (load test)", true)] {
            let mut h = HeaderMap::new();
            h.insert(header::USER_AGENT, HeaderValue::from_static(ua));
            assert_eq!(Client::from_parts_sync(&h, None, None).load_test, load, "{ua}");
        }
    }

    #[test]
    fn percent_decoding_tolerates_garbage() {
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
        assert_eq!(percent_decode("%"), "%");
    }
}
