//! Coins spent on a creator (a tip, a gift, a ticket, a subscription),
//! split by one linked chain into the creator's earnings and the
//! platform's share (`--creator-share`, default 70%).
//!
//! The payer's promotional coins go first, then coins they bought: each
//! pocket pays the creator first, then the platform, so the chain has one
//! to four transfers and all of them or none happen. A spend may also be a
//! hold (a ticket for a stream that has not started, a renewal before the
//! period ends), posted or voided later as a whole.

use onair_signaling::ApiError;
use serde::Serialize;
use utoipa::ToSchema;

use super::ledger::{self, insufficient_funds, AccountRef, Code, NewTransfer, Transfer, COIN};
use super::tx::Tx;

/// A spend to make.
#[derive(Debug, Clone)]
pub struct Spend {
    /// Base of the transfer ids (`{base}:0`, `{base}:1`, ...).
    pub base: String,
    /// `tip`, `gift`, `ticket`, `subscription` (the transfers' code).
    pub kind: &'static str,
    /// Who pays.
    pub payer: i64,
    /// Who earns.
    pub creator: i64,
    /// How many coins.
    pub coins: i64,
    /// The stream it happened in.
    pub stream_id: Option<i64>,
    /// A reference (gift id, ...).
    pub reference: Option<String>,
    /// A hold expiring at this time (`Some(None)`: never) rather than a posted spend.
    pub hold: Option<Option<i64>>,
}

/// What a spend did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Split {
    /// To the creator's earnings.
    pub creator_coins: i64,
    /// To the platform.
    pub platform_coins: i64,
    /// Paid from promotional coins.
    pub from_promo: i64,
    /// Paid from bought coins.
    pub from_wallet: i64,
    /// The ledger's commit-order timestamp of the chain (ns).
    pub timestamp: i64,
    /// The chain's transfer ids.
    pub transfer_ids: Vec<String>,
    /// The payer's bought coins that can be spent, after it.
    pub wallet_after: i64,
    /// The payer's promotional coins that can be spent, after it.
    pub promo_after: i64,
}

/// (creator's, platform's) shares of `coins` at `share` percent for the creator.
pub fn shares(coins: i64, share: u32) -> (i64, i64) {
    let creator = coins * share.min(100) as i64 / 100;
    (creator, coins - creator)
}

/// Makes the spend (all of it or nothing): `402 insufficient_funds` when
/// the payer's coins do not cover it.
pub async fn spend(tx: &mut Tx, s: &Spend, share: u32) -> Result<(Split, Vec<Transfer>), ApiError> {
    let promo_acc = AccountRef::user(s.payer, Code::Promo);
    let wallet_acc = AccountRef::user(s.payer, Code::Wallet);
    let [promo, wallet] = ledger::accounts(tx.conn(), [&promo_acc, &wallet_acc]).await?.map(|a| a.available());
    let (creator, platform) = shares(s.coins, share);
    let earnings = AccountRef::user(s.creator, Code::Earnings);
    let revenue = AccountRef::platform(Code::Revenue, COIN);
    let legs = ledger::waterfall(&[(promo_acc.clone(), promo), (wallet_acc, wallet)], &[(earnings, creator), (revenue, platform)])
        .ok_or_else(|| insufficient_funds(format!("this costs {} coins; you have {}", s.coins, promo.max(0) + wallet.max(0))))?;
    let chain: Vec<NewTransfer> = legs
        .into_iter()
        .enumerate()
        .map(|(i, (from, to, amount))| {
            let mut t = NewTransfer::new(format!("{}:{i}", s.base), from, to, amount, s.kind).by(s.payer).stream(s.stream_id);
            if let Some(r) = &s.reference {
                t = t.reference(r.clone());
            }
            match s.hold {
                Some(timeout) => t.pending(timeout),
                None => t,
            }
        })
        .collect();
    let from_promo: i64 = chain.iter().filter(|t| t.debit == promo_acc).map(|t| t.amount).sum();
    let made = ledger::linked(tx, &chain).await?;
    let split = Split {
        creator_coins: creator,
        platform_coins: platform,
        from_promo,
        from_wallet: s.coins - from_promo,
        timestamp: made.last().map(|t| t.timestamp).unwrap_or(0),
        transfer_ids: made.iter().map(|t| t.id.clone()).collect(),
        wallet_after: wallet - (s.coins - from_promo),
        promo_after: promo - from_promo,
    };
    Ok((split, made))
}

/// Posts every hold of a spend (`{hold}:post`).
pub async fn post_holds(tx: &mut Tx, holds: &[String]) -> Result<Vec<Transfer>, ApiError> {
    let mut out = Vec::with_capacity(holds.len());
    for h in holds {
        out.push(ledger::post(tx, &format!("{h}:post"), h, None).await?);
    }
    Ok(out)
}

/// Voids every hold of a spend (`{hold}:void`), saying why.
pub async fn void_holds(tx: &mut Tx, holds: &[String], why: &str) -> Result<Vec<Transfer>, ApiError> {
    let mut out = Vec::with_capacity(holds.len());
    for h in holds {
        out.push(ledger::void(tx, &format!("{h}:void"), h, why).await?);
    }
    Ok(out)
}

/// A random base id for a new spend: `tip_3f9a...`.
pub fn new_base(kind: &str) -> String {
    format!("{kind}_{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::testing::{ledger_db, tx_at};

    #[test]
    fn shares_round_for_the_platform() {
        assert_eq!(shares(100, 70), (70, 30));
        assert_eq!(shares(1, 70), (0, 1));
        assert_eq!(shares(3, 70), (2, 1));
        assert_eq!(shares(10, 100), (10, 0));
    }

    #[tokio::test]
    async fn promo_first_then_wallet_split_and_refused_whole() {
        let pool = ledger_db().await;
        let mut tx = tx_at(&pool, 1_000).await;
        ledger::transfer(&mut tx, &NewTransfer::new("p", AccountRef::platform(Code::PromoPool, COIN), AccountRef::user(1, Code::Promo), 40, "promo")).await.unwrap();
        ledger::transfer(&mut tx, &NewTransfer::new("w", AccountRef::platform(Code::Issued, COIN), AccountRef::user(1, Code::Wallet), 100, "top_up")).await.unwrap();
        let s = Spend { base: "gift_1".into(), kind: "gift", payer: 1, creator: 2, coins: 100, stream_id: Some(7), reference: Some("rose".into()), hold: None };
        let (split, made) = spend(&mut tx, &s, 70).await.unwrap();
        assert_eq!((split.creator_coins, split.platform_coins, split.from_promo, split.from_wallet), (70, 30, 40, 60));
        assert_eq!(made.len(), 3);
        assert_eq!(ledger::account(tx.conn(), &AccountRef::user(2, Code::Earnings)).await.unwrap().credit_balance(), 70);
        assert_eq!(ledger::account(tx.conn(), &AccountRef::user(1, Code::Wallet)).await.unwrap().credit_balance(), 40);
        let big = Spend { base: "gift_2".into(), coins: 41, ..s.clone() };
        let e = spend(&mut tx, &big, 70).await.unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (402, "insufficient_funds"));
        assert!(ledger::transfer_by_id(tx.conn(), "gift_2:0").await.unwrap().is_none(), "nothing of a refused spend");
        tx.commit().await.unwrap();
        assert!(crate::money::check::check(&pool).await.unwrap().ok);
    }
}
