//! What a user is to a host's channel: follower, subscriber, ticket holder,
//! moderator. Chat modes and stream access ask here.
//!
//! Chat asks who moderates and who subscribes on every message, and every
//! WebSocket `watch` asks who may watch, so those answers (moderator,
//! subscriber, ticket holder) are cached; every write here drops its entry.
//! (One process owns the database; several would need to tell each other.)
//!
//! Until the payment side exists, subscriptions and tickets come from the
//! host as gifts (`source = 'gift'`); the rules that read them do not care
//! where they came from.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use onair_signaling::ApiError;
use serde::Serialize;
use sqlx::SqlitePool;
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::db::DbResult;

/// Longest gift subscription, in days.
pub const MAX_GIFT_DAYS: i64 = 366;

/// A subscription as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Subscription {
    /// Subscriber.
    pub user_id: i64,
    /// Host.
    pub host_id: i64,
    /// `gift` (or, later, `purchase`).
    pub source: String,
    /// Until.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
}

/// Answers about (user, host) pairs, remembered until a write changes them.
#[derive(Default)]
struct Cache<V> {
    map: DashMap<(i64, i64), V>,
    /// Bumped by every write, so that a read that raced with one does not
    /// store what it saw before it.
    generation: AtomicU64,
}

/// More pairs than this and the cache starts over (it only saves reads).
const CACHE_MAX: usize = 100_000;

impl<V: Copy> Cache<V> {
    fn get(&self, key: (i64, i64)) -> Option<V> {
        self.map.get(&key).map(|v| *v)
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Remembers `value`, read from the database after `generation()` was `seen`.
    fn put(&self, key: (i64, i64), value: V, seen: u64) {
        if self.map.len() >= CACHE_MAX {
            self.map.clear();
        }
        self.map.insert(key, value);
        if self.generation() != seen {
            self.map.remove(&key); // a write came in between: it may be stale
        }
    }

    fn forget(&self, key: (i64, i64)) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.map.remove(&key);
    }
}

/// Membership queries.
#[derive(Clone)]
pub struct Membership {
    pool: SqlitePool,
    /// (user, host) -> moderates the channel.
    moderators: Arc<Cache<bool>>,
    /// (user, host) -> the latest subscription's end (0: none).
    subscriptions: Arc<Cache<i64>>,
    /// (user, stream) -> holds a ticket.
    tickets: Arc<Cache<bool>>,
}

impl Membership {
    /// On this pool.
    pub fn new(pool: SqlitePool) -> Self {
        Membership { pool, moderators: Default::default(), subscriptions: Default::default(), tickets: Default::default() }
    }

