//! A stream's shelf: the host's products shown in it, each with an
//! optional live-only price, one of them pinned (the card over the video).
//! The host and the channel's moderators manage it; pinning also puts a
//! product highlight in the chat.

use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use utoipa::ToSchema;

use super::catalogue::{self, no_product, Product, MAX_PRICE};
use super::flash_sales::{self, FlashSale};
use super::{bad, conflict, not_found, Shop};
use crate::accounts::Principal;
use crate::chat::{Kind, PostMessage, ProductCard};
use crate::db::DbResult;
use crate::realtime::Event;
use crate::streams::{access, Stream};

/// A product on a stream's shelf.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShelfItem {
    /// The stream.
    pub stream_id: i64,
    /// The product.
    pub product: Product,
    /// The stream's own price, if set.
    pub live_price: Option<i64>,
    /// What it costs in this stream now: the live price, else the
    /// product's (a flash sale under way has its own price).
    pub price: i64,
    /// Pinned (shown over the video).
    pub pinned: bool,
    /// The product's latest flash sale in this stream, if any.
    pub flash_sale: Option<FlashSale>,
}

/// Adding a product to the shelf.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShelfAdd {
    /// The product's id (one of the host's).
    pub product: i64,
    /// A price for this stream only, in minor units.
    #[serde(default)]
    pub live_price: Option<i64>,
}

/// Setting or clearing the live price.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LivePrice {
    /// Minor units; null (or absent) for the product's own price.
    #[serde(default)]
    pub live_price: Option<i64>,
}

/// The shelf of a stream, pinned first, then in the order added.
pub async fn list(pool: &SqlitePool, stream_id: i64, now: i64) -> Result<Vec<ShelfItem>, ApiError> {
    let rows: Vec<(i64, Option<i64>, i64)> = sqlx::query_as("SELECT product_id, live_price, pinned FROM stream_products WHERE stream_id = $1 ORDER BY pinned DESC, added_at, product_id")
        .bind(stream_id)
        .fetch_all(pool)
        .await
        .db()?;
    let mut out = Vec::with_capacity(rows.len());
    for (pid, live_price, pinned) in rows {
        let Some(product) = catalogue::read(pool, pid).await? else { continue };
        let flash_sale = flash_sales::latest(pool, stream_id, pid, now).await?;
        out.push(ShelfItem { stream_id, price: live_price.unwrap_or(product.price), product, live_price, pinned: pinned != 0, flash_sale });
    }
    Ok(out)
}

/// One product of a stream's shelf.
pub async fn item(pool: &SqlitePool, stream_id: i64, product_id: i64, now: i64) -> Result<Option<ShelfItem>, ApiError> {
    let row: Option<(Option<i64>, i64)> = sqlx::query_as("SELECT live_price, pinned FROM stream_products WHERE stream_id = $1 AND product_id = $2").bind(stream_id).bind(product_id).fetch_optional(pool).await.db()?;
    let Some((live_price, pinned)) = row else { return Ok(None) };
    let Some(product) = catalogue::read(pool, product_id).await? else { return Ok(None) };
    let flash_sale = flash_sales::latest(pool, stream_id, product_id, now).await?;
    Ok(Some(ShelfItem { stream_id, price: live_price.unwrap_or(product.price), product, live_price, pinned: pinned != 0, flash_sale }))
}

pub(crate) fn not_on_shelf(stream: i64, product: i64) -> ApiError {
    not_found("product_not_on_shelf", format!("product {product} is not on stream {stream}'s shelf"))
}

fn check_price(p: Option<i64>) -> Result<Option<i64>, ApiError> {
    match p {
        Some(p) if !(0..=MAX_PRICE).contains(&p) => Err(bad("live_price", format!("must be 0-{MAX_PRICE}"))),
        p => Ok(p),
    }
}

impl Shop {
    /// Ok if `who` may manage `s`'s shelf (its host, a moderator, staff); the stream must not be over.
    pub(crate) async fn check_seller_team(&self, s: &Stream, who: &Principal) -> Result<(), ApiError> {
        if !access::can_moderate(&self.membership, s.host.id, &who.user).await? {
            return Err(ApiError::forbidden("only the host and the channel's moderators manage the shop"));
        }
        if s.is_over() {
            return Err(conflict("stream_over", format!("stream {} is over", s.id)));
        }
        Ok(())
    }

