//! Stream keys: a host's secrets for publishing (OBS's "Bearer Token").
//! Only a hash is stored; the key itself is shown once, when made.

use onair_signaling::ApiError;
use serde::Serialize;
use sqlx::SqlitePool;
use utoipa::ToSchema;

use crate::accounts::sha256_hex;
use crate::clock::now_ms;
use crate::db::DbResult;

/// A key as listed (never the secret itself).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyInfo {
    /// Id.
    pub id: i64,
    /// The host it publishes for.
    pub user_id: i64,
    /// The host's name for it ("OBS at home").
    pub label: String,
    /// First characters, to recognise it.
    pub prefix: String,
    /// When it was made.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// When it last started a publish.
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<i64>,
    /// When it was revoked.
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
}

/// A key just made: the only time its secret is seen.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewKey {
    /// The key as listed.
    #[serde(flatten)]
    pub info: KeyInfo,
    /// The secret: `sk_` and 32 characters.
    pub key: String,
}

type KeyRow = (i64, i64, String, String, i64, Option<i64>, Option<i64>);
const KEY_COLS: &str = "id, user_id, label, key_prefix, created_at, last_used_at, revoked_at";

fn info_of(r: KeyRow) -> KeyInfo {
    KeyInfo { id: r.0, user_id: r.1, label: r.2, prefix: r.3, created_at: r.4, last_used_at: r.5, revoked_at: r.6 }
}

/// The stream key store.
#[derive(Clone)]
pub struct KeyStore {
    pool: SqlitePool,
}

impl KeyStore {
    /// A store on this pool.
    pub fn new(pool: SqlitePool) -> Self {
        KeyStore { pool }
    }

    /// Makes a key for a host.
    pub async fn create(&self, user_id: i64, label: &str) -> Result<NewKey, ApiError> {
        use rand::distr::{Alphanumeric, SampleString};
        let key = format!("sk_{}", Alphanumeric.sample_string(&mut rand::rng(), 32));
        let label = if label.trim().is_empty() { "default" } else { label.trim() };
        let row: KeyRow = sqlx::query_as(&format!(
            "INSERT INTO host_stream_keys (user_id, label, key_hash, key_prefix, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING {KEY_COLS}"
        ))
        .bind(user_id)
        .bind(label)
        .bind(sha256_hex(&key))
        .bind(&key[..7])
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .db()?;
        Ok(NewKey { info: info_of(row), key })
    }

    /// A host's keys, newest first.
    pub async fn list(&self, user_id: i64) -> Result<Vec<KeyInfo>, ApiError> {
        let rows: Vec<KeyRow> = sqlx::query_as(&format!("SELECT {KEY_COLS} FROM host_stream_keys WHERE user_id = $1 ORDER BY id DESC"))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .db()?;
        Ok(rows.into_iter().map(info_of).collect())
    }

    /// Revokes one of a host's keys; false if it is not theirs or already revoked.
    pub async fn revoke(&self, user_id: i64, key_id: i64) -> Result<bool, ApiError> {
        let r = sqlx::query("UPDATE host_stream_keys SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(key_id)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .db()?;
        Ok(r.rows_affected() == 1)
    }

    /// Revokes every key of a host; returns how many.
    pub async fn revoke_all(&self, user_id: i64) -> Result<u64, ApiError> {
        let r = sqlx::query("UPDATE host_stream_keys SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(user_id)
            .execute(&self.pool)
            .await
            .db()?;
        Ok(r.rows_affected())
    }

    /// Replaces a key by a new one with the same label (the old one stops
    /// working at once). `None` if the key is not the host's or is revoked.
    pub async fn rotate(&self, user_id: i64, key_id: i64) -> Result<Option<NewKey>, ApiError> {
        let label: Option<(String,)> = sqlx::query_as("SELECT label FROM host_stream_keys WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL")
            .bind(key_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        let Some((label,)) = label else { return Ok(None) };
        if !self.revoke(user_id, key_id).await? {
            return Ok(None);
        }
        self.create(user_id, &label).await.map(Some)
    }

    /// The host of a valid (known, not revoked) key; notes its use.
    pub async fn host_of(&self, key: &str) -> Result<Option<i64>, ApiError> {
        let row: Option<(i64,)> = sqlx::query_as("UPDATE host_stream_keys SET last_used_at = $1 WHERE key_hash = $2 AND revoked_at IS NULL RETURNING user_id")
            .bind(now_ms())
            .bind(sha256_hex(key.trim()))
            .fetch_optional(&self.pool)
            .await
            .db()?;
        Ok(row.map(|r| r.0))
    }

    /// The host of a valid key, without noting a use.
    pub async fn peek(&self, key: &str) -> Result<Option<i64>, ApiError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT user_id FROM host_stream_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(sha256_hex(key.trim()))
            .fetch_optional(&self.pool)
            .await
            .db()?;
        Ok(row.map(|r| r.0))
    }
}
