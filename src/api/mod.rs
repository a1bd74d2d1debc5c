//! The platform's HTTP API (`/api/...`), its OpenAPI document, and the
//! pages. JSON in and out; every error is `{"error": {"code", "message",
//! "fields"?, "retry_after_ms"?}}` with the matching status.
//!
//! Routes are declared once, with their documentation (`utoipa`), so the
//! OpenAPI document at `/api/openapi.json` cannot drift from what is served.

pub mod admin;
pub mod auth;
pub mod channels;
pub mod chat;
pub mod console;
pub mod extract;
pub mod filters;
pub mod money;
pub mod money_admin;
pub mod payments;
pub mod media_doc;
pub mod polls;
pub mod questions;
pub mod recording;
pub mod rooms;
pub mod battles;
pub mod security;
pub mod shop;
pub mod streams;
pub mod users;
pub mod ws;
pub mod ws_guard;

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
    info(title = "OnAir API", description = "The live-streaming platform around OnAir's SFU. WHIP/WHEP media signaling is documented in the README. \
Access tokens go in `Authorization: Bearer`; a `?token=` query parameter is accepted only when opening a WebSocket (`/api/ws`), and refused with `400 token_in_query` anywhere else."),
    modifiers(&BearerAuth),
    components(schemas(crate::realtime::Event, ErrorBody, crate::streams::ListType)),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "users", description = "Profiles and following"),
        (name = "channels", description = "A host's channel: what an unprepared publish goes live with"),
        (name = "stream keys", description = "A host's keys for WHIP publishing"),
        (name = "streams", description = "Creating, scheduling and running streams"),
        (name = "chat", description = "Live chat"),
        (name = "moderation", description = "Chat rules, bans, timeouts, moderators"),
        (name = "polls", description = "Polls during a stream"),
        (name = "questions", description = "Q&A during a stream"),
        (name = "rooms", description = "Co-host rooms: invitations, requests to join, hosts, mutes, layout"),
        (name = "battles", description = "PK battles: two live hosts head to head, gifts and likes scoring, winners, rewards, leaderboards"),
        (name = "analytics", description = "Viewer figures from real connections"),
        (name = "shop", description = "Live shopping: products, a stream's shelf, pins, live prices, flash sales, vouchers, orders (Idempotency-Key), interactions and figures"),
        (name = "money", description = "The coin wallet: top-ups, tips, gifts, tickets, subscriptions, earnings, payouts, statements. Requests that move coins take an Idempotency-Key"),
        (name = "payments", description = "The payment provider's webhook and the development provider's checkout"),
        (name = "stream filters", description = "The studio's filter catalogue: beauty, makeup, AR, colour, background, overlay and voice filters rendered in the host's browser; premium ones unlocked with coins"),
        (name = "admin", description = "The admin console: overview, users and host approval, streams, reports, webhooks, audit log; the ledger, gifts, payouts, refunds"),
        (name = "real-time", description = "The WebSocket"),
        (name = "server", description = "Configuration for pages, health, metrics, uploaded images"),
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
        .routes(routes!(users::me, users::update_me))
        .routes(routes!(users::put_avatar, users::delete_avatar))
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
        .routes(routes!(recording::start))
        .routes(routes!(recording::stop))
        .routes(routes!(streams::archive))
        .routes(routes!(streams::cancel))
        .routes(routes!(streams::occurrences))
        .routes(routes!(streams::remind, streams::unremind))
        .routes(routes!(streams::gift_ticket))
        .routes(routes!(streams::put_thumbnail, streams::delete_thumbnail))
        .routes(routes!(channels::defaults, channels::update_defaults))
        .routes(routes!(channels::put_default_thumbnail, channels::delete_default_thumbnail))
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
        .routes(routes!(polls::list, polls::open))
        .routes(routes!(polls::timeline))
        .routes(routes!(polls::vote))
        .routes(routes!(polls::close))
        .routes(routes!(rooms::invite))
        .routes(routes!(rooms::accept))
        .routes(routes!(rooms::decline))
        .routes(routes!(rooms::join_requests, rooms::request_to_join))
        .routes(routes!(rooms::approve))
        .routes(routes!(rooms::reject))
        .routes(routes!(rooms::hosts))
        .routes(routes!(rooms::update_host, rooms::remove_host))
        .routes(routes!(rooms::layout, rooms::set_layout))
        .routes(routes!(battles::list, battles::challenge))
        .routes(routes!(battles::get, battles::cancel))
        .routes(routes!(battles::accept))
        .routes(routes!(battles::decline))
        .routes(routes!(battles::of_user))
        .routes(routes!(battles::leaderboards))
        .routes(routes!(questions::list, questions::ask))
        .routes(routes!(questions::update))
        .routes(routes!(questions::upvote, questions::unupvote))
        .routes(routes!(shop::list_products, shop::create_product))
        .routes(routes!(shop::get_product, shop::update_product, shop::delete_product))
        .routes(routes!(shop::add_product_image))
        .routes(routes!(shop::shelf, shop::add_to_shelf))
        .routes(routes!(shop::set_live_price, shop::remove_from_shelf))
        .routes(routes!(shop::pin, shop::unpin))
        .routes(routes!(shop::start_flash_sale))
        .routes(routes!(shop::flash_sales))
        .routes(routes!(shop::interact))
        .routes(routes!(shop::vouchers, shop::create_voucher))
        .routes(routes!(shop::place_order))
        .routes(routes!(shop::get_order))
        .routes(routes!(shop::my_orders))
        .routes(routes!(shop::seller_orders))
        .routes(routes!(shop::ship_order))
        .routes(routes!(shop::refund_order))
        .routes(routes!(shop::shop_analytics))
        .routes(routes!(shop::top))
        .routes(routes!(admin::analytics))
        .routes(routes!(admin::sessions))
        .routes(routes!(admin::change_user, console::user))
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
        .routes(routes!(filters::list))
        .routes(routes!(filters::trending))
        .routes(routes!(filters::featured))
        .routes(routes!(filters::category))
        .routes(routes!(filters::search))
        .routes(routes!(filters::get))
        .routes(routes!(filters::apply))
        .routes(routes!(filters::unlock))
        .routes(routes!(filters::favorite, filters::unfavorite))
        .routes(routes!(filters::rate))
        .routes(routes!(filters::create_custom))
        .routes(routes!(filters::delete_custom))
        .routes(routes!(filters::my_favorites))
        .routes(routes!(filters::my_unlocked))
        .routes(routes!(filters::my_custom))
        .routes(routes!(filters::asset))
        .routes(routes!(filters::admin_create))
        .routes(routes!(filters::admin_update, filters::admin_retire))
        .routes(routes!(console::overview))
        .routes(routes!(console::users))
        .routes(routes!(console::approve_host))
        .routes(routes!(console::end_stream))
        .routes(routes!(console::take_down))
        .routes(routes!(console::report))
        .routes(routes!(console::reports))
        .routes(routes!(console::resolve_report))
        .routes(routes!(console::audit))
        .routes(routes!(console::my_approval))
        .routes(routes!(channels::best_times))
        .routes(routes!(ws::upgrade))
        .routes(routes!(config))
        .routes(routes!(metrics))
        .routes(routes!(healthz))
        .routes(routes!(image))
        .with_state(app)
        .split_for_parts();
    let mut doc = doc;
    doc.merge(media_doc::MediaDoc::openapi());
    unique_operation_ids(&mut doc);
    standard_errors(&mut doc);
    (router, doc)
}

