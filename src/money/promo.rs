//! Promotional coins: the platform gives a user coins from its promo pool
//! (a welcome bonus, a battle reward). They are spent before bought coins
//! and cannot be clawed back by a payment's refund.

use std::sync::Arc;

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::idempotency::{self, Keyed, Reply};
use super::ledger::{self, AccountRef, Code, NewTransfer, COIN};
use super::{invalid, spend, Money, MAX_COINS};

/// A grant.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoGrant {
    /// Username or id.
    pub user: String,
    /// 1-1,000,000.
    pub coins: i64,
    /// Why (kept as the transfer's reference), up to 100 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What a grant did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Granted {
    /// The transfer.
    pub transfer_id: String,
    /// To whom.
    pub user_id: i64,
    /// Coins.
    pub coins: i64,
    /// Their promotional coins now.
    pub promo_coins: i64,
}

impl Money {
    /// Gives `coins` promotional coins to `user` (from the platform's promo pool).
    pub async fn grant_promo(self: &Arc<Self>, user: i64, coins: i64, reason: Option<String>, keyed: Keyed) -> Result<Reply<Granted>, ApiError> {
        if !(1..=MAX_COINS).contains(&coins) {
            return Err(invalid("coins", format!("must be 1-{MAX_COINS}")));
        }
        let reason: String = reason.unwrap_or_else(|| "promo".into()).trim().chars().take(100).collect();
        let reply = idempotency::run(&self.writer, keyed, StatusCode::CREATED, move |tx| {
            Box::pin(async move {
                let id = spend::new_base("promo");
                let t = NewTransfer::new(&id, AccountRef::platform(Code::PromoPool, COIN), AccountRef::user(user, Code::Promo), coins, "promo").by(user).reference(reason);
                ledger::transfer(tx, &t).await?;
                let promo_coins = ledger::account(tx.conn(), &AccountRef::user(user, Code::Promo)).await?.available();
                Ok(Granted { transfer_id: id, user_id: user, coins, promo_coins })
            })
        })
        .await?;
        if matches!(reply, Reply::Fresh(_)) {
            self.wallet_changed(user);
        }
        Ok(reply)
    }
}
