//! `/api/me*` (the caller, their stream keys) and `/api/users/*` (profiles,
//! following).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{id, AppState, Auth, Body, MaybeAuth};
use super::ErrorBody;
use crate::images::ImageFile;
use crate::accounts::{PublicUser, User};
use crate::keys::{KeyInfo, NewKey};
use crate::streams::Stream;

fn host_only(who: &crate::accounts::Principal) -> Result<(), ApiError> {
    if who.role().can_host() {
        Ok(())
    } else {
        Err(ApiError::forbidden("only hosts have streams and stream keys"))
    }
}

/// The caller.
#[utoipa::path(get, path = "/api/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = ErrorBody)))]
pub async fn me(Auth(who): Auth) -> Json<User> {
    Json(who.user)
}

/// The scheduled streams the caller asked to be reminded of, soonest first.
#[utoipa::path(get, path = "/api/me/reminders", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = [Stream]), (status = 401, body = ErrorBody)))]
pub async fn reminders(State(app): State<AppState>, Auth(who): Auth) -> Result<Json<Vec<Stream>>, ApiError> {
    let ids: Vec<(i64,)> = sqlx::query_as(
        "SELECT r.stream_id FROM reminders r JOIN streams s ON s.id = r.stream_id WHERE r.user_id = $1 AND r.notified_at IS NULL AND s.state = 'scheduled' ORDER BY s.scheduled_at",
    )
    .bind(who.id())
    .fetch_all(&app.pool)
    .await
    .map_err(ApiError::internal)?;
    let mut out = Vec::with_capacity(ids.len());
    for (id,) in ids {
        out.push(app.stream(id).await?);
    }
    Ok(Json(out))
}

/// What making a key takes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    /// A name for it (at most 50 characters), e.g. "OBS at home".
    #[serde(default)]
    pub label: Option<String>,
}

/// The caller's stream keys (never their secrets).
#[utoipa::path(get, path = "/api/me/stream-keys", tag = "stream keys", security(("bearer" = [])),
    responses((status = 200, body = [KeyInfo]), (status = 403, description = "Not a host", body = ErrorBody)))]
pub async fn list_keys(State(app): State<AppState>, Auth(who): Auth) -> Result<Json<Vec<KeyInfo>>, ApiError> {
    host_only(&who)?;
    app.keys.list(who.id()).await.map(Json)
}

/// Makes a stream key; its secret is in this answer only.
#[utoipa::path(post, path = "/api/me/stream-keys", tag = "stream keys", security(("bearer" = [])), request_body = KeyInput,
    responses((status = 201, body = NewKey), (status = 403, body = ErrorBody)))]
pub async fn create_key(State(app): State<AppState>, Auth(who): Auth, Body(input): Body<KeyInput>) -> Result<(StatusCode, Json<NewKey>), ApiError> {
    host_only(&who)?;
    let label = input.label.unwrap_or_default();
    if label.chars().count() > 50 {
        return Err(ApiError::validation([("label".to_owned(), "must be at most 50 characters".to_owned())].into()));
    }
    Ok((StatusCode::CREATED, Json(app.keys.create(who.id(), &label).await?)))
}

/// Replaces a key with a new one (the old one stops working at once).
#[utoipa::path(post, path = "/api/me/stream-keys/{key_id}/rotate", tag = "stream keys", security(("bearer" = [])),
    params(("key_id" = i64, Path, description = "Key id")),
    responses((status = 201, body = NewKey), (status = 404, body = ErrorBody)))]
pub async fn rotate_key(State(app): State<AppState>, Auth(who): Auth, Path(key_id): Path<String>) -> Result<(StatusCode, Json<NewKey>), ApiError> {
    host_only(&who)?;
    let key_id = id(&key_id, "stream key")?;
    let key = app.keys.rotate(who.id(), key_id).await?.ok_or_else(|| ApiError::not_found(format!("no active stream key {key_id} of yours")))?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// Revokes a key.
#[utoipa::path(delete, path = "/api/me/stream-keys/{key_id}", tag = "stream keys", security(("bearer" = [])),
    params(("key_id" = i64, Path, description = "Key id")),
    responses((status = 204, description = "Revoked"), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(State(app): State<AppState>, Auth(who): Auth, Path(key_id): Path<String>) -> Result<StatusCode, ApiError> {
    host_only(&who)?;
    let key_id = id(&key_id, "stream key")?;
    if app.keys.revoke(who.id(), key_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no active stream key {key_id} of yours")))
    }
}

/// A user's public profile (their channel page, `/c/{username}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    /// The user.
    #[serde(flatten)]
    pub user: PublicUser,
    /// About them (up to 1,000 characters).
    pub bio: String,
    /// Their picture (an upload, `/images/...`), if any.
    pub avatar_url: Option<String>,
    /// Followers.
    pub followers: i64,
    /// Whether the caller follows them.
    pub following: bool,
    /// Since when the caller follows them.
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub following_since: Option<i64>,
    /// Their live stream, if any.
    pub live: Option<Stream>,
}

/// A user's profile (by username or id).
#[utoipa::path(get, path = "/api/users/{user}", tag = "users",
    params(("user" = String, Path, description = "Username or id")),
    responses((status = 200, body = Profile), (status = 404, body = ErrorBody)))]
