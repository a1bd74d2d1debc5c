//! The OpenAPI description of what `onair_signaling` serves: WHIP, WHEP and
//! stream health. That crate has no OpenAPI of its own, so its routes are
//! described here, beside the rest of the document; `tests/openapi.rs`
//! checks that each of them is served and answers as described.
//!
//! The functions are never called: they carry the `utoipa::path`
//! descriptions.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::ErrorBody;

/// An SDP offer or answer (`application/sdp`).
#[derive(ToSchema)]
#[schema(value_type = String)]
pub struct Sdp(String);

/// Trickled ICE candidates (`application/trickle-ice-sdpfrag`, RFC 8840).
#[derive(ToSchema)]
#[schema(value_type = String)]
pub struct SdpFragment(String);

/// `text/event-stream`: `layers` and `room_slots` events.
#[derive(ToSchema)]
#[schema(value_type = String)]
pub struct EventStream(String);

/// A viewer's layer cap.
#[derive(Deserialize, ToSchema)]
pub struct LayerRequest {
    /// `auto`, `q`, `h` or `f`.
    pub max_layer: String,
}

/// A viewer's layers now (the answer to a layer request, and the data of
/// each `layers` event, which adds `layers`).
#[derive(Serialize, ToSchema)]
pub struct LayerStateDoc {
    /// The cap (`auto`, `q`, `h`, `f`).
    pub max_layer: String,
    /// The layer forwarded now: `q`, `h` or `f`.
    pub current_layer: Option<String>,
    /// The layer being moved to.
    pub target_layer: Option<String>,
    /// Events only: the stream's layers, low to high, `{layer, width, height, bitrate_bps}`.
    pub layers: Option<Vec<serde_json::Value>>,
}

/// WHIP ingest (RFC 9725): a publisher's offer. Goes live on the host's
/// stream started by API, else one scheduled within the hour, else their
/// newest unscheduled one, else a new one with the channel's defaults.
#[utoipa::path(post, path = "/whip", tag = "media", security(("bearer" = [])),
    request_body(content = Sdp, content_type = "application/sdp", description = "The offer"),
    responses(
        (status = 201, description = "The answer; `Location: /whip/{session}`, `X-OnAir-Stream`, ICE servers in `Link`", body = Sdp, content_type = "application/sdp",
            headers(("Location" = String, description = "The session"), ("X-OnAir-Stream" = String, description = "The stream id"))),
        (status = 400, description = "bad_sdp", body = ErrorBody), (status = 401, description = "missing_stream_key, invalid_stream_key", body = ErrorBody),
        (status = 403, description = "not_a_host, account_disabled", body = ErrorBody), (status = 409, description = "stream_busy, already_live", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody), (status = 415, description = "wrong_content_type", body = ErrorBody),
        (status = 422, description = "unsupported_codec", body = ErrorBody), (status = 429, description = "rate_limited", body = ErrorBody),
        (status = 503, description = "unavailable", body = ErrorBody)))]
fn whip_create() {}

/// WHIP: the ICE servers (in `Link`) and what is accepted.
#[utoipa::path(options, path = "/whip", tag = "media", responses((status = 204, description = "`Link` ICE servers, `Accept-Post`")))]
fn whip_options() {}

/// WHIP: trickled ICE candidates.
#[utoipa::path(patch, path = "/whip/{session}", tag = "media", params(("session" = String, Path, description = "Session id")),
    request_body(content = SdpFragment, content_type = "application/trickle-ice-sdpfrag"),
    responses((status = 204, description = "Added"), (status = 400, description = "bad_sdp", body = ErrorBody), (status = 404, description = "session_not_found", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody), (status = 415, description = "wrong_content_type", body = ErrorBody)))]
fn whip_patch() {}

/// WHIP: stop publishing (the stream waits its reconnect grace, then ends).
#[utoipa::path(delete, path = "/whip/{session}", tag = "media", params(("session" = String, Path, description = "Session id")),
    responses((status = 200, description = "Stopped"), (status = 404, description = "session_not_found", body = ErrorBody)))]
fn whip_delete() {}

