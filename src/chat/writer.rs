//! Chat messages to the database with group commit.
//!
//! Every message is acknowledged only after the transaction holding it has
//! committed (synchronous=FULL: on disk). One writer task takes whatever
//! messages are waiting (up to [`MAX_BATCH`]) and commits them together, so
//! the disk sees one sync per batch, not per message: throughput grows with
//! load while a lone message still goes out at once.

use onair_signaling::ApiError;
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

/// Most messages in one transaction.
pub const MAX_BATCH: usize = 512;

/// A message to store.
#[derive(Debug, Clone)]
pub struct Row {
    /// Stream.
    pub stream_id: i64,
    /// Author (none for system messages).
    pub user_id: Option<i64>,
    /// `chat`, `reaction`, `system`, `product_highlight`.
    pub kind: &'static str,
    /// Text.
    pub body: String,
    /// JSON object, if any.
    pub data: Option<String>,
    /// Unix ms.
    pub created_at: i64,
}

type Job = (Row, oneshot::Sender<Result<i64, ApiError>>);

/// The writer's handle.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task. It ends (after storing what was queued) once
    /// every handle is dropped.
    pub fn start(pool: SqlitePool) -> Writer {
        let (tx, rx) = mpsc::channel(16 * MAX_BATCH);
        tokio::spawn(run(pool, rx));
        Writer { tx }
    }

    /// Stores a message; returns its id once it is on disk.
    pub async fn write(&self, row: Row) -> Result<i64, ApiError> {
        let (done, wait) = oneshot::channel();
        self.tx.send((row, done)).await.map_err(|_| ApiError::internal("chat writer stopped"))?;
        wait.await.unwrap_or_else(|_| Err(ApiError::internal("chat writer dropped a message")))
    }

    /// Waits until every message queued before this call is on disk (or
    /// refused): the writer takes jobs in order, so an empty marker row that
    /// comes back means everything ahead of it was handled.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        let marker = Row { stream_id: FLUSH, user_id: None, kind: "", body: String::new(), data: None, created_at: 0 };
        if self.tx.send((marker, done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// The stream id of [`Writer::flush`]'s marker (never stored).
const FLUSH: i64 = i64::MIN;

async fn run(pool: SqlitePool, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (markers, rows): (Vec<Job>, Vec<Job>) = batch.drain(..).partition(|(r, _)| r.stream_id == FLUSH);
        let results = store(&pool, &rows).await;
        for ((_, done), r) in rows.into_iter().zip(results) {
            let _ = done.send(r);
        }
        for (_, done) in markers {
            let _ = done.send(Ok(0));
        }
    }
}

/// Stores a batch in one transaction. If that fails, the batch is stored
/// again with each row on its own savepoint, so that one bad row (a message
/// to a stream deleted a moment ago) fails alone and the rest are kept.
async fn store(pool: &SqlitePool, batch: &[Job]) -> Vec<Result<i64, ApiError>> {
    if batch.is_empty() {
        return Vec::new();
    }
    match commit(pool, batch, false).await {
        Ok(results) => results,
        Err(e) => {
            if batch.len() > 1 {
                tracing::warn!("chat batch of {} failed ({e}); storing its messages one by one", batch.len());
            }
            match commit(pool, batch, true).await {
                Ok(results) => results,
                Err(e) => {
                    tracing::error!("chat batch of {} not stored: {e}", batch.len());
                    batch.iter().map(|(row, _)| Err(row_error(&e, row.stream_id))).collect()
                }
            }
        }
    }
}

/// What the sender of a row that could not be stored is told.
fn row_error(e: &sqlx::Error, stream_id: i64) -> ApiError {
    match e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            ApiError::new(axum::http::StatusCode::NOT_FOUND, "stream_not_found", format!("stream {stream_id} is gone; the message was not stored"))
        }
        _ => ApiError::internal(format!("chat write: {e}")),
    }
}

