//! From a payment intent's state, as the provider's events have told it,
//! to the ledger: what the intent deserves now, and the transfers that get
//! the ledger there.
//!
//! Events may come twice, late and out of order. Each one only moves the
//! intent's recorded state forward (a `succeeded` is never undone by an
//! older `canceled`; refunds are cumulative, so the largest wins; a dispute
//! follows its latest event, and a closed dispute's `won`/`lost` is final),
//! and then the ledger is brought to the target by the difference from
//! what it already holds for the intent. Applying the same state twice
//! moves nothing; the order of arrival cannot change the end result.

use onair_signaling::ApiError;
use serde_json::Value;
use sqlx::SqliteConnection;

use crate::db::DbResult;
use crate::money::ledger::{self, AccountRef, Code, NewTransfer, Transfer};
use crate::money::tx::Tx;

/// A payment intent as OnAir records it.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentRow {
    /// `pi_...`
    pub id: String,
    /// `dev` or `stripe`.
    pub provider: String,
    /// Buyer.
    pub user_id: i64,
    /// `top_up`, `ticket`, `subscription`.
    pub purpose: String,
    /// What a ticket or subscription payment buys (JSON).
    pub target: Option<String>,
    /// Coins it buys.
    pub coins: i64,
    /// Minor units.
    pub amount: i64,
    /// Lowercase ISO code.
    pub currency: String,
    /// Stripe's status.
    pub status: String,
    /// As the provider says.
    pub amount_received: i64,
    /// Cumulative.
    pub amount_refunded: i64,
    /// The charge (`ch_...`).
    pub charge_id: Option<String>,
    /// A dispute's status, if any.
    pub dispute_status: Option<String>,
    /// Its latest event's time (Unix s).
    pub dispute_event_at: Option<i64>,
    /// Net coins the ledger holds for it.
    pub coins_credited: i64,
    /// Net money booked.
    pub fiat_booked: i64,
    /// Adjustments made (numbers the transfer ids).
    pub adjustments: i64,
    /// The purchase made with it (ticket or subscription).
    pub fulfilled: Option<String>,
}

const COLS: &str = "id, provider, user_id, purpose, target, coins, amount, currency, status, amount_received, amount_refunded, charge_id, dispute_status, dispute_event_at, coins_credited, fiat_booked, adjustments, fulfilled";

fn row_of(r: &sqlx::sqlite::SqliteRow) -> Result<PaymentRow, sqlx::Error> {
    use sqlx::Row;
    Ok(PaymentRow {
        id: r.try_get("id")?,
        provider: r.try_get("provider")?,
        user_id: r.try_get("user_id")?,
        purpose: r.try_get("purpose")?,
        target: r.try_get("target")?,
        coins: r.try_get("coins")?,
        amount: r.try_get("amount")?,
        currency: r.try_get("currency")?,
        status: r.try_get("status")?,
        amount_received: r.try_get("amount_received")?,
        amount_refunded: r.try_get("amount_refunded")?,
        charge_id: r.try_get("charge_id")?,
        dispute_status: r.try_get("dispute_status")?,
        dispute_event_at: r.try_get("dispute_event_at")?,
        coins_credited: r.try_get("coins_credited")?,
        fiat_booked: r.try_get("fiat_booked")?,
        adjustments: r.try_get("adjustments")?,
        fulfilled: r.try_get("fulfilled")?,
    })
}

/// An intent by id.
pub async fn load(c: &mut SqliteConnection, id: &str) -> Result<Option<PaymentRow>, ApiError> {
    let r = sqlx::query(&format!("SELECT {COLS} FROM payment_intents WHERE id = $1")).bind(id).fetch_optional(c).await.db()?;
    r.as_ref().map(row_of).transpose().db()
}

/// An intent by its charge.
pub async fn load_by_charge(c: &mut SqliteConnection, charge: &str) -> Result<Option<PaymentRow>, ApiError> {
    let r = sqlx::query(&format!("SELECT {COLS} FROM payment_intents WHERE charge_id = $1")).bind(charge).fetch_optional(c).await.db()?;
    r.as_ref().map(row_of).transpose().db()
}