/// WHEP playback: a viewer's offer. Subscriber-only and ticketed streams
/// need the viewer's access token; pages send `X-OnAir-Viewer` so a page
/// and its session count as one viewer.
#[utoipa::path(post, path = "/whep/{stream}", tag = "media", security((), ("bearer" = [])),
    params(("stream" = String, Path, description = "Stream id or host username"),
           ("max_layer" = Option<String>, Query, description = "`auto` (default), `q`, `h` or `f`"),
           ("X-OnAir-Viewer" = Option<String>, Header, description = "The page's viewer key")),
    request_body(content = Sdp, content_type = "application/sdp", description = "The offer"),
    responses(
        (status = 201, description = "The answer; `Location: /whep/{stream}/{session}`; `Link` to the layer and events resources", body = Sdp, content_type = "application/sdp",
            headers(("Location" = String, description = "The session"))),
        (status = 400, description = "bad_sdp, bad_layer", body = ErrorBody), (status = 401, description = "login_required, invalid_token", body = ErrorBody),
        (status = 403, description = "subscription_required, ticket_required", body = ErrorBody), (status = 404, description = "stream_not_live", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody), (status = 415, description = "wrong_content_type", body = ErrorBody),
        (status = 422, description = "unsupported_codec", body = ErrorBody), (status = 429, description = "rate_limited", body = ErrorBody),
        (status = 503, description = "unavailable", body = ErrorBody)))]
fn whep_create() {}

/// WHEP: trickled ICE candidates.
#[utoipa::path(patch, path = "/whep/{stream}/{session}", tag = "media",
    params(("stream" = String, Path, description = "Stream id or host username"), ("session" = String, Path, description = "Session id")),
    request_body(content = SdpFragment, content_type = "application/trickle-ice-sdpfrag"),
    responses((status = 204, description = "Added"), (status = 400, description = "bad_sdp", body = ErrorBody), (status = 404, description = "session_not_found", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody), (status = 415, description = "wrong_content_type", body = ErrorBody)))]
fn whep_patch() {}

/// WHEP: stop watching.
#[utoipa::path(delete, path = "/whep/{stream}/{session}", tag = "media",
    params(("stream" = String, Path, description = "Stream id or host username"), ("session" = String, Path, description = "Session id")),
    responses((status = 200, description = "Stopped"), (status = 404, description = "session_not_found", body = ErrorBody)))]
fn whep_delete() {}

/// WHEP: cap (or un-cap) the viewer's simulcast layer. The answer says the
/// layer forwarded *now*; the switch happens at the next keyframe and is
/// told by a `layers` event.
#[utoipa::path(post, path = "/whep/{stream}/{session}/layer", tag = "media",
    params(("stream" = String, Path, description = "Stream id or host username"), ("session" = String, Path, description = "Session id")),
    request_body = LayerRequest,
    responses((status = 200, body = LayerStateDoc), (status = 400, description = "bad_json, bad_layer", body = ErrorBody), (status = 404, description = "session_not_found", body = ErrorBody)))]
fn whep_layer() {}

/// WHEP server-sent events of one viewer: `layers` at once, then whenever
/// the layer it receives or the stream's layers change (data: a
/// LayerStateDoc with `layers`); `room_slots` at once, then whenever a host
/// moves into or out of one of its slots (data: `{slots: [{slot,
/// video_mid, audio_mid, host, audio_host}]}`). Ends with the session.
#[utoipa::path(get, path = "/whep/{stream}/{session}/events", tag = "media",
    params(("stream" = String, Path, description = "Stream id or host username"), ("session" = String, Path, description = "Session id")),
    responses((status = 200, description = "`layers` events", body = EventStream, content_type = "text/event-stream"), (status = 404, description = "session_not_found", body = ErrorBody)))]
fn whep_events() {}

/// The host's per-peer statistics of a stream (bitrate, loss, RTT, jitter,
/// layer, quality, who speaks): with the stream key or the host's (or a
/// moderator's) access token.
#[utoipa::path(get, path = "/api/streams/{id}/health", tag = "media", security(("bearer" = [])),
    params(("id" = String, Path, description = "Stream id or host username")),
    responses((status = 200, description = "`{stream, live, viewer_count, publisher, viewers}`", body = serde_json::Value),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "stream_not_live", body = ErrorBody)))]
fn health() {}

/// The health snapshot every second over a WebSocket, and the stream's
/// media events as they happen (`{"event": {...}}`).
#[utoipa::path(get, path = "/api/streams/{id}/health/ws", tag = "media",
    params(("id" = String, Path, description = "Stream id or host username"), ("token" = String, Query, description = "The stream key or an access token")),
    responses((status = 101, description = "Switching to the WebSocket"), (status = 400, description = "Not a WebSocket upgrade", body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "stream_not_live", body = ErrorBody)))]
fn health_ws() {}

#[derive(OpenApi)]
#[openapi(
    paths(whip_create, whip_options, whip_patch, whip_delete, whep_create, whep_patch, whep_delete, whep_layer, whep_events, health, health_ws),
    components(schemas(Sdp, SdpFragment, EventStream, LayerRequest, LayerStateDoc)),
    tags((name = "media", description = "WHIP publishing, WHEP playback, stream health (onair-signaling)"))
)]
pub struct MediaDoc;
