//! Stream filters: the catalogue the studio renders from, and who may use
//! what. Filters render in the host's browser before encoding (the server
//! never decodes video); the server holds the catalogue, its assets (LUT
//! images, stickers, backdrops) and the entitlements.
//!
//! - [`catalogue`]: listing, search, trending, featured, one filter;
//! - [`manage`]: admins' catalogue changes, hosts' custom presets;
//! - [`unlock`]: premium filters bought with coins through the ledger;
//! - [`engagement`]: uses (apply), favourites, ratings;
//! - [`assets`]: the built-in asset files, served only to who may use them.

pub mod assets;
pub mod catalogue;
pub mod engagement;
pub mod manage;
pub mod unlock;

use std::sync::Arc;

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::Serialize;
use sqlx::SqlitePool;
use utoipa::ToSchema;

use crate::realtime::Hub;

/// The categories, in tray order.
pub const CATEGORIES: [&str; 7] = ["beauty", "makeup", "ar", "color", "background", "overlay", "voice"];

/// The renderers the studio has (a filter's `effect`).
pub const EFFECTS: [&str; 14] = ["beauty", "lut", "vignette", "grain", "bg_blur", "bg_replace", "green_screen", "makeup", "face_sticker", "face_warp", "sticker", "text", "frame", "voice"];

/// The filter service.
#[derive(Clone)]
pub struct Filters {
    pub(crate) pool: SqlitePool,
    pub(crate) hub: Arc<Hub>,
}

impl Filters {
    /// Over the database and the real-time hub (apply tells the host's other tabs).
    pub fn new(pool: SqlitePool, hub: Arc<Hub>) -> Filters {
        Filters { pool, hub }
    }
}

/// A filter's asset: a file the studio loads (a LUT image, a sticker, a backdrop).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FilterAsset {
    /// File name (`lut_warm.png`).
    pub name: String,
    /// `lut`, `sticker`, `backdrop` or `frame`.
    pub kind: String,
    /// Where OnAir serves it (`403 locked` until a premium filter is unlocked).
    pub url: String,
}

/// Who made a filter (hosts' presets and creator-made filters).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FilterCreator {
    /// User id.
    pub id: i64,
    /// Username.
    pub username: String,
}

/// A filter.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct StreamFilter {
    /// Id (`look_warm`; a custom preset: `custom_...`).
    pub id: String,
    /// Name.
    pub name: String,
    /// `beauty`, `makeup`, `ar`, `color`, `background`, `overlay` or `voice`.
    pub category: String,
    /// One line for the tray.
    pub description: String,
    /// Bought with coins (a custom preset is as premium as its base).
    pub premium: bool,
    /// What an unlock costs (0 for free filters).
    pub price_coins: i64,
    /// The studio's renderer for it.
    pub effect: String,
    /// Its settings (a JSON object; strength sliders start here).
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// Files it needs.
    pub assets: Vec<FilterAsset>,
    /// Average stars (0 when unrated), one decimal.
    pub rating: f64,
    /// How many rated it.
    pub ratings: i64,
    /// Times applied (load tests excluded).
    pub uses: i64,
    /// Who made it (absent for the platform's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creator: Option<FilterCreator>,
    /// The filter a custom preset tunes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Listed for everyone (a private preset: only its creator).
    pub public: bool,
    /// Shown under Featured.
    pub featured: bool,
    /// Offered (a retired filter stays for those who unlocked it).
    pub enabled: bool,
    /// Tray order within its category.
    pub sort: i64,
    /// For the caller: usable now (free, unlocked, or theirs).
    pub unlocked: bool,
    /// For the caller: a favourite.
    pub favorite: bool,
    /// For the caller: their stars, if they rated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_rating: Option<i64>,
    /// Trending only: uses in the last 7 days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_uses: Option<i64>,
}

/// A page of filters.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FilterPage {
    /// The filters.
    pub filters: Vec<StreamFilter>,
    /// How many match in all.
    pub total: i64,
    /// Page size.
    pub limit: i64,
    /// Where this page starts.
    pub offset: i64,
    /// The next page's offset, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<i64>,
}

/// `400 validation` for one field.
pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(std::collections::BTreeMap::from([(field.to_owned(), message.into())]))
}

/// `404 filter_not_found`.
pub fn not_found(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "filter_not_found", format!("no stream filter '{id}'"))
}

/// `403 locked`: a premium filter the caller has not unlocked.
pub fn locked(id: &str, price: i64) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "locked", format!("'{id}' is a premium filter: unlock it for {price} coins first"))
}
