//! `/api/streams/{id}/questions*`: Q&A.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use onair_signaling::{ApiError, Client};

use super::extract::{id, AppState, Auth, Body, MaybeAuth, Q};
use super::ErrorBody;
use crate::questions::{NewQuestion, Question, QuestionPatch, QuestionsQuery};
use crate::streams::access;

/// Asks a question. The chat's rules apply, with its refusal codes
/// (`banned`, `timed_out`, `banned_word`, `rate_limited`, `slow_mode`,
/// `too_long`, `empty`, `duplicate`, `subscribers_only`, `followers_only`,
/// `chat_closed`).
#[utoipa::path(post, path = "/api/streams/{id}/questions", tag = "questions", security(("bearer" = [])), request_body = NewQuestion,
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 201, body = Question), (status = 403, description = "banned, timed_out, ...", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "chat_closed", body = ErrorBody),
              (status = 422, description = "too_long, empty, duplicate, banned_word", body = ErrorBody), (status = 429, description = "rate_limited, slow_mode", body = ErrorBody)))]
pub async fn ask(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, Body(input): Body<NewQuestion>) -> Result<(StatusCode, Json<Question>), ApiError> {
    let q = app.questions.ask(id(&sid, "stream")?, &who, &input.text).await?;
    Ok((StatusCode::CREATED, Json(q)))
}

/// A stream's questions, `top` (most upvoted first) or `new`. Viewers do not
/// see hidden ones; the host's team sees them all. With a login, `upvoted`
/// marks the caller's upvotes.
#[utoipa::path(get, path = "/api/streams/{id}/questions", tag = "questions",
    params(("id" = i64, Path, description = "Stream id"), QuestionsQuery),
    responses((status = 200, body = [Question]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(State(app): State<AppState>, MaybeAuth(who): MaybeAuth, Path(sid): Path<String>, Q(q): Q<QuestionsQuery>) -> Result<Json<Vec<Question>>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    access::check_watch(&app.membership, &s, who.as_ref()).await?;
    app.questions.list(&s, who.as_ref(), &q).await.map(Json)
}

/// Upvotes a question (once each; not one's own). Load-test clients'
/// upvotes are kept and not counted.
#[utoipa::path(post, path = "/api/streams/{id}/questions/{question}/upvote", tag = "questions", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id"), ("question" = i64, Path, description = "Question id")),
    responses((status = 201, body = Question), (status = 403, body = ErrorBody), (status = 404, description = "question_not_found", body = ErrorBody),
              (status = 409, description = "already_upvoted, chat_closed", body = ErrorBody), (status = 422, description = "own_question", body = ErrorBody)))]
pub async fn upvote(State(app): State<AppState>, Auth(who): Auth, client: Client, Path((sid, qid)): Path<(String, String)>) -> Result<(StatusCode, Json<Question>), ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    let q = app.questions.upvote(&s, id(&qid, "question")?, &who, client.load_test).await?;
    Ok((StatusCode::CREATED, Json(q)))
}

/// Takes one's upvote back.
#[utoipa::path(delete, path = "/api/streams/{id}/questions/{question}/upvote", tag = "questions", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id"), ("question" = i64, Path, description = "Question id")),
    responses((status = 200, body = Question), (status = 404, description = "question_not_found, not_upvoted", body = ErrorBody)))]
pub async fn unupvote(State(app): State<AppState>, Auth(who): Auth, Path((sid, qid)): Path<(String, String)>) -> Result<Json<Question>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    app.questions.unupvote(&s, id(&qid, "question")?, &who).await.map(Json)
}

/// Marks a question `answering` (shown over the video to everyone; the one
/// before becomes `answered`), `answered`, `hidden` or `open` again (the
/// host and moderators).
#[utoipa::path(patch, path = "/api/streams/{id}/questions/{question}", tag = "questions", security(("bearer" = [])), request_body = QuestionPatch,
    params(("id" = i64, Path, description = "Stream id"), ("question" = i64, Path, description = "Question id")),
    responses((status = 200, body = Question), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(State(app): State<AppState>, Auth(who): Auth, Path((sid, qid)): Path<(String, String)>, Body(p): Body<QuestionPatch>) -> Result<Json<Question>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    app.questions.set_state(&s, id(&qid, "question")?, &who, p.state).await.map(Json)
}
