//! Vouchers a host drops in a stream: a code for a percentage or an amount
//! off, with a minimum order, a total use limit, a per-buyer limit, an
//! expiry and optionally only some products.
//!
//! A use is taken inside the order's transaction by conditional updates
//! (`uses < max_uses`, the buyer's `uses < per_user`) whose rows affected
//! are checked, so the limits hold whatever the concurrency; an order that
//! expires unpaid gives its use back.

use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::{SqliteConnection, SqlitePool};
use utoipa::ToSchema;

use super::{bad, conflict, Shop};
use crate::accounts::Principal;
use crate::db::DbResult;
use crate::realtime::Event;
use crate::streams::Stream;

/// A voucher.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Voucher {
    /// Id.
    pub id: i64,
    /// Stream.
    pub stream_id: i64,
    /// The code (upper case; buyers may type it in any case).
    pub code: String,
    /// Percent off, 1-100.
    pub percent_off: Option<i64>,
    /// Minor units off.
    pub amount_off: Option<i64>,
    /// Smallest order (before the discount) it applies to.
    pub min_order: i64,
    /// Uses in all (null: no limit).
    pub max_uses: Option<i64>,
    /// Uses per buyer (null: no limit).
    pub per_user: Option<i64>,
    /// Uses so far (pending and paid orders).
    pub uses: i64,
    /// When it stops working.
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<i64>,
    /// Only these products (null: any on the shelf).
    pub products: Option<Vec<i64>>,
}

/// A new voucher.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVoucher {
    /// 3-32 letters, digits, `-` or `_`.
    pub code: String,
    /// Percent off, 1-100 (or `amount_off`).
    #[serde(default)]
    pub percent_off: Option<i64>,
    /// Minor units off (or `percent_off`).
    #[serde(default)]
    pub amount_off: Option<i64>,
    /// Smallest order it applies to (default 0).
    #[serde(default)]
    pub min_order: Option<i64>,
    /// Uses in all (default: no limit).
    #[serde(default)]
    pub max_uses: Option<i64>,
    /// Uses per buyer (default 1).
    #[serde(default)]
    pub per_user: Option<i64>,
    /// RFC 3339; default: never.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Only these products (default: any).
    #[serde(default)]
    pub products: Option<Vec<i64>>,
}

type Row = (i64, i64, String, Option<i64>, Option<i64>, i64, Option<i64>, Option<i64>, i64, Option<i64>, Option<String>);
const COLS: &str = "id, stream_id, code, percent_off, amount_off, min_order, max_uses, per_user, uses, expires_at, products";

fn of_row(r: Row) -> Voucher {
    let (id, stream_id, code, percent_off, amount_off, min_order, max_uses, per_user, uses, expires_at, products) = r;
    Voucher { id, stream_id, code, percent_off, amount_off, min_order, max_uses, per_user, uses, expires_at, products: products.and_then(|p| serde_json::from_str(&p).ok()) }
}

/// A stream's vouchers.
pub async fn list(pool: &SqlitePool, stream_id: i64) -> Result<Vec<Voucher>, ApiError> {
    let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM vouchers WHERE stream_id = $1 ORDER BY id")).bind(stream_id).fetch_all(pool).await.db()?;
    Ok(rows.into_iter().map(of_row).collect())
}

/// `422 voucher_invalid`.
pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "voucher_invalid", message)
}

/// The discount of `code` on an order of `subtotal` for `product` by
/// `buyer`, taking one use of it: `(voucher id, discount)`. In the order's
/// transaction.
pub async fn take_use(c: &mut SqliteConnection, stream_id: i64, code: &str, buyer: i64, product: i64, subtotal: i64, now: i64) -> Result<(i64, i64), ApiError> {
    let code = code.trim().to_ascii_uppercase();
    let r: Option<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM vouchers WHERE stream_id = $1 AND code = $2")).bind(stream_id).bind(&code).fetch_optional(&mut *c).await.db()?;
    let v = r.map(of_row).ok_or_else(|| invalid(format!("no voucher '{code}' in this stream")))?;
    if v.expires_at.is_some_and(|e| e <= now) {
        return Err(invalid("this voucher has expired"));
    }
    if subtotal < v.min_order {
        return Err(invalid(format!("this voucher needs an order of at least {}", v.min_order)));
    }
    if v.products.as_ref().is_some_and(|p| !p.contains(&product)) {
        return Err(invalid("this voucher is not for this product"));
    }
    let taken = sqlx::query("UPDATE vouchers SET uses = uses + 1 WHERE id = $1 AND (max_uses IS NULL OR uses < max_uses)").bind(v.id).execute(&mut *c).await.db()?.rows_affected();
    if taken != 1 {
        return Err(invalid("this voucher has been used up"));
    }
    let mine = sqlx::query(
        "INSERT INTO voucher_uses (voucher_id, user_id, uses) VALUES ($1, $2, 1) \
         ON CONFLICT (voucher_id, user_id) DO UPDATE SET uses = voucher_uses.uses + 1 WHERE $3 IS NULL OR voucher_uses.uses < $3",
    )
    .bind(v.id)
    .bind(buyer)
    .bind(v.per_user)
    .execute(&mut *c)
    .await
    .db()?
    .rows_affected();
    if mine != 1 || v.per_user == Some(0) {
        return Err(invalid("you have used this voucher as often as it allows"));
    }
    let discount = match (v.percent_off, v.amount_off) {
        (Some(p), _) => subtotal * p / 100,
        (None, Some(a)) => a.min(subtotal),
        (None, None) => 0,
    };
    Ok((v.id, discount))
}

