//! Money: a coin wallet on a double-entry ledger.
//!
//! The model (README, "Money"): every balance is an account on a ledger
//! (`COIN`, or a currency in minor units) and every movement an immutable
//! transfer between two accounts of one ledger, so for each ledger debits
//! equal credits and every balance is the sum of its transfers. A user has
//! a `wallet` (coins bought), `promo` (coins given), `earnings` (coins
//! received as a creator) and `owed` (coins clawed back after they were
//! spent); the platform has `issued` (the other side of every coin sold),
//! `promo_pool`, `revenue` (its share), `payouts`, and per currency
//! `clearing` (money at the provider) and `sales`.
//!
//! - [`ledger`]: accounts and transfers (TigerBeetle's model); [`tx`]: a
//!   write transaction; [`writer`]: the one writer (group commit);
//!   [`check`]: the invariants; [`audit`]: the features against the ledger;
//!   [`idempotency`]: `Idempotency-Key` by Stripe's rules;
//! - [`payments`]: buying coins through a provider, signed webhooks;
//! - [`spend`]: coins spent on a creator, split into earnings and the
//!   platform's share; [`gifts`]: the catalogue; [`support`]: tips and
//!   gifts in a stream; [`tickets`]; [`subscriptions`]; [`payouts`];
//!   [`promo`]: coins the platform gives;
//!   [`wallet`]: balances, statements and earnings.

pub mod audit;
pub mod check;
pub mod gifts;
pub mod idempotency;
pub mod ledger;
pub mod payments;
pub mod payouts;
pub mod promo;
pub mod spend;
pub mod subscriptions;
pub mod support;
pub mod tickets;
pub mod tx;
pub mod wallet;
pub mod writer;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use dashmap::DashMap;
use onair_signaling::ApiError;
use sqlx::SqlitePool;

use crate::chat::Chat;
use crate::clock::now_ms;
use crate::config::MoneySettings;
use crate::membership::Membership;
use crate::realtime::{Event, Hub, Topic};
use crate::streams::StreamStore;
use payments::{EventOutcome, Payments};

/// `422 validation` with a message per field (money endpoints' bad input).
pub fn unprocessable(fields: BTreeMap<String, String>) -> ApiError {
    ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, ..ApiError::validation(fields) }
}

/// `422` for one field.
pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    unprocessable(BTreeMap::from([(field.to_owned(), message.into())]))
}

/// `403 not_allowed`.
pub fn not_allowed(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "not_allowed", message)
}

/// Most coins one request may move.
pub const MAX_COINS: i64 = 1_000_000;

/// The money service.
pub struct Money {
    /// The database (reads).
    pub pool: SqlitePool,
    /// The one writer.
    pub writer: writer::Writer,
    /// Payments.
    pub payments: Payments,
    /// Settings.
    pub settings: MoneySettings,
    pub(crate) hub: Arc<Hub>,
    pub(crate) chat: Chat,
    pub(crate) streams: StreamStore,
    pub(crate) membership: Membership,
    /// Running gift combos: (stream, sender, gift) -> (count, last send).
    pub(crate) combos: DashMap<(i64, i64, String), (i64, std::time::Instant)>,
    /// Users whose balance push is scheduled (see [`Money::wallet_changed`]).
    wallet_pushes: dashmap::DashSet<i64>,
    /// Where leaderboard periods begin (gifts count toward them as they commit).
    pub(crate) leaderboard_tz: jiff::tz::TimeZone,
}

/// Balance pushes to one user are at most this often: a creator receiving
/// hundreds of gifts a second gets a few events, each with the latest balances.
pub const WALLET_PUSH_MS: u64 = 150;

/// The webhook secrets: configured, or one made on first run and kept in
/// the data directory (readable by the server's user only).
pub fn webhook_secrets(settings: &MoneySettings) -> Result<Vec<String>, String> {
    if !settings.webhook_secrets.is_empty() {
        return Ok(settings.webhook_secrets.clone());
    }
    let path = settings.data_dir.join("payment_webhook_secret");
    read_or_make_secret(&path).map(|s| vec![s])
}

