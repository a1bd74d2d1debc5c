//! # onair-signaling: WHIP and WHEP over HTTP
//!
//! - WHIP ingest, RFC 9725: `POST /whip` (bearer stream key, `application/sdp`)
//!   answers `201 Created` with `Location: /whip/{session}`; `PATCH` there
//!   takes trickled candidates (`application/trickle-ice-sdpfrag`); `DELETE`
//!   ends the session.
//! - WHEP playback (draft-ietf-wish-whep): `POST /whep/{stream}`, `DELETE`
//!   and `PATCH` on `/whep/{stream}/{session}`, plus the layer extension
//!   `POST /whep/{stream}/{session}/layer`.
//! - Stream health: `GET /api/streams/{stream}/health` and its WebSocket.
//!
//! Every error is JSON: `{"error": {"code": "...", "message": "..."}}`.

mod cors;
mod error;
mod health;
mod sdpfrag;
mod whep;
mod whip;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use onair_media::Sfu;

pub use error::ApiError;

/// Largest SDP or sdpfrag body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Where stream keys are checked. The server implements it over its database.
pub trait StreamKeys: Send + Sync + 'static {
    /// The stream a key publishes to, or `None` for an unknown or revoked key.
    fn stream_for_key<'a>(&'a self, key: &'a str) -> Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send + 'a>>;
}

/// What the handlers share.
#[derive(Clone)]
pub struct Signaling {
    /// The media engine.
    pub sfu: Sfu,
    /// Stream key store.
    pub keys: Arc<dyn StreamKeys>,
}

/// The WHIP/WHEP/health routes, with CORS for browser clients on other origins.
pub fn router(state: Signaling) -> Router {
    Router::new()
        .route("/whip", post(whip::create).options(whip::options))
        .route("/whip/{session}", axum::routing::delete(whip::delete).patch(whip::patch).options(whip::options))
        .route("/whep/{stream}", post(whep::create).options(whip::options))
        .route("/whep/{stream}/{session}", axum::routing::delete(whep::delete).patch(whep::patch).options(whip::options))
        .route("/whep/{stream}/{session}/layer", post(whep::layer))
        .route("/api/streams/{stream}/health", get(health::get_health))
        .route("/api/streams/{stream}/health/ws", get(health::ws))
        .layer(axum::middleware::from_fn(cors::cors))
        .with_state(state)
}