pub async fn profile(State(app): State<AppState>, MaybeAuth(who): MaybeAuth, Path(user): Path<String>) -> Result<Json<Profile>, ApiError> {
    let u = super::user_named(&app, &user).await?;
    let following_since = match &who {
        Some(w) => app.membership.following_since(w.id(), u.id).await?,
        None => None,
    };
    let live = app.streams.live_of(u.id).await?.map(|s| app.analytics.with_viewers(s));
    let (bio, avatar_url) = app.channels.profile(u.id).await?;
    Ok(Json(Profile {
        user: PublicUser::from(&u),
        bio,
        avatar_url,
        followers: app.membership.follower_count(u.id).await?,
        following: following_since.is_some(),
        following_since,
        live,
    }))
}

/// What the caller may change about themself.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MePatch {
    /// Up to 1,000 characters, shown on their channel page.
    pub bio: Option<String>,
}

/// Changes the caller's profile; answers their public profile.
#[utoipa::path(patch, path = "/api/me", tag = "users", security(("bearer" = [])), request_body = MePatch,
    responses((status = 200, body = Profile), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn update_me(State(app): State<AppState>, Auth(who): Auth, Body(p): Body<MePatch>) -> Result<Json<Profile>, ApiError> {
    if let Some(bio) = &p.bio {
        app.channels.set_bio(who.id(), bio).await?;
    }
    profile(State(app), MaybeAuth(Some(who.clone())), Path(who.user.username.clone())).await
}

/// Uploads the caller's picture: a JPEG, PNG or WebP of at most 2 MiB and
/// 16-4096 pixels a side, sent as the body with its `Content-Type`.
#[utoipa::path(put, path = "/api/me/avatar", tag = "users", security(("bearer" = [])),
    request_body(content((ImageFile = "image/jpeg"), (ImageFile = "image/png"), (ImageFile = "image/webp")), description = "The image"),
    responses((status = 200, body = Profile), (status = 401, body = ErrorBody), (status = 413, description = "image_too_large", body = ErrorBody),
              (status = 415, description = "unsupported_image", body = ErrorBody), (status = 422, description = "bad_image, bad_image_size", body = ErrorBody)))]
pub async fn put_avatar(State(app): State<AppState>, Auth(who): Auth, headers: HeaderMap, body: axum::body::Body) -> Result<Json<Profile>, ApiError> {
    let data = super::image_body(body).await?;
    let image = app.images.store(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), &data).await?;
    let old = app.channels.set_avatar(who.id(), Some(&image.url)).await?;
    if old.as_deref() != Some(image.url.as_str()) {
        app.images.release(&app.pool, old.as_deref()).await?;
    }
    profile(State(app), MaybeAuth(Some(who.clone())), Path(who.user.username.clone())).await
}

/// Removes the caller's picture.
#[utoipa::path(delete, path = "/api/me/avatar", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Profile), (status = 401, body = ErrorBody)))]
pub async fn delete_avatar(State(app): State<AppState>, Auth(who): Auth) -> Result<Json<Profile>, ApiError> {
    let old = app.channels.set_avatar(who.id(), None).await?;
    app.images.release(&app.pool, old.as_deref()).await?;
    profile(State(app), MaybeAuth(Some(who.clone())), Path(who.user.username.clone())).await
}

/// Follows a user.
#[utoipa::path(post, path = "/api/users/{user}/follow", tag = "users", security(("bearer" = [])),
    params(("user" = String, Path, description = "Username or id")),
    responses((status = 204, description = "Following"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn follow(State(app): State<AppState>, Auth(who): Auth, Path(user): Path<String>) -> Result<StatusCode, ApiError> {
    let u = super::user_named(&app, &user).await?;
    if u.id == who.id() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "self_follow", "you cannot follow yourself"));
    }
    app.membership.follow(who.id(), u.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops following a user.
#[utoipa::path(delete, path = "/api/users/{user}/follow", tag = "users", security(("bearer" = [])),
    params(("user" = String, Path, description = "Username or id")),
    responses((status = 204, description = "Not following"), (status = 404, body = ErrorBody)))]
pub async fn unfollow(State(app): State<AppState>, Auth(who): Auth, Path(user): Path<String>) -> Result<StatusCode, ApiError> {
    let u = super::user_named(&app, &user).await?;
    app.membership.unfollow(who.id(), u.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
