//! `/api/channels/{host}/defaults*`: what an OBS publish with nothing
//! prepared goes live with (title, description, category, thumbnail,
//! visibility, record).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use onair_signaling::ApiError;

use super::extract::{AppState, Auth, Body};
use super::ErrorBody;
use crate::images::ImageFile;
use crate::accounts::{Principal, Role, User};
use crate::channels::{ChannelDefaults, DefaultsPatch};

/// The channel of `host` if it is the caller's (or the caller is an admin).
async fn own_channel(app: &AppState, host: &str, who: &Principal) -> Result<User, ApiError> {
    let h = super::user_named(app, host).await?;
    if h.id == who.id() || who.role() == Role::Admin {
        Ok(h)
    } else {
        Err(ApiError::forbidden(format!("this is {}'s channel", h.username)))
    }
}

/// A channel's defaults (its host).
#[utoipa::path(get, path = "/api/channels/{host}/defaults", tag = "channels", security(("bearer" = [])),
    params(("host" = String, Path, description = "Host username or id")),
    responses((status = 200, body = ChannelDefaults), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn defaults(State(app): State<AppState>, Auth(who): Auth, Path(host): Path<String>) -> Result<Json<ChannelDefaults>, ApiError> {
    let h = own_channel(&app, &host, &who).await?;
    app.channels.defaults(h.id).await.map(Json)
}

/// Changes a channel's defaults (its host). A publish that finds no
/// prepared stream goes live with them; streams created without a
/// thumbnail get the default one.
#[utoipa::path(patch, path = "/api/channels/{host}/defaults", tag = "channels", security(("bearer" = [])), request_body = DefaultsPatch,
    params(("host" = String, Path, description = "Host username or id")),
    responses((status = 200, body = ChannelDefaults), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_defaults(State(app): State<AppState>, Auth(who): Auth, Path(host): Path<String>, Body(p): Body<DefaultsPatch>) -> Result<Json<ChannelDefaults>, ApiError> {
    let h = own_channel(&app, &host, &who).await?;
    let before = app.channels.defaults(h.id).await?;
    let after = app.channels.update_defaults(h.id, &p).await?;
    if before.thumbnail_url != after.thumbnail_url {
        app.images.release(&app.pool, before.thumbnail_url.as_deref()).await?;
    }
    Ok(Json(after))
}

/// Uploads a channel's default thumbnail (its host): a JPEG, PNG or WebP of
/// at most 2 MiB and 16-4096 pixels a side, sent as the body with its
/// `Content-Type`.
#[utoipa::path(put, path = "/api/channels/{host}/defaults/thumbnail", tag = "channels", security(("bearer" = [])),
    request_body(content((ImageFile = "image/jpeg"), (ImageFile = "image/png"), (ImageFile = "image/webp")), description = "The image"),
    params(("host" = String, Path, description = "Host username or id")),
    responses((status = 200, body = ChannelDefaults), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 413, description = "image_too_large", body = ErrorBody), (status = 415, description = "unsupported_image", body = ErrorBody),
              (status = 422, description = "bad_image, bad_image_size", body = ErrorBody)))]
pub async fn put_default_thumbnail(State(app): State<AppState>, Auth(who): Auth, Path(host): Path<String>, headers: HeaderMap, body: axum::body::Body) -> Result<Json<ChannelDefaults>, ApiError> {
    let h = own_channel(&app, &host, &who).await?;
    let data = super::image_body(body).await?;
    let image = app.images.store(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), &data).await?;
    let (d, old) = app.channels.set_default_thumbnail(h.id, Some(&image.url)).await?;
    if old.as_deref() != Some(image.url.as_str()) {
        app.images.release(&app.pool, old.as_deref()).await?;
    }
    Ok(Json(d))
}

/// Removes a channel's default thumbnail (its host).
#[utoipa::path(delete, path = "/api/channels/{host}/defaults/thumbnail", tag = "channels", security(("bearer" = [])),
    params(("host" = String, Path, description = "Host username or id")),
    responses((status = 200, body = ChannelDefaults), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_default_thumbnail(State(app): State<AppState>, Auth(who): Auth, Path(host): Path<String>) -> Result<Json<ChannelDefaults>, ApiError> {
    let h = own_channel(&app, &host, &who).await?;
    let (d, old) = app.channels.set_default_thumbnail(h.id, None).await?;
    app.images.release(&app.pool, old.as_deref()).await?;
    Ok(Json(d))
}

/// "Best times to stream": the channel's past streams' (the last 90 days)
/// average real viewers by weekday and hour, in the host's time zone (of
/// their latest recurring schedule) if known, else UTC; the answer says
/// which (the host and their moderators).
#[utoipa::path(get, path = "/api/channels/{host}/best-times", tag = "analytics", security(("bearer" = [])),
    params(("host" = String, Path, description = "Host username or id")),
    responses((status = 200, body = crate::best_times::BestTimes), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn best_times(State(app): State<AppState>, Auth(who): Auth, Path(host): Path<String>) -> Result<Json<crate::best_times::BestTimes>, ApiError> {
    let h = super::user_named(&app, &host).await?;
    if !crate::streams::access::can_moderate(&app.membership, h.id, &who.user).await? {
        return Err(ApiError::forbidden(format!("these are {}'s figures", h.username)));
    }
    crate::best_times::best_times(&app.pool, h.id).await.map(Json)
}
