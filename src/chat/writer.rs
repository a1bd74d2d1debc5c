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

type Job = (Row, oneshot::Sender<Result<i64, String>>);

/// The writer's handle.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task.
    pub fn start(pool: SqlitePool) -> Writer {
        let (tx, rx) = mpsc::channel(16 * MAX_BATCH);
        tokio::spawn(run(pool, rx));
        Writer { tx }
    }

    /// Stores a message; returns its id once it is on disk.
    pub async fn write(&self, row: Row) -> Result<i64, ApiError> {
        let (done, wait) = oneshot::channel();
        self.tx.send((row, done)).await.map_err(|_| ApiError::internal("chat writer stopped"))?;
        match wait.await {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(e)) => Err(ApiError::internal(format!("chat write: {e}"))),
            Err(_) => Err(ApiError::internal("chat writer dropped a message")),
        }
    }
}

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
        match commit(&pool, &batch).await {
            Ok(ids) => {
                for ((_, done), id) in batch.drain(..).zip(ids) {
                    let _ = done.send(Ok(id));
                }
            }
            Err(e) => {
                tracing::error!("chat batch of {} not stored: {e}", batch.len());
                for (_, done) in batch.drain(..) {
                    let _ = done.send(Err(e.to_string()));
                }
            }
        }
    }
}

async fn commit(pool: &SqlitePool, batch: &[Job]) -> Result<Vec<i64>, sqlx::Error> {
    let mut tx = crate::db::begin_immediate(pool).await?;
    let mut ids = Vec::with_capacity(batch.len());
    // Per stream: (chat messages, reactions) added by this batch.
    let mut counts: Vec<(i64, i64, i64)> = Vec::new();
    for (row, _) in batch {
        let (id,): (i64,) = sqlx::query_as("INSERT INTO chat_messages (stream_id, user_id, kind, body, data, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
            .bind(row.stream_id)
            .bind(row.user_id)
            .bind(row.kind)
            .bind(&row.body)
            .bind(&row.data)
            .bind(row.created_at)
            .fetch_one(&mut *tx)
            .await?;
        ids.push(id);
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
    Ok(ids)
}
