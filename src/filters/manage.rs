//! Changing the catalogue: admins add, change and retire filters; hosts
//! save custom presets (a filter they tuned, private or shared).
//!
//! A filter is never deleted: unlocks, uses and presets name it. Retiring
//! one (`enabled: false`, or `DELETE`) takes it out of the catalogue; those
//! who unlocked it keep it.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::Deserialize;
use utoipa::ToSchema;

use super::engagement::check_parameters;
use super::{assets, catalogue, locked, not_found, Filters, StreamFilter, CATEGORIES, EFFECTS};
use crate::db::{begin_immediate, DbResult};
use crate::money::MAX_COINS;

/// Most custom presets one host keeps.
pub const MAX_PRESETS: i64 = 100;

/// An admin's new filter or change (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterInput {
    /// Id, 1-40 of a-z, 0-9, `_` (new filters only; not `custom_...`).
    #[serde(default)]
    pub id: Option<String>,
    /// 1-40 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// beauty, makeup, ar, color, background, overlay or voice.
    #[serde(default)]
    pub category: Option<String>,
    /// Up to 200 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// Sold for coins.
    #[serde(default)]
    pub premium: Option<bool>,
    /// 1-1,000,000 for a premium filter; 0 for a free one.
    #[serde(default)]
    pub price_coins: Option<i64>,
    /// The studio's renderer: beauty, lut, vignette, grain, bg_blur, bg_replace, green_screen, makeup, face_sticker, face_warp, sticker, text, frame, voice.
    #[serde(default)]
    pub effect: Option<String>,
    /// Its settings (a JSON object).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
    /// Built-in asset file names (`lut_warm.png`).
    #[serde(default)]
    pub assets: Option<Vec<String>>,
    /// A creator-made filter: the creator's username or id (they earn their share of each unlock); `""` for none.
    #[serde(default)]
    pub creator: Option<String>,
    /// Shown under Featured.
    #[serde(default)]
    pub featured: Option<bool>,
    /// Offered.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Tray order within the category.
    #[serde(default)]
    pub sort: Option<i64>,
}

/// A host's preset.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomInput {
    /// 1-40 characters.
    pub name: String,
    /// The filter it tunes (its renderer, assets and lock).
    pub base: String,
    /// The tuned settings (a JSON object).
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// Listed for everyone (default: only you).
    #[serde(default)]
    pub public: Option<bool>,
}

/// A filter row as stored.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    name: String,
    category: String,
    description: String,
    premium: bool,
    price_coins: i64,
    effect: String,
    parameters: serde_json::Value,
    assets: Vec<String>,
    creator_id: Option<i64>,
    featured: bool,
    enabled: bool,
    sort: i64,
}

fn check(r: &Row) -> Result<(), ApiError> {
    let mut f = BTreeMap::new();
    if r.id.is_empty() || r.id.len() > 40 || r.id.starts_with("custom_") || !r.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        f.insert("id".into(), "1-40 of a-z, 0-9 and _, not starting custom_".into());
    }
    if r.name.trim().is_empty() || r.name.chars().count() > 40 {
        f.insert("name".into(), "must be 1-40 characters".into());
    }
    if !CATEGORIES.contains(&r.category.as_str()) {
        f.insert("category".into(), format!("one of: {}", CATEGORIES.join(", ")));
    }
    if r.description.chars().count() > 200 {
        f.insert("description".into(), "at most 200 characters".into());
    }
    if !EFFECTS.contains(&r.effect.as_str()) {
        f.insert("effect".into(), format!("one of: {}", EFFECTS.join(", ")));
    }
    if r.premium && !(1..=MAX_COINS).contains(&r.price_coins) {
        f.insert("price_coins".into(), format!("a premium filter costs 1-{MAX_COINS} coins"));
    }
    if !r.premium && r.price_coins != 0 {
        f.insert("price_coins".into(), "a free filter costs 0".into());
    }
    if let Some(bad) = r.assets.iter().find(|a| assets::file(a).is_none()) {
        f.insert("assets".into(), format!("no built-in asset '{bad}'"));
    }
    if r.assets.len() > 8 {
        f.insert("assets".into(), "at most 8".into());
    }
    if let Err(e) = check_parameters(&r.parameters) {
        f.extend(e.fields);
    }
    if f.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(f))
    }
}

