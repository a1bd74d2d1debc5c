//! A money write transaction: `BEGIN IMMEDIATE`, the batch's time, and the
//! ledger's commit-order timestamps.
//!
//! Every money write runs inside a [`Tx`] handed out by the writer
//! ([`super::writer`]); its `now` is the time the batch began (one clock
//! reading per batch, passed in rather than read inside the logic), and
//! [`Tx::next_timestamp`] gives each transfer a unique timestamp that
//! increases in commit order, as TigerBeetle's do.

use onair_signaling::ApiError;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use crate::db::DbResult;

/// One write transaction.
pub struct Tx {
    inner: sqlx::Transaction<'static, Sqlite>,
    now: i64,
    last_timestamp: i64,
}

impl Tx {
    /// Begins (`BEGIN IMMEDIATE`) at time `now` (Unix ms); timestamps
    /// continue after `last_timestamp`.
    pub async fn begin(pool: &SqlitePool, now: i64, last_timestamp: i64) -> Result<Tx, sqlx::Error> {
        let inner = crate::db::begin_immediate(pool).await?;
        Ok(Tx { inner, now, last_timestamp })
    }

    /// The connection, for queries.
    pub fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.inner
    }

    /// The batch's time (Unix ms).
    pub fn now(&self) -> i64 {
        self.now
    }

    /// A fresh transfer timestamp (ns since the epoch): at least the batch's
    /// time, and above every timestamp handed out before.
    pub fn next_timestamp(&mut self) -> i64 {
        let t = self.now.saturating_mul(1_000_000).max(self.last_timestamp + 1);
        self.last_timestamp = t;
        t
    }

    /// The last timestamp handed out (the writer carries it to the next batch).
    pub fn last_timestamp(&self) -> i64 {
        self.last_timestamp
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }

    /// Rolls everything back.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }

    /// Opens a savepoint: what follows can be undone alone.
    pub async fn savepoint(&mut self) -> Result<(), ApiError> {
        sqlx::query("SAVEPOINT money").execute(self.conn()).await.db().map(|_| ())
    }

    /// Closes the innermost savepoint, keeping (`keep`) or undoing its work.
    pub async fn end_savepoint(&mut self, keep: bool) -> Result<(), ApiError> {
        if !keep {
            sqlx::query("ROLLBACK TO money").execute(self.conn()).await.db()?;
        }
        sqlx::query("RELEASE money").execute(self.conn()).await.db().map(|_| ())
    }
}

/// The highest transfer timestamp stored (0 for an empty ledger).
pub async fn stored_last_timestamp(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    let (t,): (Option<i64>,) = sqlx::query_as("SELECT MAX(timestamp) FROM ledger_transfers").fetch_one(pool).await?;
    Ok(t.unwrap_or(0))
}
