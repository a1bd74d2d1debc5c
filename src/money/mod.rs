//! Money: a coin wallet on a double-entry ledger.
//!
//! - [`ledger`]: accounts and immutable transfers (TigerBeetle's model);
//!   [`tx`]: a write transaction; [`writer`]: the one writer (group commit);
//!   [`check`]: the invariants; [`audit`]: the features against the ledger;
//!   [`idempotency`]: `Idempotency-Key` by Stripe's rules.

pub mod audit;
pub mod check;
pub mod idempotency;
pub mod ledger;
pub mod tx;
pub mod writer;

#[cfg(test)]
pub(crate) mod testing {
    use sqlx::SqlitePool;

    use super::tx::{stored_last_timestamp, Tx};

    /// A fresh migrated database.
    pub async fn ledger_db() -> SqlitePool {
        let dir = std::env::temp_dir().join(format!("onair-money-{}-{}", std::process::id(), rand::random::<u64>()));
        crate::db::open(&dir).await.unwrap()
    }

    /// A write transaction at time `now` (Unix ms).
    pub async fn tx_at(pool: &SqlitePool, now: i64) -> Tx {
        let last = stored_last_timestamp(pool).await.unwrap();
        Tx::begin(pool, now, last).await.unwrap()
    }
}
