//! The double-entry ledger, after TigerBeetle's model.
//!
//! - An **account** lives on one ledger (`COIN`, or a currency such as `USD`
//!   in minor units) and keeps four running sums: debits and credits,
//!   posted and pending. A balance is their difference, read the way the
//!   account's kind says (a wallet's is credits minus debits). Flags keep a
//!   balance from going the wrong way: `debits_must_not_exceed_credits`
//!   (a wallet cannot be overdrawn) and `credits_must_not_exceed_debits`.
//! - A **transfer** moves a positive amount from a debit account to a credit
//!   account of the same ledger. It is immutable and has an id chosen by its
//!   writer: a retry with the same id and fields returns the stored transfer,
//!   with other fields it is a conflict. Mistakes are corrected by more
//!   transfers, never by edits.
//! - A **pending** transfer reserves the amount (it counts against the
//!   flags but is not yet posted) until it is **posted** (in full or in
//!   part) or **voided**, exactly once, or until its timeout passes and the
//!   sweeper voids it. Posts and voids are transfers too, naming the
//!   pending one.
//! - **Linked** transfers succeed or fail together.
//!
//! Each function here runs inside a [`Tx`] and its own savepoint, so a
//! failure leaves nothing half done.

use std::fmt;

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use utoipa::ToSchema;

use super::tx::Tx;
use crate::db::DbResult;

/// The coin ledger.
pub const COIN: &str = "COIN";
/// Largest amount of one transfer (keeps every running sum far from overflow).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;
/// The platform's owner id.
pub const PLATFORM: i64 = 0;

/// What an account is for. The kind decides its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// A user's coins (bought), or their balance in a currency.
    Wallet,
    /// A user's promotional coins (given by the platform).
    Promo,
    /// A creator's earnings, until paid out.
    Earnings,
    /// What a user owes after coins they had spent were clawed back.
    Owed,
    /// Platform: the other side of every coin sold (a debit balance: coins out there).
    Issued,
    /// Platform: the other side of every promotional coin given.
    PromoPool,
    /// Platform: its share of coins spent.
    Revenue,
    /// Platform: earnings paid out to creators.
    Payouts,
    /// Platform, fiat: money the payment provider holds for us.
    Clearing,
    /// Platform, fiat: what coin sales brought in.
    Sales,
}

impl Code {
    /// Every kind.
    pub const ALL: [Code; 10] = [Code::Wallet, Code::Promo, Code::Earnings, Code::Owed, Code::Issued, Code::PromoPool, Code::Revenue, Code::Payouts, Code::Clearing, Code::Sales];

    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Wallet => "wallet",
            Code::Promo => "promo",
            Code::Earnings => "earnings",
            Code::Owed => "owed",
            Code::Issued => "issued",
            Code::PromoPool => "promo_pool",
            Code::Revenue => "revenue",
            Code::Payouts => "payouts",
            Code::Clearing => "clearing",
            Code::Sales => "sales",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Accounts that hold a credit balance may not be overdrawn
    /// (`debits_must_not_exceed_credits`); those that hold a debit balance
    /// may not go the other way (`credits_must_not_exceed_debits`).
    pub fn holds_credit_balance(self) -> bool {
        matches!(self, Code::Wallet | Code::Promo | Code::Earnings | Code::Revenue | Code::Payouts | Code::Sales)
    }
}

/// Names an account: whose, what for, on which ledger.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountRef {
    /// User id, or [`PLATFORM`].
    pub owner: i64,
    /// What it is for.
    pub code: Code,
    /// `COIN` or a currency code (upper case).
    pub ledger: String,
}

impl AccountRef {
    /// A user's coin account.
    pub fn user(owner: i64, code: Code) -> AccountRef {
        AccountRef { owner, code, ledger: COIN.into() }
    }

    /// A platform account on a ledger.
    pub fn platform(code: Code, ledger: &str) -> AccountRef {
        AccountRef { owner: PLATFORM, code, ledger: ledger.to_owned() }
    }

    /// Its id: `u42:wallet:COIN`, `platform:clearing:USD`.
    pub fn id(&self) -> String {
        if self.owner == PLATFORM {
            format!("platform:{}:{}", self.code.as_str(), self.ledger)
        } else {
            format!("u{}:{}:{}", self.owner, self.code.as_str(), self.ledger)
        }
    }
}

/// An account and its balances.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Account {
    /// Id (`u42:wallet:COIN`).
    pub id: String,
    /// User id, 0 for the platform.
    pub owner_id: i64,
    /// What it is for.
    pub code: String,
    /// `COIN` or a currency.
    pub ledger: String,
    /// Reserved by pending transfers, out.
    pub debits_pending: i64,
    /// Posted, out.
    pub debits_posted: i64,
    /// Reserved by pending transfers, in.
    pub credits_pending: i64,
    /// Posted, in.
    pub credits_posted: i64,
    /// The flag of a credit-balance account.
    pub debits_must_not_exceed_credits: bool,
    /// The flag of a debit-balance account.
    pub credits_must_not_exceed_debits: bool,
}

