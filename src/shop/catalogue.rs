//! A seller's catalogue: products with a price in minor units of the
//! platform's currency (one coin each), stock, SKU and pictures (uploads
//! stored and served like thumbnails, see [`crate::images`]).
//!
//! Deleting a product hides it and takes it off every shelf; its orders
//! keep it. Stock set by the seller is the count on hand now; orders take
//! from it with conditional updates (see [`super::orders`]).

use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::{SqliteConnection, SqlitePool};
use utoipa::{IntoParams, ToSchema};

use super::{bad, not_found, Shop};
use crate::accounts::Principal;
use crate::db::DbResult;

/// Most pictures per product.
pub const MAX_IMAGES: usize = 8;
/// Highest price and stock.
pub const MAX_PRICE: i64 = crate::money::MAX_COINS;
/// Most units in stock.
pub const MAX_STOCK: i64 = 1_000_000;

/// A product.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Product {
    /// Id.
    pub id: i64,
    /// The seller (a host).
    pub seller_id: i64,
    /// Their username.
    pub seller: String,
    /// 1-140 characters.
    pub title: String,
    /// Up to 2,000 characters.
    pub description: String,
    /// Minor units of `currency` (paid in coins: one coin per unit).
    pub price: i64,
    /// Lowercase ISO code (the platform's currency).
    pub currency: String,
    /// Units left to sell (not counting a flash sale's own quantity).
    pub stock: i64,
    /// The seller's stock-keeping unit.
    pub sku: Option<String>,
    /// Pictures (`/images/...`), the first one shown on cards.
    pub images: Vec<String>,
    /// Deleted (hidden; its orders keep it).
    pub deleted: bool,
}

/// A new product.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// 1-140 characters.
    pub title: String,
    /// Up to 2,000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// Minor units, 0-1,000,000.
    pub price: i64,
    /// The platform's currency (the default); no other is accepted.
    #[serde(default)]
    pub currency: Option<String>,
    /// Units on hand, 0-1,000,000.
    pub stock: i64,
    /// Up to 64 characters, unique among the seller's products.
    #[serde(default)]
    pub sku: Option<String>,
}

/// Changes to a product (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    /// 1-140 characters.
    #[serde(default)]
    pub title: Option<String>,
    /// Up to 2,000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// Minor units, 0-1,000,000.
    #[serde(default)]
    pub price: Option<i64>,
    /// Units on hand now, 0-1,000,000.
    #[serde(default)]
    pub stock: Option<i64>,
    /// Up to 64 characters ("" removes it).
    #[serde(default)]
    pub sku: Option<String>,
    /// The pictures to keep, in order (a subset of the product's own).
    #[serde(default)]
    pub images: Option<Vec<String>>,
}

/// Which products.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// A seller's username or id; without it, your own products.
    pub seller: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

type Row = (i64, i64, String, String, String, i64, String, i64, Option<String>, String, Option<i64>);
const COLS: &str = "p.id, p.seller_id, u.username, p.title, p.description, p.price, p.currency, p.stock, p.sku, p.images, p.deleted_at";

fn of_row(r: Row) -> Product {
    let (id, seller_id, seller, title, description, price, currency, stock, sku, images, deleted) = r;
    Product { id, seller_id, seller, title, description, price, currency, stock, sku, images: serde_json::from_str(&images).unwrap_or_default(), deleted: deleted.is_some() }
}

/// A product by id (deleted ones too).
pub async fn get(c: &mut SqliteConnection, id: i64) -> Result<Option<Product>, ApiError> {
    let r: Option<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM products p JOIN users u ON u.id = p.seller_id WHERE p.id = $1")).bind(id).fetch_optional(c).await.db()?;
    Ok(r.map(of_row))
}

/// A product by id from the pool.
pub async fn read(pool: &SqlitePool, id: i64) -> Result<Option<Product>, ApiError> {
    get(&mut *pool.acquire().await.db()?, id).await
}

pub(crate) fn no_product(id: i64) -> ApiError {
    not_found("product_not_found", format!("no product {id}"))
}

fn check_title(t: &str) -> Result<String, ApiError> {
    let t = t.trim();
    if t.is_empty() || t.chars().count() > 140 {
        return Err(bad("title", "must be 1-140 characters"));
    }
    Ok(t.to_owned())
}

