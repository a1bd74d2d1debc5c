//! WHIP (RFC 9725): publish a stream.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use onair_media::{Role, SessionId};

use crate::sdpfrag::{parse_fragment, read_body};
use crate::{ApiError, Client, Signaling};

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

fn stream_key(client: &Client) -> Result<&str, ApiError> {
    client
        .bearer
        .as_deref()
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "missing_stream_key", "send the stream key as 'Authorization: Bearer <key>'"))
}

/// `POST /whip`: a publisher's offer.
pub async fn create(State(state): State<Signaling>, client: Client, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let key = stream_key(&client)?;
    let offer = read_body(&headers, body, "application/sdp").await?;
    let stream = state.platform.authorize_publish(key, &client).await?;
    match state.sfu.publish(&stream, &offer).await {
        Ok(answer) => Ok(created(&state, format!("/whip/{}", answer.session), answer.sdp, &[("x-onair-stream", stream)])),
        Err(e) => {
            state.platform.publish_failed(&stream).await;
            Err(e.into())
        }
    }
}

/// A session id from the path that must belong to `role` (and, for WHEP, to
/// the stream the path names).
pub(crate) async fn session_of(state: &Signaling, raw: &str, role: Role, stream: Option<&str>) -> Result<SessionId, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "session_not_found", format!("no session '{raw}'"));
    let id: SessionId = raw.parse().map_err(|_| not_found())?;
    let (r, s) = state.sfu.session(id).ok_or_else(not_found)?;
    if r != role {
        return Err(not_found());
    }
    if let Some(path) = stream {
        if path != s && state.platform.resolve(path).await.as_deref() != Some(s.as_str()) {
            return Err(not_found());
        }
    }
    Ok(id)
}

/// `DELETE /whip/{session}`: stop publishing.
pub async fn delete(State(state): State<Signaling>, Path(session): Path<String>) -> Result<StatusCode, ApiError> {
    let id = session_of(&state, &session, Role::Publisher, None).await?;
    state.sfu.close(id).await?;
    Ok(StatusCode::OK)
}

/// `PATCH /whip/{session}`: trickled candidates.
pub async fn patch(State(state): State<Signaling>, Path(session): Path<String>, headers: HeaderMap, body: Body) -> Result<StatusCode, ApiError> {
    let id = session_of(&state, &session, Role::Publisher, None).await?;
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
