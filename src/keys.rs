//! Stream keys: created by the CLI (later by hosts' accounts), checked by WHIP.

use std::future::Future;
use std::pin::Pin;

use sqlx::SqlitePool;

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn hash(key: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// True for names usable in URLs: 1-64 of `[A-Za-z0-9_-]`.
pub fn valid_stream_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A key as listed (never the secret itself).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    /// Row id.
    pub id: i64,
    /// Stream it publishes to.
    pub stream: String,
    /// First characters, to recognise it.
    pub prefix: String,
    /// Creation time.
    pub created_at: i64,
    /// Revocation time.
    pub revoked_at: Option<i64>,
}

/// The stream key store over the database.
#[derive(Clone)]
pub struct KeyStore {
    pool: SqlitePool,
}

impl KeyStore {
    /// A store on this pool.
    pub fn new(pool: SqlitePool) -> Self {
        KeyStore { pool }
    }

    /// Creates a key for `stream`; returns the secret (shown once).
    pub async fn create(&self, stream: &str) -> Result<String, String> {
        if !valid_stream_name(stream) {
            return Err(format!("invalid stream name '{stream}': use 1-64 letters, digits, '-' or '_'"));
        }
        use rand::distr::{Alphanumeric, SampleString};
        let key = format!("sk_{}", Alphanumeric.sample_string(&mut rand::rng(), 32));
        sqlx::query("INSERT INTO stream_keys (stream, key_hash, key_prefix, created_at) VALUES (?, ?, ?, ?)")
            .bind(stream)
            .bind(hash(&key))
            .bind(&key[..7])
            .bind(unix_now())
            .execute(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
        Ok(key)
    }

    /// Every key, newest first.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, String> {
        let rows: Vec<(i64, String, String, i64, Option<i64>)> =
            sqlx::query_as("SELECT id, stream, key_prefix, created_at, revoked_at FROM stream_keys ORDER BY id DESC")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| e.to_string())?;
        Ok(rows.into_iter().map(|(id, stream, prefix, created_at, revoked_at)| KeyInfo { id, stream, prefix, created_at, revoked_at }).collect())
    }

    /// Revokes every key of `stream`; returns how many.
    pub async fn revoke(&self, stream: &str) -> Result<u64, String> {
        let r = sqlx::query("UPDATE stream_keys SET revoked_at = ? WHERE stream = ? AND revoked_at IS NULL")
            .bind(unix_now())
            .bind(stream)
            .execute(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
        Ok(r.rows_affected())
    }

    /// The stream of a valid (known, not revoked) key.
    pub async fn lookup(&self, key: &str) -> Result<Option<String>, String> {
        let row: Option<(String,)> = sqlx::query_as("SELECT stream FROM stream_keys WHERE key_hash = ? AND revoked_at IS NULL")
            .bind(hash(key))
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.map(|r| r.0))
    }
}

impl onair_signaling::StreamKeys for KeyStore {
    fn stream_for_key<'a>(&'a self, key: &'a str) -> Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send + 'a>> {
        Box::pin(self.lookup(key))
    }
}
