//! `/api/streams/{id}/analytics*` (the host's figures) and `/api/admin/*`
//! (users' roles, webhooks).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use onair_signaling::ApiError;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{id, AppState, Auth, Body, Q};
use super::ErrorBody;
use crate::accounts::{Principal, Role, User};
use crate::analytics::{Report, SessionsQuery, ViewerSession};
use crate::webhooks::{NewWebhook, Webhook, WebhookInput};

/// A stream's analytics, live or after the end (its host and moderators).
#[utoipa::path(get, path = "/api/streams/{id}/analytics", tag = "analytics", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = Report), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn analytics(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>) -> Result<Json<Report>, ApiError> {
    let s = app.owned_stream(id(&sid, "stream")?, &who, true).await?;
    app.analytics.report(&s).await.map(Json)
}

/// Each viewer's stays: join, leave, device (its host and moderators).
#[utoipa::path(get, path = "/api/streams/{id}/analytics/sessions", tag = "analytics", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id"), SessionsQuery),
    responses((status = 200, body = [ViewerSession]), (status = 403, body = ErrorBody)))]
pub async fn sessions(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, Q(q): Q<SessionsQuery>) -> Result<Json<Vec<ViewerSession>>, ApiError> {
    let s = app.owned_stream(id(&sid, "stream")?, &who, true).await?;
    app.analytics.sessions(s.id, &q).await.map(Json)
}

fn admin(who: &Principal) -> Result<(), ApiError> {
    if who.role() == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("admins only"))
    }
}

/// A change to a user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// New role.
    pub role: Option<Role>,
    /// Disable (true) or enable (false) the account.
    pub disabled: Option<bool>,
}

/// Changes a user's role or disables them (admins).
#[utoipa::path(patch, path = "/api/admin/users/{user}", tag = "admin", security(("bearer" = [])), request_body = UserChange,
    params(("user" = String, Path, description = "Username or id")),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn change_user(State(app): State<AppState>, Auth(who): Auth, Path(user): Path<String>, Body(change): Body<UserChange>) -> Result<Json<User>, ApiError> {
    admin(&who)?;
    let u = app.accounts.lookup_any(&user).await?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "user_not_found", format!("no user '{user}'")))?;
    if u.id == who.id() && (change.disabled == Some(true) || change.role.is_some_and(|r| r != Role::Admin)) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "self_demotion", "an admin cannot demote or disable themself"));
    }
    let before = u.role;
    let mut u = u;
    if let Some(role) = change.role {
        u = app.accounts.set_role(u.id, role).await?;
        // An admin making someone a host approves them to stream.
        if role.can_host() && app.admin.approval(u.id).await?.state == "pending" {
            app.admin.decide_approval(u.id, true, who.id(), "made a host by an admin").await?;
        }
    }
    if let Some(disabled) = change.disabled {
        app.accounts.set_disabled(u.id, disabled).await?;
    }
    let detail = serde_json::json!({ "username": u.username, "role_before": before, "role": change.role, "disabled": change.disabled });
    app.admin.audit(who.id(), "change_user", "user", Some(u.id), "", detail).await?;
    Ok(Json(u))
}

/// Webhook endpoints (admins).
#[utoipa::path(get, path = "/api/admin/webhooks", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [Webhook]), (status = 403, body = ErrorBody)))]
pub async fn webhooks(State(app): State<AppState>, Auth(who): Auth) -> Result<Json<Vec<Webhook>>, ApiError> {
    admin(&who)?;
    app.webhooks.list().await.map(Json)
}

/// Registers a webhook endpoint; its signing secret is in this answer only (admins).
#[utoipa::path(post, path = "/api/admin/webhooks", tag = "admin", security(("bearer" = [])), request_body = WebhookInput,
    responses((status = 201, body = NewWebhook), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_webhook(State(app): State<AppState>, Auth(who): Auth, Body(input): Body<WebhookInput>) -> Result<(StatusCode, Json<NewWebhook>), ApiError> {
    admin(&who)?;
    let hook = app.webhooks.create(&input).await?;
    app.admin.audit(who.id(), "create_webhook", "webhook", Some(hook.webhook.id), "", serde_json::json!({ "url": hook.webhook.url, "events": hook.webhook.events })).await?;
    Ok((StatusCode::CREATED, Json(hook)))
}

/// Turns a webhook endpoint off (admins).
#[utoipa::path(delete, path = "/api/admin/webhooks/{webhook_id}", tag = "admin", security(("bearer" = [])),
    params(("webhook_id" = i64, Path, description = "Webhook id")),
    responses((status = 204, description = "Off"), (status = 404, body = ErrorBody)))]
pub async fn delete_webhook(State(app): State<AppState>, Auth(who): Auth, Path(wid): Path<String>) -> Result<StatusCode, ApiError> {
    admin(&who)?;
    let wid = id(&wid, "webhook")?;
    if app.webhooks.disable(wid).await? {
        app.admin.audit(who.id(), "delete_webhook", "webhook", Some(wid), "", serde_json::json!({})).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no webhook {wid}")))
    }
}