/// Operation ids from the method and path (`get_api_streams_id`): handler
/// names repeat across modules (`streams::delete`, `chat::delete`), and
/// OpenAPI wants every id unique.
fn unique_operation_ids(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let slug: String = path.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect::<String>().split('_').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("_");
        let ops = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("options", &mut item.options),
            ("head", &mut item.head),
            ("patch", &mut item.patch),
            ("trace", &mut item.trace),
        ];
        for (method, op) in ops {
            if let Some(op) = op.as_mut() {
                op.operation_id = Some(format!("{method}_{slug}"));
            }
        }
    }
}

/// The errors every operation of a kind can answer, added where its own
/// description leaves them out: 400 (a parameter or body that does not
/// parse), 401 (a bad or expired token: every authenticated or
/// optionally-authenticated operation), 403 (secured operations), 404 (a path naming nothing), 413
/// and 415 (a body too large or of another type), 429 (writes past the
/// rate limits), 503 (the database too busy). All with the JSON error body.
fn standard_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |why: &str| {
        ResponseBuilder::new().description(why).content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build()).build()
    };
    let open = ["/healthz", "/metrics", "/api/config", "/images/{name}"];
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            (false, &mut item.get),
            (true, &mut item.put),
            (true, &mut item.post),
            (true, &mut item.delete),
            (false, &mut item.options),
            (false, &mut item.head),
            (true, &mut item.patch),
        ];
        for (write, op) in ops {
            let Some(op) = op.as_mut() else { continue };
            let params = op.parameters.as_deref().unwrap_or_default();
            let in_path = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
            let body = op.request_body.is_some();
            let mut want: Vec<(&str, &str)> = Vec::new();
            if body || !params.is_empty() {
                want.push(("400", "bad_json, validation, ...: the request does not parse"));
            }
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                want.push(("403", "forbidden: not the caller's to do"));
            }
            if !open.contains(&path.as_str()) {
                want.push(("401", "invalid_token, unauthorized: a bad, expired or missing token"));
                want.push(("503", "busy: the server is busy; try again"));
            }
            if in_path {
                want.push(("404", "not_found: the path names nothing"));
            }
            if body {
                want.push(("413", "body_too_large"));
                want.push(("415", "wrong_content_type"));
            }
            if write {
                want.push(("429", "rate_limited (with Retry-After)"));
            }
            for (code, why) in want {
                if !op.responses.responses.contains_key(code) {
                    op.responses.responses.insert(code.to_owned(), utoipa::openapi::RefOr::T(error(why)));
                }
            }
        }
    }
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
    let session_url = !offer && (path.starts_with("/whip/") || (path.starts_with("/whep/") && path.matches('/').count() >= 3));
    if offer {
        if let Some(wait) = ip.and_then(|ip| app.limits.media_ip.check(&ip).err()) {
            return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many new media sessions from this address; slow down").retry_after(wait.as_millis() as u64 + 1).into_response();
        }
    } else if session_url && *req.method() != Method::OPTIONS {
        if let Some(wait) = ip.and_then(|ip| app.limits.session_ip.check(&ip).err()) {
            return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests on media sessions from this address; slow down").retry_after(wait.as_millis() as u64 + 1).into_response();
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
        .route_service("/leaderboards", page("leaderboard.html"))
        .route_service("/admin", page("admin.html"))
        .route_service("/pay/dev/{intent}", page("pay-dev.html"))
        .route_service("/c/{username}", page("channel.html"))
        .nest_service("/static", ServeDir::new(static_dir));
    let misc = Router::new()
        .route("/api/openapi.json", get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc) }))
        .with_state(app.clone());
    let trusted = std::sync::Arc::new(app.settings.trusted_proxies.clone());
    api.merge(misc)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .merge(signaling)
        .layer(axum::middleware::from_fn_with_state(app, limits))
        .layer(axum::middleware::from_fn(json_errors))
        .merge(pages)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(security::enforce))
        // First of all: who the client is (behind trusted proxies).
        .layer(axum::middleware::from_fn_with_state(trusted, crate::client_addr::resolve))
}

