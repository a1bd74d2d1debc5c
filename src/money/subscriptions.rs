//! Paid subscriptions to a host's channel: a monthly plan paid in coins,
//! renewed by the scheduler until cancelled.
//!
//! Buying pays the first period at once (a running subscription, paid or
//! gifted, is extended). [`RENEWAL_LEAD`] before a period ends the
//! scheduler places a hold for the next one (the coins are reserved, so
//! they cannot be spent twice); when the period ends it posts the hold and
//! extends the subscription. No hold by then (the wallet was short the
//! whole time) and the subscription lapses. Cancelling stops renewal at
//! the end of the period and releases the hold. The subscription is the
//! same row chat badges and subscriber-only streams already read.

use std::sync::Arc;

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::idempotency::{self, Keyed, Reply};
use super::spend::{self, Spend};
use super::tickets::PayWith;
use super::tx::Tx;
use super::{invalid, not_allowed, Money};
use crate::db::DbResult;

/// A period.
pub const PERIOD_MS: i64 = 30 * 24 * 3600 * 1000;
/// How long before a period ends its renewal is held.
pub const RENEWAL_LEAD: i64 = 3 * 24 * 3600 * 1000;
/// How long after the period's end a renewal hold may still be posted.
pub const RENEWAL_GRACE: i64 = 24 * 3600 * 1000;
/// The plans.
pub const PLANS: [&str; 1] = ["monthly"];

/// What subscribing takes.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionPurchase {
    /// `monthly`.
    pub plan: String,
    /// `coins` (default) or `provider`.
    #[serde(default)]
    pub pay_with: PayWith,
}

/// A paid subscription.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaidSubscription {
    /// The latest purchase or renewal's id.
    pub id: String,
    /// Subscriber.
    pub user_id: i64,
    /// Host.
    pub host_id: i64,
    /// `monthly`.
    pub plan: String,
    /// Coins a period costs.
    pub price: i64,
    /// The current period ends (RFC 3339).
    #[serde(serialize_with = "crate::clock::json::ms", deserialize_with = "de_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    /// Renews at the period's end (false once cancelled).
    pub auto_renew: bool,
    /// Periods paid.
    pub periods: i64,
    /// The next period's coins are on hold.
    pub renewal_held: bool,
}

fn de_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let s = String::deserialize(d)?;
    crate::clock::parse_rfc3339(&s).map_err(serde::de::Error::custom)
}

type Row = (i64, i64, i64, Option<String>, Option<i64>, i64, i64, Option<String>, i64);
const COLS: &str = "id, user_id, host_id, plan, price, expires_at, auto_renew, renewal_hold_ids, periods";

fn sub_of(r: Row, id: String) -> PaidSubscription {
    PaidSubscription { id, user_id: r.1, host_id: r.2, plan: r.3.unwrap_or_else(|| "monthly".into()), price: r.4.unwrap_or(0), expires_at: r.5, auto_renew: r.6 != 0, renewal_held: r.7.is_some(), periods: r.8 }
}

async fn running(tx: &mut Tx, user: i64, host: i64) -> Result<Option<Row>, ApiError> {
    let now = tx.now();
    sqlx::query_as(&format!("SELECT {COLS} FROM subscriptions WHERE user_id = $1 AND host_id = $2 AND expires_at > $3 ORDER BY expires_at DESC LIMIT 1"))
        .bind(user)
        .bind(host)
        .bind(now)
        .fetch_optional(tx.conn())
        .await
        .db()
}

fn holds(ids: &Option<String>) -> Vec<String> {
    ids.as_deref().map(|s| s.split(',').filter(|h| !h.is_empty()).map(str::to_owned).collect()).unwrap_or_default()
}

/// Subscribes inside a write transaction: pays a period and starts or extends the subscription.
pub async fn buy_in(tx: &mut Tx, user: i64, host: i64, base: &str, share: u32, price: i64) -> Result<PaidSubscription, ApiError> {
    if user == host {
        return Err(not_allowed("you cannot subscribe to yourself"));
    }
    let role: Option<(String,)> = sqlx::query_as("SELECT role FROM users WHERE id = $1 AND disabled_at IS NULL").bind(host).fetch_optional(tx.conn()).await.db()?;
    if !role.is_some_and(|(r,)| r == "host" || r == "admin") {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "user_not_found", "no such host"));
    }
    let sp = Spend { base: base.to_owned(), kind: "subscription", payer: user, creator: host, coins: price, stream_id: None, reference: Some("monthly".into()), hold: None };
    spend::spend(tx, &sp, share).await?;
    let now = tx.now();
    let id = match running(tx, user, host).await? {
        Some(r) => {
            // Paid ahead: a renewal held for the old end no longer fits.
            let old = holds(&r.7);
            if !old.is_empty() {
                spend::void_holds(tx, &old, "superseded").await?;
            }
            sqlx::query(
                "UPDATE subscriptions SET expires_at = expires_at + $1, source = 'purchase', plan = 'monthly', price = $2, auto_renew = 1, periods = periods + 1, \
                 renewal_hold_ids = NULL, cancelled_at = NULL WHERE id = $3",
            )
            .bind(PERIOD_MS)
            .bind(price)
            .bind(r.0)
            .execute(tx.conn())
            .await
            .db()?;
            r.0
        }
        None => {
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO subscriptions (user_id, host_id, tier, source, started_at, expires_at, plan, price, auto_renew, periods) \
                 VALUES ($1, $2, 1, 'purchase', $3, $4, 'monthly', $5, 1, 1) RETURNING id",
            )
            .bind(user)
            .bind(host)
            .bind(now)
            .bind(now + PERIOD_MS)
            .bind(price)
            .fetch_one(tx.conn())
            .await
            .db()?;
            id
        }
    };
    let r: Row = sqlx::query_as(&format!("SELECT {COLS} FROM subscriptions WHERE id = $1")).bind(id).fetch_one(tx.conn()).await.db()?;
    Ok(sub_of(r, base.to_owned()))
}

