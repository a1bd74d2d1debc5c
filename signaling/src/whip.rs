//! WHIP (RFC 9725): publish a stream.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use onair_media::{Role, SessionId};

use crate::sdpfrag::{parse_fragment, read_body};
use crate::{ApiError, Signaling};

/// `Link` header values announcing the ICE servers (RFC 9725 section 4.6).
pub(crate) fn ice_links(state: &Signaling) -> Vec<HeaderValue> {
    let mut out = Vec::new();
    for s in state.sfu.ice_servers() {
        for url in &s.urls {
            let mut v = format!("<{url}>; rel=\"ice-server\"");
            if let (Some(u), Some(c)) = (&s.username, &s.credential) {
                v.push_str(&format!("; username=\"{u}\"; credential=\"{c}\"; credential-type=\"password\""));
            }
            if let Ok(h) = HeaderValue::from_str(&v) {
                out.push(h);
            }
        }
    }
    out
}

/// The 201 response of WHIP and WHEP.
pub(crate) fn created(state: &Signaling, location: String, sdp: String, extra: &[(&'static str, String)]) -> Response {
    let mut res = (StatusCode::CREATED, sdp).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    for link in ice_links(state) {
        h.append(header::LINK, link);
    }
    for (name, value) in extra {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(*name, v);
        }
    }
    res
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let raw = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "missing_stream_key", "send the stream key as 'Authorization: Bearer <key>'"))?;
    let raw = raw.to_str().unwrap_or("");
    let key = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "missing_stream_key", "the Authorization header must be 'Bearer <stream key>'"))?;
    Ok(key)
}

/// `POST /whip`: a publisher's offer.
pub async fn create(State(state): State<Signaling>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let key = bearer(&headers)?;
    let stream = state
        .keys
        .stream_for_key(key)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "key_store_unavailable", e))?
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_stream_key", "this stream key is unknown or was revoked"))?;
    let offer = read_body(&headers, body, "application/sdp").await?;
    let answer = state.sfu.publish(&stream, &offer).await?;
    Ok(created(&state, format!("/whip/{}", answer.session), answer.sdp, &[("x-onair-stream", stream)]))
}

/// A session id from the path that must belong to `role` (and `stream`, for WHEP).
pub(crate) fn session_of(state: &Signaling, raw: &str, role: Role, stream: Option<&str>) -> Result<SessionId, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "session_not_found", format!("no session '{raw}'"));
    let id: SessionId = raw.parse().map_err(|_| not_found())?;
    let (r, s) = state.sfu.session(id).ok_or_else(not_found)?;
    if r != role || stream.is_some_and(|want| want != s) {
        return Err(not_found());
    }
    Ok(id)
}

/// `DELETE /whip/{session}`: stop publishing.
pub async fn delete(State(state): State<Signaling>, Path(session): Path<String>) -> Result<StatusCode, ApiError> {
    let id = session_of(&state, &session, Role::Publisher, None)?;
    state.sfu.close(id).await?;
    Ok(StatusCode::OK)
}

/// `PATCH /whip/{session}`: trickled candidates.
pub async fn patch(State(state): State<Signaling>, Path(session): Path<String>, headers: HeaderMap, body: Body) -> Result<StatusCode, ApiError> {
    let id = session_of(&state, &session, Role::Publisher, None)?;
    trickle(&state, id, &headers, body).await
}

pub(crate) async fn trickle(state: &Signaling, id: SessionId, headers: &HeaderMap, body: Body) -> Result<StatusCode, ApiError> {
    let frag = read_body(headers, body, "application/trickle-ice-sdpfrag").await?;
    let frag = parse_fragment(&frag);
    for c in frag.candidates {
        state.sfu.add_candidate(id, c).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `OPTIONS`: CORS preflight is answered by the CORS layer; a plain OPTIONS
/// gets the ICE servers (RFC 9725 section 4.6) and what we accept.
pub async fn options(State(state): State<Signaling>) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert("accept-post", HeaderValue::from_static("application/sdp"));
    h.insert("accept-patch", HeaderValue::from_static("application/trickle-ice-sdpfrag"));
    for link in ice_links(&state) {
        h.append(header::LINK, link);
    }
    res
}