async fn load(c: &mut sqlx::SqliteConnection, id: &str) -> Result<Option<Row>, ApiError> {
    type R = (String, String, String, String, i64, i64, String, String, String, Option<i64>, i64, i64, i64, Option<String>);
    let r: Option<R> = sqlx::query_as("SELECT id, name, category, description, premium, price_coins, effect, parameters, assets, creator_id, featured, enabled, sort, base_id FROM stream_filters WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await
        .db()?;
    Ok(r.filter(|r| r.13.is_none()).map(|r| Row {
        id: r.0,
        name: r.1,
        category: r.2,
        description: r.3,
        premium: r.4 != 0,
        price_coins: r.5,
        effect: r.6,
        parameters: serde_json::from_str(&r.7).unwrap_or_else(|_| serde_json::json!({})),
        assets: serde_json::from_str(&r.8).unwrap_or_default(),
        creator_id: r.9,
        featured: r.10 != 0,
        enabled: r.11 != 0,
        sort: r.12,
    }))
}

impl Filters {
    async fn creator_id(&self, name: &Option<String>, current: Option<i64>) -> Result<Option<i64>, ApiError> {
        match name.as_deref().map(str::trim) {
            None => Ok(current),
            Some("") => Ok(None),
            Some(n) => {
                let row: Option<(i64,)> = match n.parse::<i64>() {
                    Ok(id) => sqlx::query_as("SELECT id FROM users WHERE id = $1").bind(id).fetch_optional(&self.pool).await.db()?,
                    Err(_) => sqlx::query_as("SELECT id FROM users WHERE LOWER(username) = LOWER($1)").bind(n).fetch_optional(&self.pool).await.db()?,
                };
                row.map(|r| Some(r.0)).ok_or_else(|| super::invalid("creator", format!("no user '{n}'")))
            }
        }
    }

    async fn store(&self, r: &Row, insert: bool, now: i64) -> Result<(), ApiError> {
        let mut tx = begin_immediate(&self.pool).await.db()?;
        let params = r.parameters.to_string();
        let names = serde_json::to_string(&r.assets).map_err(ApiError::internal)?;
        let done = if insert {
            sqlx::query(
                "INSERT INTO stream_filters (id, name, category, description, premium, price_coins, effect, parameters, assets, creator_id, featured, enabled, sort, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) ON CONFLICT (id) DO NOTHING",
            )
        } else {
            sqlx::query(
                "UPDATE stream_filters SET name = $2, category = $3, description = $4, premium = $5, price_coins = $6, effect = $7, parameters = $8, assets = $9, \
                 creator_id = $10, featured = $11, enabled = $12, sort = $13, updated_at = $14 WHERE id = $1",
            )
        }
        .bind(&r.id)
        .bind(r.name.trim())
        .bind(&r.category)
        .bind(&r.description)
        .bind(r.premium as i64)
        .bind(r.price_coins)
        .bind(&r.effect)
        .bind(&params)
        .bind(&names)
        .bind(r.creator_id)
        .bind(r.featured as i64)
        .bind(r.enabled as i64)
        .bind(r.sort)
        .bind(now)
        .execute(&mut *tx)
        .await
        .db()?;
        if done.rows_affected() == 0 {
            return Err(ApiError::new(StatusCode::CONFLICT, "filter_exists", format!("there is a filter '{}' already", r.id)));
        }
        if !insert {
            // Presets follow their base's renderer, category and assets.
            sqlx::query("UPDATE stream_filters SET category = $2, effect = $3, assets = $4, updated_at = $5 WHERE base_id = $1").bind(&r.id).bind(&r.category).bind(&r.effect).bind(&names).bind(now).execute(&mut *tx).await.db()?;
        }
        tx.commit().await.db()
    }

    /// Adds a filter (admins).
    pub async fn create(&self, input: FilterInput, now: i64) -> Result<StreamFilter, ApiError> {
        let mut missing = BTreeMap::new();
        for (name, present) in [("id", input.id.is_some()), ("name", input.name.is_some()), ("category", input.category.is_some()), ("effect", input.effect.is_some())] {
            if !present {
                missing.insert(name.to_owned(), "is required".to_owned());
            }
        }
        if !missing.is_empty() {
            return Err(ApiError::validation(missing));
        }
        let premium = input.premium.unwrap_or(false);
        let r = Row {
            id: input.id.clone().unwrap_or_default(),
            name: input.name.clone().unwrap_or_default(),
            category: input.category.clone().unwrap_or_default(),
            description: input.description.clone().unwrap_or_default(),
            premium,
            price_coins: input.price_coins.unwrap_or(0),
            effect: input.effect.clone().unwrap_or_default(),
            parameters: input.parameters.clone().unwrap_or_else(|| serde_json::json!({})),
            assets: input.assets.clone().unwrap_or_default(),
            creator_id: self.creator_id(&input.creator, None).await?,
            featured: input.featured.unwrap_or(false),
            enabled: input.enabled.unwrap_or(true),
            sort: input.sort.unwrap_or(100),
        };
        check(&r)?;
        self.store(&r, true, now).await?;
        let f = catalogue::get(&mut *self.pool.acquire().await.db()?, &r.id, None).await?;
        f.ok_or_else(|| ApiError::internal("filter vanished"))
    }

    /// Changes a filter (admins); `404` if there is none (presets are their creators').
    pub async fn update(&self, id: &str, input: FilterInput, now: i64) -> Result<StreamFilter, ApiError> {
        let mut r = load(&mut *self.pool.acquire().await.db()?, id).await?.ok_or_else(|| not_found(id))?;
        if input.id.as_deref().is_some_and(|i| i != id) {
            return Err(super::invalid("id", "a filter's id cannot change"));
        }
        if let Some(v) = &input.name {
            r.name = v.clone();
        }
        if let Some(v) = &input.category {
            r.category = v.clone();
        }
        if let Some(v) = &input.description {
            r.description = v.clone();
        }
        if let Some(v) = input.premium {
            r.premium = v;
            if !v && input.price_coins.is_none() {
                r.price_coins = 0;
            }
        }
        if let Some(v) = input.price_coins {
            r.price_coins = v;
        }
        if let Some(v) = &input.effect {
            r.effect = v.clone();
        }
        if let Some(v) = &input.parameters {
            r.parameters = v.clone();
        }
        if let Some(v) = &input.assets {
            r.assets = v.clone();
        }
        r.creator_id = self.creator_id(&input.creator, r.creator_id).await?;
        if let Some(v) = input.featured {
            r.featured = v;
        }
        if let Some(v) = input.enabled {
            r.enabled = v;
        }
        if let Some(v) = input.sort {
            r.sort = v;
        }
        check(&r)?;
        self.store(&r, false, now).await?;
        catalogue::get(&mut *self.pool.acquire().await.db()?, id, None).await?.ok_or_else(|| not_found(id))
    }

    /// Retires a filter (admins): out of the catalogue; its unlockers keep it.
    pub async fn retire(&self, id: &str, now: i64) -> Result<(), ApiError> {
        let r = sqlx::query("UPDATE stream_filters SET enabled = 0, featured = 0, updated_at = $2 WHERE id = $1 AND base_id IS NULL").bind(id).bind(now).execute(&self.pool).await.db()?;
        if r.rows_affected() == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    /// Saves `user`'s preset of a filter they may use (`403 locked` for a
    /// premium base they have not unlocked; anyone using a shared preset of
    /// a premium filter needs that filter unlocked too).
    pub async fn create_custom(&self, user: i64, input: CustomInput, now: i64) -> Result<StreamFilter, ApiError> {
        let name = input.name.trim().to_owned();
        let mut f = BTreeMap::new();
        if name.is_empty() || name.chars().count() > 40 {
            f.insert("name".to_owned(), "must be 1-40 characters".to_owned());
        }
        if let Err(e) = check_parameters(&input.parameters) {
            f.extend(e.fields);
        }
        if !f.is_empty() {
            return Err(ApiError::validation(f));
        }
        let base = self.get(&input.base, Some(user)).await?.ok_or_else(|| super::invalid("base", format!("no stream filter '{}'", input.base)))?;
        // A preset of a preset tunes the same base.
        let base = match &base.base {
            Some(b) => self.get(b, Some(user)).await?.ok_or_else(|| super::invalid("base", format!("no stream filter '{b}'")))?,
            None => base,
        };
        if !base.unlocked {
            return Err(locked(&base.id, base.price_coins));
        }
        let id = format!("custom_{:016x}", rand::random::<u64>());
        let names: Vec<&str> = base.assets.iter().map(|a| a.name.as_str()).collect();
        let mut tx = begin_immediate(&self.pool).await.db()?;
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM stream_filters WHERE creator_id = $1 AND base_id IS NOT NULL AND enabled = 1").bind(user).fetch_one(&mut *tx).await.db()?;
        if count >= MAX_PRESETS {
            return Err(ApiError::new(StatusCode::CONFLICT, "too_many_presets", format!("you have {MAX_PRESETS} presets; delete one first")));
        }
        sqlx::query(
            "INSERT INTO stream_filters (id, name, category, description, premium, price_coins, effect, parameters, assets, creator_id, base_id, public, featured, enabled, sort, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 0, 0, $5, $6, $7, $8, $9, $10, 0, 1, 100, $11, $11)",
        )
        .bind(&id)
        .bind(&name)
        .bind(&base.category)
        .bind(format!("{} preset", base.name))
        .bind(&base.effect)
        .bind(input.parameters.to_string())
        .bind(serde_json::to_string(&names).map_err(ApiError::internal)?)
        .bind(user)
        .bind(&base.id)
        .bind(input.public.unwrap_or(false) as i64)
        .bind(now)
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()?;
        self.get(&id, Some(user)).await?.ok_or_else(|| ApiError::internal("preset vanished"))
    }

    /// Deletes `user`'s own preset (retired: its uses stay on record).
    pub async fn delete_custom(&self, user: i64, id: &str, now: i64) -> Result<(), ApiError> {
        let r = sqlx::query("UPDATE stream_filters SET enabled = 0, public = 0, updated_at = $3 WHERE id = $1 AND creator_id = $2 AND base_id IS NOT NULL AND enabled = 1").bind(id).bind(user).bind(now).execute(&self.pool).await.db()?;
        if r.rows_affected() == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }
}
