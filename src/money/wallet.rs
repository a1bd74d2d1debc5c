//! What a user holds and how it got there: balances, the statement (every
//! ledger line touching their accounts, with the balance after it), and a
//! creator's earnings by day, stream and kind. All of it is read from the
//! ledger itself, so it reconciles with it by construction.

use std::collections::BTreeMap;

use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::SqliteConnection;
use utoipa::{IntoParams, ToSchema};

use super::ledger::{self, AccountRef, Code, COIN};
use super::Money;
use crate::db::DbResult;

/// A user's balances.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Wallet {
    /// Whose.
    pub user_id: i64,
    /// Bought coins that can be spent now.
    pub coins: i64,
    /// Promotional coins that can be spent now (spent first).
    pub promo_coins: i64,
    /// Coins on hold (tickets to streams not started yet, subscription renewals).
    pub held: i64,
    /// Earnings that can be paid out.
    pub earnings: i64,
    /// Earnings still on hold (tickets to streams not started yet).
    pub earnings_pending: i64,
    /// Earnings reserved by payout requests not yet paid.
    pub payouts_pending: i64,
    /// Coins owed after a refund or dispute took back coins already spent
    /// (paid off first by the next coins bought).
    pub owed: i64,
    /// Balances in currencies (minor units), by ISO code.
    pub currency_balances: BTreeMap<String, i64>,
}

/// Reads a user's balances on a connection.
pub async fn wallet_on(c: &mut SqliteConnection, user: i64) -> Result<Wallet, ApiError> {
    let mut w = Wallet { user_id: user, coins: 0, promo_coins: 0, held: 0, earnings: 0, earnings_pending: 0, payouts_pending: 0, owed: 0, currency_balances: BTreeMap::new() };
    for a in ledger::accounts_of(c, user).await? {
        match (Code::parse(&a.code), a.ledger.as_str()) {
            (Some(Code::Wallet), COIN) => {
                w.coins = a.available();
                w.held += a.debits_pending;
            }
            (Some(Code::Promo), COIN) => {
                w.promo_coins = a.available();
                w.held += a.debits_pending;
            }
            (Some(Code::Earnings), COIN) => {
                w.earnings = a.available();
                w.earnings_pending = a.credits_pending;
                w.payouts_pending = a.debits_pending;
            }
            (Some(Code::Owed), COIN) => w.owed = a.debit_balance(),
            (Some(Code::Wallet), cur) => {
                w.currency_balances.insert(cur.to_owned(), a.available());
            }
            _ => {}
        }
    }
    Ok(w)
}

/// A line of a statement: one operation (a tip, a gift, a top-up...) as
/// one of the user's accounts saw it. An operation's transfers of the same
/// kind on the same account make one line (a gift paid to the creator and
/// the platform is one -25, not -17 and -8); `transfers` lists them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    /// The position in the ledger of its latest transfer.
    pub seq: i64,
    /// The operation (the transfers' common id prefix).
    pub operation: String,
    /// Its transfers' ids.
    pub transfers: Vec<String>,
    /// When (RFC 3339).
    pub at: String,
    /// Why: `top_up`, `tip`, `gift`, `ticket`, `subscription`, `clawback`, `settle`, `payout`, `promo`...
    pub kind: String,
    /// `single` (posted), `pending` (a hold: reserves, moves nothing yet),
    /// `post` (a hold completed), `void` (a hold released).
    pub phase: String,
    /// Which account: `wallet`, `promo`, `earnings`, `owed` (or `wallet:USD`).
    pub account: String,
    /// Into the account (positive) or out of it (negative).
    pub amount: i64,
    /// The account's posted balance after this line (credits minus debits;
    /// `owed` shows a debt as negative).
    pub balance_after: i64,
    /// The other side: `platform`, or another user's id.
    pub counterparty: String,
    /// Stream, if any.
    pub stream_id: Option<i64>,
    /// Reference: gift id, payment intent, payout...
    pub reference: Option<String>,
}

/// A page of a statement, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Statement {
    /// Lines, newest first.
    pub entries: Vec<Entry>,
    /// Pass as `cursor` for the next (older) page; null at the end.
    pub next_cursor: Option<String>,
}

/// Query of a statement.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<i64>,
}

fn account_label(id: &str) -> String {
    match ledger::account_ref(id) {
        Ok(r) if r.ledger == COIN => r.code.as_str().to_owned(),
        Ok(r) => format!("{}:{}", r.code.as_str(), r.ledger),
        Err(_) => id.to_owned(),
    }
}

