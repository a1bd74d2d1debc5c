//! `/api/stream-filters/...`: the filter catalogue (anyone), what hosts do
//! with filters (apply, unlock with coins, favourites, ratings, custom
//! presets), the filters' assets (premium ones only to who unlocked them),
//! and `/api/admin/stream-filters` (admins manage the catalogue).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use onair_signaling::{ApiError, Client};
use serde::Deserialize;
use utoipa::IntoParams;

use super::console::admin_only;
use super::extract::{AppState, Auth, Body, Idempotent, MaybeAuth, Opened, Q};
use super::money::reply;
use super::ErrorBody;
use crate::clock::now_ms;
use crate::filters::catalogue::ListQuery;
use crate::filters::engagement::{Applied, ApplyInput, RateInput};
use crate::filters::manage::{CustomInput, FilterInput};
use crate::filters::unlock::Unlock;
use crate::filters::{not_found, FilterPage, StreamFilter};
use crate::images::ImageFile;

fn me(who: &MaybeAuth) -> Option<i64> {
    who.0.as_ref().map(|p| p.id())
}

/// The catalogue: by `category`, words `q`, `tier` (`free` or `premium`),
/// a page at a time (`limit`, `offset`), in tray order. Logged in, each
/// filter says whether you unlocked it, favour it and how you rated it.
#[utoipa::path(get, path = "/api/stream-filters", tag = "stream filters", params(ListQuery),
    responses((status = 200, body = FilterPage), (status = 400, body = ErrorBody)))]
pub async fn list(State(app): State<AppState>, who: MaybeAuth, Q(q): Q<ListQuery>) -> Result<Json<FilterPage>, ApiError> {
    app.filters.list(&q.checked()?, me(&who)).await.map(Json)
}

/// Trending: the filters hosts applied most in the last 7 days (`recent_uses`).
#[utoipa::path(get, path = "/api/stream-filters/trending", tag = "stream filters", params(ListQuery),
    responses((status = 200, body = FilterPage), (status = 400, body = ErrorBody)))]
pub async fn trending(State(app): State<AppState>, who: MaybeAuth, Q(q): Q<ListQuery>) -> Result<Json<FilterPage>, ApiError> {
    app.filters.trending(&q.checked()?, me(&who), now_ms()).await.map(Json)
}

/// Featured filters.
#[utoipa::path(get, path = "/api/stream-filters/featured", tag = "stream filters", params(ListQuery),
    responses((status = 200, body = FilterPage), (status = 400, body = ErrorBody)))]
pub async fn featured(State(app): State<AppState>, who: MaybeAuth, Q(q): Q<ListQuery>) -> Result<Json<FilterPage>, ApiError> {
    app.filters.featured(&q.checked()?, me(&who)).await.map(Json)
}

/// One category's filters.
#[utoipa::path(get, path = "/api/stream-filters/category/{category}", tag = "stream filters",
    params(("category" = String, Path, description = "beauty, makeup, ar, color, background, overlay or voice"), ListQuery),
    responses((status = 200, body = FilterPage), (status = 400, body = ErrorBody)))]
pub async fn category(State(app): State<AppState>, who: MaybeAuth, Path(category): Path<String>, Q(q): Q<ListQuery>) -> Result<Json<FilterPage>, ApiError> {
    let q = ListQuery { category: Some(category), ..q };
    app.filters.list(&q.checked()?, me(&who)).await.map(Json)
}

/// Query of a search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words, all of which a filter's name, description or category holds.
    pub q: Option<String>,
    /// 1-100, default 30.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

/// Searches the catalogue (`q` is required).
#[utoipa::path(get, path = "/api/stream-filters/search", tag = "stream filters", params(SearchQuery),
    responses((status = 200, body = FilterPage), (status = 400, body = ErrorBody)))]
pub async fn search(State(app): State<AppState>, who: MaybeAuth, Q(q): Q<SearchQuery>) -> Result<Json<FilterPage>, ApiError> {
    if q.q.as_deref().is_none_or(|s| s.trim().is_empty()) {
        return Err(crate::filters::invalid("q", "what to search for"));
    }
    let q = ListQuery { q: q.q, limit: q.limit, offset: q.offset, ..Default::default() };
    app.filters.list(&q.checked()?, me(&who)).await.map(Json)
}

/// One filter.
#[utoipa::path(get, path = "/api/stream-filters/{id}", tag = "stream filters", params(("id" = String, Path, description = "Filter id")),
    responses((status = 200, body = StreamFilter), (status = 404, body = ErrorBody)))]
pub async fn get(State(app): State<AppState>, who: MaybeAuth, Path(id): Path<String>) -> Result<Json<StreamFilter>, ApiError> {
    app.filters.get(&id, me(&who)).await?.map(Json).ok_or_else(|| not_found(&id))
}

