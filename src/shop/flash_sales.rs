//! Flash sales: a quantity of a product at a price, for a while, after a
//! countdown the whole audience sees.
//!
//! A sale's state follows the server's clock: `scheduled` (before its
//! countdown, when made with a later `starts_at`), `countdown` (10-300 s),
//! `active` (until `ends_at`), then `ended`; or `sold_out` from the order
//! that took its last unit. Its quantity is taken from the product's stock
//! when it is made; what is left when it ends goes back (settling). Every
//! `flash_sale` event carries the server's start and end times and its
//! clock, so pages count down without trusting their own.

use std::sync::Arc;
use std::time::Duration;

use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::{SqliteConnection, SqlitePool};
use utoipa::ToSchema;

use super::admission::SaleGate;
use super::catalogue::{no_product, MAX_PRICE};
use super::{bad, conflict, Shop};
use crate::accounts::Principal;
use crate::db::DbResult;
use crate::money::writer::Writer;
use crate::realtime::Event;
use crate::streams::Stream;

/// Countdown bounds, seconds.
pub const COUNTDOWN_S: (i64, i64) = (10, 300);
/// Duration bounds, seconds.
pub const DURATION_S: (i64, i64) = (10, 24 * 3600);

/// A flash sale.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlashSale {
    /// Id.
    pub id: i64,
    /// Stream.
    pub stream_id: i64,
    /// Product.
    pub product_id: i64,
    /// Price during the sale, minor units.
    pub price: i64,
    /// Units on sale.
    pub quantity: i64,
    /// Units not yet taken (held or sold).
    pub remaining: i64,
    /// Most units one buyer may take.
    pub per_buyer_limit: i64,
    /// `scheduled`, `countdown`, `active`, `ended` or `sold_out`.
    pub state: String,
    /// Length of the countdown, seconds.
    pub countdown_s: i64,
    /// When the countdown begins.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub countdown_at: i64,
    /// When buying opens (the server's time).
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: i64,
    /// When it closes (the server's time).
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: i64,
    /// When the last unit went.
    #[serde(with = "opt_rfc3339")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sold_out_at: Option<i64>,
    /// Seconds from its start to selling out (its sell-through time).
    pub sell_through_seconds: Option<f64>,
    /// The server's clock when this was read (pages correct theirs by it).
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub server_time: i64,
}

mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        crate::clock::json::ms(v, s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        crate::clock::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

mod opt_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        crate::clock::json::opt_ms(v, s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| crate::clock::parse_rfc3339(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

/// A new flash sale.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFlashSale {
    /// Price during the sale, minor units.
    pub price: i64,
    /// Units on sale (taken from the product's stock now).
    pub quantity: i64,
    /// Most units one buyer may take (default 1).
    #[serde(default)]
    pub per_buyer_limit: Option<i64>,
    /// Countdown before it opens, 10-300 s.
    pub countdown_s: i64,
    /// How long it is open, 10 s - 24 h.
    pub duration_s: i64,
    /// When it opens (RFC 3339): later than the countdown from now makes
    /// it `scheduled` until the countdown begins. Default: right after the countdown.
    #[serde(default)]
    pub starts_at: Option<String>,
}

/// The state of a sale at `now`.
pub fn state_at(now: i64, countdown_at: i64, starts_at: i64, ends_at: i64, sold_out_at: Option<i64>, cancelled_at: Option<i64>) -> &'static str {
    if sold_out_at.is_some() {
        "sold_out"
    } else if cancelled_at.is_some() || now >= ends_at {
        "ended"
    } else if now >= starts_at {
        "active"
    } else if now >= countdown_at {
        "countdown"
    } else {
        "scheduled"
    }
}

type Row = (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, Option<i64>, Option<i64>);
const COLS: &str = "id, stream_id, product_id, price, quantity, remaining, per_buyer_limit, countdown_s, countdown_at, starts_at, ends_at, sold_out_at, cancelled_at";

fn of_row(r: Row, now: i64) -> FlashSale {
    let (id, stream_id, product_id, price, quantity, remaining, per_buyer_limit, countdown_s, countdown_at, starts_at, ends_at, sold_out_at, cancelled_at) = r;
    FlashSale {
        id,
        stream_id,
        product_id,
        price,
        quantity,
        remaining,
        per_buyer_limit,
        state: state_at(now, countdown_at, starts_at, ends_at, sold_out_at, cancelled_at).to_owned(),
        countdown_s,
        countdown_at,
        starts_at,
        ends_at,
        sold_out_at,
        sell_through_seconds: sold_out_at.map(|s| (s - starts_at).max(0) as f64 / 1000.0),
        server_time: now,
    }
}

/// A sale in a transaction.
pub async fn get_in(c: &mut SqliteConnection, id: i64, now: i64) -> Result<Option<FlashSale>, ApiError> {
    let r: Option<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM flash_sales WHERE id = $1")).bind(id).fetch_optional(c).await.db()?;
    Ok(r.map(|r| of_row(r, now)))
}

/// A sale.
pub async fn get(pool: &SqlitePool, id: i64, now: i64) -> Result<Option<FlashSale>, ApiError> {
    get_in(&mut *pool.acquire().await.db()?, id, now).await
}

/// The product's latest sale in the stream.
pub async fn latest(pool: &SqlitePool, stream_id: i64, product_id: i64, now: i64) -> Result<Option<FlashSale>, ApiError> {
    latest_in(&mut *pool.acquire().await.db()?, stream_id, product_id, now).await
}

/// The product's latest sale in the stream, in a transaction.
pub async fn latest_in(c: &mut SqliteConnection, stream_id: i64, product_id: i64, now: i64) -> Result<Option<FlashSale>, ApiError> {
    let r: Option<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM flash_sales WHERE stream_id = $1 AND product_id = $2 ORDER BY id DESC LIMIT 1"))
        .bind(stream_id)
        .bind(product_id)
        .fetch_optional(c)
        .await
        .db()?;
    Ok(r.map(|r| of_row(r, now)))
}

/// A stream's sales, oldest first.
pub async fn list(pool: &SqlitePool, stream_id: i64, now: i64) -> Result<Vec<FlashSale>, ApiError> {
    let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM flash_sales WHERE stream_id = $1 ORDER BY id")).bind(stream_id).fetch_all(pool).await.db()?;
    Ok(rows.into_iter().map(|r| of_row(r, now)).collect())
}

/// Gives back to their products' stock what sales that ended (or sold
/// out) left; returns the sales settled.
pub async fn settle_due(writer: &Writer, now: i64) -> Result<Vec<i64>, ApiError> {
    writer
        .run(move |tx| {
            Box::pin(async move {
                let due: Vec<(i64, i64, i64)> = sqlx::query_as(
                    "SELECT id, product_id, remaining FROM flash_sales WHERE settled_at IS NULL AND (ends_at <= $1 OR cancelled_at IS NOT NULL OR sold_out_at IS NOT NULL) ORDER BY id LIMIT 200",
                )
                .bind(now)
                .fetch_all(tx.conn())
                .await
                .db()?;
                let mut out = Vec::with_capacity(due.len());
                for (id, product, remaining) in due {
                    // Settled once: the guard on settled_at makes a second pass a no-op.
                    let n = sqlx::query("UPDATE flash_sales SET settled_at = $1 WHERE id = $2 AND settled_at IS NULL").bind(now).bind(id).execute(tx.conn()).await.db()?.rows_affected();
                    if n == 1 && remaining > 0 {
                        sqlx::query("UPDATE products SET stock = stock + $1 WHERE id = $2").bind(remaining).bind(product).execute(tx.conn()).await.db()?;
                    }
                    out.push(id);
                }
                Ok(out)
            })
        })
        .await
}

impl Shop {
    /// Starts a flash sale of a product of the stream's host (put on the
    /// shelf if it is not there): its quantity leaves the product's stock now.
    pub async fn start_flash_sale(&self, s: &Stream, who: &Principal, product: i64, input: NewFlashSale) -> Result<FlashSale, ApiError> {
        self.check_seller_team(s, who).await?;
        if !(0..=MAX_PRICE).contains(&input.price) {
            return Err(bad("price", format!("must be 0-{MAX_PRICE}")));
        }
        if !(1..=super::catalogue::MAX_STOCK).contains(&input.quantity) {
            return Err(bad("quantity", "must be at least 1"));
        }
        let limit = input.per_buyer_limit.unwrap_or(1);
        if !(1..=input.quantity).contains(&limit) {
            return Err(bad("per_buyer_limit", "must be 1 to the quantity"));
        }
        if !(COUNTDOWN_S.0..=COUNTDOWN_S.1).contains(&input.countdown_s) {
            return Err(bad("countdown_s", format!("must be {}-{}", COUNTDOWN_S.0, COUNTDOWN_S.1)));
        }
        if !(DURATION_S.0..=DURATION_S.1).contains(&input.duration_s) {
            return Err(bad("duration_s", format!("must be {}-{}", DURATION_S.0, DURATION_S.1)));
        }
        let starts_at = input.starts_at.as_deref().map(crate::clock::parse_rfc3339).transpose().map_err(|e| bad("starts_at", e))?;
        let p = super::catalogue::read(&self.pool, product).await?.filter(|p| !p.deleted).ok_or_else(|| no_product(product))?;
        if p.seller_id != s.host.id {
            return Err(bad("product", "the stream's host does not sell this product"));
        }
        let sid = s.id;
        let (sale_id, added) = self
            .money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let now = tx.now();
                    let countdown_ms = input.countdown_s * 1000;
                    let starts = starts_at.unwrap_or(now + countdown_ms).max(now + countdown_ms);
                    if starts > now + 7 * 24 * 3600 * 1000 {
                        return Err(bad("starts_at", "must be within a week"));
                    }
                    let ends = starts + input.duration_s * 1000;
                    let running: Option<(i64,)> = sqlx::query_as(
                        "SELECT id FROM flash_sales WHERE stream_id = $1 AND product_id = $2 AND sold_out_at IS NULL AND cancelled_at IS NULL AND ends_at > $3",
                    )
                    .bind(sid)
                    .bind(product)
                    .bind(now)
                    .fetch_optional(tx.conn())
                    .await
                    .db()?;
                    if let Some((id,)) = running {
                        return Err(conflict("sale_running", format!("flash sale {id} of this product is under way in this stream")));
                    }
                    let taken = sqlx::query("UPDATE products SET stock = stock - $1, updated_at = $2 WHERE id = $3 AND stock >= $1 AND deleted_at IS NULL")
                        .bind(input.quantity)
                        .bind(now)
                        .bind(product)
                        .execute(tx.conn())
                        .await
                        .db()?
                        .rows_affected();
                    if taken != 1 {
                        return Err(conflict("insufficient_stock", format!("the product has fewer than {} units in stock", input.quantity)));
                    }
                    let added = sqlx::query("INSERT INTO stream_products (stream_id, product_id, live_price, pinned, added_at) VALUES ($1, $2, NULL, 0, $3) ON CONFLICT (stream_id, product_id) DO NOTHING")
                        .bind(sid)
                        .bind(product)
                        .bind(now)
                        .execute(tx.conn())
                        .await
                        .db()?
                        .rows_affected()
                        == 1;
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO flash_sales (stream_id, product_id, price, quantity, remaining, per_buyer_limit, countdown_s, created_at, countdown_at, starts_at, ends_at) \
                         VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                    )
                    .bind(sid)
                    .bind(product)
                    .bind(input.price)
                    .bind(input.quantity)
                    .bind(limit)
                    .bind(input.countdown_s)
                    .bind(now)
                    .bind(starts - countdown_ms)
                    .bind(starts)
                    .bind(ends)
                    .fetch_one(tx.conn())
                    .await
                    .db()?;
                    Ok((id, added))
                })
            })
            .await?;
        let now = crate::clock::now_ms();
        let sale = get(&self.pool, sale_id, now).await?.ok_or_else(|| ApiError::internal("a flash sale just made is missing"))?;
        // Its gate, before it opens (it counts down first): nothing was taken yet.
        self.gates.insert(SaleGate {
            id: sale.id,
            stream_id: sid,
            product_id: product,
            starts_at: sale.starts_at,
            ends_at: sale.ends_at,
            per_buyer_limit: sale.per_buyer_limit,
            remaining: sale.remaining,
            buyers: Vec::new(),
        });
        if added {
            if let Some(item) = super::shelf::item(&self.pool, sid, product, now).await? {
                self.publish(sid, &Event::ProductAdded { stream_id: sid, item: Box::new(item) });
            }
        }
        self.publish(sid, &Event::FlashSale { sale: Box::new(sale.clone()) });
        if let Some(me) = self.arc() {
            me.sale_timers(&sale);
        }
        Ok(sale)
    }

    /// Announces the sale's moments as they come: the countdown (when it
    /// was scheduled), the start, the end (unless it sold out first).
    fn sale_timers(self: &Arc<Self>, sale: &FlashSale) {
        let weak = Arc::downgrade(self);
        let (id, moments) = (sale.id, [sale.countdown_at, sale.starts_at, sale.ends_at]);
        tokio::spawn(async move {
            for at in moments {
                let wait = at - crate::clock::now_ms();
                if wait < 0 {
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(wait as u64 + 5)).await;
                let Some(me) = weak.upgrade() else { return };
                match get(&me.pool, id, crate::clock::now_ms()).await {
                    Ok(Some(s)) if s.state == "sold_out" => return,
                    Ok(Some(s)) => me.publish(s.stream_id, &Event::FlashSale { sale: Box::new(s) }),
                    _ => return,
                }
            }
        });
    }

    /// The gates of the sales not over yet, from the database (at start-up,
    /// before any request): their remaining quantity and buyers' units as
    /// committed. A sale whose product is off the shelf gets none.
    pub(crate) async fn load_gates(&self) -> Result<(), ApiError> {
        let now = crate::clock::now_ms();
        let rows: Vec<(i64, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT f.id, f.stream_id, f.product_id, f.starts_at, f.ends_at, f.per_buyer_limit, f.remaining FROM flash_sales f \
             JOIN stream_products sp ON sp.stream_id = f.stream_id AND sp.product_id = f.product_id WHERE f.ends_at > $1 AND f.cancelled_at IS NULL AND f.settled_at IS NULL",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .db()?;
        for (id, stream_id, product_id, starts_at, ends_at, per_buyer_limit, remaining) in rows {
            let buyers: Vec<(i64, i64)> = sqlx::query_as("SELECT user_id, units FROM flash_sale_buyers WHERE sale_id = $1 AND units > 0").bind(id).fetch_all(&self.pool).await.db()?;
            self.gates.insert(SaleGate { id, stream_id, product_id, starts_at, ends_at, per_buyer_limit, remaining, buyers });
        }
        Ok(())
    }

    /// A sale's times were changed in the database (tests move a sale's
    /// countdown past): its gate follows.
    pub async fn sale_times_changed(&self, id: i64) -> Result<(), ApiError> {
        if let Some(s) = get(&self.pool, id, crate::clock::now_ms()).await? {
            self.gates.times(id, s.starts_at, s.ends_at);
        }
        Ok(())
    }

    /// Timers for the sales not over yet (at start-up).
    pub(crate) async fn resume_timers(self: &Arc<Self>) -> Result<(), ApiError> {
        let now = crate::clock::now_ms();
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT id FROM flash_sales WHERE ends_at > $1 AND sold_out_at IS NULL AND cancelled_at IS NULL").bind(now).fetch_all(&self.pool).await.db()?;
        for (id,) in rows {
            if let Some(s) = get(&self.pool, id, now).await? {
                self.sale_timers(&s);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::state_at;

    #[test]
    fn the_state_follows_the_clock_and_sold_out_sticks() {
        let (cd, start, end) = (1_000, 11_000, 71_000);
        let at = |now| state_at(now, cd, start, end, None, None);
        assert_eq!([at(0), at(1_000), at(10_999), at(11_000), at(70_999), at(71_000)], ["scheduled", "countdown", "countdown", "active", "active", "ended"]);
        assert_eq!(state_at(20_000, cd, start, end, Some(15_000), None), "sold_out");
        assert_eq!(state_at(90_000, cd, start, end, Some(15_000), None), "sold_out", "sold out stays sold out");
        assert_eq!(state_at(20_000, cd, start, end, None, Some(19_000)), "ended", "ended early");
    }
}
