//! `/api/streams/{id}/invitations*`, `/join-requests*`, `/hosts*`,
//! `/layout`: co-host rooms (see [`crate::rooms`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use onair_signaling::ApiError;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{id, AppState, Auth, Body, MaybeAuth};
use super::ErrorBody;
use crate::accounts::User;
use crate::clock::now_ms;
use crate::rooms::hosts::{HostPatch, RoomHost};
use crate::rooms::invitations::{InviteInput, Invitation, JoinRequest};
use crate::rooms::layout::RoomLayout;
use crate::streams::access;

async fn user(app: &AppState, name: &str) -> Result<User, ApiError> {
    app.accounts.by_username(name).await?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "user_not_found", format!("no user '{name}'")))
}

/// Invites a host to co-host (the primary host, or a co-host with the
/// `invite` permission): they get a `cohost_invitation` event and have ten
/// minutes to accept. Inviting again renews it.
#[utoipa::path(post, path = "/api/streams/{id}/invitations", tag = "rooms", security(("bearer" = [])), request_body = InviteInput,
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 201, body = Invitation), (status = 400, body = ErrorBody),
              (status = 403, description = "not allowed to invite; host_removed: the invitee left or was removed", body = ErrorBody),
              (status = 404, description = "stream or user_not_found", body = ErrorBody),
              (status = 409, description = "room_full, already_host, stream_over", body = ErrorBody),
              (status = 422, description = "not_a_host: the invitee cannot publish", body = ErrorBody)))]
pub async fn invite(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, Body(input): Body<InviteInput>) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    let invitee = user(&app, &input.user).await?;
    Ok((StatusCode::CREATED, Json(app.rooms.invite(&s, &who, &invitee, now_ms()).await?)))
}

/// Accepts the caller's invitation: they are a co-host, and their stream
/// key publishes into this room.
#[utoipa::path(post, path = "/api/streams/{id}/invitations/accept", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = Invitation), (status = 403, description = "host_removed", body = ErrorBody),
              (status = 404, description = "invitation_not_found", body = ErrorBody),
              (status = 409, description = "room_full (nine hosts at most, or the stream's max_hosts), host_busy (live in another room), stream_over", body = ErrorBody),
              (status = 410, description = "invitation_expired", body = ErrorBody)))]
pub async fn accept(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>) -> Result<Json<Invitation>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    app.rooms.answer_invitation(&s, &who.user, true, now_ms()).await.map(Json)
}

/// Declines the caller's invitation.
#[utoipa::path(post, path = "/api/streams/{id}/invitations/decline", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = Invitation), (status = 404, description = "invitation_not_found", body = ErrorBody),
              (status = 410, description = "invitation_expired", body = ErrorBody)))]
pub async fn decline(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>) -> Result<Json<Invitation>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    app.rooms.answer_invitation(&s, &who.user, false, now_ms()).await.map(Json)
}

/// Asks to join the room (a host): its primary host gets a
/// `cohost_request` event.
#[utoipa::path(post, path = "/api/streams/{id}/join-requests", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 201, body = JoinRequest), (status = 403, description = "host_removed", body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "already_host, stream_over", body = ErrorBody), (status = 422, description = "not_a_host", body = ErrorBody)))]
pub async fn request_to_join(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>) -> Result<(StatusCode, Json<JoinRequest>), ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    Ok((StatusCode::CREATED, Json(app.rooms.request_to_join(&s, &who.user, now_ms()).await?)))
}

/// Pending requests to join, oldest first (the primary host).
#[utoipa::path(get, path = "/api/streams/{id}/join-requests", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = [JoinRequest]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn join_requests(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>) -> Result<Json<Vec<JoinRequest>>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    app.rooms.join_requests(&s, &who).await.map(Json)
}

/// Approves a request to join (the primary host): the host is a co-host.
#[utoipa::path(post, path = "/api/streams/{id}/join-requests/{user}/approve", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id"), ("user" = String, Path, description = "The requester's username")),
    responses((status = 200, body = JoinRequest), (status = 403, body = ErrorBody), (status = 404, description = "request_not_found, user_not_found", body = ErrorBody),
              (status = 409, description = "room_full, host_busy, stream_over", body = ErrorBody)))]
pub async fn approve(State(app): State<AppState>, Auth(who): Auth, Path((sid, name)): Path<(String, String)>) -> Result<Json<JoinRequest>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    let u = user(&app, &name).await?;
    app.rooms.decide_request(&s, &who, &u, true, now_ms()).await.map(Json)
}

