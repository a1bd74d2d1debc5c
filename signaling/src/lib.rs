//! # onair-signaling: WHIP and WHEP over HTTP
//!
//! - WHIP ingest, RFC 9725: `POST /whip` (bearer stream key, `application/sdp`)
//!   answers `201 Created` with `Location: /whip/{session}`; `PATCH` there
//!   takes trickled candidates (`application/trickle-ice-sdpfrag`); `DELETE`
//!   ends the session. Both need the bearer credential the POST carried.
//! - WHEP playback (draft-ietf-wish-whep): `POST /whep/{stream}`, `DELETE`
//!   and `PATCH` on `/whep/{stream}/{session}`, plus the layer extension
//!   `POST /whep/{stream}/{session}/layer`, and `GET .../events`
//!   (server-sent `layers` events: the layer the viewer receives, and the
//!   layers it may pick; `room_slots`: which host each slot's mids show).
//! - Stream health: `GET /api/streams/{stream}/health` and its WebSocket.
//!
//! Who may publish or watch is not decided here: the platform around the SFU
//! answers through [`Platform`] (stream keys, stream visibility, analytics).
//! Every error is JSON: `{"error": {"code": "...", "message": "..."}}`.

mod client;
mod cors;
mod error;
mod health;
pub mod sdpfrag;
pub mod turn;
mod whep;
mod whip;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use onair_media::{SessionId, Sfu};

pub use client::{valid_viewer_key, Client};
pub use error::ApiError;

/// Largest SDP or sdpfrag body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Where a WHIP publish goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishTarget {
    /// The stream (the SFU's room name).
    pub stream: String,
    /// The host it publishes as ("" for a stream's only, unnamed host).
    pub host: String,
    /// The room's primary host (its leaving ends the room).
    pub primary: bool,
}

impl PublishTarget {
    /// The stream's only host, unnamed.
    pub fn solo(stream: String) -> Self {
        PublishTarget { stream, host: String::new(), primary: true }
    }
}

/// What a WHEP offer watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayTarget {
    /// The stream (the SFU's room name).
    pub stream: String,
    /// A host of the room watching it: its own producer is left out.
    pub host: Option<String>,
}

/// A boxed future, for the object-safe [`Platform`] trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The platform's answers to signaling. The server implements it over its
/// database; a stream here is the SFU's stream name, a path segment is what a
/// client put in the URL (a stream id, or a channel the platform resolves).
pub trait Platform: Send + Sync + 'static {
    /// WHIP: where this stream key publishes now (its stream, and as which
    /// host of the stream's room). An error is the response (401 unknown
    /// key, 409 another stream live, 403 removed from the room, ...).
    fn authorize_publish<'a>(&'a self, key: &'a str, client: &'a Client) -> BoxFuture<'a, Result<PublishTarget, ApiError>>;

    /// WHIP: the SFU refused the offer; undo what `authorize_publish` prepared.
    fn publish_failed<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, ()>;

    /// WHEP: the stream a path segment names, if this client may watch it
    /// (404 unknown, 401 login needed, 403 no access), and whether it
    /// watches as one of the room's hosts (its own producer left out).
    fn authorize_play<'a>(&'a self, path: &'a str, client: &'a Client) -> BoxFuture<'a, Result<PlayTarget, ApiError>>;

    /// A viewer session exists for this client (before it connects).
    fn viewer_opened(&self, stream: &str, session: SessionId, client: &Client);

    /// Health: the stream a path segment names, if this client may see its
    /// per-peer statistics (its host, staff, or the stream key's holder).
    fn authorize_health<'a>(&'a self, path: &'a str, client: &'a Client) -> BoxFuture<'a, Result<String, ApiError>>;

    /// The stream a path segment names, with no access check (session URLs).
    fn resolve<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Option<String>>;

    /// Who a bearer credential names, for binding a session to its owner:
    /// a login's access tokens (which are refreshed while a page stays
    /// open) all name their user; any other credential names itself.
    fn principal(&self, bearer: &str) -> String {
        bearer.to_owned()
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct Signaling {
    /// The media engine.
    pub sfu: Sfu,
    /// The platform's decisions.
    pub platform: Arc<dyn Platform>,
}

/// The WHIP/WHEP/health routes, with CORS for browser clients on other origins.
pub fn router(state: Signaling) -> Router {
    Router::new()
        .route("/whip", post(whip::create).options(whip::options))
        .route("/whip/{session}", axum::routing::delete(whip::delete).patch(whip::patch).options(whip::options))
        .route("/whep/{stream}", post(whep::create).options(whip::options))
        .route("/whep/{stream}/{session}", axum::routing::delete(whep::delete).patch(whep::patch).options(whip::options))
        .route("/whep/{stream}/{session}/layer", post(whep::layer))
        .route("/whep/{stream}/{session}/events", get(whep::events))
        .route("/api/streams/{id}/health", get(health::get_health))
        .route("/api/streams/{id}/health/ws", get(health::ws))
        .layer(axum::middleware::from_fn(cors::cors))
        .with_state(state)
}
