//! The ledger's invariants, checked from scratch: by the tests after every
//! workload and by `GET /api/admin/ledger/check` in production.
//!
//! The check replays every transfer in commit order and rebuilds each
//! account's four sums and posted balance, then compares:
//! - per ledger, debits equal credits (posted, and pending);
//! - every account equals the sum of its transfers, and every transfer's
//!   stored balance-after equals the replayed one (so statements reconcile);
//! - no account breaks its flags, no sum is negative;
//! - every transfer is well formed (a positive amount, two different
//!   accounts of its ledger), timestamps increase in commit order, every
//!   linked chain is closed;
//! - every pending transfer resolves at most once, by a post of at most its
//!   amount (not after its timeout) or a void of all of it, and the index of
//!   open holds lists exactly the unresolved ones;
//! - what the money features built on the ledger say agrees with it
//!   (payments credited once, payouts, tickets; see [`super::audit`]).
//!
//! It reads one snapshot (a read transaction), so it never sees half a batch.

use std::collections::{HashMap, HashSet};

use onair_signaling::ApiError;
use serde::Serialize;
use sqlx::SqlitePool;
use utoipa::ToSchema;

use super::ledger::{self, Transfer};
use crate::db::DbResult;

/// Totals of one ledger.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LedgerTotals {
    /// `COIN` or a currency.
    pub ledger: String,
    /// Sum of posted debits.
    pub debits_posted: i64,
    /// Sum of posted credits.
    pub credits_posted: i64,
    /// Sum of pending debits.
    pub debits_pending: i64,
    /// Sum of pending credits.
    pub credits_pending: i64,
    /// Debits equal credits.
    pub balanced: bool,
}

/// What the check found.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = LedgerCheck)]
pub struct Report {
    /// No problem found.
    pub ok: bool,
    /// Accounts checked.
    pub accounts: i64,
    /// Transfers replayed.
    pub transfers: i64,
    /// Holds not yet posted or voided.
    pub open_holds: i64,
    /// Per ledger.
    pub ledgers: Vec<LedgerTotals>,
    /// Each broken invariant, in words (at most 100).
    pub problems: Vec<String>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Sums {
    debits_pending: i64,
    debits_posted: i64,
    credits_pending: i64,
    credits_posted: i64,
}

struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, p: String) {
        if self.0.len() < 100 {
            self.0.push(p);
        }
    }
}

/// Checks every invariant of the ledger.
pub async fn check(pool: &SqlitePool) -> Result<Report, ApiError> {
    let mut tx = pool.begin().await.db()?;
    let mut problems = Problems(Vec::new());

    type Row = (String, String, i64, i64, i64, i64, i64, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, ledger, debits_pending, debits_posted, credits_pending, credits_posted, debits_must_not_exceed_credits, credits_must_not_exceed_debits FROM ledger_accounts",
    )
    .fetch_all(&mut *tx)
    .await
    .db()?;
    let mut stored: HashMap<String, (String, Sums, bool, bool)> = HashMap::new();
    let mut totals: std::collections::BTreeMap<String, Sums> = Default::default();
    for (id, ledger, dpe, dpo, cpe, cpo, dmnec, cmned) in rows {
        let s = Sums { debits_pending: dpe, debits_posted: dpo, credits_pending: cpe, credits_posted: cpo };
        if dpe < 0 || dpo < 0 || cpe < 0 || cpo < 0 {
            problems.add(format!("account {id} has a negative sum: {s:?}"));
        }
        if dmnec != 0 && dpo + dpe > cpo {
            problems.add(format!("account {id} breaks debits_must_not_exceed_credits: {s:?}"));
        }
        if cmned != 0 && cpo + cpe > dpo {
            problems.add(format!("account {id} breaks credits_must_not_exceed_debits: {s:?}"));
        }
        if ledger::account_ref(&id).map(|r| r.ledger != ledger).unwrap_or(true) {
            problems.add(format!("account {id} is named for another ledger than {ledger}"));
        }
        let t = totals.entry(ledger.clone()).or_default();
        t.debits_pending += dpe;
        t.debits_posted += dpo;
        t.credits_pending += cpe;
        t.credits_posted += cpo;
        stored.insert(id, (ledger, s, dmnec != 0, cmned != 0));
    }
    let ledgers: Vec<LedgerTotals> = totals
        .into_iter()
        .map(|(ledger, t)| LedgerTotals {
            balanced: t.debits_posted == t.credits_posted && t.debits_pending == t.credits_pending,
            ledger,
            debits_posted: t.debits_posted,
            credits_posted: t.credits_posted,
            debits_pending: t.debits_pending,
            credits_pending: t.credits_pending,
        })
        .collect();
    for l in ledgers.iter().filter(|l| !l.balanced) {
        problems.add(format!("ledger {} does not balance: {l:?}", l.ledger));
    }

    // Replay every transfer in commit order.
    let mut replayed: HashMap<String, Sums> = HashMap::new();
    let mut holds: HashMap<String, Transfer> = HashMap::new();
    let mut resolved: HashSet<String> = HashSet::new();
    let mut count = 0i64;
    let mut last: Option<Transfer> = None;
    loop {
        let after = last.as_ref().map(|t| t.seq).unwrap_or(0);
        let page = ledger::transfers_after(&mut tx, after, 5_000).await?;
        if page.is_empty() {
            break;
        }
        for t in page {
            count += 1;
            replay(&t, last.as_ref(), &stored, &mut replayed, &mut holds, &mut resolved, &mut problems);
            last = Some(t);
        }
    }
    if let Some(t) = last.as_ref().filter(|t| t.linked) {
        problems.add(format!("transfer {} leaves a linked chain open", t.id));
    }
    for (id, (_, s, _, _)) in &stored {
        let r = replayed.get(id).copied().unwrap_or_default();
        if r != *s {
            problems.add(format!("account {id} holds {s:?} but its transfers sum to {r:?}"));
        }
    }
    for id in replayed.keys().filter(|id| !stored.contains_key(*id)) {
        problems.add(format!("transfers name account {id}, which does not exist"));
    }
    let open: Vec<(String, Option<i64>)> = sqlx::query_as("SELECT transfer_id, timeout_at FROM ledger_pending").fetch_all(&mut *tx).await.db()?;
    let open_ids: HashSet<&str> = open.iter().map(|o| o.0.as_str()).collect();
    let unresolved: HashSet<&str> = holds.keys().filter(|id| !resolved.contains(*id)).map(String::as_str).collect();
    for id in unresolved.symmetric_difference(&open_ids) {
        problems.add(format!("hold {id} is {} but {} the index of open holds", if unresolved.contains(id) { "open" } else { "resolved or unknown" }, if open_ids.contains(id) { "in" } else { "missing from" }));
    }
    for (id, timeout) in &open {
        if holds.get(id).is_some_and(|h| h.timeout_at != *timeout) {
            problems.add(format!("hold {id}'s timeout differs in the index of open holds"));
        }
    }

    super::audit::audit(&mut tx, &mut |p| problems.add(p)).await?;
    tx.rollback().await.db()?;
    Ok(Report { ok: problems.0.is_empty(), accounts: stored.len() as i64, transfers: count, open_holds: open.len() as i64, ledgers, problems: problems.0 })
}