fn check_description(d: &str) -> Result<String, ApiError> {
    if d.chars().count() > 2000 {
        return Err(bad("description", "must be at most 2,000 characters"));
    }
    Ok(d.trim().to_owned())
}

fn check_amount(field: &str, v: i64, max: i64) -> Result<i64, ApiError> {
    if !(0..=max).contains(&v) {
        return Err(bad(field, format!("must be 0-{max}")));
    }
    Ok(v)
}

fn check_sku(s: &str) -> Result<Option<String>, ApiError> {
    let s = s.trim();
    if s.chars().count() > 64 || s.chars().any(char::is_control) {
        return Err(bad("sku", "must be at most 64 characters"));
    }
    Ok((!s.is_empty()).then(|| s.to_owned()))
}

/// `409 sku_taken` if another of the seller's products has this SKU (in
/// the writer's transaction: no race).
async fn check_sku_free(c: &mut SqliteConnection, seller: i64, sku: Option<&str>, except: i64) -> Result<(), ApiError> {
    let Some(sku) = sku else { return Ok(()) };
    let r: Option<(i64,)> = sqlx::query_as("SELECT id FROM products WHERE seller_id = $1 AND sku = $2 AND deleted_at IS NULL AND id <> $3").bind(seller).bind(sku).bind(except).fetch_optional(c).await.db()?;
    match r {
        Some(_) => Err(super::conflict("sku_taken", "you have another product with this SKU")),
        None => Ok(()),
    }
}

impl Shop {
    /// A product the caller sells (admins may act on any), else 403/404.
    pub async fn own_product(&self, who: &Principal, id: i64) -> Result<Product, ApiError> {
        let p = read(&self.pool, id).await?.filter(|p| !p.deleted).ok_or_else(|| no_product(id))?;
        if p.seller_id != who.id() && who.role() != crate::accounts::Role::Admin {
            return Err(ApiError::forbidden("this is another seller's product"));
        }
        Ok(p)
    }

