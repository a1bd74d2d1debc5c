//! The one writer of money: jobs in batches, each batch one `BEGIN
//! IMMEDIATE` transaction and one commit (group commit).
//!
//! SQLite takes one writer at a time, and a commit with `synchronous=FULL`
//! costs a disk sync. Rather than hundreds of requests queueing on the
//! write lock (and SQLite's busy handler sleeping between tries), money
//! writes are jobs sent to this task: it takes every job waiting (up to
//! [`MAX_BATCH`]), runs each in its own savepoint (a job that fails is
//! undone alone), commits once, and only then answers each job's caller.
//! So nothing is acknowledged before it is on disk, and throughput grows
//! with load while a lone job still commits at once.
//!
//! A job must only touch the database: while it runs, every other money
//! write waits. HTTP calls (the payment provider) happen before or after.
//!
//! The order of commits is the ledger's order: transfer timestamps
//! increase from batch to batch. [`Writer::barrier`] returns once every
//! job sent before it has committed (or failed): after it, nothing with an
//! earlier timestamp can still appear.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::http::StatusCode;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use onair_signaling::ApiError;
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::tx::Tx;

/// Most jobs in one transaction.
pub const MAX_BATCH: usize = 256;

/// The batch's time, from a clock that tests may replace.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

type Deliver = Box<dyn FnOnce(Result<(), ApiError>) + Send>;
type Job = Box<dyn for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, (bool, Deliver)> + Send>;

/// The writer's handle.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Counters for `/metrics`.
    pub stats: Arc<WriterStats>,
}

/// What the writer did.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed.
    pub batches: std::sync::atomic::AtomicU64,
    /// Jobs in them.
    pub jobs: std::sync::atomic::AtomicU64,
    /// Microseconds spent committing.
    pub commit_us: std::sync::atomic::AtomicU64,
    /// Microseconds spent waiting for SQLite's write lock (`BEGIN IMMEDIATE`).
    pub begin_us: std::sync::atomic::AtomicU64,
    /// Microseconds spent running jobs.
    pub run_us: std::sync::atomic::AtomicU64,
}

fn stopped() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the money writer could not take this now; try again with the same Idempotency-Key")
}

impl Writer {
    /// Starts the writer task over the pool, continuing the ledger's
    /// timestamps after the stored ones.
    pub async fn start(pool: SqlitePool, clock: Clock) -> Result<Writer, String> {
        let last = super::tx::stored_last_timestamp(&pool).await.map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let stats = Arc::new(WriterStats::default());
        tokio::spawn(run(pool, clock, last, rx, stats.clone()));
        Ok(Writer { jobs: tx, stats })
    }

