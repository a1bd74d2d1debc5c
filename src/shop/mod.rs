//! Live shopping: sellers (hosts) show products in their streams and
//! viewers buy without leaving them.
//!
//! - [`catalogue`]: a seller's products (`/api/products`);
//! - [`shelf`]: the products shown in a stream, the pinned one, live prices;
//! - [`flash_sales`]: limited quantities at a price for a while, after a countdown;
//! - [`vouchers`]: codes a host drops in a stream, with usage limits;
//! - [`orders`]: buying: stock held at once, paid in coins or through the
//!   payment provider, expired when unpaid; the seller's and buyer's lists;
//! - [`interactions`]: views, clicks and cart adds, one per viewer and minute;
//! - [`analytics`]: per product and stream figures, the top lists;
//! - [`admission`]: the in-memory gate of each flash sale open now.
//!
//! Every write that touches stock, a sale's remaining quantity, a buyer's
//! units or a voucher's uses runs in the money writer (one `BEGIN
//! IMMEDIATE` transaction per batch, see [`crate::money::writer`]) with
//! conditional updates whose rows affected are checked: nothing oversells,
//! whatever the concurrency. Events go to the stream's real-time topic once
//! their transaction has committed.

pub mod admission;
pub mod analytics;
pub mod catalogue;
pub mod flash_sales;
pub mod interactions;
pub mod orders;
pub mod shelf;
pub mod vouchers;

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::http::StatusCode;
use dashmap::DashSet;
use onair_signaling::ApiError;
use sqlx::SqlitePool;

use crate::chat::Chat;
use crate::images::Images;
use crate::membership::Membership;
use crate::money::Money;
use crate::realtime::{Event, Hub, Topic};

/// Remaining-quantity pushes per sale are at most this often (10 a second).
pub const STOCK_PUSH_MS: u64 = 100;
/// Live sales figures to the seller at most this often.
pub const SALES_PUSH_MS: u64 = 500;

/// `409` with a code.
pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

/// `404` with a code.
pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, code, message)
}

/// `400 validation` for one field.
pub fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(std::collections::BTreeMap::from([(field.to_owned(), message.into())]))
}

/// The shop service.
pub struct Shop {
    /// The database (reads).
    pub pool: SqlitePool,
    /// Coins and the one writer every stock change goes through.
    pub money: Arc<Money>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) chat: Chat,
    pub(crate) membership: Membership,
    pub(crate) images: Images,
    /// Sales whose remaining-quantity push is scheduled.
    stock_pushes: DashSet<i64>,
    /// Streams whose sales figures push to the seller is scheduled.
    sales_pushes: DashSet<i64>,
    /// Flash sales known sold out (a sale never comes back from it): orders
    /// naming one are answered without a write transaction.
    pub(crate) sold_out: DashSet<i64>,
    /// The admission gates of the flash sales (see [`admission`]).
    pub gates: admission::Gates,
    me: Weak<Shop>,
}

impl Shop {
    /// Starts the shop: timers for the flash sales under way and the sweeper
    /// (unpaid orders past their hold, sales past their end).
    pub async fn start(pool: SqlitePool, money: Arc<Money>, hub: Arc<Hub>, chat: Chat, membership: Membership, images: Images) -> Result<Arc<Shop>, String> {
        let shop = Arc::new_cyclic(|me| Shop { pool, money, hub, chat, membership, images, stock_pushes: DashSet::new(), sales_pushes: DashSet::new(), sold_out: DashSet::new(), gates: admission::Gates::default(), me: me.clone() });
        // Gates before any request and before the sweeper's first pass.
        shop.load_gates().await.map_err(|e| e.to_string())?;
        shop.resume_timers().await.map_err(|e| e.to_string())?;
        let weak = Arc::downgrade(&shop);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                let Some(shop) = weak.upgrade() else { return };
                if let Err(e) = shop.sweep_once(crate::clock::now_ms()).await {
                    tracing::error!("shop sweep: {e}");
                }
            }
        });
        Ok(shop)
    }

    fn arc(&self) -> Option<Arc<Shop>> {
        self.me.upgrade()
    }

    /// One pass of the sweeper at `now` (tests pass a time of their
    /// choosing): unpaid orders past their hold expire and their stock
    /// returns; sales past their end give back what is left.
    pub async fn sweep_once(&self, now: i64) -> Result<orders::Swept, ApiError> {
        let swept = orders::expire_due(&self.money.writer, now).await?;
        for r in &swept.returned {
            self.gates.returned(r.sale, r.buyer, r.buyer_units, r.sale_units);
        }
        let settled = flash_sales::settle_due(&self.money.writer, now).await?;
        // Gates of sales a minute over (by the real clock: tests pass a later `now`).
        self.gates.forget_ended(crate::clock::now_ms() - 60_000);
        for sale in &swept.sales {
            self.stock_changed(*sale);
        }
        for (stream, _) in &swept.streams {
            self.sales_changed(*stream);
        }
        let _ = settled;
        Ok(swept)
    }

    /// Publishes to a stream's watchers.
    pub(crate) fn publish(&self, stream_id: i64, ev: &Event) {
        self.hub.publish(Topic::Stream(stream_id), ev);
    }

    /// A sale's remaining quantity changed: pushed to the stream, at most
    /// every [`STOCK_PUSH_MS`], read after the changes it covers.
    pub(crate) fn stock_changed(&self, sale_id: i64) {
        if !self.stock_pushes.insert(sale_id) {
            return;
        }
        let Some(me) = self.arc() else { return };
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(STOCK_PUSH_MS)).await;
            me.stock_pushes.remove(&sale_id);
            match flash_sales::get(&me.pool, sale_id, crate::clock::now_ms()).await {
                Ok(Some(sale)) => me.publish(sale.stream_id, &Event::FlashSaleStock { stream_id: sale.stream_id, flash_sale_id: sale.id, product_id: sale.product_id, remaining: sale.remaining, quantity: sale.quantity }),
                Ok(None) => {}
                Err(e) => tracing::warn!("flash sale {sale_id} stock push: {e}"),
            }
        });
    }

    /// A stream's orders changed: its seller's pages get the figures, at
    /// most every [`SALES_PUSH_MS`].
    pub(crate) fn sales_changed(&self, stream_id: i64) {
        if !self.sales_pushes.insert(stream_id) {
            return;
        }
        let Some(me) = self.arc() else { return };
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(SALES_PUSH_MS)).await;
            me.sales_pushes.remove(&stream_id);
            let host: Option<(i64,)> = sqlx::query_as("SELECT host_id FROM streams WHERE id = $1").bind(stream_id).fetch_optional(&me.pool).await.ok().flatten();
            let Some((host,)) = host else { return };
            if me.hub.listeners(Topic::User(host)) == 0 {
                return;
            }
            match analytics::sales(&me.pool, stream_id).await {
                Ok(s) => {
                    me.hub.publish(Topic::User(host), &Event::ShopSales(Box::new(s)));
                }
                Err(e) => tracing::warn!("stream {stream_id} sales push: {e}"),
            }
        });
    }
}