fn read_or_make_secret(path: &Path) -> Result<String, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(s) = std::fs::read_to_string(path) {
        let s = s.trim().to_owned();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    use base64::Engine;
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>()));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(secret.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(secret)
}

impl Money {
    /// Starts the money service: its writer, the payment provider (Stripe
    /// when a key is set, else the development provider) and the sweeper.
    /// Every batch's time comes from `clock`.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(pool: SqlitePool, settings: MoneySettings, hub: Arc<Hub>, chat: Chat, streams: StreamStore, membership: Membership, clock: crate::clock::Clock, leaderboard_tz: jiff::tz::TimeZone) -> Result<Arc<Money>, String> {
        let writer = writer::Writer::start(pool.clone(), Arc::new(move || clock.now())).await?;
        let secrets = webhook_secrets(&settings)?;
        let (provider, dev): (Arc<dyn payments::provider::PaymentProvider>, _) = match &settings.stripe_secret_key {
            Some(key) => (Arc::new(payments::stripe::Stripe::new(key.clone(), payments::stripe::API_BASE)?), None),
            None => {
                let dev = payments::dev::DevProvider::start(pool.clone(), secrets.clone());
                (dev.clone(), Some(dev))
            }
        };
        let payments = Payments::new(writer.clone(), provider, dev, secrets, settings.currency.clone());
        let money = Arc::new(Money { pool, writer, payments, settings, hub, chat, streams, membership, combos: DashMap::new(), wallet_pushes: Default::default(), leaderboard_tz });
        tokio::spawn(sweep(Arc::downgrade(&money)));
        Ok(money)
    }

    /// Where this server is reached (the development provider posts its webhooks there).
    pub fn set_base_url(&self, base: &str) {
        if let Some(dev) = &self.payments.dev {
            dev.set_base_url(base);
        }
    }

    /// Pushes a user's balances to their open pages (after a commit): once
    /// per [`WALLET_PUSH_MS`] at most, read after the changes it covers, and
    /// only when they have a page open.
    pub fn wallet_changed(self: &Arc<Self>, user: i64) {
        if self.hub.listeners(Topic::User(user)) == 0 || !self.wallet_pushes.insert(user) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(WALLET_PUSH_MS)).await;
            // Changes from here on schedule the next push; this read sees every one before.
            me.wallet_pushes.remove(&user);
            if let Ok(w) = me.wallet(user).await {
                me.hub.publish(Topic::User(user), &Event::Wallet(Box::new(w)));
            }
        });
    }

    /// Takes a provider webhook: verified, recorded once, reconciled; a
    /// ticket or subscription paid through the provider is bought with the
    /// coins in the same transaction.
    pub async fn webhook(self: &Arc<Self>, signature: Option<&str>, body: &[u8]) -> Result<EventOutcome, ApiError> {
        let ev = self.payments.verify(signature, body, now_ms() / 1000)?;
        let share = self.settings.creator_share;
        let price = self.settings.subscription_price;
        let (outcome, fulfilled) = self
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let (outcome, row) = payments::apply_event(tx, &ev).await?;
                    let mut made = None;
                    if let Some(mut row) = row.filter(|r| r.purpose != "top_up" && r.fulfilled.is_none() && r.coins_credited >= r.coins && r.coins > 0) {
                        let r = fulfil(tx, &row, share, price).await;
                        row.fulfilled = Some(match &r {
                            Ok(id) => id.clone(),
                            Err(e) => format!("failed: {}", e.code),
                        });
                        payments::reconcile::save(tx, &row).await?;
                        made = r.ok().map(|id| (row.purpose.clone(), id, row.user_id, row.target.clone()));
                    }
                    Ok((outcome, made))
                })
            })
            .await?;
        if let EventOutcome::Applied { user_id, .. } = &outcome {
            self.wallet_changed(*user_id);
        }
        if let Some((purpose, _, user, target)) = fulfilled {
            let target: serde_json::Value = target.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
            if purpose == "subscription" {
                if let Some(host) = target["host_id"].as_i64() {
                    self.membership.subscription_changed(user, host);
                }
            } else if purpose == "ticket" {
                if let Some(stream) = target["stream_id"].as_i64() {
                    self.membership.ticket_changed(user, stream);
                }
            }
        }
        Ok(outcome)
    }
}

