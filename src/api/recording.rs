//! `/api/streams/{id}/recording/*`: the host starts and stops recording a
//! live stream (every host of its room, each into its own file).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use onair_signaling::ApiError;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{id, AppState, Auth};
use super::ErrorBody;
use crate::clock::now_ms;
use crate::recording::Recorded;
use crate::streams::State as StreamState;

/// A stream's recording.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingState {
    /// Whether it is being recorded now.
    pub recording: bool,
    /// The hosts being recorded.
    pub hosts: Vec<String>,
    /// The files just finished (on stop).
    pub files: Vec<Recorded>,
}

/// Starts recording a live stream (every host publishing in it). Starting
/// again is harmless (hosts already recorded go on).
#[utoipa::path(post, path = "/api/streams/{id}/recording/start", tag = "streams", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = RecordingState), (status = 403, body = ErrorBody), (status = 409, description = "Not live, or no media yet", body = ErrorBody)))]
pub async fn start(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>) -> Result<Json<RecordingState>, ApiError> {
    let s = app.owned_stream(id(&sid, "stream")?, &who, false).await?;
    if s.state != StreamState::Live {
        return Err(ApiError::new(StatusCode::CONFLICT, "bad_state", format!("a {} stream cannot be recorded", s.state.as_str())));
    }
    let hosts = app.recordings.start(&s.media_name(), now_ms());
    if hosts.is_empty() {
        return Err(ApiError::new(StatusCode::CONFLICT, "no_media", "no host is publishing yet"));
    }
    Ok(Json(RecordingState { recording: true, hosts, files: Vec::new() }))
}

/// Stops recording a stream; its files are closed (seekable) before this answers.
#[utoipa::path(post, path = "/api/streams/{id}/recording/stop", tag = "streams", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = RecordingState), (status = 403, body = ErrorBody)))]
pub async fn stop(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>) -> Result<Json<RecordingState>, ApiError> {
    let s = app.owned_stream(id(&sid, "stream")?, &who, false).await?;
    let files = app.recordings.stop(&s.media_name()).await;
    Ok(Json(RecordingState { recording: false, hosts: Vec::new(), files }))
}
