//! WHEP (draft-ietf-wish-whep): watch a stream.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use onair_media::{LayerCap, LayerState, Role};
use serde::Deserialize;

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
    let stream = state.platform.authorize_play(&path, &client).await?;
    let answer = state.sfu.play(&stream, &offer, cap, crate::whip::requester(&state, &client)).await?;
    state.platform.viewer_opened(&stream, answer.session, &client);
    let location = format!("/whep/{path}/{}", answer.session.secret());
    let layer_link = format!("<{location}/layer>; rel=\"urn:ietf:params:whep:ext:core:layer\"");
    let mut res = created(&state, answer.session, location, answer.sdp, &[]);
    if let Ok(v) = axum::http::HeaderValue::from_str(&layer_link) {
        res.headers_mut().append(axum::http::header::LINK, v);
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
