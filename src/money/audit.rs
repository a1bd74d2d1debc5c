//! Cross-checks between the ledger and what the money features built on it
//! record, part of the invariant check:
//! - a payment intent holds exactly the coins and money its transfers
//!   gave (credits and re-credits minus clawbacks), never more coins than
//!   it bought, none before it succeeded;
//! - a payout's status is its hold's fate (pending: open; paid: posted;
//!   rejected: voided);
//! - a bought ticket's status is its holds' fate (held: open; active:
//!   posted or paid at once; refunded: voided);
//! - a subscription's held renewal is an open hold.

use onair_signaling::ApiError;
use sqlx::SqliteConnection;

use crate::db::DbResult;

/// How a hold (pending transfer) ended: `open`, `post`, `void`, or `missing`.
async fn fate(c: &mut SqliteConnection, hold: &str) -> Result<&'static str, ApiError> {
    let r: Option<(String, Option<String>)> = sqlx::query_as("SELECT p.phase, (SELECT r.phase FROM ledger_transfers r WHERE r.pending_id = p.id) FROM ledger_transfers p WHERE p.id = $1")
        .bind(hold)
        .fetch_optional(&mut *c)
        .await
        .db()?;
    Ok(match r {
        None => "missing",
        Some((phase, _)) if phase == "single" => "single",
        Some((_, None)) => "open",
        Some((_, Some(p))) if p == "post" => "post",
        Some(_) => "void",
    })
}

/// Adds a problem for every disagreement found.
pub async fn audit(c: &mut SqliteConnection, problem: &mut (dyn FnMut(String) + Send)) -> Result<(), ApiError> {
    type Intent = (String, String, i64, i64, i64, i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>);
    let intents: Vec<Intent> = sqlx::query_as(
        "SELECT i.id, i.status, i.coins, i.coins_credited, i.fiat_booked, i.amount_received, \
           (SELECT SUM(amount) FROM ledger_transfers t WHERE t.reference = i.id AND t.code IN ('top_up', 'recredit')), \
           (SELECT SUM(amount) FROM ledger_transfers t WHERE t.reference = i.id AND t.code = 'clawback'), \
           (SELECT SUM(amount) FROM ledger_transfers t WHERE t.reference = i.id AND t.code = 'payment'), \
           (SELECT SUM(amount) FROM ledger_transfers t WHERE t.reference = i.id AND t.code = 'payment_reversal') \
         FROM payment_intents i",
    )
    .fetch_all(&mut *c)
    .await
    .db()?;
    for (id, status, coins, credited, fiat, received, given, clawed, paid, reversed) in intents {
        let net = given.unwrap_or(0) - clawed.unwrap_or(0);
        if net != credited {
            problem(format!("payment {id} records {credited} coins credited, its transfers {net}"));
        }
        if fiat != paid.unwrap_or(0) - reversed.unwrap_or(0) {
            problem(format!("payment {id} records {fiat} booked, its transfers {}", paid.unwrap_or(0) - reversed.unwrap_or(0)));
        }
        if credited < 0 || credited > coins || (status != "succeeded" && credited != 0) {
            problem(format!("payment {id} ({status}) holds {credited} of {coins} coins"));
        }
        if fiat < 0 || fiat > received {
            problem(format!("payment {id} booked {fiat} of {received} received"));
        }
    }

    let payouts: Vec<(i64, String, String)> = sqlx::query_as("SELECT id, status, hold_id FROM payouts").fetch_all(&mut *c).await.db()?;
    for (id, status, hold) in payouts {
        let f = fate(c, &hold).await?;
        let want = match status.as_str() {
            "pending" => "open",
            "paid" => "post",
            _ => "void",
        };
        if f != want {
            problem(format!("payout {id} is {status} but its hold {hold} is {f}"));
        }
    }

    let tickets: Vec<(i64, String, String, Option<String>, String)> =
        sqlx::query_as("SELECT id, status, COALESCE(purchase_id, ''), hold_ids, source FROM tickets WHERE source = 'purchase'").fetch_all(&mut *c).await.db()?;
    for (id, status, purchase, holds, _) in tickets {
        let ids: Vec<String> = match &holds {
            Some(h) => h.split(',').map(str::to_owned).collect(),
            None => vec![format!("{purchase}:0")],
        };
        for h in ids {
            let f = fate(c, &h).await?;
            let ok = match status.as_str() {
                "held" => f == "open",
                "active" => f == "post" || f == "single",
                "refunded" => f == "void",
                _ => false,
            };
            if !ok {
                problem(format!("ticket {id} is {status} but its transfer {h} is {f}"));
            }
        }
    }

    let renewals: Vec<(i64, String)> = sqlx::query_as("SELECT id, renewal_hold_ids FROM subscriptions WHERE renewal_hold_ids IS NOT NULL").fetch_all(&mut *c).await.db()?;
    for (id, holds) in renewals {
        for h in holds.split(',') {
            let f = fate(c, h).await?;
            if f != "open" {
                problem(format!("subscription {id} holds renewal {h}, which is {f}"));
            }
        }
    }
    Ok(())
}
