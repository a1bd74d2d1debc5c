//! `Idempotency-Key`, by Stripe's rules, for every endpoint that moves money.
//!
//! A client sends a key of its choosing (a UUID) with a request; the first
//! response to that key (per user) is stored with a fingerprint of the
//! request (method, path, body) and replayed to every retry for 24 hours,
//! with `Idempotent-Replayed: true`. A retry whose request differs is
//! refused with `409 idempotency_conflict`. Keys older than 24 hours are
//! forgotten: the key then makes a new request.
//!
//! What is stored: the result of an operation that ran, success or refusal
//! (`402 insufficient_funds` is replayed too: a new attempt takes a new
//! key). What is not: a request refused before it ran (bad input, `422`),
//! and a failure of the server (`5xx`) - the operation runs in a savepoint
//! of the money writer's transaction, so a failure left nothing behind and
//! a retry may run it again. The stored response commits in the same
//! transaction as the operation's effects: there is no moment when one
//! exists without the other, whatever crashes.
//!
//! Two requests with the same key at once are serialised by the writer: the
//! second replays the first's answer.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use onair_signaling::ApiError;
use serde::Serialize;
use sqlx::{SqliteConnection, SqlitePool};

use super::ledger::idempotency_conflict;
use super::tx::Tx;
use super::writer::Writer;
use crate::db::DbResult;

/// How long a key's response is kept.
pub const TTL_MS: i64 = 24 * 3600 * 1000;
/// The request header.
pub const HEADER: &str = "idempotency-key";

/// A request under a key: whose, the key, and what was asked.
#[derive(Debug, Clone)]
pub struct Keyed {
    /// The caller.
    pub user_id: i64,
    /// Their key.
    pub key: String,
    /// SHA-256 of the method, path and body (canonical JSON).
    pub fingerprint: String,
}

impl Keyed {
    /// Checks a key (1-255 visible ASCII characters) and fingerprints the request.
    pub fn new(user_id: i64, key: &str, method: &str, path: &str, body: &serde_json::Value) -> Result<Keyed, ApiError> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_idempotency_key", "an Idempotency-Key is 1-255 visible ASCII characters (a UUID is best)"));
        }
        // serde_json's maps are sorted: the same JSON, however written, has one fingerprint.
        let canonical = format!("{method} {path}\n{body}");
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        Ok(Keyed { user_id, key: key.to_owned(), fingerprint: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect() })
    }
}

/// A response stored under a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

impl IntoResponse for Stored {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut r = (status, [(axum::http::header::CONTENT_TYPE, "application/json")], self.body).into_response();
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        r
    }
}

/// How a keyed request ended.
#[derive(Debug)]
pub enum Reply<T> {
    /// It ran now and succeeded.
    Fresh(T),
    /// It ran now and was refused (the refusal is stored).
    Refused(ApiError),
    /// It ran before: the stored response.
    Replayed(Stored),
}

/// The stored response to this key, if any (and fresh); a different
/// request under the same key is a `409 idempotency_conflict`.
pub async fn lookup(c: &mut SqliteConnection, k: &Keyed, now: i64) -> Result<Option<Stored>, ApiError> {
    let row: Option<(String, i64, String)> = sqlx::query_as("SELECT fingerprint, status, response FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2 AND created_at > $3")
        .bind(k.user_id)
        .bind(&k.key)
        .bind(now - TTL_MS)
        .fetch_optional(c)
        .await
        .db()?;
    match row {
        None => Ok(None),
        Some((fp, _, _)) if fp != k.fingerprint => Err(idempotency_conflict("this Idempotency-Key was used with another request; use a new key for a new request")),
        Some((_, status, body)) => Ok(Some(Stored { status: status as u16, body })),
    }
}

/// The fast path before any work: the stored response, read from the pool.
pub async fn replay(pool: &SqlitePool, k: &Keyed, now: i64) -> Result<Option<Stored>, ApiError> {
    lookup(&mut *pool.acquire().await.db()?, k, now).await
}

async fn store(tx: &mut Tx, k: &Keyed, status: u16, body: &str) -> Result<(), ApiError> {
    // A row still here is older than the TTL (lookup found nothing): replace it.
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, status, response, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (user_id, idem_key) DO UPDATE SET fingerprint = excluded.fingerprint, status = excluded.status, response = excluded.response, created_at = excluded.created_at",
    )
    .bind(k.user_id)
    .bind(&k.key)
    .bind(&k.fingerprint)
    .bind(status as i64)
    .bind(body)
    .bind(tx.now())
    .execute(tx.conn())
    .await
    .db()?;
    Ok(())
}

/// Inside a write transaction: replays the key's response, or runs `op`
/// (in a savepoint) and stores its outcome with `status` for a success.
pub async fn within<T, F>(tx: &mut Tx, k: &Keyed, status: StatusCode, op: F) -> Result<Reply<T>, ApiError>
where
    T: Serialize,
    F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T, ApiError>>,
{
    let now = tx.now();
    if let Some(s) = lookup(tx.conn(), k, now).await? {
        return Ok(Reply::Replayed(s));
    }
    tx.savepoint().await?;
    let r = op(tx).await;
    tx.end_savepoint(r.is_ok()).await?;
    match r {
        Ok(v) => {
            let body = serde_json::to_string(&v).map_err(ApiError::internal)?;
            store(tx, k, status.as_u16(), &body).await?;
            Ok(Reply::Fresh(v))
        }
        // Nothing happened: the client may try again with the same key.
        Err(e) if e.status.is_server_error() => Err(e),
        Err(e) => {
            store(tx, k, e.status.as_u16(), &e.body().to_string()).await?;
            Ok(Reply::Refused(e))
        }
    }
}