/// A user's intents, newest first.
pub async fn of_user(c: &mut SqliteConnection, user: i64, limit: i64) -> Result<Vec<PaymentRow>, ApiError> {
    let rows = sqlx::query(&format!("SELECT {COLS} FROM payment_intents WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2")).bind(user).bind(limit).fetch_all(c).await.db()?;
    rows.iter().map(row_of).collect::<Result<_, _>>().db()
}

/// Dispute statuses under which the money is with the buyer's bank.
fn dispute_takes_funds(status: Option<&str>) -> bool {
    matches!(status, Some("needs_response" | "under_review" | "lost"))
}

fn dispute_is_final(status: &str) -> bool {
    matches!(status, "won" | "lost" | "warning_closed" | "prevented")
}

/// What the intent deserves now: (coins in the buyer's hands, money booked).
/// A refund claws back its share of the coins (rounded up); a dispute that
/// took the money claws back all of them, and gives them back if won.
pub fn targets(r: &PaymentRow) -> (i64, i64) {
    if r.status != "succeeded" {
        return (0, 0);
    }
    let received = r.amount_received.max(0);
    let refunded = r.amount_refunded.clamp(0, received);
    if dispute_takes_funds(r.dispute_status.as_deref()) {
        return (0, 0);
    }
    let fiat = received - refunded;
    // Less received than asked is not a payment for these coins: keep the money on the books, give no coins.
    if received < r.amount || received == 0 {
        return (0, fiat);
    }
    // Rounded up: a partial refund never leaves a fraction of a coin with the buyer.
    let clawed = ((r.coins * refunded + received - 1) / received).min(r.coins);
    (r.coins - clawed, fiat)
}

/// Moves the recorded state forward by one provider event (its type and
/// `data.object`, sent at `created`); true if anything changed.
pub fn merge(r: &mut PaymentRow, kind: &str, object: &Value, created: i64) -> bool {
    let before = r.clone();
    let num = |k: &str| object[k].as_i64();
    match kind {
        "payment_intent.succeeded" => {
            r.status = "succeeded".into();
            r.amount_received = r.amount_received.max(num("amount_received").unwrap_or(0));
            if let Some(ch) = object["latest_charge"].as_str() {
                r.charge_id = Some(ch.to_owned());
            }
        }
        "payment_intent.canceled" if r.status != "succeeded" => r.status = "canceled".into(),
        "payment_intent.payment_failed" if r.status != "succeeded" && r.status != "canceled" => r.status = "requires_payment_method".into(),
        "payment_intent.processing" if r.status == "requires_payment_method" || r.status == "requires_action" => r.status = "processing".into(),
        "charge.refunded" | "charge.refund.updated" => {
            r.amount_refunded = r.amount_refunded.max(num("amount_refunded").unwrap_or(0));
            if r.charge_id.is_none() {
                r.charge_id = object["id"].as_str().map(str::to_owned);
            }
        }
        k if k.starts_with("charge.dispute.") => {
            let status = object["status"].as_str().unwrap_or("needs_response").to_owned();
            let current_final = r.dispute_status.as_deref().is_some_and(dispute_is_final);
            let newer = r.dispute_event_at.is_none_or(|at| created >= at);
            if !current_final && (dispute_is_final(&status) || newer) {
                r.dispute_status = Some(status);
                r.dispute_event_at = Some(created.max(r.dispute_event_at.unwrap_or(0)));
            }
        }
        _ => {}
    }
    *r != before
}