impl Account {
    /// An account with nothing in it (as if it existed).
    pub fn empty(r: &AccountRef) -> Account {
        let credit = r.code.holds_credit_balance();
        Account {
            id: r.id(),
            owner_id: r.owner,
            code: r.code.as_str().into(),
            ledger: r.ledger.clone(),
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
            debits_must_not_exceed_credits: credit,
            credits_must_not_exceed_debits: !credit,
        }
    }

    /// Posted credits minus posted debits.
    pub fn credit_balance(&self) -> i64 {
        self.credits_posted - self.debits_posted
    }

    /// Posted debits minus posted credits.
    pub fn debit_balance(&self) -> i64 {
        self.debits_posted - self.credits_posted
    }

    /// What may still be debited from a credit-balance account (holds count).
    pub fn available(&self) -> i64 {
        self.credits_posted - self.debits_posted - self.debits_pending
    }
}

/// The phase of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Posted at once.
    Single,
    /// A hold, to be posted or voided.
    Pending,
    /// Posts a pending transfer.
    Post,
    /// Voids a pending transfer.
    Void,
}

impl Phase {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Single => "single",
            Phase::Pending => "pending",
            Phase::Post => "post",
            Phase::Void => "void",
        }
    }
}

/// A transfer to make.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTransfer {
    /// Its id (idempotency).
    pub id: String,
    /// Debited.
    pub debit: AccountRef,
    /// Credited.
    pub credit: AccountRef,
    /// Positive, at most [`MAX_AMOUNT`].
    pub amount: i64,
    /// Why: `top_up`, `tip`, `gift`, `ticket`, ...
    pub code: String,
    /// A hold rather than a posted transfer.
    pub pending: bool,
    /// A hold's expiry (Unix ms; none: it waits to be resolved).
    pub timeout_at: Option<i64>,
    /// Who caused it.
    pub user_id: Option<i64>,
    /// The stream it belongs to.
    pub stream_id: Option<i64>,
    /// A reference: gift id, payment intent, payout id...
    pub reference: Option<String>,
}

impl NewTransfer {
    /// A posted transfer.
    pub fn new(id: impl Into<String>, debit: AccountRef, credit: AccountRef, amount: i64, code: &str) -> NewTransfer {
        NewTransfer { id: id.into(), debit, credit, amount, code: code.into(), pending: false, timeout_at: None, user_id: None, stream_id: None, reference: None }
    }

    /// Makes it a hold that expires at `timeout_at` (or never).
    pub fn pending(mut self, timeout_at: Option<i64>) -> Self {
        self.pending = true;
        self.timeout_at = timeout_at;
        self
    }

    /// Who caused it.
    pub fn by(mut self, user: i64) -> Self {
        self.user_id = Some(user);
        self
    }

    /// The stream it belongs to.
    pub fn stream(mut self, stream: Option<i64>) -> Self {
        self.stream_id = stream;
        self
    }

    /// A reference.
    pub fn reference(mut self, r: impl Into<String>) -> Self {
        self.reference = Some(r.into());
        self
    }
}

/// A stored transfer.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Transfer {
    /// Position in the ledger.
    pub seq: i64,
    /// Id.
    pub id: String,
    /// Debited account.
    pub debit_account_id: String,
    /// Credited account.
    pub credit_account_id: String,
    /// Amount.
    pub amount: i64,
    /// Ledger.
    pub ledger: String,
    /// Why.
    pub code: String,
    /// `single`, `pending`, `post` or `void`.
    pub phase: String,
    /// The pending transfer a post or void resolves.
    pub pending_id: Option<String>,
    /// A hold's expiry (Unix ms).
    pub timeout_at: Option<i64>,
    /// Part of a linked chain that is not over yet (the chain's last has false).
    pub linked: bool,
    /// Who caused it.
    pub user_id: Option<i64>,
    /// Stream.
    pub stream_id: Option<i64>,
    /// Reference.
    pub reference: Option<String>,
    /// The debit account's posted balance (credits - debits) after it.
    pub debit_balance_after: i64,
    /// The credit account's posted balance (credits - debits) after it.
    pub credit_balance_after: i64,
    /// Commit order (ns since the epoch, unique, increasing).
    pub timestamp: i64,
    /// Unix ms.
    pub created_at: i64,
}

/// Why a transfer was refused.
#[derive(Debug)]
pub enum LedgerError {
    /// Malformed: not a positive amount, the same account twice, two ledgers.
    Invalid(String),
    /// The debit would overdraw this account (`debits_must_not_exceed_credits`).
    ExceedsCredits(String),
    /// The credit would break `credits_must_not_exceed_debits` of this account.
    ExceedsDebits(String),
    /// A transfer with this id exists with other fields.
    Conflict(String),
    /// No pending transfer with this id.
    PendingNotFound(String),
    /// The pending transfer was already posted.
    AlreadyPosted(String),
    /// The pending transfer was already voided (or expired).
    AlreadyVoided(String),
    /// The pending transfer's timeout passed.
    PendingExpired(String),
    /// The database failed.
    Storage(ApiError),
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerError::Invalid(m) => write!(f, "invalid transfer: {m}"),
            LedgerError::ExceedsCredits(a) => write!(f, "{a}: debits would exceed credits"),
            LedgerError::ExceedsDebits(a) => write!(f, "{a}: credits would exceed debits"),
            LedgerError::Conflict(id) => write!(f, "transfer {id} exists with other fields"),
            LedgerError::PendingNotFound(id) => write!(f, "no pending transfer {id}"),
            LedgerError::AlreadyPosted(id) => write!(f, "pending transfer {id} was already posted"),
            LedgerError::AlreadyVoided(id) => write!(f, "pending transfer {id} was already voided"),
            LedgerError::PendingExpired(id) => write!(f, "pending transfer {id} expired"),
            LedgerError::Storage(e) => write!(f, "{e}"),
        }
    }
}