    /// Creates a product (hosts).
    pub async fn create_product(&self, who: &Principal, input: NewProduct) -> Result<Product, ApiError> {
        if !who.role().can_host() {
            return Err(ApiError::forbidden("only hosts sell products"));
        }
        let title = check_title(&input.title)?;
        let description = check_description(input.description.as_deref().unwrap_or(""))?;
        let price = check_amount("price", input.price, MAX_PRICE)?;
        let stock = check_amount("stock", input.stock, MAX_STOCK)?;
        let sku = check_sku(input.sku.as_deref().unwrap_or(""))?;
        let currency = self.money.settings.currency.to_ascii_lowercase();
        if let Some(c) = &input.currency {
            if !c.eq_ignore_ascii_case(&currency) {
                return Err(bad("currency", format!("products are priced in {currency} (one coin per minor unit)")));
            }
        }
        let seller = who.id();
        let id = self
            .money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let now = tx.now();
                    check_sku_free(tx.conn(), seller, sku.as_deref(), 0).await?;
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO products (seller_id, title, description, price, currency, stock, sku, images, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, '[]', $8, $8) RETURNING id",
                    )
                    .bind(seller)
                    .bind(&title)
                    .bind(&description)
                    .bind(price)
                    .bind(&currency)
                    .bind(stock)
                    .bind(&sku)
                    .bind(now)
                    .fetch_one(tx.conn())
                    .await
                    .db()?;
                    Ok(id)
                })
            })
            .await?;
        read(&self.pool, id).await?.ok_or_else(|| no_product(id))
    }

    /// Changes a product (its seller). A new price is announced to the
    /// streams that show it without a live price.
    pub async fn update_product(&self, who: &Principal, id: i64, patch: ProductPatch) -> Result<Product, ApiError> {
        let before = self.own_product(who, id).await?;
        let title = patch.title.as_deref().map(check_title).transpose()?;
        let description = patch.description.as_deref().map(check_description).transpose()?;
        let price = patch.price.map(|p| check_amount("price", p, MAX_PRICE)).transpose()?;
        let stock = patch.stock.map(|s| check_amount("stock", s, MAX_STOCK)).transpose()?;
        let sku = patch.sku.as_deref().map(check_sku).transpose()?;
        if let Some(images) = &patch.images {
            if images.iter().any(|i| !before.images.contains(i)) {
                return Err(bad("images", "may only keep (and reorder) the product's own pictures; upload new ones with POST /api/products/{id}/images"));
            }
        }
        let images = patch.images.clone().map(|i| serde_json::to_string(&i).unwrap_or_else(|_| "[]".into()));
        let seller = before.seller_id;
        self.money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let now = tx.now();
                    if let Some(s) = &sku {
                        check_sku_free(tx.conn(), seller, s.as_deref(), id).await?;
                    }
                    sqlx::query(
                        "UPDATE products SET title = COALESCE($1, title), description = COALESCE($2, description), price = COALESCE($3, price), stock = COALESCE($4, stock), \
                         sku = CASE WHEN $5 THEN $6 ELSE sku END, images = COALESCE($7, images), updated_at = $8 WHERE id = $9",
                    )
                    .bind(title)
                    .bind(description)
                    .bind(price)
                    .bind(stock)
                    .bind(sku.is_some())
                    .bind(sku.flatten())
                    .bind(images)
                    .bind(now)
                    .bind(id)
                    .execute(tx.conn())
                    .await
                    .db()?;
                    Ok(())
                })
            })
            .await?;
        let after = read(&self.pool, id).await?.ok_or_else(|| no_product(id))?;
        for r in &before.images {
            if !after.images.contains(r) {
                self.images.release(&self.pool, Some(r)).await?;
            }
        }
        if after.price != before.price {
            self.announce_price(&after).await?;
        }
        Ok(after)
    }

    /// Deletes a product (its seller): hidden, off every shelf.
    pub async fn delete_product(&self, who: &Principal, id: i64) -> Result<(), ApiError> {
        let p = self.own_product(who, id).await?;
        let streams: Vec<(i64,)> = sqlx::query_as("SELECT stream_id FROM stream_products WHERE product_id = $1").bind(id).fetch_all(&self.pool).await.db()?;
        self.money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let now = tx.now();
                    sqlx::query("UPDATE products SET deleted_at = $1, sku = NULL, updated_at = $1 WHERE id = $2").bind(now).bind(id).execute(tx.conn()).await.db()?;
                    sqlx::query("DELETE FROM stream_products WHERE product_id = $1").bind(id).execute(tx.conn()).await.db()?;
                    Ok(())
                })
            })
            .await?;
        self.gates.forget_product(None, id);
        for (s,) in streams {
            self.publish(s, &crate::realtime::Event::ProductRemoved { stream_id: s, product_id: p.id });
        }
        Ok(())
    }

    /// A seller's products (not deleted), newest first.
    pub async fn products(&self, seller: i64, limit: Option<i64>, offset: Option<i64>) -> Result<Vec<Product>, ApiError> {
        let limit = limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(bad("limit", "must be 1-200"));
        }
        let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM products p JOIN users u ON u.id = p.seller_id WHERE p.seller_id = $1 AND p.deleted_at IS NULL ORDER BY p.id DESC LIMIT $2 OFFSET $3"))
            .bind(seller)
            .bind(limit)
            .bind(offset.unwrap_or(0).max(0))
            .fetch_all(&self.pool)
            .await
            .db()?;
        Ok(rows.into_iter().map(of_row).collect())
    }

    /// Adds an uploaded picture (its seller).
    pub async fn add_image(&self, who: &Principal, id: i64, content_type: Option<&str>, data: &[u8]) -> Result<Product, ApiError> {
        let p = self.own_product(who, id).await?;
        if p.images.len() >= MAX_IMAGES {
            return Err(super::conflict("too_many_images", format!("a product has at most {MAX_IMAGES} pictures")));
        }
        let image = self.images.store(content_type, data).await?;
        let url = image.url.clone();
        self.money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let (images,): (String,) = sqlx::query_as("SELECT images FROM products WHERE id = $1").bind(id).fetch_one(tx.conn()).await.db()?;
                    let mut list: Vec<String> = serde_json::from_str(&images).unwrap_or_default();
                    if !list.contains(&url) {
                        list.push(url);
                    }
                    sqlx::query("UPDATE products SET images = $1, updated_at = $2 WHERE id = $3").bind(serde_json::to_string(&list).unwrap_or_default()).bind(tx.now()).bind(id).execute(tx.conn()).await.db()?;
                    Ok(())
                })
            })
            .await?;
        read(&self.pool, id).await?.ok_or_else(|| no_product(id))
    }
}