fn counterparty(id: &str) -> String {
    match ledger::account_ref(id) {
        Ok(r) if r.owner == ledger::PLATFORM => "platform".into(),
        Ok(r) => r.owner.to_string(),
        Err(_) => "unknown".into(),
    }
}

/// The operation a transfer belongs to: its id up to the first `:`.
fn operation_of(id: &str) -> &str {
    id.split(':').next().unwrap_or(id)
}

type EntryRow = (i64, i64, String, String, String, i64, i64, String, Option<i64>, Option<String>, i64, String);

/// A page of the user's statement.
pub async fn statement(c: &mut SqliteConnection, user: i64, q: &StatementQuery) -> Result<Statement, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(super::invalid("limit", "must be 1-200"));
    }
    let (seq, side) = match q.cursor.as_deref() {
        None => (i64::MAX, -1),
        Some(c) => c.split_once('.').and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?))).ok_or_else(|| super::invalid("cursor", "not a cursor from a previous page"))?,
    };
    let rows: Vec<EntryRow> = sqlx::query_as(
        "SELECT * FROM ( \
           SELECT t.seq, 0 AS side, t.id, t.code, t.phase, -t.amount AS amount, t.debit_balance_after AS balance_after, t.credit_account_id AS other, t.stream_id, t.reference, t.created_at, t.debit_account_id AS account \
           FROM ledger_transfers t WHERE t.debit_account_id IN (SELECT id FROM ledger_accounts WHERE owner_id = $1) \
           UNION ALL \
           SELECT t.seq, 1 AS side, t.id, t.code, t.phase, t.amount AS amount, t.credit_balance_after AS balance_after, t.debit_account_id AS other, t.stream_id, t.reference, t.created_at, t.credit_account_id AS account \
           FROM ledger_transfers t WHERE t.credit_account_id IN (SELECT id FROM ledger_accounts WHERE owner_id = $1) \
         ) e WHERE e.seq < $2 OR (e.seq = $2 AND e.side > $3) ORDER BY e.seq DESC, e.side ASC LIMIT $4",
    )
    .bind(user)
    .bind(seq)
    .bind(side)
    .bind(limit + 1)
    .fetch_all(c)
    .await
    .db()?;
    let more = rows.len() as i64 > limit;
    let mut rows: Vec<EntryRow> = rows.into_iter().take(limit as usize).collect();
    // Do not cut an operation in two at the page's end: its rest comes next page.
    if more && rows.len() > 1 {
        let key = |r: &EntryRow| (operation_of(&r.2).to_owned(), r.11.clone(), r.4.clone(), r.3.clone());
        let last = key(&rows[rows.len() - 1]);
        let keep = rows.iter().rposition(|r| key(r) != last).map(|i| i + 1).unwrap_or(rows.len());
        rows.truncate(keep);
    }
    let next_cursor = if more { rows.last().map(|r| format!("{}.{}", r.0, r.1)) } else { None };
    let mut entries: Vec<Entry> = Vec::new();
    for (seq, _, id, code, phase, amount, balance_after, other, stream_id, reference, at, account) in rows {
        let op = operation_of(&id).to_owned();
        let label = account_label(&account);
        // Newest first: a later row of the same operation is an earlier transfer of it.
        if let Some(e) = entries.last_mut().filter(|e| e.operation == op && e.account == label && e.phase == phase && e.kind == code) {
            e.amount += amount;
            e.transfers.push(id);
            // Name the person on the other side (the creator), not the platform's share.
            if e.counterparty == "platform" {
                e.counterparty = counterparty(&other);
            }
            continue;
        }
        entries.push(Entry {
            seq,
            operation: op,
            transfers: vec![id],
            at: crate::clock::rfc3339(at),
            kind: code,
            phase,
            account: label,
            amount,
            balance_after,
            counterparty: counterparty(&other),
            stream_id,
            reference,
        });
    }
    Ok(Statement { entries, next_cursor })
}

/// Query of earnings.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EarningsQuery {
    /// Days back, 1-366, default 30.
    pub days: Option<i64>,
    /// IANA time zone of the days (default UTC).
    pub tz: Option<String>,
}

/// Coins on a day.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DayTotal {
    /// `YYYY-MM-DD` in the asked time zone.
    pub day: String,
    /// Earned that day.
    pub coins: i64,
}

/// Coins from a stream.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamTotal {
    /// Stream id (null: outside any stream, e.g. subscriptions).
    pub stream_id: Option<i64>,
    /// Its title, if it still exists.
    pub title: Option<String>,
    /// Earned.
    pub coins: i64,
}

/// Coins of a kind.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KindTotal {
    /// `tip`, `gift`, `ticket`, `subscription`.
    pub kind: String,
    /// Earned.
    pub coins: i64,
}