impl From<ApiError> for LedgerError {
    fn from(e: ApiError) -> Self {
        LedgerError::Storage(e)
    }
}

impl From<sqlx::Error> for LedgerError {
    fn from(e: sqlx::Error) -> Self {
        LedgerError::Storage(Err::<(), _>(e).db().unwrap_err())
    }
}

/// 402 `insufficient_funds`: what a refused debit means to a user.
pub fn insufficient_funds(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::PAYMENT_REQUIRED, "insufficient_funds", message)
}

/// 409 `idempotency_conflict`.
pub fn idempotency_conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "idempotency_conflict", message)
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::ExceedsCredits(a) if a.starts_with('u') => insufficient_funds("not enough coins for this"),
            LedgerError::Conflict(id) => idempotency_conflict(format!("transfer {id} was already made with other details")),
            LedgerError::PendingNotFound(id) => ApiError::not_found(format!("no pending transfer {id}")),
            LedgerError::AlreadyPosted(_) => ApiError::new(StatusCode::CONFLICT, "already_posted", e.to_string()),
            LedgerError::AlreadyVoided(_) => ApiError::new(StatusCode::CONFLICT, "already_voided", e.to_string()),
            LedgerError::PendingExpired(_) => ApiError::new(StatusCode::CONFLICT, "pending_expired", e.to_string()),
            LedgerError::Storage(e) => e,
            other => ApiError::internal(other),
        }
    }
}

const TRANSFER_COLS: &str = "seq, id, debit_account_id, credit_account_id, amount, ledger, code, phase, pending_id, timeout_at, linked, user_id, stream_id, reference, debit_balance_after, credit_balance_after, timestamp, created_at";

fn transfer_of(r: &SqliteRow) -> Result<Transfer, sqlx::Error> {
    Ok(Transfer {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        debit_account_id: r.try_get("debit_account_id")?,
        credit_account_id: r.try_get("credit_account_id")?,
        amount: r.try_get("amount")?,
        ledger: r.try_get("ledger")?,
        code: r.try_get("code")?,
        phase: r.try_get("phase")?,
        pending_id: r.try_get("pending_id")?,
        timeout_at: r.try_get("timeout_at")?,
        linked: r.try_get::<i64, _>("linked")? != 0,
        user_id: r.try_get("user_id")?,
        stream_id: r.try_get("stream_id")?,
        reference: r.try_get("reference")?,
        debit_balance_after: r.try_get("debit_balance_after")?,
        credit_balance_after: r.try_get("credit_balance_after")?,
        timestamp: r.try_get("timestamp")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A transfer by id.
pub async fn transfer_by_id(c: &mut SqliteConnection, id: &str) -> Result<Option<Transfer>, ApiError> {
    let r = sqlx::query(&format!("SELECT {TRANSFER_COLS} FROM ledger_transfers WHERE id = $1")).bind(id).fetch_optional(c).await.db()?;
    r.as_ref().map(transfer_of).transpose().db()
}

/// Transfers by seq, oldest first, from `after_seq` (for checks and tools).
pub async fn transfers_after(c: &mut SqliteConnection, after_seq: i64, limit: i64) -> Result<Vec<Transfer>, ApiError> {
    let rows = sqlx::query(&format!("SELECT {TRANSFER_COLS} FROM ledger_transfers WHERE seq > $1 ORDER BY seq LIMIT $2")).bind(after_seq).bind(limit).fetch_all(c).await.db()?;
    rows.iter().map(transfer_of).collect::<Result<_, _>>().db()
}

type AccountRow = (String, i64, String, String, i64, i64, i64, i64, i64, i64);
const ACCOUNT_COLS: &str = "id, owner_id, code, ledger, debits_pending, debits_posted, credits_pending, credits_posted, debits_must_not_exceed_credits, credits_must_not_exceed_debits";

fn account_of(r: AccountRow) -> Account {
    Account {
        id: r.0,
        owner_id: r.1,
        code: r.2,
        ledger: r.3,
        debits_pending: r.4,
        debits_posted: r.5,
        credits_pending: r.6,
        credits_posted: r.7,
        debits_must_not_exceed_credits: r.8 != 0,
        credits_must_not_exceed_debits: r.9 != 0,
    }
}

/// An account's balances (an empty one if it was never used).
pub async fn account(c: &mut SqliteConnection, r: &AccountRef) -> Result<Account, ApiError> {
    let row: Option<AccountRow> = sqlx::query_as(&format!("SELECT {ACCOUNT_COLS} FROM ledger_accounts WHERE id = $1")).bind(r.id()).fetch_optional(c).await.db()?;
    Ok(row.map(account_of).unwrap_or_else(|| Account::empty(r)))
}

/// Several accounts' balances in one query (empty ones for accounts never used).
pub async fn accounts<const N: usize>(c: &mut SqliteConnection, refs: [&AccountRef; N]) -> Result<[Account; N], ApiError> {
    let ids: Vec<String> = refs.iter().map(|r| r.id()).collect();
    let marks: Vec<String> = (1..=N).map(|i| format!("${i}")).collect();
    let sql = format!("SELECT {ACCOUNT_COLS} FROM ledger_accounts WHERE id IN ({})", marks.join(", "));
    let mut q = sqlx::query_as::<_, AccountRow>(&sql);
    for id in &ids {
        q = q.bind(id);
    }
    let found: Vec<Account> = q.fetch_all(c).await.db()?.into_iter().map(account_of).collect();
    Ok(refs.map(|r| {
        let id = r.id();
        found.iter().find(|a| a.id == id).cloned().unwrap_or_else(|| Account::empty(r))
    }))
}

/// Every account of an owner.
pub async fn accounts_of(c: &mut SqliteConnection, owner: i64) -> Result<Vec<Account>, ApiError> {
    let rows: Vec<AccountRow> = sqlx::query_as(&format!("SELECT {ACCOUNT_COLS} FROM ledger_accounts WHERE owner_id = $1 ORDER BY id")).bind(owner).fetch_all(c).await.db()?;
    Ok(rows.into_iter().map(account_of).collect())
}

/// Accounts of a kind (admins: everyone's `owed`), largest balance first.
pub async fn accounts_by_code(c: &mut SqliteConnection, code: Code, limit: i64) -> Result<Vec<Account>, ApiError> {
    let rows: Vec<AccountRow> = sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLS} FROM ledger_accounts WHERE code = $1 ORDER BY ABS(credits_posted - debits_posted) DESC, id LIMIT $2"
    ))
    .bind(code.as_str())
    .bind(limit)
    .fetch_all(c)
    .await
    .db()?;
    Ok(rows.into_iter().map(account_of).collect())
}