    /// Runs `f` in the next batch; its answer comes once the batch has
    /// committed. An `Err` undoes the job's writes (only them).
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T, ApiError>> + Send + 'static,
    {
        let (done, answer) = oneshot::channel();
        let job: Job = Box::new(move |tx| {
            Box::pin(async move {
                let r = f(tx).await;
                let ok = r.is_ok();
                let deliver: Deliver = Box::new(move |commit| {
                    let _ = done.send(commit.and(r));
                });
                (ok, deliver)
            })
        });
        self.jobs.send(job).await.map_err(|_| stopped())?;
        // A job dropped unanswered (its batch could not begin, or it panicked) did nothing.
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Returns once every job sent before this call has been committed or refused.
    pub async fn barrier(&self) -> Result<(), ApiError> {
        self.run(|_| Box::pin(async { Ok(()) })).await
    }
}

async fn run(pool: SqlitePool, clock: Clock, mut last_timestamp: i64, mut rx: mpsc::Receiver<Job>, stats: Arc<WriterStats>) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let begin_started = std::time::Instant::now();
        let begun = Tx::begin(&pool, clock(), last_timestamp).await;
        stats.begin_us.fetch_add(begin_started.elapsed().as_micros() as u64, Relaxed);
        let run_started = std::time::Instant::now();
        let mut tx = match begun {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!("money: cannot begin a transaction for {} jobs: {e}", jobs.len());
                jobs.clear(); // their callers hear `busy`; nothing was done
                continue;
            }
        };
        let mut delivers = Vec::with_capacity(jobs.len());
        let mut broken: Option<ApiError> = None;
        for job in jobs.drain(..) {
            if broken.is_some() {
                continue;
            }
            if let Err(e) = tx.savepoint().await {
                broken = Some(e);
                continue;
            }
            let outcome = AssertUnwindSafe(job(&mut tx)).catch_unwind().await;
            let keep = matches!(outcome, Ok((true, _)));
            if outcome.is_err() {
                tracing::error!("money: a job panicked; its writes are undone");
            }
            if let Err(e) = tx.end_savepoint(keep).await {
                broken = Some(e);
            }
            if let Ok((_, d)) = outcome {
                delivers.push(d);
            }
        }
        last_timestamp = tx.last_timestamp();
        stats.run_us.fetch_add(run_started.elapsed().as_micros() as u64, Relaxed);
        let n = delivers.len() as u64;
        let commit_started = std::time::Instant::now();
        let committed = match broken {
            Some(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
            None => tx.commit().await.map_err(|e| {
                tracing::error!("money: commit failed: {e}");
                stopped()
            }),
        };
        if committed.is_ok() {
            stats.batches.fetch_add(1, Relaxed);
            stats.jobs.fetch_add(n, Relaxed);
            stats.commit_us.fetch_add(commit_started.elapsed().as_micros() as u64, Relaxed);
        }
        for d in delivers {
            d(committed.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::ledger::{self, AccountRef, Code, NewTransfer, COIN};
    use crate::money::testing::ledger_db;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_commit_together_and_fail_alone() {
        let pool = ledger_db().await;
        let writer = Writer::start(pool.clone(), Arc::new(crate::clock::now_ms)).await.unwrap();
        let w = |u| AccountRef::user(u, Code::Wallet);
        writer
            .run(move |tx| Box::pin(async move { Ok(ledger::transfer(tx, &NewTransfer::new("fund", AccountRef::platform(Code::Issued, COIN), w(1), 1_000, "top_up")).await?) }))
            .await
            .unwrap();
        // 1,200 tips of 1 coin race for 1,000 coins: exactly 1,000 succeed,
        // each answered only after its batch committed.
        let mut tasks = Vec::new();
        for i in 0..1_200 {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                writer.run(move |tx| Box::pin(async move { Ok(ledger::transfer(tx, &NewTransfer::new(format!("tip{i}"), w(1), w(2), 1, "tip")).await?) })).await
            }));
        }
        let mut ok = Vec::new();
        let mut refused = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(t) => ok.push(t),
                Err(e) => {
                    assert_eq!(e.code, "insufficient_funds", "{e}");
                    refused += 1;
                }
            }
        }
        assert_eq!((ok.len(), refused), (1_000, 200));
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ledger_transfers WHERE code = 'tip'").fetch_one(&pool).await.unwrap();
        assert_eq!(n, 1_000, "every acknowledged tip is stored, no refused one is");
        let mut stamps: Vec<i64> = ok.iter().map(|t| t.timestamp).collect();
        stamps.sort();
        stamps.dedup();
        assert_eq!(stamps.len(), 1_000, "timestamps are unique");
        writer.barrier().await.unwrap();
        // A panicking job is undone alone; the writer lives on.
        let r: Result<(), _> = writer
            .run(move |tx| {
                Box::pin(async move {
                    ledger::transfer(tx, &NewTransfer::new("doomed", w(2), w(3), 5, "tip")).await?;
                    panic!("a bug in a job")
                })
            })
            .await;
        assert_eq!(r.unwrap_err().code, "busy");
        assert!(ledger::transfer_by_id(&mut pool.acquire().await.unwrap(), "doomed").await.unwrap().is_none());
        let report = crate::money::check::check(&pool).await.unwrap();
        assert!(report.ok, "{report:?}");
    }
}