/// Gives back a use (an order that expired unpaid).
pub async fn give_back(c: &mut SqliteConnection, voucher: i64, buyer: i64) -> Result<(), ApiError> {
    sqlx::query("UPDATE vouchers SET uses = uses - 1 WHERE id = $1 AND uses > 0").bind(voucher).execute(&mut *c).await.db()?;
    sqlx::query("UPDATE voucher_uses SET uses = uses - 1 WHERE voucher_id = $1 AND user_id = $2 AND uses > 0").bind(voucher).bind(buyer).execute(&mut *c).await.db()?;
    Ok(())
}

fn check_code(code: &str) -> Result<String, ApiError> {
    let c = code.trim();
    if !(3..=32).contains(&c.len()) || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(bad("code", "must be 3-32 letters, digits, '-' or '_'"));
    }
    Ok(c.to_ascii_uppercase())
}

impl Shop {
    /// Drops a voucher in the stream (its host and moderators): a `voucher` event.
    pub async fn create_voucher(&self, s: &Stream, who: &Principal, input: NewVoucher) -> Result<Voucher, ApiError> {
        self.check_seller_team(s, who).await?;
        let code = check_code(&input.code)?;
        match (input.percent_off, input.amount_off) {
            (Some(p), None) if (1..=100).contains(&p) => {}
            (Some(_), None) => return Err(bad("percent_off", "must be 1-100")),
            (None, Some(a)) if (1..=super::catalogue::MAX_PRICE).contains(&a) => {}
            (None, Some(_)) => return Err(bad("amount_off", "must be positive")),
            _ => return Err(bad("percent_off", "give percent_off or amount_off (one of them)")),
        }
        let min_order = input.min_order.unwrap_or(0);
        if !(0..=super::catalogue::MAX_PRICE * 100).contains(&min_order) {
            return Err(bad("min_order", "must be 0 or more"));
        }
        if input.max_uses.is_some_and(|m| !(1..=10_000_000).contains(&m)) {
            return Err(bad("max_uses", "must be at least 1"));
        }
        let per_user = input.per_user.unwrap_or(1);
        if !(1..=1000).contains(&per_user) {
            return Err(bad("per_user", "must be 1-1000"));
        }
        let expires_at = input.expires_at.as_deref().map(crate::clock::parse_rfc3339).transpose().map_err(|e| bad("expires_at", e))?;
        if let Some(products) = &input.products {
            if products.is_empty() || products.len() > 100 {
                return Err(bad("products", "1-100 product ids, or leave it out"));
            }
            for p in products {
                let ok = super::catalogue::read(&self.pool, *p).await?.is_some_and(|x| x.seller_id == s.host.id && !x.deleted);
                if !ok {
                    return Err(bad("products", format!("product {p} is not one of the host's")));
                }
            }
        }
        let products = input.products.as_ref().map(|p| serde_json::to_string(p).unwrap_or_default());
        let (sid, host, max_uses) = (s.id, s.host.id, input.max_uses);
        let (pct, amt) = (input.percent_off, input.amount_off);
        let id = self
            .money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let now = tx.now();
                    let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM vouchers WHERE stream_id = $1 AND code = $2").bind(sid).bind(&code).fetch_optional(tx.conn()).await.db()?;
                    if exists.is_some() {
                        return Err(conflict("voucher_exists", format!("this stream has a voucher '{code}'")));
                    }
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO vouchers (stream_id, seller_id, code, percent_off, amount_off, min_order, max_uses, per_user, uses, expires_at, products, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11) RETURNING id",
                    )
                    .bind(sid)
                    .bind(host)
                    .bind(&code)
                    .bind(pct)
                    .bind(amt)
                    .bind(min_order)
                    .bind(max_uses)
                    .bind(per_user)
                    .bind(expires_at)
                    .bind(&products)
                    .bind(now)
                    .fetch_one(tx.conn())
                    .await
                    .db()?;
                    Ok(id)
                })
            })
            .await?;
        let v = list(&self.pool, sid).await?.into_iter().find(|v| v.id == id).ok_or_else(|| ApiError::internal("a voucher just made is missing"))?;
        self.publish(sid, &Event::Voucher { voucher: Box::new(v.clone()) });
        Ok(v)
    }
}
