//! Orders: buying a product of a stream's shelf while it is live.
//!
//! An order (`Idempotency-Key`) is made in one transaction of the money
//! writer: the stock is taken at once by a conditional update (the
//! product's stock, or the flash sale's remaining quantity and the buyer's
//! units in it), a voucher use is taken the same way, and then:
//! - `pay_with: coins` (the default): the coins are spent on the seller in
//!   the same transaction (a linked ledger chain, see
//!   [`crate::money::spend`]): the order is `paid` or, short of coins,
//!   nothing happened (`402`);
//! - `pay_with: provider`: the order is `pending` with its stock held until
//!   `expires_at` (10 minutes), and a payment intent is made for its total;
//!   its verified webhook credits the coins and pays the order with them in
//!   one transaction. Unpaid past its hold, the order expires and its
//!   stock, the buyer's units and the voucher use return.
//!
//! A paid order is final; the seller may ship it and refund it (in coins,
//! to the pockets it was paid from), returning its stock or not.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::{SqliteConnection, SqlitePool};
use utoipa::{IntoParams, ToSchema};

use super::admission::{Admission, Ticket};
use super::flash_sales;
use super::shelf::not_on_shelf;
use super::{conflict, not_found, vouchers, Shop};
use crate::accounts::Principal;
use crate::db::DbResult;
use crate::money::idempotency::{self, Keyed, Reply};
use crate::money::ledger::{self, AccountRef, Code, NewTransfer, COIN};
use crate::money::payments::TopUp;
use crate::money::spend::{self, Spend};
use crate::money::tickets::PayWith;
use crate::money::tx::Tx;
use crate::money::writer::Writer;
use crate::streams::{access, State, Stream};

/// How long a pending order holds its stock.
pub const HOLD_MS: i64 = 10 * 60 * 1000;
/// Most units in one order.
pub const MAX_QUANTITY: i64 = 100;

/// Where to ship.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Shipping {
    /// Recipient, 1-100 characters.
    pub name: String,
    /// Street address, 1-200 characters.
    pub address: String,
    /// City, 1-100 characters.
    pub city: String,
    /// Postal code, up to 20 characters.
    #[serde(default)]
    pub postal_code: Option<String>,
    /// ISO 3166 alpha-2 country code.
    pub country: String,
}

/// An order to place.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// The product (on the stream's shelf).
    pub product: i64,
    /// Units, 1-100 (default 1).
    #[serde(default)]
    pub quantity: Option<i64>,
    /// A voucher code dropped in this stream.
    #[serde(default)]
    pub voucher: Option<String>,
    /// Where to ship.
    pub shipping: Shipping,
    /// `coins` (default: paid now from the wallet) or `provider` (held
    /// 10 minutes for the payment).
    #[serde(default)]
    pub pay_with: PayWith,
    /// The flash sale meant (default: the product's sale under way, if any).
    #[serde(default)]
    pub flash_sale: Option<i64>,
}

/// An order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Order {
    /// Id.
    pub id: i64,
    /// The stream it was placed in.
    pub stream_id: Option<i64>,
    /// Product.
    pub product_id: i64,
    /// Its title.
    pub product_title: String,
    /// Its first picture.
    pub product_image: Option<String>,
    /// Buyer.
    pub buyer_id: i64,
    /// Their username.
    pub buyer: String,
    /// Seller.
    pub seller_id: i64,
    /// The flash sale it was bought in.
    pub flash_sale_id: Option<i64>,
    /// Units.
    pub quantity: i64,
    /// Price per unit, minor units.
    pub unit_price: i64,
    /// Units times price.
    pub subtotal: i64,
    /// Taken off by the voucher.
    pub discount: i64,
    /// To pay (in coins: one per minor unit).
    pub total: i64,
    /// Lowercase ISO code.
    pub currency: String,
    /// The voucher used.
    pub voucher: Option<String>,
    /// `pending` (stock held until `expires_at`), `paid`, `shipped`, `refunded`, `expired`.
    pub status: String,
    /// `coins` or `provider`.
    pub pay_with: PayWith,
    /// Where to pay (`provider` orders while pending).
    pub payment: Option<TopUp>,
    /// Where it goes (the buyer and seller only).
    pub shipping: Option<Shipping>,
    /// The carrier's reference, once shipped.
    pub tracking: Option<String>,
    /// When placed.
    #[serde(with = "ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// When an unpaid order lets its stock go.
    #[serde(with = "opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<i64>,
    /// When paid.
    #[serde(with = "opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub paid_at: Option<i64>,
    /// When shipped.
    #[serde(with = "opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub shipped_at: Option<i64>,
    /// When refunded.
    #[serde(with = "opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub refunded_at: Option<i64>,
}

mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        crate::clock::json::ms(v, s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        crate::clock::parse_rfc3339(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod opt_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        crate::clock::json::opt_ms(v, s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<String>::deserialize(d)?.map(|s| crate::clock::parse_rfc3339(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

/// What placing did besides the order (for the events after the commit).
#[derive(Debug, Clone, Default)]
struct Effects {
    sale: Option<i64>,
    sold_out: bool,
}

/// What the sweeper expired.
#[derive(Debug, Clone, Default)]
pub struct Swept {
    /// Orders expired.
    pub expired: Vec<i64>,
    /// Sales whose remaining quantity grew back.
    pub sales: Vec<i64>,
    /// (stream, product) pairs whose stock grew back.
    pub streams: Vec<(i64, i64)>,
    /// What went back to sales and their buyers' counts.
    pub returned: Vec<Returned>,
}

/// Which orders (the seller's list).
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// `pending`, `paid`, `shipped`, `refunded`, `expired`.
    pub status: Option<String>,
    /// Orders placed in this stream.
    pub stream: Option<i64>,
    /// Orders with ids below this (the previous page's last).
    pub before: Option<i64>,
    /// 1-200, default 50.
    pub limit: Option<i64>,
}

/// Shipping it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipInput {
    /// The carrier's tracking reference, up to 100 characters.
    #[serde(default)]
    pub tracking: Option<String>,
}

/// Refunding it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OrderRefundInput)]
pub struct RefundInput {
    /// Put its units back in stock (default false: the goods did not come back).
    #[serde(default)]
    pub restock: bool,
}

fn check_shipping(s: &Shipping) -> Result<Shipping, ApiError> {
    let mut fields = BTreeMap::new();
    let mut text = |name: &str, v: &str, min: usize, max: usize| {
        let n = v.trim().chars().count();
        if n < min || n > max || v.chars().any(char::is_control) {
            fields.insert(format!("shipping.{name}"), format!("must be {min}-{max} characters"));
        }
        v.trim().to_owned()
    };
    let out = Shipping {
        name: text("name", &s.name, 1, 100),
        address: text("address", &s.address, 1, 200),
        city: text("city", &s.city, 1, 100),
        postal_code: s.postal_code.as_deref().map(|p| text("postal_code", p, 0, 20)).filter(|p| !p.is_empty()),
        country: s.country.trim().to_ascii_uppercase(),
    };
    if out.country.len() != 2 || !out.country.bytes().all(|b| b.is_ascii_uppercase()) {
        fields.insert("shipping.country".into(), "must be a two-letter ISO 3166 code".into());
    }
    if fields.is_empty() {
        Ok(out)
    } else {
        Err(crate::money::unprocessable(fields))
    }
}

type Row = (i64, Option<i64>, i64, String, String, i64, String, i64, Option<i64>, i64, i64, i64, i64, i64, String, Option<String>, String, String, Option<String>, String, Option<String>, i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>);
const COLS: &str = "o.id, o.stream_id, o.product_id, p.title, p.images, o.buyer_id, b.username, o.seller_id, o.flash_sale_id, o.quantity, o.unit_price, o.subtotal, o.discount, o.total, o.currency, v.code, \
    o.status, o.pay_with, o.payment_ref, o.shipping, o.tracking, o.created_at, o.expires_at, o.paid_at, o.shipped_at, o.refunded_at";
const FROM: &str = "FROM orders o JOIN products p ON p.id = o.product_id JOIN users b ON b.id = o.buyer_id LEFT JOIN vouchers v ON v.id = o.voucher_id";

/// A row read by column (more columns than sqlx maps to a tuple).
fn read_row(r: &sqlx::sqlite::SqliteRow) -> Result<Row, sqlx::Error> {
    use sqlx::Row as _;
    Ok((
        r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?, r.try_get(6)?, r.try_get(7)?, r.try_get(8)?, r.try_get(9)?, r.try_get(10)?, r.try_get(11)?, r.try_get(12)?,
        r.try_get(13)?, r.try_get(14)?, r.try_get(15)?, r.try_get(16)?, r.try_get(17)?, r.try_get(18)?, r.try_get(19)?, r.try_get(20)?, r.try_get(21)?, r.try_get(22)?, r.try_get(23)?, r.try_get(24)?, r.try_get(25)?,
    ))
}

async fn payment_of(c: &mut SqliteConnection, intent: &str) -> Result<Option<TopUp>, ApiError> {
    type P = (String, String, i64, String, Option<String>, Option<String>, i64, Option<String>, String);
    let r: Option<P> = sqlx::query_as("SELECT id, status, amount, currency, checkout_url, client_secret, coins, package, purpose FROM payment_intents WHERE id = $1").bind(intent).fetch_optional(c).await.db()?;
    Ok(r.map(|(intent_id, status, amount, currency, checkout_url, client_secret, coins, package, purpose)| TopUp { intent_id, status, amount, currency, checkout_url, client_secret, coins, package, purpose }))
}

async fn of_row(c: &mut SqliteConnection, r: Row) -> Result<Order, ApiError> {
    let (id, stream_id, product_id, product_title, images, buyer_id, buyer, seller_id, flash_sale_id, quantity, unit_price, subtotal, discount, total, currency, voucher, status, pay_with, payment_ref, shipping, tracking, created_at, expires_at, paid_at, shipped_at, refunded_at) = r;
    let pay_with = if pay_with == "provider" { PayWith::Provider } else { PayWith::Coins };
    let payment = match (&payment_ref, pay_with) {
        (Some(p), PayWith::Provider) => payment_of(c, p).await?,
        _ => None,
    };
    let images: Vec<String> = serde_json::from_str(&images).unwrap_or_default();
    Ok(Order {
        id,
        stream_id,
        product_id,
        product_title,
        product_image: images.into_iter().next(),
        buyer_id,
        buyer,
        seller_id,
        flash_sale_id,
        quantity,
        unit_price,
        subtotal,
        discount,
        total,
        currency,
        voucher,
        status,
        pay_with,
        payment,
        shipping: serde_json::from_str(&shipping).ok(),
        tracking,
        created_at,
        expires_at,
        paid_at,
        shipped_at,
        refunded_at,
    })
}

/// An order in a transaction.
pub async fn get_in(c: &mut SqliteConnection, id: i64) -> Result<Option<Order>, ApiError> {
    let r = sqlx::query(&format!("SELECT {COLS} {FROM} WHERE o.id = $1")).bind(id).fetch_optional(&mut *c).await.db()?;
    match r {
        Some(r) => {
            let r = read_row(&r).db()?;
            Ok(Some(of_row(c, r).await?))
        }
        None => Ok(None),
    }
}

/// An order.
pub async fn get(pool: &SqlitePool, id: i64) -> Result<Option<Order>, ApiError> {
    get_in(&mut *pool.acquire().await.db()?, id).await
}

fn no_order(id: i64) -> ApiError {
    not_found("order_not_found", format!("no order {id}"))
}

/// Takes the stock of an order: from the flash sale (its remaining
/// quantity and the buyer's units) or from the product. Returns the unit
/// price, the sale, and whether this took the sale's last unit.
async fn take_stock(tx: &mut Tx, stream_id: i64, buyer: i64, input: &NewOrder, quantity: i64) -> Result<(i64, Option<i64>, bool), ApiError> {
    let now = tx.now();
    let shelf: Option<(Option<i64>,)> = sqlx::query_as("SELECT live_price FROM stream_products WHERE stream_id = $1 AND product_id = $2").bind(stream_id).bind(input.product).fetch_optional(tx.conn()).await.db()?;
    let Some((live_price,)) = shelf else { return Err(not_on_shelf(stream_id, input.product)) };
    let sale = match input.flash_sale {
        Some(id) => {
            let s = flash_sales::get_in(tx.conn(), id, now).await?.filter(|s| s.stream_id == stream_id && s.product_id == input.product);
            Some(s.ok_or_else(|| not_found("flash_sale_not_found", format!("no flash sale {id} of this product in this stream")))?)
        }
        // Without a sale named: the one under way (or counting down) is what is sold.
        None => flash_sales::latest_in(tx.conn(), stream_id, input.product, now).await?.filter(|s| s.state == "active" || s.state == "countdown"),
    };
    if let Some(s) = sale {
        match s.state.as_str() {
            "scheduled" | "countdown" => return Err(conflict("sale_not_started", format!("the flash sale opens at {}", crate::clock::rfc3339(s.starts_at)))),
            "ended" => return Err(conflict("sale_ended", "the flash sale has ended")),
            "sold_out" => return Err(conflict("sold_out", "sold out")),
            _ => {}
        }
        if quantity > s.per_buyer_limit {
            return Err(conflict("limit_reached", format!("at most {} per buyer in this sale", s.per_buyer_limit)));
        }
        // One statement takes the units and, for the last of them, marks the
        // sale sold out (only one order can); a later refusal in this order
        // (the buyer's limit) undoes both with the order's savepoint.
        let taken: Option<(i64,)> = sqlx::query_as(
            "UPDATE flash_sales SET remaining = remaining - $1, sold_out_at = CASE WHEN remaining = $1 THEN $3 ELSE sold_out_at END \
             WHERE id = $2 AND remaining >= $1 AND sold_out_at IS NULL AND settled_at IS NULL RETURNING sold_out_at IS NOT NULL",
        )
        .bind(quantity)
        .bind(s.id)
        .bind(now)
        .fetch_optional(tx.conn())
        .await
        .db()?;
        let Some((marked,)) = taken else {
            return Err(conflict("sold_out", "sold out"));
        };
        let sold_out = marked != 0;
        let mine = sqlx::query(
            "INSERT INTO flash_sale_buyers (sale_id, user_id, units) VALUES ($1, $2, $3) \
             ON CONFLICT (sale_id, user_id) DO UPDATE SET units = flash_sale_buyers.units + excluded.units WHERE flash_sale_buyers.units + excluded.units <= $4",
        )
        .bind(s.id)
        .bind(buyer)
        .bind(quantity)
        .bind(s.per_buyer_limit)
        .execute(tx.conn())
        .await
        .db()?
        .rows_affected();
        if mine != 1 {
            return Err(conflict("limit_reached", format!("at most {} per buyer in this sale", s.per_buyer_limit)));
        }
        return Ok((s.price, Some(s.id), sold_out));
    }
    let (price, deleted): (i64, Option<i64>) = sqlx::query_as("SELECT price, deleted_at FROM products WHERE id = $1").bind(input.product).fetch_one(tx.conn()).await.db()?;
    if deleted.is_some() {
        return Err(super::catalogue::no_product(input.product));
    }
    let taken = sqlx::query("UPDATE products SET stock = stock - $1 WHERE id = $2 AND stock >= $1").bind(quantity).bind(input.product).execute(tx.conn()).await.db()?.rows_affected();
    if taken != 1 {
        let (left,): (i64,) = sqlx::query_as("SELECT stock FROM products WHERE id = $1").bind(input.product).fetch_one(tx.conn()).await.db()?;
        return Err(if left == 0 { conflict("sold_out", "sold out") } else { conflict("insufficient_stock", format!("only {left} left")) });
    }
    Ok((live_price.unwrap_or(price), None, false))
}

/// Pays a pending order with the buyer's coins (inside a transaction):
/// the spend on the seller, then `paid`. `409 order_not_pending` unless pending.
pub async fn pay_in(tx: &mut Tx, order_id: i64, share: u32) -> Result<Order, ApiError> {
    let row: Option<(i64, i64, i64, i64, String)> = sqlx::query_as("SELECT buyer_id, seller_id, total, COALESCE(stream_id, 0), status FROM orders WHERE id = $1").bind(order_id).fetch_optional(tx.conn()).await.db()?;
    let (buyer, seller, total, stream, status) = row.ok_or_else(|| no_order(order_id))?;
    if status != "pending" {
        return Err(conflict("order_not_pending", format!("order {order_id} is {status}")));
    }
    pay_pending(tx, order_id, buyer, seller, total, (stream > 0).then_some(stream), share).await?;
    get_in(tx.conn(), order_id).await?.ok_or_else(|| no_order(order_id))
}

/// Pays an order known pending (just placed, or checked by [`pay_in`]).
async fn pay_pending(tx: &mut Tx, order_id: i64, buyer: i64, seller: i64, total: i64, stream_id: Option<i64>, share: u32) -> Result<(), ApiError> {
    let now = tx.now();
    let (spend_ref, from_promo, creator_coins) = if total > 0 {
        let sp = Spend { base: format!("order_{order_id}"), kind: "order", payer: buyer, creator: seller, coins: total, stream_id, reference: Some(format!("order:{order_id}")), hold: None };
        let (split, _) = spend::spend(tx, &sp, share).await?;
        (Some(sp.base), split.from_promo, split.creator_coins)
    } else {
        (None, 0, 0)
    };
    sqlx::query("UPDATE orders SET status = 'paid', paid_at = $1, expires_at = NULL, spend_ref = $2, from_promo = $3, creator_coins = $4 WHERE id = $5 AND status = 'pending'")
        .bind(now)
        .bind(&spend_ref)
        .bind(from_promo)
        .bind(creator_coins)
        .bind(order_id)
        .execute(tx.conn())
        .await
        .db()?;
    Ok(())
}

/// What an order gave back (for the flash sale's admission gate, once committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Returned {
    /// The sale the order was bought in.
    pub sale: i64,
    /// The buyer.
    pub buyer: i64,
    /// Units taken off the buyer's count in the sale.
    pub buyer_units: i64,
    /// Units back to the sale's remaining quantity.
    pub sale_units: i64,
}

/// Gives back what an order held: its units to the sale (while it is
/// selling) or the product, the buyer's units in the sale, the voucher use.
/// Returns what went back to a sale and its buyer's count, if any.
async fn release(c: &mut SqliteConnection, order_id: i64, restock: bool, voucher_back: bool) -> Result<Option<Returned>, ApiError> {
    let (product, buyer, quantity, sale, voucher): (i64, i64, i64, Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT product_id, buyer_id, quantity, flash_sale_id, voucher_id FROM orders WHERE id = $1").bind(order_id).fetch_one(&mut *c).await.db()?;
    let mut back = sale.map(|sale| Returned { sale, buyer, buyer_units: 0, sale_units: 0 });
    if let (Some(s), Some(b)) = (sale, back.as_mut()) {
        let n = sqlx::query("UPDATE flash_sale_buyers SET units = units - $1 WHERE sale_id = $2 AND user_id = $3 AND units >= $1").bind(quantity).bind(s).bind(buyer).execute(&mut *c).await.db()?.rows_affected();
        if n == 1 {
            b.buyer_units = quantity;
        }
    }
    if restock {
        let back_to_sale = match sale {
            Some(s) => {
                sqlx::query("UPDATE flash_sales SET remaining = remaining + $1 WHERE id = $2 AND sold_out_at IS NULL AND settled_at IS NULL AND remaining + $1 <= quantity")
                    .bind(quantity)
                    .bind(s)
                    .execute(&mut *c)
                    .await
                    .db()?
                    .rows_affected()
                    == 1
            }
            None => false,
        };
        if let (true, Some(b)) = (back_to_sale, back.as_mut()) {
            b.sale_units = quantity;
        } else {
            sqlx::query("UPDATE products SET stock = stock + $1 WHERE id = $2").bind(quantity).bind(product).execute(&mut *c).await.db()?;
        }
        sqlx::query("UPDATE orders SET restocked = 1 WHERE id = $1").bind(order_id).execute(&mut *c).await.db()?;
    }
    if let (Some(v), true) = (voucher, voucher_back) {
        vouchers::give_back(c, v, buyer).await?;
    }
    Ok(back)
}

/// Expires the pending orders whose hold ended by `now`, giving back what
/// they held (one transaction).
pub async fn expire_due(writer: &Writer, now: i64) -> Result<Swept, ApiError> {
    writer
        .run(move |tx| {
            Box::pin(async move {
                let due: Vec<(i64, Option<i64>, i64)> = sqlx::query_as("SELECT id, stream_id, product_id FROM orders WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT 500")
                    .bind(now)
                    .fetch_all(tx.conn())
                    .await
                    .db()?;
                let mut out = Swept::default();
                for (id, stream, product) in due {
                    let n = sqlx::query("UPDATE orders SET status = 'expired', expired_at = $1 WHERE id = $2 AND status = 'pending'").bind(now).bind(id).execute(tx.conn()).await.db()?.rows_affected();
                    if n != 1 {
                        continue;
                    }
                    if let Some(r) = release(tx.conn(), id, true, true).await? {
                        if r.sale_units > 0 {
                            out.sales.push(r.sale);
                        }
                        out.returned.push(r);
                    }
                    out.expired.push(id);
                    if let Some(s) = stream {
                        out.streams.push((s, product));
                    }
                }
                out.sales.sort_unstable();
                out.sales.dedup();
                out.streams.sort_unstable();
                out.streams.dedup();
                Ok(out)
            })
        })
        .await
}

impl Shop {
    /// Whether `who` may buy in `s` now: live, may watch, not the seller, not banned.
    async fn check_buyer(&self, s: &Stream, who: &Principal) -> Result<(), ApiError> {
        if s.state != State::Live {
            return Err(conflict("stream_not_live", format!("stream {} is {}, not live: orders are taken during the stream", s.id, s.state.as_str())));
        }
        if who.id() == s.host.id {
            return Err(crate::money::not_allowed("you cannot buy your own products"));
        }
        access::check_watch(&self.membership, s, Some(who)).await?;
        if let Some(crate::chat::moderation::Restriction::Banned) = self.chat.moderation.restriction(s.host.id, who.id()).await? {
            return Err(crate::money::not_allowed("you are banned in this channel"));
        }
        Ok(())
    }

    /// Places an order under the buyer's key (see the module docs).
    pub async fn place_order(&self, s: &Stream, who: &Principal, keyed: Keyed, input: NewOrder, load_test: bool) -> Result<Reply<Order>, ApiError> {
        self.check_buyer(s, who).await?;
        let quantity = input.quantity.unwrap_or(1);
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(crate::money::invalid("quantity", format!("must be 1-{MAX_QUANTITY}")));
        }
        let shipping = check_shipping(&input.shipping)?;
        let mut ticket = None;
        if let Some(sale) = input.flash_sale {
            // The sale's gate (see [`super::admission`]) refuses what cannot succeed.
            let refused = match self.gates.admit(sale, s.id, input.product, who.id(), &keyed.key, quantity, crate::clock::now_ms()) {
                // Sold out for good: no write transaction to say so.
                Admission::Open if self.sold_out.contains(&sale) => Some(conflict("sold_out", format!("flash sale {sale} is sold out"))),
                Admission::Open => None,
                Admission::Ticket(t) => {
                    ticket = Some(t);
                    None
                }
                Admission::Refused(e) => Some(e),
            };
            if let Some(e) = refused {
                // A key that made an order (or was refused) before still gets that answer.
                return match idempotency::replay(&self.pool, &keyed, crate::clock::now_ms()).await? {
                    Some(stored) => Ok(Reply::Replayed(stored)),
                    None => Err(e),
                };
            }
        }
        let me = self.arc().ok_or_else(|| ApiError::internal("the shop is stopping"))?;
        let (sid, seller, buyer) = (s.id, s.host.id, who.id());
        // The order goes on in its own task: a client that hangs up does not
        // stop what comes after its commit (the gate's ticket, the events).
        tokio::spawn(async move { me.order_in_writer(sid, seller, buyer, keyed, input, quantity, shipping, load_test, ticket).await })
            .await
            .map_err(|e| ApiError::internal(format!("the order's task failed: {e}")))?
    }

    /// The order's transaction in the money writer, then what follows its commit.
    #[allow(clippy::too_many_arguments)]
    async fn order_in_writer(&self, sid: i64, seller: i64, buyer: i64, keyed: Keyed, input: NewOrder, quantity: i64, shipping: Shipping, load_test: bool, ticket: Option<Ticket>) -> Result<Reply<Order>, ApiError> {
        let share = self.money.settings.creator_share;
        let currency = self.money.settings.currency.to_ascii_lowercase();
        let input_sale = input.flash_sale;
        let effects = Arc::new(std::sync::Mutex::new(Effects::default()));
        let fx = effects.clone();
        let reply = idempotency::run(&self.money.writer, keyed, StatusCode::CREATED, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let (unit_price, sale, sold_out) = take_stock(tx, sid, buyer, &input, quantity).await?;
                let subtotal = unit_price * quantity;
                let (voucher, discount) = match input.voucher.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                    Some(code) => {
                        let (v, d) = vouchers::take_use(tx.conn(), sid, code, buyer, input.product, subtotal, now).await?;
                        (Some(v), d)
                    }
                    None => (None, 0),
                };
                let total = subtotal - discount;
                let pay_with = if input.pay_with == PayWith::Provider && total > 0 { "provider" } else { "coins" };
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO orders (stream_id, buyer_id, seller_id, product_id, flash_sale_id, voucher_id, quantity, unit_price, subtotal, discount, total, currency, status, pay_with, shipping, load_test, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', $13, $14, $15, $16, $17) RETURNING id",
                )
                .bind(sid)
                .bind(buyer)
                .bind(seller)
                .bind(input.product)
                .bind(sale)
                .bind(voucher)
                .bind(quantity)
                .bind(unit_price)
                .bind(subtotal)
                .bind(discount)
                .bind(total)
                .bind(&currency)
                .bind(pay_with)
                .bind(serde_json::to_string(&shipping).unwrap_or_default())
                .bind(load_test)
                .bind(now)
                .bind(now + HOLD_MS)
                .fetch_one(tx.conn())
                .await
                .db()?;
                if pay_with == "coins" {
                    // Just placed, so pending: paid at once without reading it back first.
                    pay_pending(tx, id, buyer, seller, total, Some(sid), share).await?;
                }
                let order = get_in(tx.conn(), id).await?.ok_or_else(|| no_order(id))?;
                *fx.lock().unwrap_or_else(|e| e.into_inner()) = Effects { sale, sold_out };
                Ok(order)
            })
        })
        .await;
        // The gate learns what the transaction really took (nothing unless it committed fresh).
        let taken = match &reply {
            Ok(Reply::Fresh(o)) => o.flash_sale_id.map(|s| (s, o.quantity)),
            _ => None,
        };
        match (ticket, taken) {
            (Some(t), Some((s, q))) if t.sale == s => t.settle(q),
            (Some(t), taken) => {
                t.settle(0);
                if let Some((s, q)) = taken {
                    self.gates.taken(s, buyer, q);
                }
            }
            (None, Some((s, q))) => self.gates.taken(s, buyer, q),
            (None, None) => {}
        }
        let reply = reply?;
        if let (Reply::Refused(e), Some(sale)) = (&reply, input_sale) {
            if e.code == "sold_out" && flash_sales::get(&self.pool, sale, crate::clock::now_ms()).await?.is_some_and(|s| s.state == "sold_out") {
                self.sold_out.insert(sale);
            }
        }
        if let Reply::Fresh(order) = &reply {
            let fx = effects.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(sale) = fx.sale {
                self.stock_changed(sale);
                if fx.sold_out {
                    self.sold_out.insert(sale);
                    let stock = super::catalogue::read(&self.pool, order.product_id).await?.map(|p| p.stock).unwrap_or(0);
                    self.publish(sid, &crate::realtime::Event::SoldOut { stream_id: sid, product_id: order.product_id, flash_sale_id: Some(sale), product_stock: stock });
                    if let Ok(Some(s)) = flash_sales::get(&self.pool, sale, crate::clock::now_ms()).await {
                        self.publish(sid, &crate::realtime::Event::FlashSale { sale: Box::new(s) });
                    }
                }
            }
            self.sales_changed(sid);
            self.money.wallet_changed(buyer);
            self.money.wallet_changed(seller);
        }
        Ok(reply)
    }

    /// For a `provider` order still pending without a payment: makes its
    /// intent (under a key derived from the order's, so a retry finds the
    /// same one) and attaches it. Returns the order as it is now.
    pub async fn ensure_payment(&self, order: Order, keyed: &Keyed) -> Result<Order, ApiError> {
        if order.pay_with != PayWith::Provider || order.status != "pending" || order.payment.is_some() {
            return Ok(order);
        }
        let pay_key = Keyed::new(keyed.user_id, &format!("{}#pay", short(&keyed.key)), "POST", &format!("/api/orders/{}/payment", order.id), &serde_json::json!({}))?;
        let target = serde_json::json!({ "order_id": order.id });
        let r = self.money.payments.start(pay_key, "order", order.total, order.total, None, Some(target), format!("Order {} on OnAir: {} x {}", order.id, order.quantity, order.product_title)).await?;
        let intent = match r {
            Reply::Fresh(t) => t.intent_id,
            Reply::Replayed(s) => serde_json::from_str::<serde_json::Value>(&s.body).ok().and_then(|v| v["intent_id"].as_str().map(str::to_owned)).ok_or_else(|| ApiError::internal("a stored payment without an intent"))?,
            Reply::Refused(e) => return Err(e),
        };
        let (oid, user, key) = (order.id, keyed.user_id, keyed.key.clone());
        self.money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    sqlx::query("UPDATE orders SET payment_ref = $1 WHERE id = $2 AND payment_ref IS NULL").bind(&intent).bind(oid).execute(tx.conn()).await.db()?;
                    let order = get_in(tx.conn(), oid).await?.ok_or_else(|| no_order(oid))?;
                    // A retry of the order's key answers it with its payment.
                    let body = serde_json::to_string(&order).map_err(ApiError::internal)?;
                    sqlx::query("UPDATE idempotency_keys SET response = $1 WHERE user_id = $2 AND idem_key = $3 AND status = 201").bind(body).bind(user).bind(&key).execute(tx.conn()).await.db()?;
                    Ok(())
                })
            })
            .await?;
        get(&self.pool, order.id).await?.ok_or_else(|| no_order(order.id))
    }

    /// An order for its buyer, its seller or an admin.
    pub async fn order_for(&self, who: &Principal, id: i64) -> Result<Order, ApiError> {
        let o = get(&self.pool, id).await?.ok_or_else(|| no_order(id))?;
        if o.buyer_id != who.id() && o.seller_id != who.id() && who.role() != crate::accounts::Role::Admin {
            return Err(no_order(id));
        }
        Ok(o)
    }

    /// The buyer's orders, newest first.
    pub async fn buyer_orders(&self, buyer: i64, before: Option<i64>, limit: Option<i64>) -> Result<Vec<Order>, ApiError> {
        self.list_orders("o.buyer_id = $1", buyer, None, None, before, limit).await
    }

    /// The seller's orders, newest first.
    pub async fn seller_orders(&self, seller: i64, q: &OrderQuery) -> Result<Vec<Order>, ApiError> {
        if let Some(s) = &q.status {
            if !["pending", "paid", "shipped", "refunded", "expired"].contains(&s.as_str()) {
                return Err(super::bad("status", "one of pending, paid, shipped, refunded, expired"));
            }
        }
        self.list_orders("o.seller_id = $1", seller, q.status.clone(), q.stream, q.before, q.limit).await
    }

    async fn list_orders(&self, whose: &str, user: i64, status: Option<String>, stream: Option<i64>, before: Option<i64>, limit: Option<i64>) -> Result<Vec<Order>, ApiError> {
        let limit = limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(super::bad("limit", "must be 1-200"));
        }
        let mut c = self.pool.acquire().await.db()?;
        let rows = sqlx::query(&format!(
            "SELECT {COLS} {FROM} WHERE {whose} AND ($2 IS NULL OR o.status = $2) AND ($3 IS NULL OR o.stream_id = $3) AND o.id < $4 ORDER BY o.id DESC LIMIT $5"
        ))
        .bind(user)
        .bind(status)
        .bind(stream)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&mut *c)
        .await
        .db()?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let r = read_row(&r).db()?;
            out.push(of_row(&mut c, r).await?);
        }
        Ok(out)
    }

    fn own_order_check(o: &Order, who: &Principal) -> Result<(), ApiError> {
        if o.seller_id != who.id() && who.role() != crate::accounts::Role::Admin {
            return Err(no_order(o.id));
        }
        Ok(())
    }

    /// Marks a paid order shipped (its seller).
    pub async fn ship(&self, who: &Principal, id: i64, input: ShipInput) -> Result<Order, ApiError> {
        let o = self.order_for(who, id).await?;
        Self::own_order_check(&o, who)?;
        let tracking = input.tracking.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        if tracking.as_ref().is_some_and(|t| t.chars().count() > 100) {
            return Err(super::bad("tracking", "must be at most 100 characters"));
        }
        let n = self
            .money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    Ok(sqlx::query("UPDATE orders SET status = 'shipped', shipped_at = $1, tracking = $2 WHERE id = $3 AND status = 'paid'").bind(tx.now()).bind(tracking).bind(id).execute(tx.conn()).await.db()?.rows_affected())
                })
            })
            .await?;
        if n == 0 {
            return Err(conflict("order_not_paid", format!("order {id} is {}: only paid orders ship", o.status)));
        }
        get(&self.pool, id).await?.ok_or_else(|| no_order(id))
    }

    /// Refunds a paid or shipped order (its seller, under a key): the coins
    /// go back from the seller's earnings and the platform's share to the
    /// pockets they came from; with `restock`, its units return to stock.
    pub async fn refund(&self, who: &Principal, id: i64, keyed: Keyed, input: RefundInput) -> Result<Reply<Order>, ApiError> {
        let o = self.order_for(who, id).await?;
        Self::own_order_check(&o, who)?;
        let returned = Arc::new(std::sync::Mutex::new(None));
        let back = returned.clone();
        let reply = idempotency::run(&self.money.writer, keyed, StatusCode::OK, move |tx| {
            Box::pin(async move {
                type R = (String, i64, i64, i64, i64, i64, Option<String>);
                let (status, buyer, seller, total, from_promo, creator_coins, spend_ref): R =
                    sqlx::query_as("SELECT status, buyer_id, seller_id, total, from_promo, creator_coins, spend_ref FROM orders WHERE id = $1").bind(id).fetch_one(tx.conn()).await.db()?;
                if status != "paid" && status != "shipped" {
                    return Err(conflict("order_not_paid", format!("order {id} is {status}: only paid or shipped orders are refunded")));
                }
                if total > 0 {
                    let sources = [(AccountRef::user(seller, Code::Earnings), creator_coins), (AccountRef::platform(Code::Revenue, COIN), total - creator_coins)];
                    let payees = [(AccountRef::user(buyer, Code::Promo), from_promo), (AccountRef::user(buyer, Code::Wallet), total - from_promo)];
                    let legs = ledger::waterfall(&sources, &payees).ok_or_else(|| ApiError::internal("refund legs"))?;
                    let base = format!("{}:refund", spend_ref.unwrap_or_else(|| format!("order_{id}")));
                    let chain: Vec<NewTransfer> =
                        legs.into_iter().enumerate().map(|(i, (from, to, amount))| NewTransfer::new(format!("{base}:{i}"), from, to, amount, "order_refund").by(seller).reference(format!("order:{id}"))).collect();
                    ledger::linked(tx, &chain).await?;
                }
                sqlx::query("UPDATE orders SET status = 'refunded', refunded_at = $1 WHERE id = $2").bind(tx.now()).bind(id).execute(tx.conn()).await.db()?;
                let r = release(tx.conn(), id, input.restock, false).await?;
                *back.lock().unwrap_or_else(|e| e.into_inner()) = r;
                get_in(tx.conn(), id).await?.ok_or_else(|| no_order(id))
            })
        })
        .await?;
        if let Reply::Fresh(o) = &reply {
            if let Some(r) = *returned.lock().unwrap_or_else(|e| e.into_inner()) {
                self.gates.returned(r.sale, r.buyer, r.buyer_units, r.sale_units);
            }
            self.money.wallet_changed(o.buyer_id);
            self.money.wallet_changed(o.seller_id);
            if let Some(s) = o.stream_id {
                self.sales_changed(s);
            }
        }
        Ok(reply)
    }
}

fn short(key: &str) -> String {
    // The derived key stays within the 255-character limit.
    key.chars().take(200).collect()
}
