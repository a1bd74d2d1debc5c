//! `/api/me*` (the caller, their stream keys) and `/api/users/*` (profiles,
//! following).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{id, AppState, Auth, Body, MaybeAuth};
use super::ErrorBody;
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

/// A user's public profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    /// The user.
    #[serde(flatten)]
    pub user: PublicUser,
    /// Followers.
    pub followers: i64,
    /// Whether the caller follows them.
    pub following: bool,
    /// Their live stream, if any.
    pub live: Option<Stream>,
}

/// A user's profile (by username or id).
#[utoipa::path(get, path = "/api/users/{user}", tag = "users",
    params(("user" = String, Path, description = "Username or id")),
    responses((status = 200, body = Profile), (status = 404, body = ErrorBody)))]
pub async fn profile(State(app): State<AppState>, MaybeAuth(who): MaybeAuth, Path(user): Path<String>) -> Result<Json<Profile>, ApiError> {
    let u = super::user_named(&app, &user).await?;
    let following = match &who {
        Some(w) => app.membership.following_since(w.id(), u.id).await?.is_some(),
        None => false,
    };
    let live = app.streams.live_of(u.id).await?.map(|s| app.analytics.with_viewers(s));
    Ok(Json(Profile { user: PublicUser::from(&u), followers: app.membership.follower_count(u.id).await?, following, live }))
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
