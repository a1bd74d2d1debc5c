//! `/api/auth/*`: register, log in, refresh, log out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use onair_signaling::{ApiError, Client};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{AppState, Auth, Body};
use super::ErrorBody;
use crate::accounts::{Registration, TokenPair};

/// Log in with a username (or email) and password.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginInput {
    /// Username or email.
    pub username: String,
    /// Password.
    pub password: String,
}

/// Trade a refresh token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshInput {
    /// The refresh token of the last login or refresh.
    pub refresh_token: String,
}

/// Makes an account and logs it in.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = Registration,
    responses((status = 201, description = "Registered and logged in", body = TokenPair),
              (status = 400, description = "Invalid fields", body = ErrorBody),
              (status = 409, description = "Username or email taken", body = ErrorBody),
              (status = 429, description = "Too many attempts", body = ErrorBody)))]
pub async fn register(State(app): State<AppState>, client: Client, Body(reg): Body<Registration>) -> Result<(StatusCode, Json<TokenPair>), ApiError> {
    let user = app.accounts.register(reg, app.settings.host_signup).await?;
    if app.settings.host_approval && user.role == crate::accounts::Role::Host {
        app.admin.request_approval(user.id).await?;
    }
    let pair = app.accounts.start_session(user, &client.user_agent, client.ip.map(|i| i.to_string())).await?;
    Ok((StatusCode::CREATED, Json(pair)))
}

/// Logs in: an access token (15 minutes) and a refresh token (30 days, once).
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginInput,
    responses((status = 200, description = "Logged in", body = TokenPair),
              (status = 401, description = "Wrong username or password", body = ErrorBody),
              (status = 429, description = "Too many attempts", body = ErrorBody)))]
pub async fn login(State(app): State<AppState>, client: Client, Body(input): Body<LoginInput>) -> Result<Json<TokenPair>, ApiError> {
    app.accounts.login(&input.username, &input.password, &client.user_agent, client.ip.map(|i| i.to_string())).await.map(Json)
}

/// A new token pair for a refresh token (which is then used up).
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshInput,
    responses((status = 200, description = "New tokens", body = TokenPair),
              (status = 401, description = "Unknown, used or expired refresh token", body = ErrorBody)))]
pub async fn refresh(State(app): State<AppState>, Body(input): Body<RefreshInput>) -> Result<Json<TokenPair>, ApiError> {
    app.accounts.refresh(&input.refresh_token).await.map(Json)
}

/// Ends this login: its access and refresh tokens stop working.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Logged out"), (status = 401, description = "Not logged in", body = ErrorBody)))]
pub async fn logout(State(app): State<AppState>, Auth(who): Auth) -> Result<StatusCode, ApiError> {
    app.accounts.revoke_session(who.session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