/// One pass of renewals at `now`: holds placed, posted, lapses. Returns the
/// (subscriber, host) pairs that changed.
pub async fn sweep(money: &Arc<Money>, now: i64) -> Result<Vec<(i64, i64)>, ApiError> {
    let share = money.settings.creator_share;
    money.writer.run(move |tx| Box::pin(async move { renew(tx, now, share).await })).await
}

async fn renew(tx: &mut Tx, now: i64, share: u32) -> Result<Vec<(i64, i64)>, ApiError> {
    let mut changed = Vec::new();
    // Periods ending: post the hold and extend, or lapse.
    let due: Vec<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM subscriptions WHERE auto_renew = 1 AND expires_at <= $1 LIMIT 500")).bind(now).fetch_all(tx.conn()).await.db()?;
    for r in due {
        let hs = holds(&r.7);
        tx.savepoint().await?;
        let posted = if hs.is_empty() { Ok(Vec::new()) } else { spend::post_holds(tx, &hs).await };
        tx.end_savepoint(posted.is_ok()).await?;
        match posted {
            Ok(_) if !hs.is_empty() => {
                sqlx::query("UPDATE subscriptions SET expires_at = expires_at + $1, periods = periods + 1, renewal_hold_ids = NULL WHERE id = $2").bind(PERIOD_MS).bind(r.0).execute(tx.conn()).await.db()?;
            }
            outcome => {
                // No hold, or it expired: the subscription ends with its period.
                if outcome.is_err() {
                    for h in &hs {
                        let _ = super::ledger::void(tx, &format!("{h}:void"), h, "lapsed").await;
                    }
                }
                sqlx::query("UPDATE subscriptions SET auto_renew = 0, renewal_hold_ids = NULL WHERE id = $1").bind(r.0).execute(tx.conn()).await.db()?;
            }
        }
        changed.push((r.1, r.2));
    }
    // Periods ending soon: hold the next one's coins.
    let soon: Vec<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM subscriptions WHERE auto_renew = 1 AND renewal_hold_ids IS NULL AND expires_at > $1 AND expires_at <= $2 LIMIT 500"))
        .bind(now)
        .bind(now + RENEWAL_LEAD)
        .fetch_all(tx.conn())
        .await
        .db()?;
    for r in soon {
        let price = r.4.unwrap_or(0);
        if price <= 0 {
            continue;
        }
        let sp = Spend { base: format!("sub_{}_period_{}", r.0, r.8 + 1), kind: "subscription", payer: r.1, creator: r.2, coins: price, stream_id: None, reference: Some("monthly".into()), hold: Some(Some(r.5 + RENEWAL_GRACE)) };
        match spend::spend(tx, &sp, share).await {
            Ok((split, _)) => {
                sqlx::query("UPDATE subscriptions SET renewal_hold_ids = $1 WHERE id = $2").bind(split.transfer_ids.join(",")).bind(r.0).execute(tx.conn()).await.db()?;
                changed.push((r.1, r.2));
            }
            // Short of coins: tried again at the next pass, until the period ends.
            Err(e) if e.code == "insufficient_funds" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(changed)
}

impl Money {
    /// Subscribes to a host with coins.
    pub async fn subscribe(self: &Arc<Self>, user: i64, host: i64, keyed: Keyed, plan: &str) -> Result<Reply<PaidSubscription>, ApiError> {
        if !PLANS.contains(&plan) {
            return Err(invalid("plan", format!("one of: {}", PLANS.join(", "))));
        }
        let (share, price) = (self.settings.creator_share, self.settings.subscription_price);
        let reply = idempotency::run(&self.writer, keyed, StatusCode::CREATED, move |tx| Box::pin(async move { buy_in(tx, user, host, &spend::new_base("sub"), share, price).await })).await?;
        if matches!(reply, Reply::Fresh(_)) {
            self.membership.subscription_changed(user, host);
            self.wallet_changed(user);
            self.wallet_changed(host);
        }
        Ok(reply)
    }

    /// Stops renewal at the period's end and releases a held renewal.
    pub async fn cancel_subscription(self: &Arc<Self>, user: i64, host: i64, keyed: Keyed) -> Result<Reply<PaidSubscription>, ApiError> {
        let reply = idempotency::run(&self.writer, keyed, StatusCode::OK, move |tx| {
            Box::pin(async move {
                let r = running(tx, user, host).await?.filter(|r| r.4.is_some()).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_subscription", "you have no paid subscription to this channel"))?;
                let hs = holds(&r.7);
                if !hs.is_empty() {
                    spend::void_holds(tx, &hs, "cancelled").await?;
                }
                let now = tx.now();
                sqlx::query("UPDATE subscriptions SET auto_renew = 0, renewal_hold_ids = NULL, cancelled_at = COALESCE(cancelled_at, $1) WHERE id = $2").bind(now).bind(r.0).execute(tx.conn()).await.db()?;
                let r: Row = sqlx::query_as(&format!("SELECT {COLS} FROM subscriptions WHERE id = $1")).bind(r.0).fetch_one(tx.conn()).await.db()?;
                Ok(sub_of(r, String::new()))
            })
        })
        .await?;
        if matches!(reply, Reply::Fresh(_)) {
            self.wallet_changed(user);
        }
        Ok(reply)
    }

    /// A user's running paid subscriptions.
    pub async fn subscriptions_of(&self, user: i64, now: i64) -> Result<Vec<PaidSubscription>, ApiError> {
        let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM subscriptions WHERE user_id = $1 AND expires_at > $2 AND price IS NOT NULL ORDER BY expires_at"))
            .bind(user)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .db()?;
        Ok(rows.into_iter().map(|r| sub_of(r, String::new())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::ledger::{self, AccountRef, Code, NewTransfer, COIN};
    use crate::money::testing::{ledger_db, tx_at};

    async fn user(pool: &sqlx::SqlitePool, name: &str, role: &str) -> i64 {
        sqlx::query_as::<_, (i64,)>("INSERT INTO users (username, display_name, role, created_at) VALUES ($1, $1, $2, 0) RETURNING id").bind(name).bind(role).fetch_one(pool).await.unwrap().0
    }

    #[tokio::test]
    async fn renews_from_a_hold_lapses_when_short_and_cancels() {
        let pool = ledger_db().await;
        let (fan, host) = (user(&pool, "fan", "viewer").await, user(&pool, "star", "host").await);
        let t0 = 1_000_000_000_000;
        let mut tx = tx_at(&pool, t0).await;
        ledger::transfer(&mut tx, &NewTransfer::new("fund", AccountRef::platform(Code::Issued, COIN), AccountRef::user(fan, Code::Wallet), 1_100, "top_up")).await.unwrap();
        let s = buy_in(&mut tx, fan, host, "sub_a", 70, 500).await.unwrap();
        assert_eq!((s.expires_at, s.periods, s.auto_renew), (t0 + PERIOD_MS, 1, true));
        tx.commit().await.unwrap();
        let wallet = |pool: sqlx::SqlitePool| async move { crate::money::wallet::wallet_on(&mut pool.acquire().await.unwrap(), fan).await.unwrap() };
        assert_eq!(wallet(pool.clone()).await.coins, 600);

        // Nothing to do far from the end; three days before, the next period is held.
        let mut tx = tx_at(&pool, t0 + 1_000).await;
        assert!(renew(&mut tx, t0 + 1_000, 70).await.unwrap().is_empty());
        let end = t0 + PERIOD_MS;
        assert_eq!(renew(&mut tx, end - RENEWAL_LEAD, 70).await.unwrap(), vec![(fan, host)]);
        tx.commit().await.unwrap();
        let w = wallet(pool.clone()).await;
        assert_eq!((w.coins, w.held), (100, 500), "the renewal is reserved, not spent");
        // At the end the hold is posted and the subscription runs another period.
        let mut tx = tx_at(&pool, end).await;
        renew(&mut tx, end, 70).await.unwrap();
        let r = running(&mut tx, fan, host).await.unwrap().unwrap();
        assert_eq!((r.5, r.8, r.7.is_none()), (end + PERIOD_MS, 2, true));
        tx.commit().await.unwrap();
        let w = wallet(pool.clone()).await;
        assert_eq!((w.coins, w.held), (100, 0));
        assert_eq!(crate::money::wallet::wallet_on(&mut pool.acquire().await.unwrap(), host).await.unwrap().earnings, 700);

        // 100 coins do not cover the next period: no hold, and it lapses at the end.
        let end2 = end + PERIOD_MS;
        let mut tx = tx_at(&pool, end2 - 1_000).await;
        renew(&mut tx, end2 - RENEWAL_LEAD, 70).await.unwrap();
        renew(&mut tx, end2 - 1_000, 70).await.unwrap();
        assert!(running(&mut tx, fan, host).await.unwrap().unwrap().7.is_none());
        renew(&mut tx, end2, 70).await.unwrap();
        let (auto,): (i64,) = sqlx::query_as("SELECT auto_renew FROM subscriptions WHERE user_id = $1").bind(fan).fetch_one(tx.conn()).await.unwrap();
        assert_eq!(auto, 0, "lapsed");
        tx.commit().await.unwrap();
        assert!(crate::money::check::check(&pool).await.unwrap().ok);
    }
}
