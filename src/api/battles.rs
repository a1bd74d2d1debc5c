//! `/api/battles*`, `/api/users/{name}/battles`, `/api/leaderboards`: PK
//! battles and their leaderboards (see [`crate::battles`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use onair_signaling::ApiError;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{id, AppState, Auth, Body, Q};
use super::ErrorBody;
use crate::battles::leaderboards::{Leaderboard, LeaderboardQuery};
use crate::battles::rules::{Answered, ChallengeInput};
use crate::battles::{Battle, UserBattles};

/// Challenges a live host to a PK battle. The caller must be live too; the
/// opponent gets a `battle_invitation` event and has 30 s to accept.
#[utoipa::path(post, path = "/api/battles", tag = "battles", security(("bearer" = [])), request_body = ChallengeInput,
    responses((status = 201, body = Battle), (status = 400, body = ErrorBody),
              (status = 404, description = "user_not_found", body = ErrorBody),
              (status = 409, description = "not_live (the caller), opponent_not_live, host_busy (either host is in a battle)", body = ErrorBody),
              (status = 422, description = "duration_s (60-600), opponent (yourself), rule (no such gift, or a likes battle)", body = ErrorBody)))]
pub async fn challenge(State(app): State<AppState>, Auth(who): Auth, Body(input): Body<ChallengeInput>) -> Result<(StatusCode, Json<Battle>), ApiError> {
    let opponent = super::user_named(&app, &input.opponent).await?;
    Ok((StatusCode::CREATED, Json(app.battles.challenge(&who, &opponent, input).await?)))
}

/// `GET /api/battles` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BattleQuery {
    /// `invited`, `countdown`, `active`, `ended`, `declined`, `cancelled`, `expired`, `aborted` (default: any).
    pub state: Option<String>,
    /// 1-100 (default 50).
    pub limit: Option<i64>,
}

/// Battles, newest first (`?state=active`: the ones on now).
#[utoipa::path(get, path = "/api/battles", tag = "battles", params(BattleQuery), responses((status = 200, body = [Battle]), (status = 422, body = ErrorBody)))]
pub async fn list(State(app): State<AppState>, Q(q): Q<BattleQuery>) -> Result<Json<Vec<Battle>>, ApiError> {
    app.battles.list(q.state.as_deref(), q.limit.unwrap_or(50)).await.map(Json)
}

/// A battle: its state, times, both sides' scores and top supporters, the winner.
#[utoipa::path(get, path = "/api/battles/{id}", tag = "battles", params(("id" = i64, Path, description = "Battle id")),
    responses((status = 200, body = Battle), (status = 404, description = "battle_not_found", body = ErrorBody)))]
pub async fn get(State(app): State<AppState>, Path(bid): Path<String>) -> Result<Json<Battle>, ApiError> {
    app.battles.get(id(&bid, "battle")?).await.map(Json)
}

/// Cancels a battle before it starts: the challenger while it is an
/// invitation, either host during the countdown.
#[utoipa::path(delete, path = "/api/battles/{id}", tag = "battles", security(("bearer" = [])), params(("id" = i64, Path, description = "Battle id")),
    responses((status = 200, body = Battle), (status = 403, body = ErrorBody), (status = 404, description = "battle_not_found", body = ErrorBody),
              (status = 409, description = "battle_started: active or over", body = ErrorBody)))]
pub async fn cancel(State(app): State<AppState>, Auth(who): Auth, Path(bid): Path<String>) -> Result<Json<Battle>, ApiError> {
    app.battles.cancel(&who, id(&bid, "battle")?).await.map(Json)
}

fn answered(a: Answered) -> Result<Json<Battle>, ApiError> {
    match a {
        Answered::Done(b) => Ok(Json(b)),
        Answered::Expired(b) => Err(ApiError::new(StatusCode::GONE, "invitation_expired", format!("the challenge lapsed at {}", crate::clock::rfc3339(b.expires_at)))),
    }
}

/// Accepts a challenge (the challenged host): the 3 s countdown starts,
/// and the start and end are fixed; the two rooms are linked.
#[utoipa::path(post, path = "/api/battles/{id}/accept", tag = "battles", security(("bearer" = [])), params(("id" = i64, Path, description = "Battle id")),
    responses((status = 200, body = Battle), (status = 403, body = ErrorBody), (status = 404, description = "battle_not_found", body = ErrorBody),
              (status = 409, description = "battle_not_pending, stream_not_live", body = ErrorBody), (status = 410, description = "invitation_expired", body = ErrorBody)))]
pub async fn accept(State(app): State<AppState>, Auth(who): Auth, Path(bid): Path<String>) -> Result<Json<Battle>, ApiError> {
    answered(app.battles.answer(&who, id(&bid, "battle")?, true).await?)
}

/// Declines a challenge (the challenged host).
#[utoipa::path(post, path = "/api/battles/{id}/decline", tag = "battles", security(("bearer" = [])), params(("id" = i64, Path, description = "Battle id")),
    responses((status = 200, body = Battle), (status = 403, body = ErrorBody), (status = 404, description = "battle_not_found", body = ErrorBody),
              (status = 409, description = "battle_not_pending", body = ErrorBody), (status = 410, description = "invitation_expired", body = ErrorBody)))]
pub async fn decline(State(app): State<AppState>, Auth(who): Auth, Path(bid): Path<String>) -> Result<Json<Battle>, ApiError> {
    answered(app.battles.answer(&who, id(&bid, "battle")?, false).await?)
}

/// `GET /api/users/{name}/battles` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserBattlesQuery {
    /// Latest battles listed, 1-100 (default 20).
    pub limit: Option<i64>,
}

/// A host's battle record (wins, losses, draws) and latest battles.
#[utoipa::path(get, path = "/api/users/{name}/battles", tag = "battles", params(("name" = String, Path, description = "Username or id"), UserBattlesQuery),
    responses((status = 200, body = UserBattles), (status = 404, description = "user_not_found", body = ErrorBody), (status = 422, description = "limit out of range", body = ErrorBody)))]
pub async fn of_user(State(app): State<AppState>, Path(name): Path<String>, Q(q): Q<UserBattlesQuery>) -> Result<Json<UserBattles>, ApiError> {
    let user = super::user_named(&app, &name).await?;
    app.battles.of_user(&user, q.limit.unwrap_or(20)).await.map(Json)
}

/// A leaderboard for the current day, week (from Monday), month (in the
/// server's leaderboard time zone) or all time: hosts by battle points (then
/// gift coins received), supporters by gift coins given.
#[utoipa::path(get, path = "/api/leaderboards", tag = "battles", params(LeaderboardQuery), responses((status = 200, body = Leaderboard), (status = 422, body = ErrorBody)))]
pub async fn leaderboards(State(app): State<AppState>, Q(q): Q<LeaderboardQuery>) -> Result<Json<Leaderboard>, ApiError> {
    crate::battles::leaderboards::read(&app.pool, &q, app.battles.now(), &app.battles.settings.timezone).await.map(Json)
}