#[allow(clippy::too_many_arguments)]
fn replay(
    t: &Transfer,
    prev: Option<&Transfer>,
    accounts: &HashMap<String, (String, Sums, bool, bool)>,
    sums: &mut HashMap<String, Sums>,
    holds: &mut HashMap<String, Transfer>,
    resolved: &mut HashSet<String>,
    problems: &mut Problems,
) {
    if let Some(p) = prev {
        if t.timestamp <= p.timestamp {
            problems.add(format!("transfer {} is not later than {} (timestamps {} <= {})", t.id, p.id, t.timestamp, p.timestamp));
        }
        if p.linked && t.seq != p.seq + 1 {
            problems.add(format!("linked chain after {} is broken", p.id));
        }
    }
    if t.amount <= 0 {
        problems.add(format!("transfer {} moves {}", t.id, t.amount));
    }
    if t.debit_account_id == t.credit_account_id {
        problems.add(format!("transfer {} debits and credits {}", t.id, t.debit_account_id));
    }
    for a in [&t.debit_account_id, &t.credit_account_id] {
        match accounts.get(a) {
            Some((ledger, ..)) if *ledger == t.ledger => {}
            _ => problems.add(format!("transfer {} on {} names {a}, not an account of that ledger", t.id, t.ledger)),
        }
    }
    let (debit, credit) = (t.debit_account_id.clone(), t.credit_account_id.clone());
    match t.phase.as_str() {
        "single" => {
            sums.entry(debit.clone()).or_default().debits_posted += t.amount;
            sums.entry(credit.clone()).or_default().credits_posted += t.amount;
        }
        "pending" => {
            sums.entry(debit.clone()).or_default().debits_pending += t.amount;
            sums.entry(credit.clone()).or_default().credits_pending += t.amount;
            // A hold must have fitted the flags when it was made.
            check_flags(&debit, sums, accounts, t, problems);
            check_flags(&credit, sums, accounts, t, problems);
            holds.insert(t.id.clone(), t.clone());
        }
        phase @ ("post" | "void") => {
            let Some(pid) = &t.pending_id else {
                problems.add(format!("{phase} {} names no hold", t.id));
                return;
            };
            let Some(h) = holds.get(pid) else {
                problems.add(format!("{phase} {} resolves {pid}, not an earlier hold", t.id));
                return;
            };
            if !resolved.insert(pid.clone()) {
                problems.add(format!("hold {pid} is resolved more than once (again by {})", t.id));
                return;
            }
            if h.debit_account_id != debit || h.credit_account_id != credit {
                problems.add(format!("{phase} {} moves between other accounts than its hold {pid}", t.id));
            }
            if phase == "post" && (t.amount > h.amount || h.timeout_at.is_some_and(|at| t.created_at >= at)) {
                problems.add(format!("post {} posts {} of {pid}'s {} (or after its timeout)", t.id, t.amount, h.amount));
            }
            if phase == "void" && t.amount != h.amount {
                problems.add(format!("void {} releases {} of {pid}'s {}", t.id, t.amount, h.amount));
            }
            let posted = if phase == "post" { t.amount } else { 0 };
            let d = sums.entry(debit.clone()).or_default();
            d.debits_pending -= h.amount;
            d.debits_posted += posted;
            let c = sums.entry(credit.clone()).or_default();
            c.credits_pending -= h.amount;
            c.credits_posted += posted;
        }
        other => problems.add(format!("transfer {} has phase {other}", t.id)),
    }
    if t.phase != "pending" {
        check_flags(&debit, sums, accounts, t, problems);
        check_flags(&credit, sums, accounts, t, problems);
    }
    let balance = |id: &str| sums.get(id).map(|s| s.credits_posted - s.debits_posted).unwrap_or(0);
    if balance(&debit) != t.debit_balance_after || balance(&credit) != t.credit_balance_after {
        problems.add(format!(
            "transfer {} says balances after are {}/{}, the replay gives {}/{}",
            t.id,
            t.debit_balance_after,
            t.credit_balance_after,
            balance(&debit),
            balance(&credit)
        ));
    }
}