/// Records that you applied a filter (trending, analytics) and tells your
/// other studio tabs (event `filter_applied`). `403 locked` for a premium
/// filter you have not unlocked.
#[utoipa::path(post, path = "/api/stream-filters/{id}/apply", tag = "stream filters", security(("bearer" = [])), request_body = Option<ApplyInput>,
    params(("id" = String, Path, description = "Filter id")),
    responses((status = 200, body = Applied), (status = 403, description = "locked, or not your stream", body = ErrorBody), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn apply(State(app): State<AppState>, Auth(who): Auth, client: Client, Path(id): Path<String>, body: Option<Body<serde_json::Value>>) -> Result<Json<Applied>, ApiError> {
    // An object or nothing: serde would read a struct from an array too.
    let input = match body.map(|b| b.0) {
        None => ApplyInput::default(),
        Some(v) if v.is_object() => serde_json::from_value(v).map_err(|e| crate::filters::invalid("body", e.to_string()))?,
        Some(_) => return Err(crate::filters::invalid("body", "must be a JSON object")),
    };
    app.filters.apply(who.id(), &id, input, client.load_test, now_ms()).await.map(Json)
}

/// Unlocks a premium filter with coins: its price moves from your coins
/// (promotional first) to the platform and, for a creator-made filter, its
/// creator. `402 insufficient_funds`; `409 already_unlocked`; a retry with
/// the same Idempotency-Key replays the answer and charges once.
#[utoipa::path(post, path = "/api/stream-filters/{id}/unlock", tag = "stream filters", security(("bearer" = [])),
    params(("id" = String, Path, description = "Filter id (a preset unlocks its base)"), ("Idempotency-Key" = String, Header, description = "A fresh UUID per unlock; the same one to retry it")),
    responses((status = 201, body = Unlock), (status = 402, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "not_premium, already_unlocked, filter_retired, idempotency_conflict", body = ErrorBody)))]
pub async fn unlock(State(app): State<AppState>, Auth(who): Auth, Path(id): Path<String>, req: Idempotent<serde_json::Value>) -> Result<Response, ApiError> {
    let (keyed, _) = match req.open(&app.pool, who.id()).await? {
        Opened::Replay(s) => return Ok(s.into_response()),
        Opened::Fresh(k, b) => (k, b),
    };
    let r = app.filters.unlock(&app.money, who.id(), id, keyed).await?;
    Ok(reply(r, StatusCode::CREATED))
}

/// Marks a favourite.
#[utoipa::path(post, path = "/api/stream-filters/{id}/favorite", tag = "stream filters", security(("bearer" = [])),
    params(("id" = String, Path, description = "Filter id")), responses((status = 200, body = StreamFilter), (status = 404, body = ErrorBody)))]
pub async fn favorite(State(app): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> Result<Json<StreamFilter>, ApiError> {
    app.filters.favorite(who.id(), &id, now_ms()).await.map(Json)
}

/// Removes a favourite.
#[utoipa::path(delete, path = "/api/stream-filters/{id}/favorite", tag = "stream filters", security(("bearer" = [])),
    params(("id" = String, Path, description = "Filter id")), responses((status = 200, body = StreamFilter), (status = 404, body = ErrorBody)))]
