//! WHIP (RFC 9725): publish a stream.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use onair_media::{IceServer, Requester, Role, SessionId};

use crate::sdpfrag::{parse_fragment, read_body};
use crate::{ApiError, Client, Signaling};

/// `Link` header values announcing ICE servers (RFC 9725 section 4.6).
fn ice_links(servers: &[IceServer]) -> Vec<HeaderValue> {
    let mut out = Vec::new();
    for s in servers {
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

/// The ICE servers for an authorized offer of `user` (TURN credentials included).
pub(crate) fn ice_servers_for(state: &Signaling, user: &str) -> Vec<IceServer> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    crate::turn::ice_servers_for(state.sfu.ice_servers(), state.sfu.config().turn.as_ref(), user, now)
}

/// The 201 response of WHIP and WHEP: the answer, the session URL, and the
/// ICE servers (with TURN credentials: the offer was authorized).
pub(crate) fn created(state: &Signaling, session: SessionId, location: String, sdp: String, extra: &[(&'static str, String)]) -> Response {
    let mut res = (StatusCode::CREATED, sdp).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    for link in ice_links(&ice_servers_for(state, &session.tag().to_string())) {
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

/// What a session remembers of the credential it was opened with: a
/// digest of whom it names (see [`crate::Platform::principal`]).
fn credential_digest(state: &Signaling, bearer: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, state.platform.principal(bearer).as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Who opens a session: the client's address and credential.
pub(crate) fn requester(state: &Signaling, client: &Client) -> Requester {
    Requester { ip: client.ip, owner: client.bearer.as_deref().map(|b| credential_digest(state, b)) }
}

/// `POST /whip`: a publisher's offer.
pub async fn create(State(state): State<Signaling>, client: Client, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let key = stream_key(&client)?;
    let offer = read_body(&headers, body, "application/sdp").await?;
    let target = state.platform.authorize_publish(key, &client).await?;
    let stream = target.stream.clone();
    match state.sfu.publish_host(&stream, &target.host, target.primary, &offer, requester(&state, &client)).await {
        Ok(answer) => {
            let location = format!("/whip/{}", answer.session.secret());
            Ok(created(&state, answer.session, location, answer.sdp, &[("x-onair-stream", stream)]))
        }
        Err(e) => {
            state.platform.publish_failed(&stream).await;
            Err(e.into())
        }
    }
}

/// The session a session URL names, if it has `role` (and, for WHEP, is a
/// session of the stream the path names), asked for by its owner: a session
/// opened with a bearer credential (a stream key, an access token) is
/// changed or ended only with the same one (RFC 9725 section 4.3); one
/// opened without any has its unguessable URL as its only credential.
pub(crate) async fn session_of(state: &Signaling, raw: &str, role: Role, stream: Option<&str>, client: &Client) -> Result<SessionId, ApiError> {
    let id = session_named(state, raw, role, stream).await?;
    if let Some(owner) = state.sfu.session_owner(id) {
        match client.bearer.as_deref() {
            None => return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "this session was opened with a bearer credential: send the same one")),
            // Digests of secrets: comparing them leaks nothing about the secret.
            Some(b) if credential_digest(state, b) != owner => {
                return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this session was opened with another credential"))
            }
            Some(_) => {}
        }
    }
    Ok(id)
}

/// The session a session URL names, if it has `role` (and, for WHEP, is a
/// session of the stream the path names), with no credential check: for
/// read-only routes, and [`session_of`].
pub(crate) async fn session_named(state: &Signaling, raw: &str, role: Role, stream: Option<&str>) -> Result<SessionId, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "session_not_found", "no such session");
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
pub async fn delete(State(state): State<Signaling>, Path(session): Path<String>, client: Client) -> Result<StatusCode, ApiError> {
    let id = session_of(&state, &session, Role::Publisher, None, &client).await?;
    state.sfu.close(id).await?;
    Ok(StatusCode::OK)
}

/// `PATCH /whip/{session}`: trickled candidates.
pub async fn patch(State(state): State<Signaling>, Path(session): Path<String>, client: Client, headers: HeaderMap, body: Body) -> Result<StatusCode, ApiError> {
    let id = session_of(&state, &session, Role::Publisher, None, &client).await?;
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
/// says what we accept, and the STUN servers (TURN credentials come only
/// with an authorized offer).
pub async fn options(State(state): State<Signaling>) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert("accept-post", HeaderValue::from_static("application/sdp"));
    h.insert("accept-patch", HeaderValue::from_static("application/trickle-ice-sdpfrag"));
    for link in ice_links(&crate::turn::public_ice_servers(state.sfu.ice_servers())) {
        h.append(header::LINK, link);
    }
    res
}