/// Rejects a request to join (the primary host).
#[utoipa::path(post, path = "/api/streams/{id}/join-requests/{user}/reject", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id"), ("user" = String, Path, description = "The requester's username")),
    responses((status = 200, body = JoinRequest), (status = 403, body = ErrorBody), (status = 404, description = "request_not_found, user_not_found", body = ErrorBody)))]
pub async fn reject(State(app): State<AppState>, Auth(who): Auth, Path((sid, name)): Path<(String, String)>) -> Result<Json<JoinRequest>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    let u = user(&app, &name).await?;
    app.rooms.decide_request(&s, &who, &u, false, now_ms()).await.map(Json)
}

/// The room's hosts (the primary host first, then co-hosts in the order
/// they joined) with their slot, permissions and media state now.
#[utoipa::path(get, path = "/api/streams/{id}/hosts", tag = "rooms",
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = [RoomHost]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn hosts(State(app): State<AppState>, MaybeAuth(who): MaybeAuth, Path(sid): Path<String>) -> Result<Json<Vec<RoomHost>>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    access::check_watch(&app.membership, &s, who.as_ref()).await?;
    app.rooms.hosts(&s).await.map(Json)
}

/// Mutes or unmutes a host (themself; the primary host or a co-host with
/// `mute_others` anyone but the primary), or sets a co-host's permissions
/// (the primary host). Enforced by the server: a muted track reaches no
/// one. Pushed as `host_updated`.
#[utoipa::path(patch, path = "/api/streams/{id}/hosts/{user}", tag = "rooms", security(("bearer" = [])), request_body = HostPatch,
    params(("id" = i64, Path, description = "Stream id"), ("user" = String, Path, description = "The host's username")),
    responses((status = 200, body = RoomHost), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, description = "host_not_found, user_not_found", body = ErrorBody), (status = 409, description = "primary_host, stream_over", body = ErrorBody)))]
pub async fn update_host(State(app): State<AppState>, Auth(who): Auth, Path((sid, name)): Path<(String, String)>, Body(p): Body<HostPatch>) -> Result<Json<RoomHost>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    let u = user(&app, &name).await?;
    app.rooms.update_host(&s, &who, &u, &p).await.map(Json)
}

/// A co-host leaves (themself) or is removed (the primary host, channel
/// moderators): its WHIP and host-WHEP sessions close at once and its key
/// cannot publish into this room again (`403 host_removed`). Pushed as
/// `host_left`. The primary host ends the stream instead.
#[utoipa::path(delete, path = "/api/streams/{id}/hosts/{user}", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id"), ("user" = String, Path, description = "The host's username")),
    responses((status = 204, description = "Out of the room"), (status = 403, body = ErrorBody),
              (status = 404, description = "host_not_found, user_not_found", body = ErrorBody), (status = 409, description = "primary_host", body = ErrorBody)))]
pub async fn remove_host(State(app): State<AppState>, Auth(who): Auth, Path((sid, name)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    let u = user(&app, &name).await?;
    app.rooms.remove_host(&s, &who, &u, now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A room's layout and who is in which slot now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoomView {
    /// The layout.
    pub layout: RoomLayout,
    /// Hosts by slot (usernames; a viewer with K slots gets the first K).
    pub slots: Vec<Option<String>>,
    /// What a one-slot player shows.
    pub program: Option<String>,
}

/// The room's layout and slots (what the watch page renders).
#[utoipa::path(get, path = "/api/streams/{id}/layout", tag = "rooms",
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = RoomView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn layout(State(app): State<AppState>, MaybeAuth(who): MaybeAuth, Path(sid): Path<String>) -> Result<Json<RoomView>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    access::check_watch(&app.membership, &s, who.as_ref()).await?;
    let (slots, program) = app.rooms.slots(s.id);
    Ok(Json(RoomView { layout: app.rooms.layout(s.id).await?, slots, program }))
}

/// Sets the layout (the primary host, or a co-host with `layout`): grid
/// (2x2 up to four hosts, 3x3 beyond), spotlight, sidebar or pip, with a
/// focus host and an order. Every viewer gets `room_layout` and
/// `room_slots`; the media follows (slots, and one-slot players' program).
#[utoipa::path(put, path = "/api/streams/{id}/layout", tag = "rooms", security(("bearer" = [])), request_body = RoomLayout,
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = RoomLayout), (status = 400, description = "validation: focus or order names no host", body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "stream_over", body = ErrorBody)))]
pub async fn set_layout(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, Body(input): Body<RoomLayout>) -> Result<Json<RoomLayout>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    app.rooms.set_layout(&s, &who, input, now_ms()).await.map(Json)
}
