//! The admin console's endpoints (`/api/admin/*`, admins only): the
//! overview, users and host approval, ending a stream and taking a replay
//! down (the host is told why), viewers' reports and their review, the audit
//! log. Viewers report a stream with `POST /api/streams/{id}/reports`; a
//! host asks `GET /api/me/host-approval` whether they may stream.
//! Every admin action here is written to the audit log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::extract::{id, AppState, Auth, Body, Q};
use super::ErrorBody;
use crate::accounts::{Principal, Role};
use crate::admin::health::Sample;
use crate::admin::{check_reason, day_start_utc, AdminUser, AuditPage, AuditQuery, HostApproval, StreamReport, UserPage, UsersQuery};
use crate::clock::now_ms;
use crate::keys::KeyInfo;
use crate::realtime::{Event, Topic};
use crate::streams::{access, ListQuery, ListType, Stream};

/// 401 without a login (the extractor), 403 for anyone but an admin.
pub fn admin_only(who: &Principal) -> Result<(), ApiError> {
    if who.role() == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("admins only"))
    }
}

/// The server's health now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Media sessions open (`onair_publishers` + `onair_viewers`).
    pub media_sessions: u64,
    /// Publishers (`onair_publishers`).
    pub publishers: u64,
    /// WebRTC viewer sessions, load tests included (`onair_viewers`).
    pub webrtc_viewers: u64,
    /// RTP packets forwarded per second (over the last few seconds).
    pub packets_per_second: f64,
    /// CPU, percent of one core (over the last few seconds).
    pub cpu_percent: f64,
    /// Resident memory, bytes.
    pub memory_bytes: u64,
    /// Media worker threads.
    pub workers: usize,
    /// Workers restarted after a panic (`onair_worker_restarts_total`).
    pub worker_restarts: u64,
    /// Peers closed by a contained panic (`onair_peer_panics_total`).
    pub peer_panics: u64,
    /// WebSocket events published (`onair_ws_events_published`).
    pub ws_events_published: u64,
    /// WebSocket events dropped for lagging clients (`onair_ws_events_dropped`).
    pub ws_events_dropped: u64,
}

/// The platform at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    /// Streams live now.
    pub live_streams: i64,
    /// Real viewers now (never load tests).
    pub viewers_now: u64,
    /// Most real viewers at once today (since `day_start`).
    pub peak_today: i64,
    /// Accounts made today.
    pub new_users_today: i64,
    /// Accounts in all.
    pub users_total: i64,
    /// Host accounts.
    pub hosts: i64,
    /// Hosts waiting for approval.
    pub pending_hosts: i64,
    /// Reports waiting for review.
    pub open_reports: i64,
    /// Coins the platform kept today (its share of what viewers spent, less refunds), from the ledger.
    pub revenue_today: Option<i64>,
    /// Midnight UTC: what "today" means here.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub day_start: i64,
    /// The server now.
    pub health: Health,
    /// One sample a minute over the last 24 hours (since the server started).
    pub history: Vec<Sample>,
}

/// The platform now: streams, viewers, users, revenue, health, and the last day's samples.
#[utoipa::path(get, path = "/api/admin/overview", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Overview), (status = 403, body = ErrorBody)))]
pub async fn overview(State(app): State<AppState>, Auth(who): Auth) -> Result<Json<Overview>, ApiError> {
    admin_only(&who)?;
    let now = now_ms();
    let day = day_start_utc(now);
    let (new_users, users, hosts, pending, reports, live) = app.admin.counts(day).await?;
    let m = app.sfu.metrics();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let recent = app.admin.history.now();
    let viewers_now = app.analytics.viewers_total();
    let health = Health {
        media_sessions: load(&m.publishers) + load(&m.viewers),
        publishers: load(&m.publishers),
        webrtc_viewers: load(&m.viewers),
        packets_per_second: recent.packets_per_second,
        cpu_percent: recent.cpu_percent,
        memory_bytes: crate::admin::health::process_usage().1,
        workers: app.sfu.config().workers.max(1),
        worker_restarts: load(&m.worker_restarts),
        peer_panics: load(&m.peer_panics),
        ws_events_published: load(&app.hub.published),
        ws_events_dropped: load(&app.hub.dropped),
    };
    Ok(Json(Overview {
        live_streams: live,
        viewers_now,
        peak_today: app.admin.peak_viewers_since(day, now).await?.max(viewers_now as i64),
        new_users_today: new_users,
        users_total: users,
        hosts,
        pending_hosts: pending,
        open_reports: reports,
        revenue_today: Some(app.money.revenue_since(day).await?),
        day_start: day,
        health,
        history: app.admin.history.day(now),
    }))
}