pub async fn unfavorite(State(app): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> Result<Json<StreamFilter>, ApiError> {
    app.filters.unfavorite(who.id(), &id).await.map(Json)
}

/// Rates a filter 1-5 stars (one rating each; rating again changes it): the filter with its average.
#[utoipa::path(post, path = "/api/stream-filters/{id}/rate", tag = "stream filters", security(("bearer" = [])), request_body = RateInput,
    params(("id" = String, Path, description = "Filter id")), responses((status = 200, body = StreamFilter), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn rate(State(app): State<AppState>, Auth(who): Auth, Path(id): Path<String>, Body(input): Body<RateInput>) -> Result<Json<StreamFilter>, ApiError> {
    app.filters.rate(who.id(), &id, input.stars, now_ms()).await.map(Json)
}

/// Saves a custom preset: a filter you may use, tuned (`public`: listed
/// for everyone, who need its base unlocked to use it).
#[utoipa::path(post, path = "/api/stream-filters/custom", tag = "stream filters", security(("bearer" = [])), request_body = CustomInput,
    responses((status = 201, body = StreamFilter), (status = 403, description = "locked: the base is premium and not yours", body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn create_custom(State(app): State<AppState>, Auth(who): Auth, Body(input): Body<CustomInput>) -> Result<(StatusCode, Json<StreamFilter>), ApiError> {
    Ok((StatusCode::CREATED, Json(app.filters.create_custom(who.id(), input, now_ms()).await?)))
}

/// Deletes one of your presets.
#[utoipa::path(delete, path = "/api/stream-filters/custom/{id}", tag = "stream filters", security(("bearer" = [])),
    params(("id" = String, Path, description = "Preset id")), responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_custom(State(app): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    app.filters.delete_custom(who.id(), &id, now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Your favourite filters, newest first.
#[utoipa::path(get, path = "/api/stream-filters/user/favorites", tag = "stream filters", security(("bearer" = [])), responses((status = 200, body = [StreamFilter])))]
pub async fn my_favorites(State(app): State<AppState>, Auth(who): Auth) -> Result<Json<Vec<StreamFilter>>, ApiError> {
    app.filters.favorites(who.id()).await.map(Json)
}

/// The premium filters you unlocked, newest first.
#[utoipa::path(get, path = "/api/stream-filters/user/unlocked", tag = "stream filters", security(("bearer" = [])), responses((status = 200, body = [StreamFilter])))]
pub async fn my_unlocked(State(app): State<AppState>, Auth(who): Auth) -> Result<Json<Vec<StreamFilter>>, ApiError> {
    app.filters.unlocked(who.id()).await.map(Json)
}

/// Your custom presets, newest first.
#[utoipa::path(get, path = "/api/stream-filters/user/custom", tag = "stream filters", security(("bearer" = [])), responses((status = 200, body = [StreamFilter])))]
pub async fn my_custom(State(app): State<AppState>, Auth(who): Auth) -> Result<Json<Vec<StreamFilter>>, ApiError> {
    app.filters.custom_of(who.id()).await.map(Json)
}

/// A filter's asset (a LUT image, a sticker, a backdrop). A premium
/// filter's assets only to who unlocked it: `403 locked` otherwise.
#[utoipa::path(get, path = "/api/stream-filters/{id}/assets/{name}", tag = "stream filters",
    params(("id" = String, Path, description = "Filter id"), ("name" = String, Path, description = "Asset file name")),
    responses((status = 200, description = "The file (`Cache-Control: private`)", content((ImageFile = "image/png"), (ImageFile = "image/svg+xml"))),
              (status = 403, description = "locked", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn asset(State(app): State<AppState>, who: MaybeAuth, Path((id, name)): Path<(String, String)>) -> Result<Response, ApiError> {
    let (mime, bytes) = app.filters.asset(&id, &name, me(&who)).await?;
    // Private: a premium asset must not sit in a shared cache for others.
    Ok(([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "private, max-age=3600")], bytes).into_response())
}

/// Adds a filter to the catalogue (admins).
#[utoipa::path(post, path = "/api/admin/stream-filters", tag = "admin", security(("bearer" = [])), request_body = FilterInput,
    responses((status = 201, body = StreamFilter), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn admin_create(State(app): State<AppState>, Auth(who): Auth, Body(input): Body<FilterInput>) -> Result<(StatusCode, Json<StreamFilter>), ApiError> {
    admin_only(&who)?;
    let f = app.filters.create(input, now_ms()).await?;
    app.admin.audit(who.id(), "stream_filter_create", "stream_filter", None, "", serde_json::json!({ "id": f.id, "premium": f.premium, "price_coins": f.price_coins })).await?;
    Ok((StatusCode::CREATED, Json(f)))
}

/// Changes a filter (admins).
#[utoipa::path(patch, path = "/api/admin/stream-filters/{id}", tag = "admin", security(("bearer" = [])), request_body = FilterInput,
    params(("id" = String, Path, description = "Filter id")), responses((status = 200, body = StreamFilter), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn admin_update(State(app): State<AppState>, Auth(who): Auth, Path(id): Path<String>, Body(input): Body<FilterInput>) -> Result<Json<StreamFilter>, ApiError> {
    admin_only(&who)?;
    let f = app.filters.update(&id, input, now_ms()).await?;
    app.admin.audit(who.id(), "stream_filter_update", "stream_filter", None, "", serde_json::json!({ "id": f.id, "premium": f.premium, "price_coins": f.price_coins, "enabled": f.enabled })).await?;
    Ok(Json(f))
}

/// Retires a filter (admins): out of the catalogue; whoever unlocked it keeps it.
#[utoipa::path(delete, path = "/api/admin/stream-filters/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Filter id")), responses((status = 204, description = "Retired"), (status = 404, body = ErrorBody)))]
pub async fn admin_retire(State(app): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    admin_only(&who)?;
    app.filters.retire(&id, now_ms()).await?;
    app.admin.audit(who.id(), "stream_filter_retire", "stream_filter", None, "", serde_json::json!({ "id": id })).await?;
    Ok(StatusCode::NO_CONTENT)
}
