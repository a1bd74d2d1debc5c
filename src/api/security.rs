//! Rules every request and response is held to:
//!
//! - an access token travels in `Authorization: Bearer`; a `?token=` query
//!   parameter (which ends up in logs, history and `Referer`) is accepted
//!   only where browsers have no other way, opening a WebSocket;
//! - every response says `X-Content-Type-Options: nosniff` and
//!   `Referrer-Policy: same-origin`, and carries a `Content-Security-Policy`
//!   that fits the pages in `static/`: scripts, styles and fonts from this
//!   server only (no inline script or style, no `eval`), images also from
//!   any http(s) URL (stream thumbnails), media from `blob:`, fetches and
//!   WebSockets to this server only (WebRTC media is not subject to CSP),
//!   and no framing by other sites;
//! - but the studio's two vision-model frames (`static/filters/segment.html`
//!   and `face.html`, hidden iframes of the studio) may also compile
//!   WebAssembly and `eval`: MediaPipe's wasm builds make their JavaScript
//!   bindings with `new Function` (emscripten's embind). Only those two
//!   documents, whose scripts still come from this server only, and only
//!   this server may frame them.

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use onair_signaling::ApiError;

/// The policy, without the WebSocket origins (added per request's `Host`).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: https: http:; media-src 'self' blob:; \
font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// The vision-model frames' policy (see the module's comment).
const MODEL_FRAME_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; \
object-src 'none'; base-uri 'self'; form-action 'none'; frame-ancestors 'self'";

/// The documents that get [`MODEL_FRAME_CSP`].
const MODEL_FRAMES: [&str; 2] = ["/static/filters/segment.html", "/static/filters/face.html"];

/// Whether a request opens a WebSocket (HTTP/1.1 `Upgrade: websocket`, or
/// HTTP/2's extended CONNECT).
fn is_websocket(req: &Request) -> bool {
    let upgrade = req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    (req.method() == Method::GET && upgrade) || req.method() == Method::CONNECT
}

/// Whether the query string has a `token` parameter.
fn has_query_token(req: &Request) -> bool {
    req.uri().query().is_some_and(|q| q.split('&').any(|p| p.split('=').next() == Some("token")))
}

/// `connect-src`: this server, and its WebSocket URLs (not every browser
/// counts `ws:` to the same host as `'self'`).
fn connect_src(host: Option<&HeaderValue>) -> String {
    let host = host.and_then(|h| h.to_str().ok()).filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)));
    match host {
        Some(h) => format!("connect-src 'self' ws://{h} wss://{h}"),
        None => "connect-src 'self'".to_owned(),
    }
}

/// Middleware: the query-token rule, then the headers on the response.
pub async fn enforce(req: Request, next: Next) -> Response {
    if has_query_token(&req) && !is_websocket(&req) {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "token_in_query",
            "send the access token as 'Authorization: Bearer <token>'; ?token= is accepted only when opening a WebSocket",
        )
        .into_response();
    }
    let base = if MODEL_FRAMES.contains(&req.uri().path()) { MODEL_FRAME_CSP } else { CSP };
    let csp = format!("{base}; {}", connect_src(req.headers().get(header::HOST)));
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.entry(header::CONTENT_SECURITY_POLICY).or_insert(v);
    }
    h.entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("same-origin"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_origins_follow_the_host_and_refuse_odd_ones() {
        assert_eq!(connect_src(Some(&HeaderValue::from_static("example.org:8080"))), "connect-src 'self' ws://example.org:8080 wss://example.org:8080");
        assert_eq!(connect_src(Some(&HeaderValue::from_static("[::1]:80"))), "connect-src 'self' ws://[::1]:80 wss://[::1]:80");
        assert_eq!(connect_src(Some(&HeaderValue::from_static("a.org; script-src *"))), "connect-src 'self'", "no policy injection through Host");
        assert_eq!(connect_src(None), "connect-src 'self'");
    }
}