/// Buys what a ticket or subscription payment was for, with its coins.
async fn fulfil(tx: &mut tx::Tx, row: &payments::reconcile::PaymentRow, share: u32, price: i64) -> Result<String, ApiError> {
    let target: serde_json::Value = row.target.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
    let base = format!("{}:{}", row.id, row.purpose);
    match row.purpose.as_str() {
        "ticket" => {
            let stream = target["stream_id"].as_i64().ok_or_else(|| ApiError::internal("ticket payment without a stream"))?;
            tickets::buy_in(tx, row.user_id, stream, &base, share).await.map(|t| t.id)
        }
        "subscription" => {
            let host = target["host_id"].as_i64().ok_or_else(|| ApiError::internal("subscription payment without a host"))?;
            subscriptions::buy_in(tx, row.user_id, host, &base, share, price).await.map(|s| s.id)
        }
        "order" => {
            // A shop order held for this payment: paid with the coins just credited.
            let order = target["order_id"].as_i64().ok_or_else(|| ApiError::internal("order payment without an order"))?;
            crate::shop::orders::pay_in(tx, order, share).await.map(|o| o.id.to_string())
        }
        other => Err(ApiError::internal(format!("payment for '{other}'"))),
    }
}

/// Timed work: ticket holds posted when their stream goes live or voided
/// when it will not; subscription renewals; holds past their timeout;
/// idempotency keys past 24 hours.
async fn sweep(me: std::sync::Weak<Money>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        let Some(m) = me.upgrade() else { return };
        n += 1;
        if let Err(e) = m.sweep_once(now_ms(), n % 30 == 1, n % 1800 == 1).await {
            tracing::error!("money sweep: {e}");
        }
    }
}

impl Money {
    /// Coins the platform kept from what was spent since `from` (Unix ms):
    /// its revenue account's posted credits less its posted debits (a
    /// refund's reversal), for the admin console's "revenue today".
    pub async fn revenue_since(&self, from: i64) -> Result<i64, ApiError> {
        use crate::db::DbResult;
        let account = ledger::AccountRef::platform(ledger::Code::Revenue, ledger::COIN).id();
        let (sum,): (Option<i64>,) = sqlx::query_as(
            "SELECT SUM(CASE WHEN credit_account_id = $1 THEN amount ELSE -amount END) FROM ledger_transfers \
             WHERE (credit_account_id = $1 OR debit_account_id = $1) AND phase IN ('single', 'post') AND created_at >= $2",
        )
        .bind(&account)
        .bind(from)
        .fetch_one(&self.pool)
        .await
        .db()?;
        Ok(sum.unwrap_or(0))
    }

    /// One pass of the sweeper at `now` (tests call it with a time of their choosing).
    pub async fn sweep_once(self: &Arc<Self>, now: i64, renewals: bool, prune: bool) -> Result<(), ApiError> {
        for (user, stream) in tickets::sweep(self, now).await? {
            self.membership.ticket_changed(user, stream);
            self.wallet_changed(user);
        }
        if renewals {
            for (user, host) in subscriptions::sweep(self, now).await? {
                self.membership.subscription_changed(user, host);
                self.wallet_changed(user);
            }
        }
        self.writer
            .run(|tx| {
                Box::pin(async move {
                    ledger::expire_due(tx, 500).await?;
                    Ok(())
                })
            })
            .await?;
        if prune {
            idempotency::prune(&self.writer).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use sqlx::SqlitePool;

    use super::tx::{stored_last_timestamp, Tx};

    /// A fresh migrated database.
    pub async fn ledger_db() -> SqlitePool {
        // Internal errors are logged, not returned: show them in failing tests.
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let dir = std::env::temp_dir().join(format!("onair-money-{}-{}", std::process::id(), rand::random::<u64>()));
        crate::db::open(&dir).await.unwrap()
    }

    /// A write transaction at time `now` (Unix ms).
    pub async fn tx_at(pool: &SqlitePool, now: i64) -> Tx {
        let last = stored_last_timestamp(pool).await.unwrap();
        Tx::begin(pool, now, last).await.unwrap()
    }
}