/// A creator's earnings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Earnings {
    /// Can be paid out now.
    pub available: i64,
    /// On hold (tickets to streams not started yet).
    pub pending: i64,
    /// Reserved by payout requests not yet paid.
    pub payouts_pending: i64,
    /// Paid out, ever.
    pub paid_out: i64,
    /// Earned in the period (posted).
    pub total: i64,
    /// The period, in days.
    pub days: i64,
    /// The time zone of the days.
    pub tz: String,
    /// Every day of the period, oldest first (zeros included, for the chart).
    pub by_day: Vec<DayTotal>,
    /// Per stream, most first.
    pub by_stream: Vec<StreamTotal>,
    /// Per kind, most first.
    pub by_kind: Vec<KindTotal>,
}

impl Money {
    /// A user's balances.
    pub async fn wallet(&self, user: i64) -> Result<Wallet, ApiError> {
        wallet_on(&mut *self.pool.acquire().await.db()?, user).await
    }

    /// A creator's earnings over the last `days` (at `now`).
    pub async fn earnings(&self, user: i64, q: &EarningsQuery, now: i64) -> Result<Earnings, ApiError> {
        let days = q.days.unwrap_or(30);
        if !(1..=366).contains(&days) {
            return Err(super::invalid("days", "must be 1-366"));
        }
        let tz_name = q.tz.clone().unwrap_or_else(|| "UTC".into());
        let tz = jiff::tz::TimeZone::get(&tz_name).map_err(|_| super::invalid("tz", format!("'{tz_name}' is not an IANA time zone")))?;
        let mut c = self.pool.acquire().await.db()?;
        let acc = ledger::account(&mut c, &AccountRef::user(user, Code::Earnings)).await?;
        let day_of = |ms: i64| jiff::Timestamp::from_millisecond(ms).map(|t| t.to_zoned_datetime(tz.clone()).date()).ok();
        let today = day_of(now).ok_or_else(|| ApiError::internal("bad clock"))?;
        let first = today.checked_sub(jiff::Span::new().days(days - 1)).map_err(ApiError::internal)?;
        let from_ms = first.to_zoned_datetime(tz.clone()).map_err(ApiError::internal)?.timestamp().as_millisecond();
        let rows: Vec<(String, Option<i64>, i64, i64)> = sqlx::query_as(
            "SELECT code, stream_id, amount, created_at FROM ledger_transfers WHERE credit_account_id = $1 AND phase IN ('single', 'post') AND created_at >= $2",
        )
        .bind(acc.id.clone())
        .bind(from_ms)
        .fetch_all(&mut *c)
        .await
        .db()?;
        let mut by_day: BTreeMap<jiff::civil::Date, i64> = BTreeMap::new();
        let mut d = first;
        while d <= today {
            by_day.insert(d, 0);
            d = d.tomorrow().map_err(ApiError::internal)?;
        }
        let mut by_stream: BTreeMap<Option<i64>, i64> = BTreeMap::new();
        let mut by_kind: BTreeMap<String, i64> = BTreeMap::new();
        let mut total = 0;
        for (code, stream, amount, at) in rows {
            if let Some(day) = day_of(at) {
                *by_day.entry(day).or_default() += amount;
            }
            *by_stream.entry(stream).or_default() += amount;
            *by_kind.entry(code).or_default() += amount;
            total += amount;
        }
        let mut streams: Vec<StreamTotal> = Vec::new();
        for (stream_id, coins) in by_stream {
            let title = match stream_id {
                Some(id) => sqlx::query_as::<_, (String,)>("SELECT title FROM streams WHERE id = $1").bind(id).fetch_optional(&mut *c).await.db()?.map(|r| r.0),
                None => None,
            };
            streams.push(StreamTotal { stream_id, title, coins });
        }
        streams.sort_by(|a, b| b.coins.cmp(&a.coins).then(a.stream_id.cmp(&b.stream_id)));
        let mut kinds: Vec<KindTotal> = by_kind.into_iter().map(|(kind, coins)| KindTotal { kind, coins }).collect();
        kinds.sort_by(|a, b| b.coins.cmp(&a.coins).then(a.kind.cmp(&b.kind)));
        Ok(Earnings {
            available: acc.available(),
            pending: acc.credits_pending,
            payouts_pending: acc.debits_pending,
            paid_out: acc.debits_posted,
            total,
            days,
            tz: tz_name,
            by_day: by_day.into_iter().map(|(d, coins)| DayTotal { day: d.to_string(), coins }).collect(),
            by_stream: streams,
            by_kind: kinds,
        })
    }
}
