//! Stream health: JSON snapshot, and a WebSocket that pushes it every second
//! and the stream's events (went live, ended, viewers, who speaks) as they
//! happen, each as `{"event": {"type": ..., ...}}`. Per-peer statistics name
//! session ids, so only the stream's host, staff or the stream key's holder
//! may see them (`Authorization: Bearer`, or `?token=` on the WebSocket).

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use onair_media::StreamHealth;

use crate::{ApiError, Client, Signaling};

fn offline(stream: &str) -> serde_json::Value {
    serde_json::json!({ "stream": stream, "live": false, "viewer_count": 0, "publisher": null, "viewers": [] })
}

/// `GET /api/streams/{stream}/health`.
pub async fn get_health(State(state): State<Signaling>, Path(path): Path<String>, client: Client) -> Result<Json<StreamHealth>, ApiError> {
    let stream = state.platform.authorize_health(&path, &client).await?;
    state
        .sfu
        .stream_health(&stream)
        .await
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "stream_not_live", format!("stream '{stream}' is not live")))
}

/// `GET /api/streams/{stream}/health/ws`.
pub async fn ws(State(state): State<Signaling>, Path(path): Path<String>, client: Client, upgrade: WebSocketUpgrade) -> Result<Response, ApiError> {
    let stream = state.platform.authorize_health(&path, &client).await?;
    // Small read buffer: tungstenite zero-fills it before every read (see src/api/ws.rs).
    Ok(upgrade.read_buffer_size(4 * 1024).on_upgrade(move |socket| push(state, stream, socket)))
}

async fn push(state: Signaling, stream: String, mut socket: WebSocket) {
    use tokio::sync::broadcast::error::RecvError;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut events = state.sfu.subscribe();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(e) if e.stream() == stream => {
                    let body = serde_json::json!({ "event": e }).to_string();
                    if socket.send(Message::Text(body.into())).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                let body = match state.sfu.stream_health(&stream).await {
                    Some(h) => serde_json::to_string(&h).unwrap_or_default(),
                    None => offline(&stream).to_string(),
                };
                if socket.send(Message::Text(body.into())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    }
}