/// Stores the recorded state.
pub async fn save(tx: &mut Tx, r: &PaymentRow) -> Result<(), ApiError> {
    let now = tx.now();
    sqlx::query(
        "UPDATE payment_intents SET status = $1, amount_received = $2, amount_refunded = $3, charge_id = $4, dispute_status = $5, dispute_event_at = $6, \
         coins_credited = $7, fiat_booked = $8, adjustments = $9, fulfilled = $10, updated_at = $11 WHERE id = $12",
    )
    .bind(&r.status)
    .bind(r.amount_received)
    .bind(r.amount_refunded)
    .bind(&r.charge_id)
    .bind(&r.dispute_status)
    .bind(r.dispute_event_at)
    .bind(r.coins_credited)
    .bind(r.fiat_booked)
    .bind(r.adjustments)
    .bind(&r.fulfilled)
    .bind(now)
    .bind(&r.id)
    .execute(tx.conn())
    .await
    .db()?;
    Ok(())
}

/// Coins given to a user: first they pay off what the user owes (their
/// `owed` account), the rest stays in the wallet. Returns the transfers to add.
pub async fn credit_coins(tx: &mut Tx, user: i64, coins: i64, from: AccountRef, id: &str, code: &str, reference: &str) -> Result<Vec<NewTransfer>, ApiError> {
    let wallet = AccountRef::user(user, Code::Wallet);
    let owed = ledger::account(tx.conn(), &AccountRef::user(user, Code::Owed)).await?.debit_balance();
    let mut chain = vec![NewTransfer::new(format!("{id}:coins"), from, wallet.clone(), coins, code).by(user).reference(reference)];
    let settle = owed.min(coins);
    if settle > 0 {
        chain.push(NewTransfer::new(format!("{id}:settle"), wallet, AccountRef::user(user, Code::Owed), settle, "settle").by(user).reference(reference));
    }
    Ok(chain)
}

