//! `/api/streams*`: create, list, schedule, start, end, archive, cancel,
//! delete; reminders; gift tickets.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{id, AppState, Auth, Body, MaybeAuth, Q};
use super::ErrorBody;
use crate::images::ImageFile;
use crate::clock::{now_ms, parse_rfc3339};
use crate::streams::{ListQuery, NewStream, State as StreamState, Stream, StreamPage, StreamPatch, StreamStore};

/// Lists streams: live now, scheduled (soonest first), recent, or all, with
/// counts of each. Streams ended without saving (and cancelled or failed
/// ones) are listed only for their host (`host` = the caller) and staff.
#[utoipa::path(get, path = "/api/streams", tag = "streams", params(ListQuery),
    responses((status = 200, body = StreamPage), (status = 400, body = ErrorBody), (status = 404, description = "No such host", body = ErrorBody)))]
pub async fn list(State(app): State<AppState>, MaybeAuth(who): MaybeAuth, Q(q): Q<ListQuery>) -> Result<Json<StreamPage>, ApiError> {
    let caller = who.as_ref().map(|w| (w.id(), w.role().is_staff()));
    let mut page = app.streams.list(&q, caller).await?;
    page.streams = page.streams.into_iter().map(|s| app.analytics.with_viewers(s)).collect();
    Ok(Json(page))
}

/// Creates a stream (hosts): now-ish, at a time, or recurring.
#[utoipa::path(post, path = "/api/streams", tag = "streams", security(("bearer" = [])), request_body = NewStream,
    responses((status = 201, body = Stream), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(State(app): State<AppState>, Auth(who): Auth, Body(input): Body<NewStream>) -> Result<(StatusCode, Json<Stream>), ApiError> {
    if !who.role().can_host() {
        return Err(ApiError::forbidden("only hosts create streams"));
    }
    app.admin.check_may_stream(who.id()).await?;
    let defaults = app.channels.defaults(who.id()).await?;
    let s = app.streams.create(&who.user, &input, &defaults).await?;
    app.lifecycle.announce(&s);
    Ok((StatusCode::CREATED, Json(s)))
}

/// One stream.
#[utoipa::path(get, path = "/api/streams/{id}", tag = "streams", params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = Stream), (status = 404, body = ErrorBody)))]
pub async fn get(State(app): State<AppState>, Path(sid): Path<String>) -> Result<Json<Stream>, ApiError> {
    app.stream(id(&sid, "stream")?).await.map(Json)
}

/// Changes a stream's details or schedule (its host).
#[utoipa::path(patch, path = "/api/streams/{id}", tag = "streams", security(("bearer" = [])), request_body = StreamPatch,
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = Stream), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, Body(p): Body<StreamPatch>) -> Result<Json<Stream>, ApiError> {
    let before = app.owned_stream(id(&sid, "stream")?, &who, false).await?;
    let s = app.analytics.with_viewers(app.streams.update(&before, &p).await?);
    if before.thumbnail_url != s.thumbnail_url {
        app.images.release(&app.pool, before.thumbnail_url.as_deref()).await?;
    }
    app.lifecycle.announce(&s);
    if before.topology != s.topology {
        app.rooms.topology_setting_changed(s.id).await;
    }
    Ok(Json(s))
}

/// Uploads a stream's thumbnail (its host): a JPEG, PNG or WebP of at most
/// 2 MiB and 16-4096 pixels a side, sent as the body with its
/// `Content-Type`. The studio sends a frame of its preview every 30 s while
/// live. Stored under the data directory, served at `/images/{name}`.
#[utoipa::path(put, path = "/api/streams/{id}/thumbnail", tag = "streams", security(("bearer" = [])),
    request_body(content((ImageFile = "image/jpeg"), (ImageFile = "image/png"), (ImageFile = "image/webp")), description = "The image"),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = Stream), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 413, description = "image_too_large", body = ErrorBody), (status = 415, description = "unsupported_image", body = ErrorBody),
              (status = 422, description = "bad_image, bad_image_size", body = ErrorBody)))]
