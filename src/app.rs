//! The HTTP application: signaling routes, pages, config and metrics.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use onair_media::Sfu;
use onair_signaling::Signaling;
use tower_http::services::{ServeDir, ServeFile};

use crate::keys::KeyStore;

/// Everything the HTTP handlers need.
#[derive(Clone)]
pub struct AppState {
    /// The SFU.
    pub sfu: Sfu,
    /// Stream keys.
    pub keys: KeyStore,
}

/// Builds the router.
pub fn router(state: AppState, static_dir: PathBuf) -> Router {
    let signaling = onair_signaling::router(Signaling { sfu: state.sfu.clone(), keys: Arc::new(state.keys.clone()) });
    let pages = Router::new()
        .route_service("/publish", ServeFile::new(static_dir.join("publish.html")))
        .route_service("/watch/{stream}", ServeFile::new(static_dir.join("watch.html")))
        .nest_service("/static", ServeDir::new(&static_dir));
    let api = Router::new()
        .route("/", get(|| async { axum::response::Redirect::temporary("/publish") }))
        .route("/api/config", get(config))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(not_found)
        .with_state(state);
    signaling.merge(pages).merge(api)
}

async fn config(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "ice_servers": state.sfu.ice_servers() }))
}

async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.sfu.metrics().prometheus()).into_response()
}

async fn not_found(uri: axum::http::Uri) -> onair_signaling::ApiError {
    onair_signaling::ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route for {}", uri.path()))
}
