//! The platform's HTTP API (`/api/...`), its OpenAPI document, and the
//! pages. JSON in and out; every error is `{"error": {"code", "message",
//! "fields"?, "retry_after_ms"?}}` with the matching status.
//!
//! Routes are declared once, with their documentation (`utoipa`), so the
//! OpenAPI document at `/api/openapi.json` cannot drift from what is served.

pub mod admin;
pub mod auth;
pub mod chat;
pub mod extract;
pub mod money;
pub mod money_admin;
pub mod payments;
pub mod streams;
pub mod users;
pub mod ws;

use std::path::Path;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use onair_signaling::ApiError;
use serde::Serialize;
use tower_http::services::{ServeDir, ServeFile};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::User;
use extract::AppState;

/// Largest JSON body accepted.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// The error shape (for the document).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `validation`, `slow_mode`, `stream_not_found`.
    pub code: String,
    /// For people.
    pub message: String,
    /// Per-field problems (`validation`).
    pub fields: Option<std::collections::BTreeMap<String, String>>,
    /// When trying again can work.
    pub retry_after_ms: Option<u64>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "OnAir API", description = "The live-streaming platform around OnAir's SFU. WHIP/WHEP media signaling is documented in the README."),
    modifiers(&BearerAuth),
    components(schemas(crate::realtime::Event, ErrorBody, crate::streams::ListType)),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "users", description = "Profiles and following"),
        (name = "stream keys", description = "A host's keys for WHIP publishing"),
        (name = "streams", description = "Creating, scheduling and running streams"),
        (name = "chat", description = "Live chat"),
        (name = "moderation", description = "Chat rules, bans, timeouts, moderators"),
        (name = "analytics", description = "Viewer figures from real connections"),
        (name = "money", description = "The coin wallet: top-ups, tips, gifts, tickets, subscriptions, earnings, payouts, statements. Requests that move coins take an Idempotency-Key"),
        (name = "payments", description = "The payment provider's webhook and the development provider's checkout"),
        (name = "admin", description = "Users' roles, webhooks, the ledger, gifts, payouts, refunds"),
        (name = "real-time", description = "The WebSocket"),
    )
)]
struct ApiDoc;

/// The API routes and their document.
fn api(app: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(users::me))
        .routes(routes!(users::reminders))
        .routes(routes!(users::list_keys, users::create_key))
        .routes(routes!(users::rotate_key))
        .routes(routes!(users::revoke_key))
        .routes(routes!(users::profile))
        .routes(routes!(users::follow, users::unfollow))
        .routes(routes!(streams::list, streams::create))
        .routes(routes!(streams::get, streams::update, streams::delete))
        .routes(routes!(streams::start))
        .routes(routes!(streams::end))
        .routes(routes!(streams::archive))
        .routes(routes!(streams::cancel))
        .routes(routes!(streams::occurrences))
        .routes(routes!(streams::remind, streams::unremind))
        .routes(routes!(streams::gift_ticket))
        .routes(routes!(chat::history, chat::post))
        .routes(routes!(chat::like))
        .routes(routes!(chat::delete))
        .routes(routes!(chat::settings, chat::update_settings))
        .routes(routes!(chat::settings_full))
        .routes(routes!(chat::restrictions))
        .routes(routes!(chat::timeout))
        .routes(routes!(chat::untimeout))
        .routes(routes!(chat::ban))
        .routes(routes!(chat::unban))
        .routes(routes!(chat::moderators, chat::add_moderator))
        .routes(routes!(chat::remove_moderator))
        .routes(routes!(chat::gift_subscription))
        .routes(routes!(admin::analytics))
        .routes(routes!(admin::sessions))
        .routes(routes!(admin::change_user))
        .routes(routes!(admin::webhooks, admin::create_webhook))
        .routes(routes!(admin::delete_webhook))
        .routes(routes!(money::wallet))
        .routes(routes!(money::packages))
        .routes(routes!(money::top_up))
        .routes(routes!(money::payment))
        .routes(routes!(money::transactions))
        .routes(routes!(money::gifts))
        .routes(routes!(money::tip))
        .routes(routes!(money::gift))
        .routes(routes!(money::supporters))
        .routes(routes!(money::buy_ticket))
        .routes(routes!(money::subscribe))
        .routes(routes!(money::unsubscribe))
        .routes(routes!(money::my_subscriptions))
        .routes(routes!(money::earnings))
        .routes(routes!(money::request_payout, money::my_payouts))
        .routes(routes!(payments::webhook))
        .routes(routes!(payments::dev_intent))
        .routes(routes!(payments::dev_pay))
        .routes(routes!(payments::dev_decline))
        .routes(routes!(payments::dev_dispute))
        .routes(routes!(money_admin::ledger_check))
        .routes(routes!(money_admin::ledger_accounts))
        .routes(routes!(money_admin::all_gifts, money_admin::create_gift))
        .routes(routes!(money_admin::update_gift))
        .routes(routes!(money_admin::payouts))
        .routes(routes!(money_admin::payout_paid))
        .routes(routes!(money_admin::payout_reject))
        .routes(routes!(money_admin::payments))
        .routes(routes!(money_admin::refund))
        .routes(routes!(money_admin::promo))
        .routes(routes!(ws::upgrade))
        .with_state(app)
        .split_for_parts();
    (router, doc)
}