/// One transaction for the batch. With `isolate`, each row is inserted
/// inside its own savepoint and a failing row is rolled back alone (its
/// result is the error); without, the first failing row fails the call.
async fn commit(pool: &SqlitePool, batch: &[Job], isolate: bool) -> Result<Vec<Result<i64, ApiError>>, sqlx::Error> {
    let mut tx = crate::db::begin_immediate(pool).await?;
    let mut results = Vec::with_capacity(batch.len());
    // Per stream: (chat messages, reactions) added by this batch.
    let mut counts: Vec<(i64, i64, i64)> = Vec::new();
    for (row, _) in batch {
        let insert = sqlx::query_as::<_, (i64,)>("INSERT INTO chat_messages (stream_id, user_id, kind, body, data, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
            .bind(row.stream_id)
            .bind(row.user_id)
            .bind(row.kind)
            .bind(&row.body)
            .bind(&row.data)
            .bind(row.created_at);
        let stored = if isolate {
            let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
            match insert.fetch_one(&mut *savepoint).await {
                Ok((id,)) => {
                    savepoint.commit().await?;
                    Ok(id)
                }
                Err(e) => {
                    savepoint.rollback().await?;
                    Err(row_error(&e, row.stream_id))
                }
            }
        } else {
            Ok(insert.fetch_one(&mut *tx).await?.0)
        };
        if stored.is_ok() {
            let (chat, react) = match row.kind {
                "chat" => (1, 0),
                "reaction" => (0, 1),
                _ => (0, 0),
            };
            match counts.iter_mut().find(|c| c.0 == row.stream_id) {
                Some(c) => {
                    c.1 += chat;
                    c.2 += react;
                }
                None => counts.push((row.stream_id, chat, react)),
            }
        }
        results.push(stored);
    }
    for (stream, chat, react) in counts {
        if chat + react > 0 {
            sqlx::query("UPDATE streams SET chat_messages = chat_messages + $1, likes = likes + $2 WHERE id = $3")
                .bind(chat)
                .bind(react)
                .bind(stream)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stream_id: i64, body: &str) -> Row {
        Row { stream_id, user_id: None, kind: "chat", body: body.into(), data: None, created_at: 1 }
    }

    #[tokio::test]
    async fn a_bad_row_fails_alone_and_the_rest_of_its_batch_is_stored() {
        let dir = std::env::temp_dir().join(format!("onair-writer-{}-{}", std::process::id(), rand::random::<u32>()));
        let pool = crate::db::open(&dir).await.unwrap();
        sqlx::query("INSERT INTO users (id, username, display_name, role, created_at) VALUES (1, 'ana', 'Ana', 'host', 0)").execute(&pool).await.unwrap();
        for id in [10, 11] {
            sqlx::query("INSERT INTO streams (id, host_id, title, state, created_at, updated_at) VALUES ($1, 1, 't', 'scheduled', 0, 0)").bind(id).execute(&pool).await.unwrap();
        }
        // Stream 11 is deleted while messages to it are still queued.
        sqlx::query("DELETE FROM streams WHERE id = 11").execute(&pool).await.unwrap();
        let writer = Writer::start(pool.clone());
        // Queued together before the writer runs (this runtime has one
        // thread): one batch of 200, every tenth message to the gone stream.
        let results = futures_util::future::join_all((0..200).map(|i| writer.write(row(if i % 10 == 3 { 11 } else { 10 }, &format!("m{i}"))))).await;
        let (ok, bad): (Vec<_>, Vec<_>) = results.into_iter().enumerate().partition(|(_, r)| r.is_ok());
        assert_eq!((ok.len(), bad.len()), (180, 20), "only the messages to the gone stream fail");
        assert!(bad.iter().all(|(i, r)| i % 10 == 3 && r.as_ref().unwrap_err().code == "stream_not_found"), "{:?}", bad.first());
        let (stored, counted): (i64, i64) = sqlx::query_as("SELECT (SELECT COUNT(*) FROM chat_messages WHERE stream_id = 10), chat_messages FROM streams WHERE id = 10").fetch_one(&pool).await.unwrap();
        assert_eq!((stored, counted), (180, 180), "the good messages are stored and counted");
        writer.flush().await;
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
