//! WHEP (draft-ietf-wish-whep): watch a stream.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use onair_media::{Layer, LayerCap, LayerInfo, LayerState, Role, SessionId, SfuEvent};
use serde::{Deserialize, Serialize};

use crate::whip::{created, session_of, trickle};
use crate::{ApiError, Client, Signaling};

/// Query of `POST /whep/{stream}`.
#[derive(Debug, Deserialize)]
pub struct PlayQuery {
    /// `auto` (default), `q`, `h` or `f`.
    pub max_layer: Option<String>,
}

fn parse_cap(raw: Option<&str>) -> Result<LayerCap, ApiError> {
    match raw {
        None => Ok(LayerCap::Auto),
        Some(s) => LayerCap::parse(s).ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_layer", format!("max_layer must be one of auto, q, h, f; got '{s}'"))
        }),
    }
}

/// `POST /whep/{stream}`: a viewer's offer.
pub async fn create(
    State(state): State<Signaling>,
    Path(path): Path<String>,
    Query(q): Query<PlayQuery>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let cap = parse_cap(q.max_layer.as_deref())?;
    let offer = crate::sdpfrag::read_body(&headers, body, "application/sdp").await?;
    let target = state.platform.authorize_play(&path, &client).await?;
    let stream = target.stream;
    let from = crate::whip::requester(&state, &client);
    let answer = match &target.host {
        Some(host) => state.sfu.play_as_host(&stream, host, &offer, cap, from).await?,
        None => state.sfu.play(&stream, &offer, cap, from).await?,
    };
    state.platform.viewer_opened(&stream, answer.session, &client);
    let location = format!("/whep/{path}/{}", answer.session.secret());
    let layer_link = format!("<{location}/layer>; rel=\"urn:ietf:params:whep:ext:core:layer\"");
    let events_link = format!("<{location}/events>; rel=\"urn:ietf:params:whep:ext:core:server-sent-events\"; events=\"layers,room_slots\"");
    let mut res = created(&state, answer.session, location, answer.sdp, &[]);
    for link in [layer_link, events_link] {
        if let Ok(v) = axum::http::HeaderValue::from_str(&link) {
            res.headers_mut().append(axum::http::header::LINK, v);
        }
    }
    Ok(res)
}

/// `DELETE /whep/{stream}/{session}`.
pub async fn delete(State(state): State<Signaling>, Path((stream, session)): Path<(String, String)>, client: Client) -> Result<StatusCode, ApiError> {
    let id = session_of(&state, &session, Role::Viewer, Some(&stream), &client).await?;
    state.sfu.close(id).await?;
    Ok(StatusCode::OK)
}

/// `PATCH /whep/{stream}/{session}`: trickled candidates.
pub async fn patch(
    State(state): State<Signaling>,
    Path((stream, session)): Path<(String, String)>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let id = session_of(&state, &session, Role::Viewer, Some(&stream), &client).await?;
    trickle(&state, id, &headers, body).await
}

/// Body of the layer request.
#[derive(Debug, Deserialize)]
pub struct LayerRequest {
    /// `auto`, `q`, `h` or `f`.
    pub max_layer: String,
}

/// `POST /whep/{stream}/{session}/layer`: cap (or un-cap) the viewer's layer.
pub async fn layer(
    State(state): State<Signaling>,
    Path((stream, session)): Path<(String, String)>,
    client: Client,
    body: Result<Json<LayerRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<LayerState>, ApiError> {
    let id = session_of(&state, &session, Role::Viewer, Some(&stream), &client).await?;
    let Json(req) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_json", format!("expected {{\"max_layer\": \"auto|q|h|f\"}}: {e}")))?;
    let cap = parse_cap(Some(&req.max_layer))?;
    Ok(Json(state.sfu.set_layer_cap(id, cap).await?))
}

/// What a viewer's `layers` event says: the layer it receives and the
/// layers it may choose from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayersEvent {
    /// The viewer's cap (`auto`, `q`, `h` or `f`).
    pub max_layer: String,
    /// The layer forwarded to the viewer now (what its player decodes).
    pub current_layer: Option<Layer>,
    /// The layer it is moving to.
    pub target_layer: Option<Layer>,
    /// The stream's layers, low to high (one for a stream without simulcast).
    pub layers: Vec<LayerInfo>,
}