/// Runs `op` under the key in the money writer (see [`within`]).
pub async fn run<T, F>(writer: &Writer, k: Keyed, status: StatusCode, op: F) -> Result<Reply<T>, ApiError>
where
    T: Serialize + Send + 'static,
    F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T, ApiError>> + Send + 'static,
{
    writer.run(move |tx| Box::pin(async move { within(tx, &k, status, op).await })).await
}

/// Forgets keys older than the TTL.
pub async fn prune(writer: &Writer) -> Result<u64, ApiError> {
    writer
        .run(|tx| {
            Box::pin(async move {
                let cutoff = tx.now() - TTL_MS;
                Ok(sqlx::query("DELETE FROM idempotency_keys WHERE created_at <= $1").bind(cutoff).execute(tx.conn()).await.db()?.rows_affected())
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::money::ledger::{self, AccountRef, Code, NewTransfer, COIN};
    use crate::money::testing::ledger_db;

    fn tip(n: i64) -> impl for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<ledger::Transfer, ApiError>> + Send + 'static {
        move |tx| Box::pin(async move { Ok(ledger::transfer(tx, &NewTransfer::new(format!("tip{n}"), AccountRef::user(1, Code::Wallet), AccountRef::user(2, Code::Wallet), n, "tip")).await?) })
    }

    #[tokio::test]
    async fn stripe_rules() {
        let pool = ledger_db().await;
        let now = Arc::new(AtomicI64::new(1_000_000));
        let clock = now.clone();
        let writer = Writer::start(pool.clone(), Arc::new(move || clock.load(Ordering::SeqCst))).await.unwrap();
        writer
            .run(|tx| Box::pin(async move { Ok(ledger::transfer(tx, &NewTransfer::new("fund", AccountRef::platform(Code::Issued, COIN), AccountRef::user(1, Code::Wallet), 100, "top_up")).await?) }))
            .await
            .unwrap();
        let k = Keyed::new(1, "key-1", "POST", "/api/streams/1/tips", &json!({"coins": 30})).unwrap();
        let first = run(&writer, k.clone(), StatusCode::CREATED, tip(30)).await.unwrap();
        let Reply::Fresh(t) = first else { panic!("{first:?}") };
        // The same request again: the stored response, not a second tip.
        let Reply::Replayed(s) = run(&writer, k.clone(), StatusCode::CREATED, tip(30)).await.unwrap() else { panic!() };
        assert_eq!(s.status, 201);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&s.body).unwrap()["id"], t.id);
        assert_eq!(replay(&pool, &k, now.load(Ordering::SeqCst)).await.unwrap(), Some(s.clone()));
        // Same key, another request: conflict. The same JSON written
        // differently is the same request.
        let other = Keyed::new(1, "key-1", "POST", "/api/streams/1/tips", &json!({"coins": 31})).unwrap();
        assert_eq!(run(&writer, other, StatusCode::CREATED, tip(31)).await.unwrap_err().code, "idempotency_conflict");
        assert_eq!(Keyed::new(1, "k", "POST", "/p", &json!({"a": 1, "b": 2})).unwrap().fingerprint, Keyed::new(1, "k", "POST", "/p", &serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap()).unwrap().fingerprint);
        // Keys are per user.
        assert!(matches!(run(&writer, Keyed { user_id: 9, ..k.clone() }, StatusCode::CREATED, tip(5)).await.unwrap(), Reply::Fresh(_)));
        // A refusal is stored and replayed, even once it would succeed.
        let k2 = Keyed::new(1, "key-2", "POST", "/x", &json!({"coins": 80})).unwrap();
        let Reply::Refused(e) = run(&writer, k2.clone(), StatusCode::CREATED, tip(80)).await.unwrap() else { panic!() };
        assert_eq!(e.code, "insufficient_funds");
        let Reply::Replayed(s) = run(&writer, k2.clone(), StatusCode::CREATED, tip(1)).await.unwrap() else { panic!() };
        assert_eq!(s.status, 402);
        // A server failure is not stored: the retry runs.
        let k3 = Keyed::new(1, "key-3", "POST", "/x", &json!({})).unwrap();
        fn failing(_: &mut Tx) -> BoxFuture<'_, Result<(), ApiError>> {
            Box::pin(async { Err(ApiError::internal("disk on fire")) })
        }
        assert_eq!(run(&writer, k3.clone(), StatusCode::CREATED, failing).await.unwrap_err().code, "internal");
        assert!(matches!(run(&writer, k3, StatusCode::CREATED, tip(10)).await.unwrap(), Reply::Fresh(_)));
        // After 24 hours the key is forgotten: the same key makes a new request.
        now.fetch_add(TTL_MS + 1, Ordering::SeqCst);
        assert_eq!(prune(&writer).await.unwrap(), 4);
        let Reply::Fresh(t2) = run(&writer, k.clone(), StatusCode::CREATED, tip(40)).await.unwrap() else { panic!() };
        assert_eq!(t2.amount, 40);
        assert!(crate::money::check::check(&pool).await.unwrap().ok);
    }
}