    /// Runs an insert or delete; true if it changed a row (false: it was
    /// already so).
    async fn one_row<'q>(&self, q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>) -> Result<bool, ApiError> {
        Ok(q.execute(&self.pool).await.db()?.rows_affected() == 1)
    }

    /// Follows `host`; false if already following.
    pub async fn follow(&self, user: i64, host: i64) -> Result<bool, ApiError> {
        let q = sqlx::query("INSERT INTO follows (follower_id, host_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING").bind(user).bind(host).bind(now_ms());
        self.one_row(q).await
    }

    /// Stops following; false if not following.
    pub async fn unfollow(&self, user: i64, host: i64) -> Result<bool, ApiError> {
        self.one_row(sqlx::query("DELETE FROM follows WHERE follower_id = $1 AND host_id = $2").bind(user).bind(host)).await
    }

    /// Since when `user` follows `host` (ms), if they do.
    pub async fn following_since(&self, user: i64, host: i64) -> Result<Option<i64>, ApiError> {
        let r: Option<(i64,)> = sqlx::query_as("SELECT created_at FROM follows WHERE follower_id = $1 AND host_id = $2")
            .bind(user)
            .bind(host)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        Ok(r.map(|r| r.0))
    }

    /// How many follow `host`.
    pub async fn follower_count(&self, host: i64) -> Result<i64, ApiError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM follows WHERE host_id = $1").bind(host).fetch_one(&self.pool).await.db()?;
        Ok(n)
    }

    /// Whether `user` has a subscription to `host` running now.
    pub async fn is_subscriber(&self, user: i64, host: i64) -> Result<bool, ApiError> {
        let key = (user, host);
        let expires_at = match self.subscriptions.get(key) {
            Some(e) => e,
            None => {
                let seen = self.subscriptions.generation();
                let r: (Option<i64>,) = sqlx::query_as("SELECT MAX(expires_at) FROM subscriptions WHERE user_id = $1 AND host_id = $2")
                    .bind(user)
                    .bind(host)
                    .fetch_one(&self.pool)
                    .await
                    .db()?;
                let e = r.0.unwrap_or(0);
                self.subscriptions.put(key, e, seen);
                e
            }
        };
        Ok(expires_at > now_ms())
    }

    /// The host gives `user` a subscription for `days`; a running one is extended.
    pub async fn gift_subscription(&self, host: i64, user: i64, days: i64) -> Result<Subscription, ApiError> {
        let now = now_ms();
        let mut tx = crate::db::begin_immediate(&self.pool).await.db()?;
        let current: Option<(i64, i64)> = sqlx::query_as("SELECT id, expires_at FROM subscriptions WHERE user_id = $1 AND host_id = $2 AND expires_at > $3 ORDER BY expires_at DESC LIMIT 1")
            .bind(user)
            .bind(host)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .db()?;
        let add = days * 24 * 3600 * 1000;
        let expires_at = match current {
            Some((id, exp)) => {
                sqlx::query("UPDATE subscriptions SET expires_at = $1 WHERE id = $2").bind(exp + add).bind(id).execute(&mut *tx).await.db()?;
                exp + add
            }
            None => {
                sqlx::query("INSERT INTO subscriptions (user_id, host_id, tier, source, started_at, expires_at) VALUES ($1, $2, 1, 'gift', $3, $4)")
                    .bind(user)
                    .bind(host)
                    .bind(now)
                    .bind(now + add)
                    .execute(&mut *tx)
                    .await
                    .db()?;
                now + add
            }
        };
        tx.commit().await.db()?;
        self.subscriptions.forget((user, host));
        Ok(Subscription { user_id: user, host_id: host, source: "gift".into(), expires_at })
    }

    /// Whether `user` holds a ticket to `stream`.
    pub async fn has_ticket(&self, user: i64, stream: i64) -> Result<bool, ApiError> {
        if let Some(t) = self.tickets.get((user, stream)) {
            return Ok(t);
        }
        let seen = self.tickets.generation();
        let r: Option<(i64,)> = sqlx::query_as("SELECT id FROM tickets WHERE user_id = $1 AND stream_id = $2").bind(user).bind(stream).fetch_optional(&self.pool).await.db()?;
        self.tickets.put((user, stream), r.is_some(), seen);
        Ok(r.is_some())
    }

    /// The host gives `user` a ticket; false if they had one.
    pub async fn gift_ticket(&self, stream: i64, user: i64) -> Result<bool, ApiError> {
        let q = sqlx::query("INSERT INTO tickets (stream_id, user_id, source, price, created_at) VALUES ($1, $2, 'gift', 0, $3) ON CONFLICT DO NOTHING").bind(stream).bind(user).bind(now_ms());
        let changed = self.one_row(q).await;
        self.tickets.forget((user, stream));
        changed
    }

    /// Whether `user` moderates `host`'s channel.
    pub async fn is_channel_moderator(&self, user: i64, host: i64) -> Result<bool, ApiError> {
        if let Some(m) = self.moderators.get((user, host)) {
            return Ok(m);
        }
        let seen = self.moderators.generation();
        let r: Option<(i64,)> = sqlx::query_as("SELECT user_id FROM channel_moderators WHERE host_id = $1 AND user_id = $2")
            .bind(host)
            .bind(user)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        self.moderators.put((user, host), r.is_some(), seen);
        Ok(r.is_some())
    }

    /// Appoints a channel moderator; false if already one.
    pub async fn add_moderator(&self, host: i64, user: i64) -> Result<bool, ApiError> {
        let q = sqlx::query("INSERT INTO channel_moderators (host_id, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING").bind(host).bind(user).bind(now_ms());
        let changed = self.one_row(q).await;
        self.moderators.forget((user, host));
        changed
    }

    /// Removes a channel moderator; false if not one.
    pub async fn remove_moderator(&self, host: i64, user: i64) -> Result<bool, ApiError> {
        let changed = self.one_row(sqlx::query("DELETE FROM channel_moderators WHERE host_id = $1 AND user_id = $2").bind(host).bind(user)).await;
        self.moderators.forget((user, host));
        changed
    }

    /// A channel's moderators (user ids).
    pub async fn moderators(&self, host: i64) -> Result<Vec<i64>, ApiError> {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT user_id FROM channel_moderators WHERE host_id = $1 ORDER BY created_at").bind(host).fetch_all(&self.pool).await.db()?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
