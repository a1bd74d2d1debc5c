//! `/api/streams/{id}/polls*`: opening, voting, closing, the list and a
//! poll's timeline.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use onair_signaling::{ApiError, Client};

use super::extract::{id, AppState, Auth, Body, MaybeAuth};
use super::ErrorBody;
use crate::polls::{NewPoll, Poll, PollTimeline, VoteInput, VoteTaken};
use crate::streams::access;

/// Opens a poll (the host and moderators): 2-6 options, optionally timed
/// and for subscribers only. One poll is open per stream at a time.
#[utoipa::path(post, path = "/api/streams/{id}/polls", tag = "polls", security(("bearer" = [])), request_body = NewPoll,
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 201, body = Poll), (status = 400, description = "validation", body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "poll_open: close the open one first; stream_over", body = ErrorBody)))]
pub async fn open(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, Body(input): Body<NewPoll>) -> Result<(StatusCode, Json<Poll>), ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    Ok((StatusCode::CREATED, Json(app.polls.open(&s, &who, input).await?)))
}

/// A stream's polls, oldest first, with their counts (final once closed)
/// and, with a login, the caller's vote (`my_vote`).
#[utoipa::path(get, path = "/api/streams/{id}/polls", tag = "polls",
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = [Poll]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(State(app): State<AppState>, MaybeAuth(who): MaybeAuth, Path(sid): Path<String>) -> Result<Json<Vec<Poll>>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    access::check_watch(&app.membership, &s, who.as_ref()).await?;
    app.polls.list(s.id, who.map(|w| w.id())).await.map(Json)
}

/// A poll with its counts over time and its place in the stream (seconds
/// from the first media): what a replay shows at its moment.
#[utoipa::path(get, path = "/api/streams/{id}/polls/{poll}", tag = "polls",
    params(("id" = i64, Path, description = "Stream id"), ("poll" = i64, Path, description = "Poll id")),
    responses((status = 200, body = PollTimeline), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn timeline(State(app): State<AppState>, MaybeAuth(who): MaybeAuth, Path((sid, pid)): Path<(String, String)>) -> Result<Json<PollTimeline>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    access::check_watch(&app.membership, &s, who.as_ref()).await?;
    app.polls.timeline(&s, id(&pid, "poll")?).await.map(Json)
}

/// Votes, or changes one's vote while the poll is open (`option`: the
/// option's index). 201 for a first vote, 200 for a change. Load-test
/// clients' votes are taken (`counted: false`) and never counted.
#[utoipa::path(post, path = "/api/streams/{id}/polls/{poll}/votes", tag = "polls", security(("bearer" = [])), request_body = VoteInput,
    params(("id" = i64, Path, description = "Stream id"), ("poll" = i64, Path, description = "Poll id")),
    responses((status = 201, body = VoteTaken), (status = 200, description = "The vote changed", body = VoteTaken),
              (status = 400, description = "validation: no such option", body = ErrorBody),
              (status = 403, description = "subscribers_only, banned, ...", body = ErrorBody), (status = 404, description = "poll_not_found", body = ErrorBody),
              (status = 409, description = "poll_closed", body = ErrorBody)))]
pub async fn vote(State(app): State<AppState>, Auth(who): Auth, client: Client, Path((sid, pid)): Path<(String, String)>, Body(input): Body<VoteInput>) -> Result<(StatusCode, Json<VoteTaken>), ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    let v = app.polls.vote(&s, id(&pid, "poll")?, &who, input.option, client.load_test).await?;
    Ok((if v.previous.is_some() { StatusCode::OK } else { StatusCode::CREATED }, Json(v)))
}

/// Closes a poll now (the host and moderators); its counts are final.
#[utoipa::path(post, path = "/api/streams/{id}/polls/{poll}/close", tag = "polls", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id"), ("poll" = i64, Path, description = "Poll id")),
    responses((status = 200, body = Poll), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "poll_closed: already closed", body = ErrorBody)))]
pub async fn close(State(app): State<AppState>, Auth(who): Auth, Path((sid, pid)): Path<(String, String)>) -> Result<Json<Poll>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    app.polls.close_by(&s, id(&pid, "poll")?, &who).await.map(Json)
}
