//! CORS for WHIP/WHEP clients on other origins (web encoders, players).
//!
//! Written out rather than taken from tower-http because a plain `OPTIONS`
//! (no `Access-Control-Request-Method`) is not a preflight: RFC 9725 clients
//! send it to discover ICE servers, and it must reach the WHIP handler.

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const EXPOSE: &str = "Location, Link, ETag, X-OnAir-Stream";
const METHODS: &str = "GET, POST, PATCH, DELETE, OPTIONS";

/// Answers preflights; adds the CORS headers to every other response.
pub async fn cors(req: Request, next: Next) -> Response {
    let preflight = req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let allow_headers = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("content-type, authorization, if-match"));
        let mut res = StatusCode::NO_CONTENT.into_response();
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        return res;
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE));
    res
}
