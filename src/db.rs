//! The embedded database: SQLite in WAL mode under the data directory, with
//! migrations compiled into the binary and applied at start-up.
//!
//! SQL here stays portable (no SQLite-only syntax beyond what PostgreSQL also
//! accepts) so that a PostgreSQL backend can follow.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// Migrations in order; each runs once, inside a transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[(1, "stream keys", include_str!("../migrations/0001_stream_keys.sql"))];

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
        let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
        let done: Option<(i64,)> = sqlx::query_as("SELECT version FROM schema_migrations WHERE version = ?")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        if done.is_some() {
            continue;
        }
        for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(stmt).execute(&mut *tx).await.map_err(|e| format!("migration {version} ({name}): {e}"))?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
            .bind(version)
            .bind(name)
            .bind(crate::keys::unix_now())
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