    /// Adds one of the host's products to the shelf (or sets its live price
    /// if it is there). `true` when it was new.
    pub async fn add_to_shelf(&self, s: &Stream, who: &Principal, input: ShelfAdd) -> Result<(ShelfItem, bool), ApiError> {
        self.check_seller_team(s, who).await?;
        let live_price = check_price(input.live_price)?;
        let p = catalogue::read(&self.pool, input.product).await?.filter(|p| !p.deleted).ok_or_else(|| no_product(input.product))?;
        if p.seller_id != s.host.id {
            return Err(bad("product", "the stream's host does not sell this product"));
        }
        let (sid, pid) = (s.id, p.id);
        let (added, before) = self
            .money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let before: Option<(Option<i64>,)> = sqlx::query_as("SELECT live_price FROM stream_products WHERE stream_id = $1 AND product_id = $2").bind(sid).bind(pid).fetch_optional(tx.conn()).await.db()?;
                    if before.is_some() {
                        sqlx::query("UPDATE stream_products SET live_price = $1 WHERE stream_id = $2 AND product_id = $3").bind(live_price).bind(sid).bind(pid).execute(tx.conn()).await.db()?;
                    } else {
                        sqlx::query("INSERT INTO stream_products (stream_id, product_id, live_price, pinned, added_at) VALUES ($1, $2, $3, 0, $4)").bind(sid).bind(pid).bind(live_price).bind(tx.now()).execute(tx.conn()).await.db()?;
                    }
                    Ok((before.is_none(), before.map(|b| b.0)))
                })
            })
            .await?;
        let item = item(&self.pool, sid, pid, crate::clock::now_ms()).await?.ok_or_else(|| not_on_shelf(sid, pid))?;
        if added {
            self.publish(sid, &Event::ProductAdded { stream_id: sid, item: Box::new(item.clone()) });
        } else if before != Some(live_price) {
            self.publish(sid, &price_event(&item));
        }
        Ok((item, added))
    }

    /// Sets or clears a product's live price in the stream.
    pub async fn set_live_price(&self, s: &Stream, who: &Principal, product: i64, input: LivePrice) -> Result<ShelfItem, ApiError> {
        self.check_seller_team(s, who).await?;
        let live_price = check_price(input.live_price)?;
        let sid = s.id;
        let changed = self
            .money
            .writer
            .run(move |tx| Box::pin(async move { Ok(sqlx::query("UPDATE stream_products SET live_price = $1 WHERE stream_id = $2 AND product_id = $3").bind(live_price).bind(sid).bind(product).execute(tx.conn()).await.db()?.rows_affected()) }))
            .await?;
        if changed == 0 {
            return Err(not_on_shelf(sid, product));
        }
        let item = item(&self.pool, sid, product, crate::clock::now_ms()).await?.ok_or_else(|| not_on_shelf(sid, product))?;
        self.publish(sid, &price_event(&item));
        Ok(item)
    }

    /// Takes a product off the shelf.
    pub async fn remove_from_shelf(&self, s: &Stream, who: &Principal, product: i64) -> Result<(), ApiError> {
        self.check_seller_team(s, who).await?;
        let sid = s.id;
        let n = self
            .money
            .writer
            .run(move |tx| Box::pin(async move { Ok(sqlx::query("DELETE FROM stream_products WHERE stream_id = $1 AND product_id = $2").bind(sid).bind(product).execute(tx.conn()).await.db()?.rows_affected()) }))
            .await?;
        if n == 0 {
            return Err(not_on_shelf(sid, product));
        }
        // Off the shelf, its orders are the database's to refuse (`product_not_on_shelf`).
        self.gates.forget_product(Some(sid), product);
        self.publish(sid, &Event::ProductRemoved { stream_id: sid, product_id: product });
        Ok(())
    }

    /// Pins a product (unpinning the one pinned before) and highlights it in chat.
    pub async fn pin(&self, s: &Stream, who: &Principal, product: i64) -> Result<ShelfItem, ApiError> {
        self.check_seller_team(s, who).await?;
        let sid = s.id;
        let n = self
            .money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let now = tx.now();
                    sqlx::query("UPDATE stream_products SET pinned = 0, pinned_at = NULL WHERE stream_id = $1 AND pinned = 1 AND product_id <> $2").bind(sid).bind(product).execute(tx.conn()).await.db()?;
                    Ok(sqlx::query("UPDATE stream_products SET pinned = 1, pinned_at = $1 WHERE stream_id = $2 AND product_id = $3").bind(now).bind(sid).bind(product).execute(tx.conn()).await.db()?.rows_affected())
                })
            })
            .await?;
        if n == 0 {
            return Err(not_on_shelf(sid, product));
        }
        let item = item(&self.pool, sid, product, crate::clock::now_ms()).await?.ok_or_else(|| not_on_shelf(sid, product))?;
        self.publish(sid, &Event::ProductPinned { stream_id: sid, item: Some(Box::new(item.clone())) });
        let card = ProductCard { product_id: Some(item.product.id), title: item.product.title.clone(), price: Some(item.price), url: None, image_url: item.product.images.first().cloned() };
        if let Err(e) = self.chat.post(sid, who, PostMessage { kind: Kind::ProductHighlight, text: String::new(), product: Some(card) }).await {
            tracing::debug!("pin highlight in stream {sid} not posted: {}", e.message);
        }
        Ok(item)
    }

    /// Unpins the pinned product.
    pub async fn unpin(&self, s: &Stream, who: &Principal, product: i64) -> Result<(), ApiError> {
        self.check_seller_team(s, who).await?;
        let sid = s.id;
        let n = self
            .money
            .writer
            .run(move |tx| Box::pin(async move { Ok(sqlx::query("UPDATE stream_products SET pinned = 0, pinned_at = NULL WHERE stream_id = $1 AND product_id = $2 AND pinned = 1").bind(sid).bind(product).execute(tx.conn()).await.db()?.rows_affected()) }))
            .await?;
        if n == 0 {
            return Err(not_found("not_pinned", format!("product {product} is not pinned in stream {sid}")));
        }
        self.publish(sid, &Event::ProductPinned { stream_id: sid, item: None });
        Ok(())
    }

    /// Announces a product's new catalogue price to the streams that show it at that price.
    pub(crate) async fn announce_price(&self, p: &Product) -> Result<(), ApiError> {
        let streams: Vec<(i64,)> = sqlx::query_as("SELECT stream_id FROM stream_products WHERE product_id = $1 AND live_price IS NULL").bind(p.id).fetch_all(&self.pool).await.db()?;
        for (s,) in streams {
            if let Some(item) = item(&self.pool, s, p.id, crate::clock::now_ms()).await? {
                self.publish(s, &price_event(&item));
            }
        }
        Ok(())
    }
}

fn price_event(item: &ShelfItem) -> Event {
    Event::PriceChanged { stream_id: item.stream_id, product_id: item.product.id, price: item.price, live_price: item.live_price, list_price: item.product.price }
}