pub async fn put_thumbnail(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, headers: HeaderMap, body: axum::body::Body) -> Result<Json<Stream>, ApiError> {
    let before = app.owned_stream(id(&sid, "stream")?, &who, false).await?;
    let data = super::image_body(body).await?;
    let image = app.images.store(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), &data).await?;
    let s = app.analytics.with_viewers(app.streams.set_thumbnail(before.id, Some(&image.url)).await?);
    if before.thumbnail_url != s.thumbnail_url {
        app.images.release(&app.pool, before.thumbnail_url.as_deref()).await?;
    }
    app.lifecycle.announce(&s);
    Ok(Json(s))
}

/// Removes a stream's thumbnail (its host).
#[utoipa::path(delete, path = "/api/streams/{id}/thumbnail", tag = "streams", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = Stream), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_thumbnail(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>) -> Result<Json<Stream>, ApiError> {
    let before = app.owned_stream(id(&sid, "stream")?, &who, false).await?;
    let s = app.analytics.with_viewers(app.streams.set_thumbnail(before.id, None).await?);
    app.images.release(&app.pool, before.thumbnail_url.as_deref()).await?;
    app.lifecycle.announce(&s);
    Ok(Json(s))
}

/// Deletes a stream that is not live, with its chat and analytics (its host).
#[utoipa::path(delete, path = "/api/streams/{id}", tag = "streams", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody), (status = 409, description = "Live: end it first", body = ErrorBody)))]
pub async fn delete(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>) -> Result<StatusCode, ApiError> {
    let s = app.owned_stream(id(&sid, "stream")?, &who, false).await?;
    if app.streams.delete(&s).await? {
        app.images.release(&app.pool, s.thumbnail_url.as_deref()).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(StatusCode::CONFLICT, "bad_state", "a live stream cannot be deleted; end it first"))
    }
}

/// Goes live by API: the stream waits for the host's WHIP publish.
#[utoipa::path(post, path = "/api/streams/{id}/start", tag = "streams", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = Stream), (status = 409, description = "Not scheduled, or another stream is live", body = ErrorBody)))]
pub async fn start(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>) -> Result<Json<Stream>, ApiError> {
    let s = app.owned_stream(id(&sid, "stream")?, &who, false).await?;
    app.admin.check_may_stream(s.host.id).await?;
    app.lifecycle.start_by_api(&s).await.map(Json)
}

/// How to end.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndInput {
    /// Save it (archived, kept with its chat and figures; default) or not (ended).
    #[serde(default)]
    pub save: Option<bool>,
}

/// Ends a live stream now (disconnects the publisher and viewers).
#[utoipa::path(post, path = "/api/streams/{id}/end", tag = "streams", security(("bearer" = [])), request_body = Option<EndInput>,
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = Stream), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn end(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, body: Option<Body<EndInput>>) -> Result<Json<Stream>, ApiError> {
    let s = app.owned_stream(id(&sid, "stream")?, &who, false).await?;
    let save = body.and_then(|b| b.0.save).unwrap_or(true);
    let ended = app.lifecycle.end(&s, save).await?;
    // Its recordings close with it; not saved, their media is deleted.
    app.recordings.stop(&s.media_name()).await;
    if !save {
        app.recordings.delete(&s.media_name()).await;
    }
    Ok(Json(ended))
}

/// Saves an ended stream (archived).
#[utoipa::path(post, path = "/api/streams/{id}/archive", tag = "streams", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = Stream), (status = 409, body = ErrorBody)))]
pub async fn archive(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>) -> Result<Json<Stream>, ApiError> {
    let s = app.owned_stream(id(&sid, "stream")?, &who, false).await?;
    if app.admin.taken_down(s.id).await? {
        return Err(ApiError::new(StatusCode::CONFLICT, "taken_down", "an administrator took this replay down; it cannot be saved"));
    }
    app.lifecycle.archive(&s).await.map(Json)
}

/// What to cancel.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    /// The whole recurring series (default: only this occurrence).
    #[serde(default)]
    pub series: bool,
}