/// A user named in a path (username or id), or 404.
pub async fn user_named(app: &AppState, name: &str) -> Result<User, ApiError> {
    app.accounts.lookup(name).await?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "user_not_found", format!("no user '{name}'")))
}

/// Per-IP limits on auth and on new media sessions (WHIP/WHEP offers), per-IP
/// and per-user limits on every other write.
async fn limits(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let client = onair_signaling::Client::of_request(req.headers(), req.uri(), req.extensions());
    let ip = client.ip;
    let path = req.uri().path();
    let write = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    let offer = *req.method() == Method::POST && (path == "/whip" || (path.starts_with("/whep/") && path.matches('/').count() == 2));
    if offer {
        if let Some(wait) = ip.and_then(|ip| app.limits.media_ip.check(&ip).err()) {
            return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many new media sessions from this address; slow down").retry_after(wait.as_millis() as u64 + 1).into_response();
        }
    } else if write && path.starts_with("/api/") {
        let over = if path.starts_with("/api/auth/") && path != "/api/auth/logout" {
            ip.and_then(|ip| app.limits.auth.check(&ip).err())
        } else {
            let by_ip = ip.and_then(|ip| app.limits.writes_ip.check(&ip).err());
            let user = client.bearer.as_deref().and_then(|t| app.accounts.verify(t).ok()).map(|c| c.sub);
            by_ip.or_else(|| user.and_then(|u| app.limits.writes_user.check(&u).err()))
        };
        if let Some(wait) = over {
            return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down").retry_after(wait.as_millis() as u64 + 1).into_response();
        }
    }
    next.run(req).await
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route for {}", uri.path()))
}

/// Everything the server answers over HTTP: the API, WHIP/WHEP signaling,
/// the pages, metrics.
pub fn router(app: AppState, static_dir: &Path) -> Router {
    let (api, doc) = api(app.clone());
    let doc = doc.to_json().unwrap_or_else(|_| "{}".into());
    let signaling = onair_signaling::router(onair_signaling::Signaling { sfu: app.sfu.clone(), platform: std::sync::Arc::new(crate::gate::Gate::new(app.clone())) });
    let page = |name: &str| ServeFile::new(static_dir.join(name));
    let pages = Router::new()
        .route_service("/", page("index.html"))
        .route_service("/login", page("login.html"))
        .route_service("/dashboard", page("dashboard.html"))
        .route_service("/publish", page("publish.html"))
        .route_service("/watch/{stream}", page("watch.html"))
        .route_service("/wallet", page("wallet.html"))
        .route_service("/earnings", page("earnings.html"))
        .route_service("/pay/dev/{intent}", page("pay-dev.html"))
        .nest_service("/static", ServeDir::new(static_dir));
    let misc = Router::new()
        .route("/api/openapi.json", get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc) }))
        .route("/api/config", get(config))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(app.clone());
    api.merge(misc)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .merge(signaling)
        .layer(axum::middleware::from_fn_with_state(app, limits))
        .merge(pages)
        .fallback(not_found)
}

async fn config(State(app): State<AppState>) -> Json<serde_json::Value> {
    // The studio retries a dropped publish for as long as the stream is held for it.
    let payments = serde_json::json!({ "provider": app.money.payments.provider.name(), "currency": app.money.payments.currency, "creator_share": app.money.settings.creator_share });
    Json(serde_json::json!({ "ice_servers": app.sfu.ice_servers(), "reconnect_grace_seconds": app.settings.reconnect_grace.as_secs(), "payments": payments }))
}

async fn metrics(State(app): State<AppState>) -> Response {
    let mut text = app.sfu.metrics().prometheus();
    let hub = &app.hub;
    text.push_str(&format!(
        "# TYPE onair_ws_events_published counter\nonair_ws_events_published {}\n# TYPE onair_ws_events_dropped counter\nonair_ws_events_dropped {}\n",
        hub.published.load(std::sync::atomic::Ordering::Relaxed),
        hub.dropped.load(std::sync::atomic::Ordering::Relaxed)
    ));
    let w = &app.money.writer.stats;
    text.push_str(&format!(
        "# TYPE onair_money_batches counter\nonair_money_batches {}\n# TYPE onair_money_jobs counter\nonair_money_jobs {}\n\
         # TYPE onair_money_begin_seconds counter\nonair_money_begin_seconds {}\n# TYPE onair_money_run_seconds counter\nonair_money_run_seconds {}\n\
         # TYPE onair_money_commit_seconds counter\nonair_money_commit_seconds {}\n",
        w.batches.load(std::sync::atomic::Ordering::Relaxed),
        w.jobs.load(std::sync::atomic::Ordering::Relaxed),
        w.begin_us.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6,
        w.run_us.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6,
        w.commit_us.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
