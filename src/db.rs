//! The embedded database: SQLite in WAL mode under the data directory, with
//! migrations compiled into the binary and applied at start-up.
//!
//! SQL here stays portable: `$1` placeholders, `RETURNING`, `ON CONFLICT`,
//! no SQLite-only functions, so that a PostgreSQL backend can follow (its
//! migrations will differ only in the integer primary keys).

use std::path::Path;
use std::str::FromStr;

use onair_signaling::ApiError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::clock::now_ms;

/// Migrations in order; each runs once, inside a transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "stream keys", include_str!("../migrations/0001_stream_keys.sql")),
    (2, "platform", include_str!("../migrations/0002_platform.sql")),
    (3, "hardening", include_str!("../migrations/0003_hardening.sql")),
    (4, "channels", include_str!("../migrations/0004_channels.sql")),
    (5, "ledger", include_str!("../migrations/0005_ledger.sql")),
    (6, "monetization", include_str!("../migrations/0006_monetization.sql")),
    (7, "polls and questions", include_str!("../migrations/0007_polls_questions.sql")),
    (8, "admin console and audience geography", include_str!("../migrations/0008_admin_geo.sql")),
    (9, "live shopping", include_str!("../migrations/0009_shop.sql")),
    (10, "stream filters", include_str!("../migrations/0010_stream_filters.sql")),
    (11, "co-host rooms", include_str!("../migrations/0011_rooms.sql")),
    (13, "pk battles", include_str!("../migrations/0013_battles.sql")),
];

/// Opens (creating if needed) `onair.db` in `data_dir` and migrates it.
pub async fn open(data_dir: &Path) -> Result<SqlitePool, String> {
    std::fs::create_dir_all(data_dir).map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let path = data_dir.join("onair.db");
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(|e| e.to_string())?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: an acknowledged write survives a power cut, not just a crash.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(std::time::Duration::from_secs(5));
    let pool = SqlitePoolOptions::new().max_connections(8).connect_with(opts).await.map_err(|e| format!("open {}: {e}", path.display()))?;
    migrate(&pool).await?;
    Ok(pool)
}

async fn migrate(pool: &SqlitePool) -> Result<(), String> {
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
        .execute(pool)
        .await
        .map_err(|e| e.to_string())?;
    for (version, name, sql) in MIGRATIONS {
        let mut tx = begin_immediate(pool).await.map_err(|e| e.to_string())?;
        let done: Option<(i64,)> = sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        if done.is_some() {
            continue;
        }
        for stmt in statements(sql) {
            sqlx::query(&stmt).execute(&mut *tx).await.map_err(|e| format!("migration {version} ({name}): {e}\n{stmt}"))?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(version)
            .bind(name)
            .bind(now_ms() / 1000)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The statements of a migration: `--` comments removed, split at `;`
/// (migrations hold no string literal with `;` or `--` in it).
fn statements(sql: &str) -> Vec<String> {
    let code: String = sql.lines().map(|l| l.split("--").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    code.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Starts a write transaction that takes SQLite's write lock at once
/// (`BEGIN IMMEDIATE`), waiting for it up to the busy timeout.
///
/// A plain (`DEFERRED`) transaction that reads and then writes fails with
/// `SQLITE_BUSY` the moment another connection wrote in between: SQLite
/// cannot wait there, as the read already saw an older snapshot. Every
/// transaction that may write starts here instead. (PostgreSQL's default
/// isolation waits by itself; there this is a plain `BEGIN`.)
pub async fn begin_immediate(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// A named server secret (32 random bytes), made on first use and kept.
pub async fn server_secret(pool: &SqlitePool, name: &str) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    let fresh = B64.encode(rand::random::<[u8; 32]>());
    sqlx::query("INSERT INTO server_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(&fresh)
        .execute(pool)
        .await
        .map_err(|e| e.to_string())?;
    let (value,): (String,) = sqlx::query_as("SELECT value FROM server_settings WHERE name = $1").bind(name).fetch_one(pool).await.map_err(|e| e.to_string())?;
    B64.decode(value).map_err(|e| format!("server secret {name}: {e}"))
}

/// Database errors become 500s (logged) or, for a busy database, 503s.
pub trait DbResult<T> {
    /// Maps the error.
    fn db(self) -> Result<T, ApiError>;
}

impl<T> DbResult<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, ApiError> {
        self.map_err(|e| match &e {
            sqlx::Error::PoolTimedOut => ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy", "the server is busy; try again"),
            // SQLITE_BUSY after the busy timeout: the write lock was held that long.
            sqlx::Error::Database(d) if d.code().is_some_and(|c| c == "5" || c.parse::<i64>().is_ok_and(|c| c & 0xff == 5)) => {
                tracing::warn!("database busy: {e}");
                ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy", "the server is busy; try again").retry_after(1000)
            }
            _ => ApiError::internal(format!("database: {e}")),
        })
    }
}

/// True for a unique-constraint failure.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_without_comments() {
        let s = statements("-- a; comment\nCREATE TABLE a (x INT); -- trailing; one\n\nCREATE INDEX i ON a (x)\n");
        assert_eq!(s, vec!["CREATE TABLE a (x INT)".to_owned(), "CREATE INDEX i ON a (x)".to_owned()]);
    }

    #[tokio::test]
    async fn migrates_old_stream_keys_to_hosts() {
        let dir = std::env::temp_dir().join(format!("onair-db-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        // A database as the previous release left it: one key for stream "Demo".
        {
            let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", dir.join("onair.db").display())).unwrap().create_if_missing(true);
            let pool = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
            sqlx::query("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)").execute(&pool).await.unwrap();
            for stmt in statements(MIGRATIONS[0].2) {
                sqlx::query(&stmt).execute(&pool).await.unwrap();
            }
            sqlx::query("INSERT INTO schema_migrations VALUES (1, 'stream keys', 0)").execute(&pool).await.unwrap();
            sqlx::query("INSERT INTO stream_keys (stream, key_hash, key_prefix, created_at) VALUES ('Demo', 'h1', 'sk_abcd', 5)").execute(&pool).await.unwrap();
            pool.close().await;
        }
        let pool = open(&dir).await.unwrap();
        let (user, role): (String, String) = sqlx::query_as("SELECT username, role FROM users").fetch_one(&pool).await.unwrap();
        assert_eq!((user.as_str(), role.as_str()), ("demo", "host"));
        let (hash,): (String,) = sqlx::query_as("SELECT k.key_hash FROM host_stream_keys k JOIN users u ON u.id = k.user_id WHERE u.username = 'demo'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(hash, "h1", "the old key still publishes, now as the host's");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