/// The one error shape for errors the handlers never saw: an extractor's
/// plain-text rejection (a WebSocket route asked without an upgrade) or a
/// method a route does not have (405) become `{"error": {...}}` too.
async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let json = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_owned()).unwrap_or_default();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "wrong_content_type",
        StatusCode::UPGRADE_REQUIRED => "upgrade_required",
        _ if status.is_server_error() => "internal",
        _ => "error",
    };
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_lowercase() } else { text };
    let mut out = ApiError::new(status, code, message).into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

/// The body of an image upload, read up to [`crate::images::MAX_BYTES`]
/// (the JSON body limit does not apply to it).
pub async fn image_body(body: axum::body::Body) -> Result<bytes::Bytes, ApiError> {
    let max = crate::images::MAX_BYTES;
    axum::body::to_bytes(body, max).await.map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "image_too_large", format!("images are at most {} MiB", max / 1024 / 1024)))
}

/// An uploaded image (thumbnail, avatar). Names are content hashes, so the
/// name is the ETag and browsers may keep it for a year.
#[utoipa::path(get, path = "/images/{name}", tag = "server",
    params(("name" = String, Path, description = "`{hash}.jpg`, `.png` or `.webp`"), ("If-None-Match" = Option<String>, Header, description = "An ETag seen before")),
    responses((status = 200, description = "The image, with `ETag` and `Cache-Control: public, max-age=31536000, immutable`",
                content((crate::images::ImageFile = "image/jpeg"), (crate::images::ImageFile = "image/png"), (crate::images::ImageFile = "image/webp"))),
              (status = 304, description = "Not modified"), (status = 404, description = "image_not_found", body = ErrorBody)))]
