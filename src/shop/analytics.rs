//! Shop figures: per product of a stream (views, clicks, cart adds,
//! orders, units, revenue, conversion), its flash sales' sell-through, the
//! stream's totals (the end-of-stream summary's orders and revenue), and
//! the top streams and products over a period.
//!
//! Orders count once paid (paid, shipped; not refunded, pending or
//! expired); load-test clients' orders and interactions never count.

use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use utoipa::{IntoParams, ToSchema};

use super::flash_sales::{self, FlashSale};
use crate::db::DbResult;

/// Paid orders (what the figures count).
const PAID: &str = "o.status IN ('paid', 'shipped') AND o.load_test = 0";

/// One product's figures in a stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductFigures {
    /// Product.
    pub product_id: i64,
    /// Its title.
    pub title: String,
    /// Viewer-minutes with the card seen.
    pub views: i64,
    /// Opened.
    pub clicks: i64,
    /// Put in the cart.
    pub cart_adds: i64,
    /// Paid orders.
    pub orders: i64,
    /// Units in them.
    pub units: i64,
    /// What they paid, minor units.
    pub revenue: i64,
    /// Different viewers who saw it.
    pub viewers: i64,
    /// Buyers over viewers who saw it (0-1).
    pub conversion: f64,
}

/// A stream's shop figures.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShopAnalytics {
    /// Stream.
    pub stream_id: i64,
    /// Paid orders in all.
    pub orders: i64,
    /// Units in them.
    pub units: i64,
    /// Minor units paid.
    pub revenue: i64,
    /// Lowercase ISO code.
    pub currency: String,
    /// Per product on the shelf (and any other sold in the stream).
    pub products: Vec<ProductFigures>,
    /// Its flash sales (with `sell_through_seconds` for those that sold out).
    pub flash_sales: Vec<FlashSale>,
}

/// The live sales figures pushed to the seller (`shop_sales` events).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Sales {
    /// Stream.
    pub stream_id: i64,
    /// Paid orders.
    pub orders: i64,
    /// Units.
    pub units: i64,
    /// Minor units paid.
    pub revenue: i64,
    /// Orders holding stock, not paid yet.
    pub pending: i64,
}

/// A stream's paid orders and revenue (the end-of-stream summary's).
pub async fn totals(pool: &SqlitePool, stream_id: i64) -> Result<(i64, i64, i64), ApiError> {
    let (orders, units, revenue): (i64, Option<i64>, Option<i64>) = sqlx::query_as(&format!("SELECT COUNT(*), SUM(o.quantity), SUM(o.total) FROM orders o WHERE o.stream_id = $1 AND {PAID}")).bind(stream_id).fetch_one(pool).await.db()?;
    Ok((orders, units.unwrap_or(0), revenue.unwrap_or(0)))
}

/// The figures pushed to the seller.
pub async fn sales(pool: &SqlitePool, stream_id: i64) -> Result<Sales, ApiError> {
    let (orders, units, revenue) = totals(pool, stream_id).await?;
    let (pending,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders WHERE stream_id = $1 AND status = 'pending' AND load_test = 0").bind(stream_id).fetch_one(pool).await.db()?;
    Ok(Sales { stream_id, orders, units, revenue, pending })
}

/// A stream's shop figures.
pub async fn stream(pool: &SqlitePool, stream_id: i64, currency: &str, now: i64) -> Result<ShopAnalytics, ApiError> {
    let products: Vec<(i64, String)> = sqlx::query_as(
        "SELECT p.id, p.title FROM products p WHERE p.id IN (SELECT product_id FROM stream_products WHERE stream_id = $1 UNION SELECT product_id FROM orders WHERE stream_id = $1) ORDER BY p.id",
    )
    .bind(stream_id)
    .fetch_all(pool)
    .await
    .db()?;
    let mut out = Vec::with_capacity(products.len());
    for (pid, title) in products {
        let counts: Vec<(String, i64, i64)> = sqlx::query_as("SELECT kind, COUNT(*), COUNT(DISTINCT viewer) FROM product_interactions WHERE stream_id = $1 AND product_id = $2 GROUP BY kind")
            .bind(stream_id)
            .bind(pid)
            .fetch_all(pool)
            .await
            .db()?;
        let of = |k: &str| counts.iter().find(|c| c.0 == k).map(|c| (c.1, c.2)).unwrap_or((0, 0));
        let (orders, units, revenue, buyers): (i64, Option<i64>, Option<i64>, i64) =
            sqlx::query_as(&format!("SELECT COUNT(*), SUM(o.quantity), SUM(o.total), COUNT(DISTINCT o.buyer_id) FROM orders o WHERE o.stream_id = $1 AND o.product_id = $2 AND {PAID}"))
                .bind(stream_id)
                .bind(pid)
                .fetch_one(pool)
                .await
                .db()?;
        let (views, viewers) = of("view");
        out.push(ProductFigures {
            product_id: pid,
            title,
            views,
            clicks: of("click").0,
            cart_adds: of("cart").0,
            orders,
            units: units.unwrap_or(0),
            revenue: revenue.unwrap_or(0),
            viewers,
            conversion: if viewers > 0 { (buyers as f64 / viewers as f64).min(1.0) } else { 0.0 },
        });
    }
    let (orders, units, revenue) = totals(pool, stream_id).await?;
    Ok(ShopAnalytics { stream_id, orders, units, revenue, currency: currency.to_owned(), products: out, flash_sales: flash_sales::list(pool, stream_id, now).await? })
}

/// Which period.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopQuery {
    /// `day`, `week` (default), `month` or `all`.
    pub period: Option<String>,
    /// 1-50, default 10.
    pub limit: Option<i64>,
}

