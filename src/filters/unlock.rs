//! Unlocking a premium filter with coins: one linked chain of ledger
//! transfers (code `filter_unlock`) from the buyer's promotional coins,
//! then bought coins, to the platform's revenue and, for a creator-made
//! filter, the creator's earnings (`--creator-share`). Under an
//! `Idempotency-Key`: a retry replays the first answer and charges once.
//! A custom preset unlocks through its base filter.

use std::sync::Arc;

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{catalogue, not_found, Filters};
use crate::db::DbResult;
use crate::money::idempotency::{self, Keyed, Reply};
use crate::money::ledger::{self, insufficient_funds, AccountRef, Code, NewTransfer, COIN};
use crate::money::spend::{new_base, shares};
use crate::money::tx::Tx;
use crate::money::Money;

/// A filter unlocked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Unlock {
    /// The filter unlocked (a custom preset's base).
    pub filter_id: String,
    /// The purchase (the base of its transfers' ids).
    pub purchase_id: String,
    /// Coins paid.
    pub price_coins: i64,
    /// To the filter's creator.
    pub creator_coins: i64,
    /// To the platform.
    pub platform_coins: i64,
    /// Paid from promotional coins.
    pub from_promo: i64,
    /// The chain's transfer ids.
    pub transfer_ids: Vec<String>,
    /// The ledger's commit-order timestamp (ns).
    pub timestamp: i64,
}

fn conflict(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, msg)
}

/// Unlocks inside a write transaction.
pub async fn unlock_in(tx: &mut Tx, user: i64, id: &str, share: u32) -> Result<Unlock, ApiError> {
    let f = catalogue::get(tx.conn(), id, Some(user)).await?.ok_or_else(|| not_found(id))?;
    let mine = f.creator.as_ref().is_some_and(|c| c.id == user);
    if !f.public && !mine {
        return Err(not_found(id));
    }
    let target = match &f.base {
        Some(base) => catalogue::get(tx.conn(), base, Some(user)).await?.ok_or_else(|| not_found(base))?,
        None => f,
    };
    if !target.premium {
        return Err(conflict("not_premium", format!("'{}' is free: apply it", target.id)));
    }
    if target.unlocked {
        return Err(conflict("already_unlocked", format!("you have '{}' already", target.id)));
    }
    if !target.enabled {
        return Err(conflict("filter_retired", format!("'{}' is no longer offered", target.id)));
    }
    let price = target.price_coins;
    if price <= 0 {
        return Err(ApiError::internal(format!("premium filter {} without a price", target.id)));
    }
    let creator = target.creator.as_ref().map(|c| c.id).filter(|c| *c != user);
    let (creator_coins, platform_coins) = match creator {
        Some(_) => shares(price, share),
        None => (0, price),
    };
    let promo_acc = AccountRef::user(user, Code::Promo);
    let wallet_acc = AccountRef::user(user, Code::Wallet);
    let [promo, wallet] = ledger::accounts(tx.conn(), [&promo_acc, &wallet_acc]).await?.map(|a| a.available());
    let mut payees = Vec::new();
    if let Some(c) = creator {
        payees.push((AccountRef::user(c, Code::Earnings), creator_coins));
    }
    payees.push((AccountRef::platform(Code::Revenue, COIN), platform_coins));
    let legs = ledger::waterfall(&[(promo_acc.clone(), promo), (wallet_acc, wallet)], &payees)
        .ok_or_else(|| insufficient_funds(format!("'{}' costs {price} coins; you have {}", target.id, promo.max(0) + wallet.max(0))))?;
    let base = new_base("filter");
    let chain: Vec<NewTransfer> = legs
        .into_iter()
        .enumerate()
        .map(|(i, (from, to, amount))| NewTransfer::new(format!("{base}:{i}"), from, to, amount, "filter_unlock").by(user).reference(target.id.clone()))
        .collect();
    let from_promo = chain.iter().filter(|t| t.debit == promo_acc).map(|t| t.amount).sum();
    let made = ledger::linked(tx, &chain).await?;
    sqlx::query("INSERT INTO stream_filter_unlocks (user_id, filter_id, purchase_id, price_coins, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(user)
        .bind(&target.id)
        .bind(&base)
        .bind(price)
        .bind(tx.now())
        .execute(tx.conn())
        .await
        .db()?;
    Ok(Unlock {
        filter_id: target.id,
        purchase_id: base,
        price_coins: price,
        creator_coins,
        platform_coins,
        from_promo,
        transfer_ids: made.iter().map(|t| t.id.clone()).collect(),
        timestamp: made.last().map(|t| t.timestamp).unwrap_or(0),
    })
}

impl Filters {
    /// Unlocks a premium filter for `user` with their coins (see the module docs).
    pub async fn unlock(&self, money: &Arc<Money>, user: i64, id: String, keyed: Keyed) -> Result<Reply<Unlock>, ApiError> {
        let share = money.settings.creator_share;
        let reply = idempotency::run(&money.writer, keyed, StatusCode::CREATED, move |tx| Box::pin(async move { unlock_in(tx, user, &id, share).await })).await?;
        if let Reply::Fresh(u) = &reply {
            money.wallet_changed(user);
            if u.creator_coins > 0 {
                let creator: Option<(Option<i64>,)> = sqlx::query_as("SELECT creator_id FROM stream_filters WHERE id = $1").bind(&u.filter_id).fetch_optional(&self.pool).await.db()?;
                if let Some((Some(c),)) = creator {
                    money.wallet_changed(c);
                }
            }
        }
        Ok(reply)
    }
}