/// Brings the ledger to what the intent deserves (see [`targets`]) with one
/// linked chain whose ids derive from the intent: `{pi}:credit:...` for the
/// first credit, `{pi}:adjust:{n}:...` after. Returns the transfers made
/// and the change in the buyer's coins.
pub async fn settle(tx: &mut Tx, r: &mut PaymentRow) -> Result<(Vec<Transfer>, i64), ApiError> {
    let (coins, fiat) = targets(r);
    let (dc, df) = (coins - r.coins_credited, fiat - r.fiat_booked);
    if dc == 0 && df == 0 {
        return Ok((Vec::new(), 0));
    }
    let base = if r.adjustments == 0 { format!("{}:credit", r.id) } else { format!("{}:adjust:{}", r.id, r.adjustments) };
    let cur = r.currency.to_ascii_uppercase();
    let (clearing, sales) = (AccountRef::platform(Code::Clearing, &cur), AccountRef::platform(Code::Sales, &cur));
    let mut chain = Vec::new();
    if df > 0 {
        chain.push(NewTransfer::new(format!("{base}:fiat"), clearing, sales, df, "payment").by(r.user_id).reference(&r.id));
    } else if df < 0 {
        chain.push(NewTransfer::new(format!("{base}:fiat"), sales, clearing, -df, "payment_reversal").by(r.user_id).reference(&r.id));
    }
    let issued = AccountRef::platform(Code::Issued, ledger::COIN);
    if dc > 0 {
        let code = if r.adjustments == 0 { "top_up" } else { "recredit" };
        chain.extend(credit_coins(tx, r.user_id, dc, issued, &base, code, &r.id).await?);
    } else if dc < 0 {
        // Clawed back: from the wallet as far as it goes; the rest becomes a debt.
        let wallet = AccountRef::user(r.user_id, Code::Wallet);
        let available = ledger::account(tx.conn(), &wallet).await?.available().max(0);
        let from_wallet = available.min(-dc);
        if from_wallet > 0 {
            chain.push(NewTransfer::new(format!("{base}:wallet"), wallet, issued.clone(), from_wallet, "clawback").by(r.user_id).reference(&r.id));
        }
        if -dc > from_wallet {
            chain.push(NewTransfer::new(format!("{base}:owed"), AccountRef::user(r.user_id, Code::Owed), issued, -dc - from_wallet, "clawback").by(r.user_id).reference(&r.id));
        }
    }
    let made = ledger::linked(tx, &chain).await?;
    r.coins_credited = coins;
    r.fiat_booked = fiat;
    r.adjustments += 1;
    Ok((made, dc))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row() -> PaymentRow {
        PaymentRow {
            id: "pi_1".into(),
            provider: "dev".into(),
            user_id: 1,
            purpose: "top_up".into(),
            target: None,
            coins: 500,
            amount: 499,
            currency: "usd".into(),
            status: "requires_payment_method".into(),
            amount_received: 0,
            amount_refunded: 0,
            charge_id: None,
            dispute_status: None,
            dispute_event_at: None,
            coins_credited: 0,
            fiat_booked: 0,
            adjustments: 0,
            fulfilled: None,
        }
    }

    fn events() -> Vec<(&'static str, Value, i64)> {
        vec![
            ("payment_intent.payment_failed", json!({"id": "pi_1", "status": "requires_payment_method"}), 10),
            ("payment_intent.succeeded", json!({"id": "pi_1", "amount_received": 499, "latest_charge": "ch_1"}), 20),
            ("payment_intent.canceled", json!({"id": "pi_1", "status": "canceled"}), 15),
            ("charge.refunded", json!({"id": "ch_1", "amount_refunded": 100}), 30),
            ("charge.refunded", json!({"id": "ch_1", "amount_refunded": 250}), 40),
            ("charge.dispute.created", json!({"id": "dp_1", "status": "needs_response"}), 50),
            ("charge.dispute.closed", json!({"id": "dp_1", "status": "won"}), 60),
        ]
    }

    #[test]
    fn every_order_and_duplication_ends_in_the_same_state() {
        let mut expected = row();
        for (k, o, t) in events() {
            merge(&mut expected, k, &o, t);
        }
        assert_eq!((expected.status.as_str(), expected.amount_refunded, expected.dispute_status.as_deref()), ("succeeded", 250, Some("won")));
        // 250 of 499 refunded: 251 of 500 coins clawed (rounded up), the dispute won.
        assert_eq!(targets(&expected), (249, 249));
        // Every permutation of the seven events, each delivered twice.
        let evs = events();
        let mut idx: Vec<usize> = (0..evs.len()).collect();
        let mut count = 0;
        permute(&mut idx, 0, &mut |order| {
            let mut r = row();
            for &i in order.iter().chain(order.iter().rev()) {
                let (k, o, t) = &evs[i];
                merge(&mut r, k, o, *t);
            }
            assert_eq!(targets(&r), targets(&expected), "order {order:?}");
            assert_eq!(r.status, "succeeded");
            count += 1;
        });
        assert_eq!(count, 5040);
    }

    fn permute(v: &mut Vec<usize>, k: usize, f: &mut impl FnMut(&[usize])) {
        if k == v.len() {
            f(v);
            return;
        }
        for i in k..v.len() {
            v.swap(k, i);
            permute(v, k + 1, f);
            v.swap(k, i);
        }
    }

    #[test]
    fn targets_follow_refunds_and_disputes() {
        let mut r = row();
        assert_eq!(targets(&r), (0, 0), "nothing before success");
        merge(&mut r, "payment_intent.succeeded", &json!({"amount_received": 499}), 1);
        assert_eq!(targets(&r), (500, 499));
        merge(&mut r, "charge.dispute.created", &json!({"status": "needs_response"}), 2);
        assert_eq!(targets(&r), (0, 0), "the bank took the money back");
        merge(&mut r, "charge.dispute.closed", &json!({"status": "lost"}), 3);
        merge(&mut r, "charge.dispute.updated", &json!({"status": "under_review"}), 4);
        assert_eq!(r.dispute_status.as_deref(), Some("lost"), "a closed dispute stays closed");
        let mut r = row();
        merge(&mut r, "payment_intent.succeeded", &json!({"amount_received": 499}), 1);
        merge(&mut r, "charge.refunded", &json!({"amount_refunded": 499}), 2);
        assert_eq!(targets(&r), (0, 0), "fully refunded");
        let mut r = row();
        merge(&mut r, "payment_intent.succeeded", &json!({"amount_received": 300}), 1);
        assert_eq!(targets(&r), (0, 300), "paid less than asked: no coins");
    }
}
