//! The gift catalogue: what viewers can send, at how many coins, with
//! which animation (an asset under `/static/gifts/`). Admins edit it;
//! a retired gift is disabled, never deleted (transfers name it).

use std::collections::BTreeMap;

use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::{SqliteConnection, SqlitePool};
use utoipa::ToSchema;

use super::tx::Tx;
use super::writer::Writer;
use super::{unprocessable, MAX_COINS};
use crate::db::DbResult;

/// A gift.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Gift {
    /// Id (`rose`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Coins one costs.
    pub coins: i64,
    /// The animation's URL (an SVG under `/static/gifts/`).
    pub animation: String,
    /// 1 (small) to 4 (the biggest, full-screen).
    pub tier: i64,
    /// Order in the tray.
    pub sort: i64,
    /// Offered (disabled gifts stay for the record).
    pub enabled: bool,
}

/// An admin's new gift or change (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[schema(as = GiftChange)]
#[serde(deny_unknown_fields)]
pub struct GiftInput {
    /// Id, 1-32 of a-z, 0-9, `_` (new gifts only).
    #[serde(default)]
    pub id: Option<String>,
    /// 1-40 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// 1-1,000,000.
    #[serde(default)]
    pub coins: Option<i64>,
    /// A URL under `/static/`.
    #[serde(default)]
    pub animation: Option<String>,
    /// 1-4.
    #[serde(default)]
    pub tier: Option<i64>,
    /// Order.
    #[serde(default)]
    pub sort: Option<i64>,
    /// Offered.
    #[serde(default)]
    pub enabled: Option<bool>,
}

type Row = (String, String, i64, String, i64, i64, i64);

fn gift_of(r: Row) -> Gift {
    Gift { id: r.0, name: r.1, coins: r.2, animation: r.3, tier: r.4, sort: r.5, enabled: r.6 != 0 }
}

const COLS: &str = "id, name, coins, animation, tier, sort, enabled";

/// The catalogue (enabled gifts only unless `all`), in tray order.
pub async fn list(pool: &SqlitePool, all: bool) -> Result<Vec<Gift>, ApiError> {
    let filter = if all { "" } else { " WHERE enabled = 1" };
    let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM gifts{filter} ORDER BY sort, coins, id")).fetch_all(pool).await.db()?;
    Ok(rows.into_iter().map(gift_of).collect())
}

/// One gift (on any connection: the writer's, or one of the pool's).
pub async fn get(c: &mut SqliteConnection, id: &str) -> Result<Option<Gift>, ApiError> {
    let r: Option<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM gifts WHERE id = $1")).bind(id).fetch_optional(c).await.db()?;
    Ok(r.map(gift_of))
}

fn check(g: &Gift) -> Result<(), ApiError> {
    let mut f = BTreeMap::new();
    if g.id.is_empty() || g.id.len() > 32 || !g.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        f.insert("id".into(), "1-32 of a-z, 0-9 and _".into());
    }
    if g.name.trim().is_empty() || g.name.chars().count() > 40 {
        f.insert("name".into(), "must be 1-40 characters".into());
    }
    if !(1..=MAX_COINS).contains(&g.coins) {
        f.insert("coins".into(), format!("must be 1-{MAX_COINS}"));
    }
    if !g.animation.starts_with("/static/") || g.animation.contains("..") || g.animation.len() > 200 {
        f.insert("animation".into(), "must be a URL under /static/".into());
    }
    if !(1..=4).contains(&g.tier) {
        f.insert("tier".into(), "must be 1-4".into());
    }
    if f.is_empty() {
        Ok(())
    } else {
        Err(unprocessable(f))
    }
}

/// Adds a gift (admins).
pub async fn create(writer: &Writer, input: GiftInput) -> Result<Gift, ApiError> {
    let mut missing = BTreeMap::new();
    for (name, present) in [("id", input.id.is_some()), ("name", input.name.is_some()), ("coins", input.coins.is_some()), ("animation", input.animation.is_some())] {
        if !present {
            missing.insert(name.to_owned(), "is required".to_owned());
        }
    }
    if !missing.is_empty() {
        return Err(unprocessable(missing));
    }
    let g = Gift {
        id: input.id.clone().unwrap_or_default(),
        name: input.name.clone().unwrap_or_default().trim().to_owned(),
        coins: input.coins.unwrap_or(0),
        animation: input.animation.clone().unwrap_or_default(),
        tier: input.tier.unwrap_or(1),
        sort: input.sort.unwrap_or(100),
        enabled: input.enabled.unwrap_or(true),
    };
    check(&g)?;
    writer
        .run(move |tx| {
            Box::pin(async move {
                let r = sqlx::query("INSERT INTO gifts (id, name, coins, animation, tier, sort, enabled, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING")
                    .bind(&g.id)
                    .bind(&g.name)
                    .bind(g.coins)
                    .bind(&g.animation)
                    .bind(g.tier)
                    .bind(g.sort)
                    .bind(g.enabled as i64)
                    .bind(tx.now())
                    .execute(tx.conn())
                    .await
                    .db()?;
                if r.rows_affected() == 0 {
                    return Err(ApiError::new(axum::http::StatusCode::CONFLICT, "gift_exists", format!("there is a gift '{}' already", g.id)));
                }
                Ok(g)
            })
        })
        .await
}

/// Changes a gift (admins); `None` if there is none.
pub async fn update(writer: &Writer, id: String, input: GiftInput) -> Result<Option<Gift>, ApiError> {
    writer.run(move |tx| Box::pin(async move { update_in(tx, &id, &input).await })).await
}

async fn update_in(tx: &mut Tx, id: &str, input: &GiftInput) -> Result<Option<Gift>, ApiError> {
    let Some(mut g) = get(tx.conn(), id).await? else { return Ok(None) };
    if input.id.as_deref().is_some_and(|i| i != id) {
        return Err(super::invalid("id", "a gift's id cannot change"));
    }
    if let Some(v) = &input.name {
        g.name = v.trim().to_owned();
    }
    if let Some(v) = input.coins {
        g.coins = v;
    }
    if let Some(v) = &input.animation {
        g.animation = v.clone();
    }
    if let Some(v) = input.tier {
        g.tier = v;
    }
    if let Some(v) = input.sort {
        g.sort = v;
    }
    if let Some(v) = input.enabled {
        g.enabled = v;
    }
    check(&g)?;
    sqlx::query("UPDATE gifts SET name = $1, coins = $2, animation = $3, tier = $4, sort = $5, enabled = $6, updated_at = $7 WHERE id = $8")
        .bind(&g.name)
        .bind(g.coins)
        .bind(&g.animation)
        .bind(g.tier)
        .bind(g.sort)
        .bind(g.enabled as i64)
        .bind(tx.now())
        .bind(id)
        .execute(tx.conn())
        .await
        .db()?;
    Ok(Some(g))
}