/// A stream among the top sessions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopSession {
    /// Stream.
    pub stream_id: i64,
    /// Its title.
    pub title: String,
    /// Its host.
    pub host: String,
    /// Paid orders in the period.
    pub orders: i64,
    /// Minor units paid.
    pub revenue: i64,
}

/// A product among the top sellers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopProduct {
    /// Product.
    pub product_id: i64,
    /// Its title.
    pub title: String,
    /// Its seller.
    pub seller: String,
    /// Units sold in the period.
    pub units: i64,
    /// Paid orders.
    pub orders: i64,
    /// Minor units paid.
    pub revenue: i64,
}

/// The top streams and products by revenue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Top {
    /// `day`, `week`, `month` or `all`.
    pub period: String,
    /// Streams (live sessions) by revenue.
    pub sessions: Vec<TopSession>,
    /// Products by revenue.
    pub products: Vec<TopProduct>,
}

/// The top lists over a period ending `now`.
pub async fn top(pool: &SqlitePool, q: &TopQuery, now: i64) -> Result<Top, ApiError> {
    let period = q.period.clone().unwrap_or_else(|| "week".into());
    let from = match period.as_str() {
        "day" => now - 24 * 3600 * 1000,
        "week" => now - 7 * 24 * 3600 * 1000,
        "month" => now - 30 * 24 * 3600 * 1000,
        "all" => 0,
        _ => return Err(super::bad("period", "one of day, week, month, all")),
    };
    let limit = q.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(super::bad("limit", "must be 1-50"));
    }
    let sessions: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(&format!(
        "SELECT s.id, s.title, u.username, COUNT(*) AS n, SUM(o.total) AS revenue FROM orders o JOIN streams s ON s.id = o.stream_id JOIN users u ON u.id = s.host_id \
         WHERE {PAID} AND o.paid_at >= $1 GROUP BY s.id, s.title, u.username ORDER BY revenue DESC, n DESC, s.id LIMIT $2"
    ))
    .bind(from)
    .bind(limit)
    .fetch_all(pool)
    .await
    .db()?;
    let products: Vec<(i64, String, String, i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT p.id, p.title, u.username, SUM(o.quantity), COUNT(*), SUM(o.total) AS revenue FROM orders o JOIN products p ON p.id = o.product_id JOIN users u ON u.id = p.seller_id \
         WHERE {PAID} AND o.paid_at >= $1 GROUP BY p.id, p.title, u.username ORDER BY revenue DESC, p.id LIMIT $2"
    ))
    .bind(from)
    .bind(limit)
    .fetch_all(pool)
    .await
    .db()?;
    Ok(Top {
        period,
        sessions: sessions.into_iter().map(|(stream_id, title, host, orders, revenue)| TopSession { stream_id, title, host, orders, revenue }).collect(),
        products: products.into_iter().map(|(product_id, title, seller, units, orders, revenue)| TopProduct { product_id, title, seller, units, orders, revenue }).collect(),
    })
}