async fn image(State(app): State<AppState>, axum::extract::Path(name): axum::extract::Path<String>, headers: axum::http::HeaderMap) -> Response {
    let missing = || ApiError::new(StatusCode::NOT_FOUND, "image_not_found", format!("no image '{name}'")).into_response();
    let Some((path, _, mime)) = app.images.file(&name) else { return missing() };
    let etag = format!("\"{}\"", name.split('.').next().unwrap_or_default());
    let cache = (header::CACHE_CONTROL, "public, max-age=31536000, immutable");
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag.as_str()), cache]).into_response();
    }
    match tokio::fs::read(&path).await {
        Ok(data) => (
            [(header::CONTENT_TYPE, mime), (header::ETAG, etag.as_str()), cache, (header::X_CONTENT_TYPE_OPTIONS, "nosniff")],
            data,
        )
            .into_response(),
        Err(_) => missing(),
    }
}

/// What the pages need: the ICE servers, and how long a dropped publisher
/// is waited for (the studio publishes again by itself within it).
#[derive(Serialize, ToSchema)]
pub struct PageConfig {
    /// RTCPeerConnection `iceServers`: `{urls, username?, credential?}`.
    pub ice_servers: Vec<serde_json::Value>,
    /// The reconnect grace, seconds.
    pub reconnect_grace_seconds: u64,
}

/// Settings the pages need.
#[utoipa::path(get, path = "/api/config", tag = "server", responses((status = 200, body = PageConfig)))]
async fn config(State(app): State<AppState>, client: onair_signaling::Client) -> Json<serde_json::Value> {
    // TURN relays traffic: its credentials go to logged-in users (and with
    // every authorized WHIP/WHEP offer), never to anyone who asks.
    let user = client.bearer.as_deref().and_then(|t| app.accounts.verify(t).ok()).map(|c| c.sub);
    let ice_servers = match user {
        Some(id) => {
            let now = crate::clock::now_ms() as u64 / 1000;
            onair_signaling::turn::ice_servers_for(app.sfu.ice_servers(), app.sfu.config().turn.as_ref(), &format!("user-{id}"), now)
        }
        None => onair_signaling::turn::public_ice_servers(app.sfu.ice_servers()),
    };
    // The studio retries a dropped publish for as long as the stream is held for it.
    let payments = serde_json::json!({ "provider": app.money.payments.provider.name(), "currency": app.money.payments.currency, "creator_share": app.money.settings.creator_share });
    Json(serde_json::json!({ "ice_servers": ice_servers, "reconnect_grace_seconds": app.settings.reconnect_grace.as_secs(), "payments": payments }))
}

/// Prometheus text: sessions, packets and bytes, NACKs, retransmissions,
/// PLIs, keyframe-cache starts, layer switches, queue drops, WebSocket events.
#[utoipa::path(get, path = "/metrics", tag = "server", responses((status = 200, description = "Prometheus exposition format", body = String, content_type = "text/plain")))]
async fn metrics(State(app): State<AppState>) -> Response {
    let mut text = app.sfu.metrics().prometheus();
    let hub = &app.hub;
    let ws = &app.limits.ws;
    let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    for (name, value) in [
        ("onair_ws_events_published", n(&hub.published)),
        ("onair_ws_events_dropped", n(&hub.dropped)),
        ("onair_ws_refused_connections", n(&ws.refused_sockets)),
        ("onair_ws_rate_limited_messages", n(&ws.refused_messages)),
        ("onair_ws_flood_closes", n(&ws.flood_closes)),
        ("onair_stream_cache_misses", app.streams.cache_misses()),
    ] {
        text.push_str(&format!("# TYPE {name} counter\n{name} {value}\n"));
    }
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

/// Liveness: `ok` while the server answers.
#[utoipa::path(get, path = "/healthz", tag = "server", responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}