/// How often the stream's layer list is looked at again (a publisher's
/// encoder may turn a layer on or off; its size becomes known at a keyframe).
const LAYERS_EVERY: Duration = Duration::from_secs(1);

/// `GET /whep/{stream}/{session}/events`: server-sent events for one viewer
/// (as the WHEP server-sent-events extension; the 201's `Link` header
/// advertises it):
/// - `layers` at once, then whenever the layer it receives or the stream's
///   layers change;
/// - `room_slots` at once, then whenever the room moves a host into or out
///   of one of its slots: `{slots: [{slot, video_mid, audio_mid, host,
///   audio_host}]}`, so a player without the platform's WebSocket (any
///   third-party WHEP player) knows which host each of its m-lines shows.
///
/// The stream ends when the session does. Read-only, and `EventSource`
/// sends no `Authorization` header: the session URL (128 random bits) is
/// the credential here.
pub async fn events(State(state): State<Signaling>, Path((stream, session)): Path<(String, String)>) -> Result<Response, ApiError> {
    let id = crate::whip::session_named(&state, &session, Role::Viewer, Some(&stream)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<(&'static str, String)>(8);
    tokio::spawn(push_layers(state.clone(), id, tx.clone()));
    tokio::spawn(push_slots(state, id, tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        let (name, data) = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(SseEvent::default().event(name).data(data)), rx))
    });
    Ok(Sse::new(body).keep_alive(KeepAlive::default()).into_response())
}

/// What a viewer's `room_slots` event says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoomSlotsEvent {
    /// Every slot of the viewer's connection, in the order of its offer's
    /// video m-lines.
    pub slots: Vec<onair_media::SessionSlot>,
}

/// How often a viewer's room is looked at for slot changes: one atomic
/// load each time, the slots recomputed only when it moved.
const SLOTS_EVERY: Duration = Duration::from_millis(200);

async fn push_slots(state: Signaling, id: SessionId, tx: tokio::sync::mpsc::Sender<(&'static str, String)>) {
    let mut tick = tokio::time::interval(SLOTS_EVERY);
    let mut seen_version = None;
    let mut last: Option<RoomSlotsEvent> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tx.closed() => return,
        }
        let Some(version) = state.sfu.session_room_version(id) else { return };
        if seen_version == Some(version) {
            continue;
        }
        let Some((version, slots)) = state.sfu.session_slots(id) else { return };
        seen_version = Some(version);
        let now = RoomSlotsEvent { slots };
        if last.as_ref() != Some(&now) {
            if tx.send(("room_slots", serde_json::to_string(&now).unwrap_or_default())).await.is_err() {
                return;
            }
            last = Some(now);
        }
    }
}

async fn push_layers(state: Signaling, id: SessionId, tx: tokio::sync::mpsc::Sender<(&'static str, String)>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = state.sfu.subscribe();
    let mut tick = tokio::time::interval(LAYERS_EVERY);
    let me = id;
    let mut last: Option<LayersEvent> = None;
    loop {
        let Some((_, name)) = state.sfu.session(id) else { return };
        let Ok(mine) = state.sfu.viewer_layer(id).await else { return };
        let now = LayersEvent { max_layer: mine.max_layer, current_layer: mine.current_layer, target_layer: mine.target_layer, layers: state.sfu.stream_layers(&name).unwrap_or_default() };
        if last.as_ref() != Some(&now) {
            if tx.send(("layers", serde_json::to_string(&now).unwrap_or_default())).await.is_err() {
                return; // the client went away
            }
            last = Some(now);
        }
        // Until something about this viewer (or a second) passes.
        loop {
            tokio::select! {
                _ = tick.tick() => break,
                _ = tx.closed() => return,
                e = events.recv() => match e {
                    Ok(SfuEvent::LayerChanged { session, .. }) if session == me => break,
                    Ok(SfuEvent::SessionClosed { session, .. }) if session == me => return,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}