/// The flags must hold after every transfer, not only at the end.
fn check_flags(id: &str, sums: &HashMap<String, Sums>, accounts: &HashMap<String, (String, Sums, bool, bool)>, t: &Transfer, problems: &mut Problems) {
    let (Some(s), Some((_, _, dmnec, cmned))) = (sums.get(id), accounts.get(id)) else { return };
    if *dmnec && s.debits_posted + s.debits_pending > s.credits_posted {
        problems.add(format!("transfer {} overdrew {id}", t.id));
    }
    if *cmned && s.credits_posted + s.credits_pending > s.debits_posted {
        problems.add(format!("transfer {} over-credited {id}", t.id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::ledger::{transfer, AccountRef, Code, NewTransfer, COIN};
    use crate::money::testing::{ledger_db, tx_at};

    #[tokio::test]
    async fn finds_tampering() {
        let pool = ledger_db().await;
        let mut tx = tx_at(&pool, 1_000).await;
        let w = |u| AccountRef::user(u, Code::Wallet);
        transfer(&mut tx, &NewTransfer::new("a", AccountRef::platform(Code::Issued, COIN), w(1), 100, "top_up")).await.unwrap();
        transfer(&mut tx, &NewTransfer::new("b", w(1), w(2), 40, "tip")).await.unwrap();
        transfer(&mut tx, &NewTransfer::new("c", w(1), w(2), 10, "tip").pending(None)).await.unwrap();
        tx.commit().await.unwrap();
        let r = check(&pool).await.unwrap();
        assert!(r.ok, "{r:?}");
        assert_eq!((r.accounts, r.transfers, r.open_holds), (3, 3, 1));
        assert_eq!(r.ledgers[0].debits_posted, 140);

        // An edited balance: the account no longer equals its transfers, the
        // ledger no longer balances.
        sqlx::query("UPDATE ledger_accounts SET credits_posted = credits_posted + 5 WHERE id = 'u2:wallet:COIN'").execute(&pool).await.unwrap();
        let r = check(&pool).await.unwrap();
        assert!(!r.ok);
        assert!(r.problems.iter().any(|p| p.contains("u2:wallet:COIN holds")), "{:?}", r.problems);
        assert!(r.problems.iter().any(|p| p.contains("does not balance")), "{:?}", r.problems);
        sqlx::query("UPDATE ledger_accounts SET credits_posted = credits_posted - 5 WHERE id = 'u2:wallet:COIN'").execute(&pool).await.unwrap();
        assert!(check(&pool).await.unwrap().ok);

        // An edited transfer: the replay disagrees with its stored balance.
        sqlx::query("UPDATE ledger_transfers SET credit_balance_after = 41 WHERE id = 'b'").execute(&pool).await.unwrap();
        let r = check(&pool).await.unwrap();
        assert!(r.problems.iter().any(|p| p.contains("transfer b says balances")), "{:?}", r.problems);
        sqlx::query("UPDATE ledger_transfers SET credit_balance_after = 40 WHERE id = 'b'").execute(&pool).await.unwrap();

        // A hold lost from the index of open holds; an overdrawn wallet.
        sqlx::query("DELETE FROM ledger_pending").execute(&pool).await.unwrap();
        sqlx::query("UPDATE ledger_accounts SET debits_posted = debits_posted + 100, credits_posted = credits_posted + 100 WHERE id IN ('u1:wallet:COIN', 'u2:wallet:COIN')").execute(&pool).await.unwrap();
        sqlx::query("UPDATE ledger_accounts SET debits_posted = debits_posted + 200 WHERE id = 'u1:wallet:COIN'").execute(&pool).await.unwrap();
        let r = check(&pool).await.unwrap();
        assert!(r.problems.iter().any(|p| p.contains("hold c is open but missing")), "{:?}", r.problems);
        assert!(r.problems.iter().any(|p| p.contains("breaks debits_must_not_exceed_credits")), "{:?}", r.problems);
    }
}