async fn create_account(tx: &mut Tx, r: &AccountRef) -> Result<(), ApiError> {
    let credit = r.code.holds_credit_balance();
    sqlx::query(
        "INSERT INTO ledger_accounts (id, owner_id, code, ledger, debits_must_not_exceed_credits, credits_must_not_exceed_debits, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(r.id())
    .bind(r.owner)
    .bind(r.code.as_str())
    .bind(&r.ledger)
    .bind(credit as i64)
    .bind(!credit as i64)
    .bind(tx.now())
    .execute(tx.conn())
    .await
    .db()?;
    Ok(())
}

/// Which running sums a change touches.
#[derive(Clone, Copy)]
enum Change {
    /// A posted transfer: +amount posted, checked against the flags.
    Post(i64),
    /// A hold: +amount pending, checked against the flags.
    Hold(i64),
    /// Resolving a hold of `held`: -held pending, +posted posted (0 for a void).
    Resolve { held: i64, posted: i64 },
}

/// Applies one side of a transfer to an account (made on first use);
/// returns the account's posted credit balance after it.
async fn apply(tx: &mut Tx, r: &AccountRef, debit: bool, change: Change) -> Result<i64, LedgerError> {
    let id = r.id();
    let (set, check, a, b) = match (debit, change) {
        (true, Change::Post(n)) => ("debits_posted = debits_posted + $1", "(debits_must_not_exceed_credits = 0 OR debits_posted + debits_pending + $1 <= credits_posted)", n, 0),
        (true, Change::Hold(n)) => ("debits_pending = debits_pending + $1", "(debits_must_not_exceed_credits = 0 OR debits_posted + debits_pending + $1 <= credits_posted)", n, 0),
        (false, Change::Post(n)) => ("credits_posted = credits_posted + $1", "(credits_must_not_exceed_debits = 0 OR credits_posted + credits_pending + $1 <= debits_posted)", n, 0),
        (false, Change::Hold(n)) => ("credits_pending = credits_pending + $1", "(credits_must_not_exceed_debits = 0 OR credits_posted + credits_pending + $1 <= debits_posted)", n, 0),
        (true, Change::Resolve { held, posted }) => ("debits_pending = debits_pending - $1, debits_posted = debits_posted + $3", "$3 <= $1", held, posted),
        (false, Change::Resolve { held, posted }) => ("credits_pending = credits_pending - $1, credits_posted = credits_posted + $3", "$3 <= $1", held, posted),
    };
    let sql = format!("UPDATE ledger_accounts SET {set} WHERE id = $2 AND {check} RETURNING credits_posted - debits_posted");
    let resolving = matches!(change, Change::Resolve { .. });
    for attempt in 0..2 {
        let q = sqlx::query_as(&sql).bind(a).bind(&id);
        let q = if resolving { q.bind(b) } else { q };
        let row: Option<(i64,)> = q.fetch_optional(tx.conn()).await?;
        if let Some((balance,)) = row {
            return Ok(balance);
        }
        let exists: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM ledger_accounts WHERE id = $1").bind(&id).fetch_optional(tx.conn()).await?;
        if exists.is_some() || attempt == 1 {
            return Err(if debit { LedgerError::ExceedsCredits(id) } else { LedgerError::ExceedsDebits(id) });
        }
        create_account(tx, r).await?;
    }
    unreachable!("the loop returns")
}

fn validate(t: &NewTransfer) -> Result<(), LedgerError> {
    if t.amount <= 0 || t.amount > MAX_AMOUNT {
        return Err(LedgerError::Invalid(format!("amount {} is not 1-{MAX_AMOUNT}", t.amount)));
    }
    if t.debit == t.credit {
        return Err(LedgerError::Invalid(format!("{} on both sides", t.debit.id())));
    }
    if t.debit.ledger != t.credit.ledger {
        return Err(LedgerError::Invalid(format!("{} and {} are on different ledgers", t.debit.id(), t.credit.id())));
    }
    if t.id.is_empty() || t.id.len() > 255 {
        return Err(LedgerError::Invalid("a transfer id is 1-255 characters".into()));
    }
    Ok(())
}

/// Whether a stored transfer is what `t` asks for (a retry).
fn same(stored: &Transfer, t: &NewTransfer, linked: bool) -> bool {
    stored.debit_account_id == t.debit.id()
        && stored.credit_account_id == t.credit.id()
        && stored.amount == t.amount
        && stored.ledger == t.debit.ledger
        && stored.code == t.code
        && stored.phase == if t.pending { Phase::Pending } else { Phase::Single }.as_str()
        && stored.timeout_at == t.timeout_at
        && stored.user_id == t.user_id
        && stored.stream_id == t.stream_id
        && stored.reference == t.reference
        && stored.linked == linked
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    tx: &mut Tx,
    id: &str,
    debit: &str,
    credit: &str,
    amount: i64,
    ledger: &str,
    code: &str,
    phase: Phase,
    pending_id: Option<&str>,
    timeout_at: Option<i64>,
    linked: bool,
    who: (Option<i64>, Option<i64>, Option<&str>),
    balances: (i64, i64),
) -> Result<Transfer, LedgerError> {
    let timestamp = tx.next_timestamp();
    let now = tx.now();
    let (seq,): (i64,) = sqlx::query_as(
        "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, ledger, code, phase, pending_id, timeout_at, linked, user_id, stream_id, reference, \
         debit_balance_after, credit_balance_after, timestamp, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING seq",
    )
    .bind(id)
    .bind(debit)
    .bind(credit)
    .bind(amount)
    .bind(ledger)
    .bind(code)
    .bind(phase.as_str())
    .bind(pending_id)
    .bind(timeout_at)
    .bind(linked as i64)
    .bind(who.0)
    .bind(who.1)
    .bind(who.2)
    .bind(balances.0)
    .bind(balances.1)
    .bind(timestamp)
    .bind(now)
    .fetch_one(tx.conn())
    .await?;
    if phase == Phase::Pending {
        sqlx::query("INSERT INTO ledger_pending (transfer_id, timeout_at) VALUES ($1, $2)").bind(id).bind(timeout_at).execute(tx.conn()).await?;
    }
    Ok(Transfer {
        seq,
        id: id.into(),
        debit_account_id: debit.into(),
        credit_account_id: credit.into(),
        amount,
        ledger: ledger.into(),
        code: code.into(),
        phase: phase.as_str().into(),
        pending_id: pending_id.map(str::to_owned),
        timeout_at,
        linked,
        user_id: who.0,
        stream_id: who.1,
        reference: who.2.map(str::to_owned),
        debit_balance_after: balances.0,
        credit_balance_after: balances.1,
        timestamp,
        created_at: now,
    })
}

/// Applies a new transfer (no retry check, no savepoint).
async fn apply_new(tx: &mut Tx, t: &NewTransfer, linked: bool) -> Result<Transfer, LedgerError> {
    let change = if t.pending { Change::Hold(t.amount) } else { Change::Post(t.amount) };
    let d = apply(tx, &t.debit, true, change).await?;
    let c = apply(tx, &t.credit, false, change).await?;
    let phase = if t.pending { Phase::Pending } else { Phase::Single };
    let timeout_at = if t.pending { t.timeout_at } else { None };
    insert(
        tx,
        &t.id,
        &t.debit.id(),
        &t.credit.id(),
        t.amount,
        &t.debit.ledger,
        &t.code,
        phase,
        None,
        timeout_at,
        linked,
        (t.user_id, t.stream_id, t.reference.as_deref()),
        (d, c),
    )
    .await
}

/// Runs `f` in a savepoint: all of it, or nothing.
async fn atomically<T>(tx: &mut Tx, f: impl AsyncFnOnce(&mut Tx) -> Result<T, LedgerError>) -> Result<T, LedgerError> {
    tx.savepoint().await?;
    let r = f(tx).await;
    tx.end_savepoint(r.is_ok()).await?;
    r
}

/// Makes one transfer (posted, or a hold). A retry with the same id and
/// fields returns the stored transfer; other fields are a conflict.
pub async fn transfer(tx: &mut Tx, t: &NewTransfer) -> Result<Transfer, LedgerError> {
    Ok(linked(tx, std::slice::from_ref(t)).await?.remove(0))
}

/// Makes a chain of transfers that succeed or fail together (TigerBeetle's
/// `linked` flag: set on every transfer of the chain but the last). A retry
/// of the whole chain returns the stored chain.
pub async fn linked(tx: &mut Tx, chain: &[NewTransfer]) -> Result<Vec<Transfer>, LedgerError> {
    if chain.is_empty() {
        return Err(LedgerError::Invalid("an empty chain".into()));
    }
    for t in chain {
        validate(t)?;
    }
    let last = chain.len() - 1;
    // The common case first: new transfers. Only when that fails is it
    // worth asking whether this is a retry (an id taken, or balances that
    // moved on since the first attempt).
    let made = atomically(tx, async |tx| {
        let mut out = Vec::with_capacity(chain.len());
        for (i, t) in chain.iter().enumerate() {
            out.push(apply_new(tx, t, i != last).await?);
        }
        Ok(out)
    })
    .await;
    let Err(e) = made else { return made };
    let mut stored = Vec::with_capacity(chain.len());
    for t in chain {
        stored.push(transfer_by_id(tx.conn(), &t.id).await?);
    }
    if !stored.iter().any(Option::is_some) {
        return Err(e);
    }
    // A retry: the whole chain must be there, as asked.
    chain
        .iter()
        .zip(stored)
        .enumerate()
        .map(|(i, (t, s))| match s {
            Some(s) if same(&s, t, i != last) => Ok(s),
            _ => Err(LedgerError::Conflict(t.id.clone())),
        })
        .collect()
}

/// How a pending transfer ended, if it did.
async fn resolution(tx: &mut Tx, pending_id: &str) -> Result<Option<String>, LedgerError> {
    let r: Option<(String,)> = sqlx::query_as("SELECT phase FROM ledger_transfers WHERE pending_id = $1").bind(pending_id).fetch_optional(tx.conn()).await?;
    Ok(r.map(|r| r.0))
}

async fn resolve(tx: &mut Tx, id: &str, pending_id: &str, post: Option<Option<i64>>, code: Option<&str>) -> Result<Transfer, LedgerError> {
    let phase = if post.is_some() { Phase::Post } else { Phase::Void };
    if let Some(s) = transfer_by_id(tx.conn(), id).await? {
        let amount_ok = match post {
            Some(Some(a)) => s.amount == a,
            _ => true,
        };
        return if s.phase == phase.as_str() && s.pending_id.as_deref() == Some(pending_id) && amount_ok { Ok(s) } else { Err(LedgerError::Conflict(id.into())) };
    }
    let p = match transfer_by_id(tx.conn(), pending_id).await? {
        Some(p) if p.phase == Phase::Pending.as_str() => p,
        _ => return Err(LedgerError::PendingNotFound(pending_id.into())),
    };
    match resolution(tx, pending_id).await?.as_deref() {
        Some("post") => return Err(LedgerError::AlreadyPosted(pending_id.into())),
        Some(_) => return Err(LedgerError::AlreadyVoided(pending_id.into())),
        None => {}
    }
    let amount = match post {
        Some(amount) => {
            if p.timeout_at.is_some_and(|t| t <= tx.now()) {
                return Err(LedgerError::PendingExpired(pending_id.into()));
            }
            let a = amount.unwrap_or(p.amount);
            if a <= 0 || a > p.amount {
                return Err(LedgerError::Invalid(format!("posting {a} of a hold of {}", p.amount)));
            }
            a
        }
        None => p.amount,
    };
    let posted = if phase == Phase::Post { amount } else { 0 };
    let debit = account_ref(&p.debit_account_id)?;
    let credit = account_ref(&p.credit_account_id)?;
    atomically(tx, async |tx| {
        let d = apply(tx, &debit, true, Change::Resolve { held: p.amount, posted }).await?;
        let c = apply(tx, &credit, false, Change::Resolve { held: p.amount, posted }).await?;
        sqlx::query("DELETE FROM ledger_pending WHERE transfer_id = $1").bind(pending_id).execute(tx.conn()).await?;
        insert(
            tx,
            id,
            &p.debit_account_id,
            &p.credit_account_id,
            amount,
            &p.ledger,
            code.unwrap_or(&p.code),
            phase,
            Some(pending_id),
            None,
            false,
            (p.user_id, p.stream_id, p.reference.as_deref()),
            (d, c),
        )
        .await
    })
    .await
}

/// Posts a hold (all of it, or `amount` of it; the rest is released).
pub async fn post(tx: &mut Tx, id: &str, pending_id: &str, amount: Option<i64>) -> Result<Transfer, LedgerError> {
    resolve(tx, id, pending_id, Some(amount), None).await
}

/// Voids a hold: nothing moves, the reserved amount is released.
/// `code` says why (`void`, `expired`, `cancelled`...).
pub async fn void(tx: &mut Tx, id: &str, pending_id: &str, code: &str) -> Result<Transfer, LedgerError> {
    resolve(tx, id, pending_id, None, Some(code)).await
}

/// Voids up to `limit` holds whose timeout has passed (`{id}:expired`).
pub async fn expire_due(tx: &mut Tx, limit: i64) -> Result<Vec<Transfer>, LedgerError> {
    let due: Vec<(String,)> = sqlx::query_as("SELECT transfer_id FROM ledger_pending WHERE timeout_at IS NOT NULL AND timeout_at <= $1 ORDER BY timeout_at LIMIT $2")
        .bind(tx.now())
        .bind(limit)
        .fetch_all(tx.conn())
        .await?;
    let mut out = Vec::with_capacity(due.len());
    for (id,) in due {
        out.push(void(tx, &format!("{id}:expired"), &id, "expired").await?);
    }
    Ok(out)
}

/// Parses an account id back (`u42:wallet:COIN`).
pub fn account_ref(id: &str) -> Result<AccountRef, LedgerError> {
    let bad = || LedgerError::Invalid(format!("bad account id {id}"));
    let mut parts = id.splitn(3, ':');
    let (owner, code, ledger) = (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
    let owner = if owner == "platform" { PLATFORM } else { owner.strip_prefix('u').and_then(|o| o.parse().ok()).ok_or_else(bad)? };
    Ok(AccountRef { owner, code: Code::parse(code).ok_or_else(bad)?, ledger: ledger.to_owned() })
}

/// Sources drawn in order to cover `amount`, then split across
/// destinations in order: the transfers (source, destination, amount) of a
/// payment from several pockets to several payees. `sources` are
/// (account, available); `payees` are (account, share) summing to `amount`.
pub fn waterfall<S: Clone, D: Clone>(sources: &[(S, i64)], payees: &[(D, i64)]) -> Option<Vec<(S, D, i64)>> {
    let amount: i64 = payees.iter().map(|p| p.1).sum();
    let mut need = amount;
    let mut drawn = Vec::new();
    for (s, avail) in sources {
        if need == 0 {
            break;
        }
        let take = need.min((*avail).max(0));
        if take > 0 {
            drawn.push((s.clone(), take));
            need -= take;
        }
    }
    if need > 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut si = 0;
    let mut left_in_source = drawn.first().map(|d| d.1).unwrap_or(0);
    for (d, share) in payees {
        let mut share = *share;
        while share > 0 {
            let take = share.min(left_in_source);
            out.push((drawn[si].0.clone(), d.clone(), take));
            share -= take;
            left_in_source -= take;
            if left_in_source == 0 && si + 1 < drawn.len() {
                si += 1;
                left_in_source = drawn[si].1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::testing::{ledger_db, tx_at};

    fn wallet(u: i64) -> AccountRef {
        AccountRef::user(u, Code::Wallet)
    }

    fn issued() -> AccountRef {
        AccountRef::platform(Code::Issued, COIN)
    }

    #[test]
    fn account_ids_round_trip() {
        for r in [wallet(42), AccountRef::platform(Code::Clearing, "USD"), AccountRef::user(7, Code::Owed)] {
            assert_eq!(account_ref(&r.id()).unwrap(), r);
        }
        assert!(account_ref("u:wallet").is_err());
        assert!(account_ref("x1:wallet:COIN").is_err());
    }

    #[test]
    fn waterfall_draws_sources_in_order_and_splits() {
        // 100 to pay, 70/30: 40 promo coins first, then 60 from the wallet.
        let t = waterfall(&[("promo", 40), ("wallet", 500)], &[("creator", 70), ("platform", 30)]).unwrap();
        assert_eq!(t, vec![("promo", "creator", 40), ("wallet", "creator", 30), ("wallet", "platform", 30)]);
        let sum: i64 = t.iter().map(|x| x.2).sum();
        assert_eq!(sum, 100);
        assert!(waterfall(&[("promo", 40), ("wallet", 59)], &[("creator", 70), ("platform", 30)]).is_none(), "99 < 100");
        let t = waterfall(&[("promo", 0), ("wallet", 100)], &[("creator", 100), ("platform", 0)]).unwrap();
        assert_eq!(t, vec![("wallet", "creator", 100)], "no zero-amount transfers");
    }

    #[tokio::test]
    async fn transfers_are_idempotent_and_respect_flags() {
        let pool = ledger_db().await;
        let mut tx = tx_at(&pool, 1_000).await;
        let buy = NewTransfer::new("t1", issued(), wallet(1), 500, "top_up");
        let a = transfer(&mut tx, &buy).await.unwrap();
        assert_eq!((a.debit_balance_after, a.credit_balance_after), (-500, 500));
        let again = transfer(&mut tx, &buy).await.unwrap();
        assert_eq!(again, a, "a retry returns the first result");
        let other = NewTransfer { amount: 501, ..buy.clone() };
        assert!(matches!(transfer(&mut tx, &other).await, Err(LedgerError::Conflict(_))));
        // The wallet cannot be overdrawn, and a refused transfer leaves nothing.
        let spend = NewTransfer::new("t2", wallet(1), wallet(2), 501, "tip");
        assert!(matches!(transfer(&mut tx, &spend).await, Err(LedgerError::ExceedsCredits(a)) if a == "u1:wallet:COIN"));
        assert!(transfer_by_id(tx.conn(), "t2").await.unwrap().is_none());
        assert_eq!(account(tx.conn(), &wallet(2)).await.unwrap().credits_posted, 0);
        let ok = NewTransfer::new("t2", wallet(1), wallet(2), 500, "tip");
        let t2 = transfer(&mut tx, &ok).await.unwrap();
        assert!(t2.timestamp > a.timestamp);
        assert_eq!(account(tx.conn(), &wallet(1)).await.unwrap().credit_balance(), 0);
        // The issuer's debit balance cannot be credited past zero.
        let back = NewTransfer::new("t3", wallet(2), issued(), 501, "clawback");
        assert!(matches!(transfer(&mut tx, &back).await, Err(LedgerError::ExceedsCredits(_))));
        for bad in [NewTransfer::new("t4", wallet(1), wallet(1), 1, "x"), NewTransfer::new("t5", issued(), wallet(1), 0, "x"), NewTransfer::new("t6", AccountRef::platform(Code::Clearing, "USD"), wallet(1), 1, "x")] {
            assert!(matches!(transfer(&mut tx, &bad).await, Err(LedgerError::Invalid(_))), "{bad:?}");
        }
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn linked_chains_are_all_or_nothing() {
        let pool = ledger_db().await;
        let mut tx = tx_at(&pool, 1_000).await;
        transfer(&mut tx, &NewTransfer::new("buy", issued(), wallet(1), 100, "top_up")).await.unwrap();
        let chain = [NewTransfer::new("a", wallet(1), wallet(2), 70, "gift"), NewTransfer::new("b", wallet(1), wallet(3), 31, "gift")];
        assert!(matches!(linked(&mut tx, &chain).await, Err(LedgerError::ExceedsCredits(_))));
        assert!(transfer_by_id(tx.conn(), "a").await.unwrap().is_none(), "the first link was undone with the second");
        assert_eq!(account(tx.conn(), &wallet(2)).await.unwrap().credits_posted, 0);
        let chain = [NewTransfer::new("a", wallet(1), wallet(2), 70, "gift"), NewTransfer::new("b", wallet(1), wallet(3), 30, "gift")];
        let done = linked(&mut tx, &chain).await.unwrap();
        assert_eq!(done.iter().map(|t| t.linked).collect::<Vec<_>>(), [true, false]);
        assert_eq!(linked(&mut tx, &chain).await.unwrap(), done, "the chain's retry");
        assert!(matches!(transfer(&mut tx, &chain[0]).await, Err(LedgerError::Conflict(_))), "a link alone is not the chain");
    }

    #[tokio::test]
    async fn holds_post_or_void_exactly_once_and_expire() {
        let pool = ledger_db().await;
        let mut tx = tx_at(&pool, 1_000).await;
        transfer(&mut tx, &NewTransfer::new("buy", issued(), wallet(1), 100, "top_up")).await.unwrap();
        let hold = NewTransfer::new("h1", wallet(1), wallet(2), 60, "subscription").pending(Some(5_000));
        transfer(&mut tx, &hold).await.unwrap();
        let w = account(tx.conn(), &wallet(1)).await.unwrap();
        assert_eq!((w.debits_pending, w.available(), w.credit_balance()), (60, 40, 100), "held, not spent");
        assert!(matches!(transfer(&mut tx, &NewTransfer::new("x", wallet(1), wallet(3), 41, "tip")).await, Err(LedgerError::ExceedsCredits(_))), "holds count against the balance");
        let p = post(&mut tx, "h1:post", "h1", Some(50)).await.unwrap();
        assert_eq!((p.amount, p.phase.as_str(), p.credit_balance_after), (50, "post", 50));
        assert_eq!(post(&mut tx, "h1:post", "h1", Some(50)).await.unwrap(), p, "the post's retry");
        assert!(matches!(post(&mut tx, "h1:post2", "h1", None).await, Err(LedgerError::AlreadyPosted(_))));
        assert!(matches!(void(&mut tx, "h1:void", "h1", "void").await, Err(LedgerError::AlreadyPosted(_))));
        let w = account(tx.conn(), &wallet(1)).await.unwrap();
        assert_eq!((w.debits_pending, w.credit_balance()), (0, 50), "10 of the hold released");

        transfer(&mut tx, &NewTransfer::new("h2", wallet(1), wallet(2), 20, "payout").pending(None)).await.unwrap();
        void(&mut tx, "h2:void", "h2", "rejected").await.unwrap();
        assert!(matches!(post(&mut tx, "h2:post", "h2", None).await, Err(LedgerError::AlreadyVoided(_))));
        assert!(matches!(post(&mut tx, "h9:post", "h9", None).await, Err(LedgerError::PendingNotFound(_))));
        transfer(&mut tx, &NewTransfer::new("h3", wallet(1), wallet(2), 20, "ticket").pending(Some(2_000))).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = tx_at(&pool, 2_000).await;
        assert!(matches!(post(&mut tx, "h3:post", "h3", None).await, Err(LedgerError::PendingExpired(_))));
        let expired = expire_due(&mut tx, 10).await.unwrap();
        assert_eq!(expired.iter().map(|t| (t.id.as_str(), t.code.as_str())).collect::<Vec<_>>(), [("h3:expired", "expired")]);
        assert!(expire_due(&mut tx, 10).await.unwrap().is_empty(), "once");
        assert_eq!(account(tx.conn(), &wallet(1)).await.unwrap().available(), 50);
        tx.commit().await.unwrap();
        let report = crate::money::check::check(&pool).await.unwrap();
        assert!(report.ok, "{report:?}");
    }
}