/// Calls off a scheduled stream (a recurring one moves to its next occurrence).
#[utoipa::path(post, path = "/api/streams/{id}/cancel", tag = "streams", security(("bearer" = [])), request_body = Option<CancelInput>,
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = Stream), (status = 409, body = ErrorBody)))]
pub async fn cancel(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, body: Option<Body<CancelInput>>) -> Result<Json<Stream>, ApiError> {
    let s = app.owned_stream(id(&sid, "stream")?, &who, false).await?;
    app.lifecycle.cancel(&s, body.map(|b| b.0.series).unwrap_or(false)).await.map(Json)
}

/// Query of the occurrences.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OccurrencesQuery {
    /// From this instant (RFC 3339; default now).
    pub from: Option<String>,
    /// 1-52, default 5.
    pub count: Option<usize>,
}

/// Upcoming start times.
#[derive(Debug, Serialize, ToSchema)]
pub struct Occurrences {
    /// Stream id.
    pub stream_id: i64,
    /// The time zone they are computed in.
    pub timezone: Option<String>,
    /// Start times (RFC 3339, UTC).
    pub occurrences: Vec<String>,
}

/// A stream's upcoming start times (several for a recurring stream).
#[utoipa::path(get, path = "/api/streams/{id}/occurrences", tag = "streams", params(("id" = i64, Path, description = "Stream id"), OccurrencesQuery),
    responses((status = 200, body = Occurrences), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn occurrences(State(app): State<AppState>, Path(sid): Path<String>, Q(q): Q<OccurrencesQuery>) -> Result<Json<Occurrences>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    let from = match &q.from {
        Some(f) => parse_rfc3339(f).map_err(|e| ApiError::validation([("from".to_owned(), e)].into()))?,
        None => now_ms(),
    };
    let count = q.count.unwrap_or(5);
    if !(1..=52).contains(&count) {
        return Err(ApiError::validation([("count".to_owned(), "must be 1-52".to_owned())].into()));
    }
    let list = if s.state == StreamState::Scheduled { StreamStore::occurrences(&s, from, count) } else { Vec::new() };
    Ok(Json(Occurrences { stream_id: s.id, timezone: s.recurrence.as_ref().map(|r| r.timezone.clone()), occurrences: list.into_iter().map(crate::clock::rfc3339).collect() }))
}

/// Asks to be told when a scheduled stream goes live.
#[utoipa::path(post, path = "/api/streams/{id}/reminder", tag = "streams", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 204, description = "Reminder set"), (status = 409, description = "Not scheduled", body = ErrorBody)))]
pub async fn remind(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>) -> Result<StatusCode, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    if s.state != StreamState::Scheduled {
        return Err(ApiError::new(StatusCode::CONFLICT, "bad_state", format!("reminders are for scheduled streams; this one is {}", s.state.as_str())));
    }
    sqlx::query("INSERT INTO reminders (stream_id, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(s.id)
        .bind(who.id())
        .bind(now_ms())
        .execute(&app.pool)
        .await
        .map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Takes a reminder back.
#[utoipa::path(delete, path = "/api/streams/{id}/reminder", tag = "streams", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 204, description = "No reminder")))]
pub async fn unremind(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>) -> Result<StatusCode, ApiError> {
    let sid = id(&sid, "stream")?;
    sqlx::query("DELETE FROM reminders WHERE stream_id = $1 AND user_id = $2").bind(sid).bind(who.id()).execute(&app.pool).await.map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whom to give a ticket.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketInput {
    /// Username or id.
    pub user: String,
}

/// The host gives someone a ticket to a ticketed stream (paid tickets come with payments).
#[utoipa::path(post, path = "/api/streams/{id}/tickets", tag = "streams", security(("bearer" = [])), request_body = TicketInput,
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 201, description = "Ticket given"), (status = 200, description = "They had one"), (status = 409, body = ErrorBody)))]
pub async fn gift_ticket(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, Body(input): Body<TicketInput>) -> Result<StatusCode, ApiError> {
    let s = app.owned_stream(id(&sid, "stream")?, &who, false).await?;
    if s.visibility != crate::streams::Visibility::Ticketed {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_ticketed", "this stream is not ticketed"));
    }
    let u = super::user_named(&app, &input.user).await?;
    Ok(if app.membership.gift_ticket(s.id, u.id).await? { StatusCode::CREATED } else { StatusCode::OK })
}