/// Users, newest first: search by name or email, by role, by status
/// (`active`, `disabled`, `pending` approval).
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", security(("bearer" = [])), params(UsersQuery),
    responses((status = 200, body = UserPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn users(State(app): State<AppState>, Auth(who): Auth, Q(q): Q<UsersQuery>) -> Result<Json<UserPage>, ApiError> {
    admin_only(&who)?;
    app.admin.users(&q).await.map(Json)
}

/// A user with their streams and keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDetail {
    /// The user.
    pub user: AdminUser,
    /// Their latest streams (50 at most).
    pub streams: Vec<Stream>,
    /// Their stream keys (prefixes only).
    pub keys: Vec<KeyInfo>,
}

async fn admin_user(app: &AppState, name: &str) -> Result<AdminUser, ApiError> {
    let id = match name.parse::<i64>() {
        Ok(id) => Some(id),
        Err(_) => sqlx::query_as::<_, (i64,)>("SELECT id FROM users WHERE username = $1").bind(name.trim().to_ascii_lowercase()).fetch_optional(&app.pool).await.map_err(ApiError::internal)?.map(|r| r.0),
    };
    let user = match id {
        Some(id) => app.admin.user(id).await?,
        None => None,
    };
    user.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "user_not_found", format!("no user '{name}'")))
}

/// A user (disabled ones too), their streams and keys.
#[utoipa::path(get, path = "/api/admin/users/{user}", tag = "admin", security(("bearer" = [])),
    params(("user" = String, Path, description = "Username or id")),
    responses((status = 200, body = UserDetail), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn user(State(app): State<AppState>, Auth(who): Auth, Path(name): Path<String>) -> Result<Json<UserDetail>, ApiError> {
    admin_only(&who)?;
    let user = admin_user(&app, &name).await?;
    let page = app.streams.list(&ListQuery { kind: ListType::All, limit: Some(50), offset: None, host: Some(user.username.clone()) }, Some((who.id(), true))).await;
    // A disabled host's streams are not listed by name: no streams then.
    let streams = page.map(|p| p.streams.into_iter().map(|s| app.analytics.with_viewers(s)).collect()).unwrap_or_default();
    let keys = app.keys.list(user.id).await?;
    Ok(Json(UserDetail { user, streams, keys }))
}

/// An admin's decision on a host.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalInput {
    /// Approve (true) or decline (false).
    pub approve: bool,
    /// A note for the record (and the host).
    #[serde(default)]
    pub note: String,
}

/// Approves (or declines) a host's request to stream.
#[utoipa::path(post, path = "/api/admin/users/{user}/host-approval", tag = "admin", security(("bearer" = [])), request_body = ApprovalInput,
    params(("user" = String, Path, description = "Username or id")),
    responses((status = 200, body = HostApproval), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn approve_host(State(app): State<AppState>, Auth(who): Auth, Path(name): Path<String>, Body(input): Body<ApprovalInput>) -> Result<Json<HostApproval>, ApiError> {
    admin_only(&who)?;
    let user = admin_user(&app, &name).await?;
    app.admin.decide_approval(user.id, input.approve, who.id(), &input.note).await?;
    let action = if input.approve { "approve_host" } else { "reject_host" };
    app.admin.audit(who.id(), action, "user", Some(user.id), input.note.trim(), json!({ "username": user.username })).await?;
    let message = if input.approve { "An admin approved your account: you can stream now.".to_owned() } else { format!("An admin declined your request to stream. {}", input.note.trim()) };
    app.hub.publish(Topic::User(user.id), &Event::Notice { kind: action.to_owned(), message, stream_id: None });
    app.admin.approval(user.id).await.map(Json)
}

/// Why an admin acts on a stream.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonInput {
    /// 1-500 characters; the host is told.
    pub reason: String,
}

/// Ends a live stream now (saved, so its figures stay); the host is told
/// why: a notice on their connection and a line in the stream's chat.
#[utoipa::path(post, path = "/api/admin/streams/{id}/end", tag = "admin", security(("bearer" = [])), request_body = ReasonInput,
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = Stream), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "bad_state: not live", body = ErrorBody)))]
pub async fn end_stream(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, Body(input): Body<ReasonInput>) -> Result<Json<Stream>, ApiError> {
    admin_only(&who)?;
    let reason = check_reason("reason", &input.reason)?;
    let s = app.stream(id(&sid, "stream")?).await?;
    if s.state != crate::streams::State::Live {
        return Err(ApiError::new(StatusCode::CONFLICT, "bad_state", format!("stream {} is {}, not live", s.id, s.state.as_str())));
    }
    let message = format!("An administrator ended this stream: {reason}");
    app.chat.system(s.id, message.clone()).await?;
    let ended = app.lifecycle.end_because(&s, "admin", true).await?;
    app.admin.audit(who.id(), "end_stream", "stream", Some(s.id), &reason, json!({ "title": s.title, "host": s.host.username })).await?;
    app.hub.publish(Topic::User(s.host.id), &Event::Notice { kind: "stream_ended_by_admin".into(), message, stream_id: Some(s.id) });
    Ok(Json(ended))
}

/// Takes a stream's replay down: unlisted for good and never saved again
/// (its chat and figures stay for the record); the host is told why.
#[utoipa::path(post, path = "/api/admin/streams/{id}/takedown", tag = "admin", security(("bearer" = [])), request_body = ReasonInput,
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = Stream), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "bad_state: live or not over (end it first); taken_down: already", body = ErrorBody)))]
pub async fn take_down(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, Body(input): Body<ReasonInput>) -> Result<Json<Stream>, ApiError> {
    admin_only(&who)?;
    let reason = check_reason("reason", &input.reason)?;
    let s = app.stream(id(&sid, "stream")?).await?;
    if !matches!(s.state, crate::streams::State::Ended | crate::streams::State::Archived) {
        return Err(ApiError::new(StatusCode::CONFLICT, "bad_state", format!("stream {} is {}: only a replay (an ended stream) is taken down; end a live one first", s.id, s.state.as_str())));
    }
    if !app.admin.take_down(s.id, who.id(), &reason).await? {
        return Err(ApiError::new(StatusCode::CONFLICT, "taken_down", "this replay was already taken down"));
    }
    app.streams.forget(&s);
    let after = app.stream(s.id).await?;
    app.lifecycle.announce(&after);
    app.admin.audit(who.id(), "take_down", "stream", Some(s.id), &reason, json!({ "title": s.title, "host": s.host.username, "was": s.state.as_str() })).await?;
    app.hub.publish(Topic::User(s.host.id), &Event::Notice { kind: "replay_taken_down".into(), message: format!("An administrator took down the replay of \u{201c}{}\u{201d}: {reason}", s.title), stream_id: Some(s.id) });
    Ok(Json(after))
}

/// What a viewer reports.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    /// What is wrong, 1-500 characters.
    pub reason: String,
}

/// Reports a stream to the admins (one open report per viewer and stream).
#[utoipa::path(post, path = "/api/streams/{id}/reports", tag = "streams", security(("bearer" = [])), request_body = ReportInput,
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 201, body = StreamReport), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "already_reported", body = ErrorBody), (status = 422, description = "own_stream", body = ErrorBody)))]
pub async fn report(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, Body(input): Body<ReportInput>) -> Result<(StatusCode, Json<StreamReport>), ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    access::check_watch(&app.membership, &s, Some(&who)).await?;
    if s.host.id == who.id() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "own_stream", "you cannot report your own stream"));
    }
    Ok((StatusCode::CREATED, Json(app.admin.file_report(s.id, who.id(), &input.reason).await?)))
}

/// Query of the reports queue.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportsQuery {
    /// `open` (default, oldest first), `resolved`, `dismissed` or `all`.
    pub state: Option<String>,
}

/// Viewers' reports to review.
#[utoipa::path(get, path = "/api/admin/reports", tag = "admin", security(("bearer" = [])), params(ReportsQuery),
    responses((status = 200, body = [StreamReport]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn reports(State(app): State<AppState>, Auth(who): Auth, Q(q): Q<ReportsQuery>) -> Result<Json<Vec<StreamReport>>, ApiError> {
    admin_only(&who)?;
    app.admin.reports(q.state.as_deref()).await.map(Json)
}

/// The review of a report.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// `resolved` (acted on) or `dismissed` (nothing wrong).
    pub outcome: String,
    /// A note for the record.
    #[serde(default)]
    pub note: String,
}

/// Closes a report after review.
#[utoipa::path(post, path = "/api/admin/reports/{report}/resolve", tag = "admin", security(("bearer" = [])), request_body = ReviewInput,
    params(("report" = i64, Path, description = "Report id")),
    responses((status = 200, body = StreamReport), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "report_closed", body = ErrorBody)))]
pub async fn resolve_report(State(app): State<AppState>, Auth(who): Auth, Path(rid): Path<String>, Body(input): Body<ReviewInput>) -> Result<Json<StreamReport>, ApiError> {
    admin_only(&who)?;
    if !["resolved", "dismissed"].contains(&input.outcome.as_str()) {
        return Err(ApiError::validation([("outcome".to_owned(), "must be resolved or dismissed".to_owned())].into()));
    }
    let r = app.admin.resolve_report(id(&rid, "report")?, who.id(), &input.outcome, &input.note).await?;
    let action = if input.outcome == "resolved" { "resolve_report" } else { "dismiss_report" };
    app.admin.audit(who.id(), action, "report", Some(r.id), input.note.trim(), json!({ "stream_id": r.stream_id, "reason": r.reason })).await?;
    Ok(Json(r))
}

/// The audit log of admin actions, newest first.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn audit(State(app): State<AppState>, Auth(who): Auth, Q(q): Q<AuditQuery>) -> Result<Json<AuditPage>, ApiError> {
    admin_only(&who)?;
    app.admin.audit_log(&q).await.map(Json)
}

/// Whether the caller may stream: approval required, and its state.
#[utoipa::path(get, path = "/api/me/host-approval", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = HostApproval)))]
pub async fn my_approval(State(app): State<AppState>, Auth(who): Auth) -> Result<Json<HostApproval>, ApiError> {
    app.admin.approval(who.id()).await.map(Json)
}
