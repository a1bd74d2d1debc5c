//! A channel's chat rules (slow mode, subscriber/follower-only, banned
//! words) and who may not chat (bans, timeouts), cached in memory and
//! written through to the database.

use std::collections::BTreeMap;
use std::sync::Arc;

use dashmap::DashMap;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use utoipa::ToSchema;

use crate::chat::rules::{BannedWords, SLOW_MODE_RANGE, TIMEOUT_RANGE};
use crate::clock::now_ms;
use crate::db::DbResult;

/// A channel's chat rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChatSettings {
    /// The channel (host id).
    pub host_id: i64,
    /// Seconds between a user's messages; 0 is off, else 3-120.
    pub slow_mode_seconds: i64,
    /// Only subscribers (and the host's team) may chat.
    pub subscribers_only: bool,
    /// Only followers may chat, after following this many minutes (null: off).
    pub followers_only_minutes: Option<i64>,
    /// Words and phrases refused in messages.
    pub banned_words: Vec<String>,
}

/// A change of chat rules (absent fields stay as they are).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// 0 (off) or 3-120.
    pub slow_mode_seconds: Option<i64>,
    /// On or off.
    pub subscribers_only: Option<bool>,
    /// Minutes of following needed (0 = any follower); -1 turns it off.
    pub followers_only_minutes: Option<i64>,
    /// The whole list (replaces the old one); at most 500, each at most 100 characters.
    pub banned_words: Option<Vec<String>>,
}

/// The rules ready to apply.
#[derive(Debug, Clone)]
pub struct ChannelRules {
    /// As stored.
    pub settings: ChatSettings,
    /// Compiled.
    pub banned: BannedWords,
}

/// Whether a user may chat in a channel now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restriction {
    /// Banned until unbanned.
    Banned,
    /// Timed out until (ms).
    TimedOut(i64),
}

/// Settings and restrictions of every channel.
#[derive(Clone)]
pub struct Moderation {
    pool: SqlitePool,
    rules: Arc<DashMap<i64, Arc<ChannelRules>>>,
    /// (host, user) -> restriction; `None` cached too (most users have none).
    restrictions: Arc<DashMap<(i64, i64), Option<Restriction>>>,
}

impl Moderation {
    /// On this pool.
    pub fn new(pool: SqlitePool) -> Self {
        Moderation { pool, rules: Default::default(), restrictions: Default::default() }
    }

    /// A channel's rules (defaults until the host sets some).
    pub async fn rules(&self, host_id: i64) -> Result<Arc<ChannelRules>, ApiError> {
        if let Some(r) = self.rules.get(&host_id) {
            return Ok(r.clone());
        }
        let row: Option<(i64, i64, Option<i64>, String)> =
            sqlx::query_as("SELECT slow_mode_seconds, subscribers_only, followers_only_minutes, banned_words FROM chat_settings WHERE host_id = $1")
                .bind(host_id)
                .fetch_optional(&self.pool)
                .await
                .db()?;
        let (slow, subs, followers, words) = row.unwrap_or((0, 0, None, String::new()));
        let rules = Arc::new(ChannelRules {
            settings: ChatSettings {
                host_id,
                slow_mode_seconds: slow,
                subscribers_only: subs != 0,
                followers_only_minutes: followers,
                banned_words: words.lines().map(str::to_owned).filter(|w| !w.is_empty()).collect(),
            },
            banned: BannedWords::parse(&words),
        });
        self.rules.insert(host_id, rules.clone());
        Ok(rules)
    }

    /// Changes a channel's rules.
    pub async fn update(&self, host_id: i64, p: &SettingsPatch) -> Result<ChatSettings, ApiError> {
        let cur = self.rules(host_id).await?.settings.clone();
        let mut fields = BTreeMap::new();
        let slow = p.slow_mode_seconds.unwrap_or(cur.slow_mode_seconds);
        if slow != 0 && !SLOW_MODE_RANGE.contains(&slow) {
            fields.insert("slow_mode_seconds".into(), "must be 0 (off) or 3-120".into());
        }
        let followers = match p.followers_only_minutes {
            Some(-1) => None,
            Some(m) if (0..=129_600).contains(&m) => Some(m),
            Some(_) => {
                fields.insert("followers_only_minutes".into(), "must be -1 (off) or 0-129600 (90 days)".into());
                None
            }
            None => cur.followers_only_minutes,
        };
        let words = match &p.banned_words {
            Some(list) if list.len() > 500 => {
                fields.insert("banned_words".into(), "at most 500 entries".into());
                String::new()
            }
            Some(list) if list.iter().any(|w| w.chars().count() > 100) => {
                fields.insert("banned_words".into(), "each entry is at most 100 characters".into());
                String::new()
            }
            Some(list) => BannedWords::normalized(list),
            None => cur.banned_words.join("\n"),
        };
        if !fields.is_empty() {
            return Err(ApiError::validation(fields));
        }
        let subs = p.subscribers_only.unwrap_or(cur.subscribers_only);
        sqlx::query(
            "INSERT INTO chat_settings (host_id, slow_mode_seconds, subscribers_only, followers_only_minutes, banned_words, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (host_id) DO UPDATE SET slow_mode_seconds = excluded.slow_mode_seconds, subscribers_only = excluded.subscribers_only, \
             followers_only_minutes = excluded.followers_only_minutes, banned_words = excluded.banned_words, updated_at = excluded.updated_at",
        )
        .bind(host_id)
        .bind(slow)
        .bind(subs as i64)
        .bind(followers)
        .bind(&words)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .db()?;
        self.rules.remove(&host_id);
        Ok(self.rules(host_id).await?.settings.clone())
    }

    /// What stops `user` from chatting in `host`'s channel now, if anything.
    pub async fn restriction(&self, host_id: i64, user_id: i64) -> Result<Option<Restriction>, ApiError> {
        let cached = self.restrictions.get(&(host_id, user_id)).map(|r| *r);
        let r = match cached {
            Some(r) => r,
            None => {
                let row: Option<(i64, Option<i64>)> = sqlx::query_as("SELECT banned, timeout_until FROM chat_restrictions WHERE host_id = $1 AND user_id = $2")
                    .bind(host_id)
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                let r = match row {
                    Some((1, _)) => Some(Restriction::Banned),
                    Some((_, Some(until))) => Some(Restriction::TimedOut(until)),
                    _ => None,
                };
                self.restrictions.insert((host_id, user_id), r);
                r
            }
        };
        Ok(match r {
            Some(Restriction::TimedOut(until)) if until <= now_ms() => None,
            other => other,
        })
    }

    /// Times a user out for `seconds` (1 s to 2 weeks); returns until when.
    pub async fn timeout(&self, host_id: i64, user_id: i64, seconds: i64, reason: &str, actor: i64) -> Result<i64, ApiError> {
        if !TIMEOUT_RANGE.contains(&seconds) {
            return Err(ApiError::validation(BTreeMap::from([("seconds".into(), "must be 1-1209600 (two weeks)".into())])));
        }
        let until = now_ms() + seconds * 1000;
        self.restrict(host_id, user_id, false, Some(until), reason, actor).await?;
        Ok(until)
    }

    /// Bans a user from the channel's chat.
    pub async fn ban(&self, host_id: i64, user_id: i64, reason: &str, actor: i64) -> Result<(), ApiError> {
        self.restrict(host_id, user_id, true, None, reason, actor).await
    }

    async fn restrict(&self, host_id: i64, user_id: i64, banned: bool, until: Option<i64>, reason: &str, actor: i64) -> Result<(), ApiError> {
        let reason: String = reason.trim().chars().take(500).collect();
        sqlx::query(
            "INSERT INTO chat_restrictions (host_id, user_id, banned, timeout_until, reason, by_user, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (host_id, user_id) DO UPDATE SET banned = excluded.banned, timeout_until = excluded.timeout_until, \
             reason = excluded.reason, by_user = excluded.by_user, created_at = excluded.created_at",
        )
        .bind(host_id)
        .bind(user_id)
        .bind(banned as i64)
        .bind(until)
        .bind(&reason)
        .bind(actor)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .db()?;
        self.restrictions.insert((host_id, user_id), if banned { Some(Restriction::Banned) } else { until.map(Restriction::TimedOut) });
        Ok(())
    }

    /// Lifts a ban or timeout; false if there was none.
    pub async fn lift(&self, host_id: i64, user_id: i64) -> Result<bool, ApiError> {
        let r = sqlx::query("DELETE FROM chat_restrictions WHERE host_id = $1 AND user_id = $2").bind(host_id).bind(user_id).execute(&self.pool).await.db()?;
        self.restrictions.insert((host_id, user_id), None);
        Ok(r.rows_affected() == 1)
    }

    /// The channel's bans and running timeouts.
    pub async fn list(&self, host_id: i64) -> Result<Vec<RestrictionInfo>, ApiError> {
        let rows: Vec<(i64, String, i64, Option<i64>, String, i64)> = sqlx::query_as(
            "SELECT r.user_id, u.username, r.banned, r.timeout_until, r.reason, r.created_at FROM chat_restrictions r JOIN users u ON u.id = r.user_id \
             WHERE r.host_id = $1 AND (r.banned = 1 OR r.timeout_until > $2) ORDER BY r.created_at DESC",
        )
        .bind(host_id)
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await
        .db()?;
        Ok(rows
            .into_iter()
            .map(|(user_id, username, banned, until, reason, at)| RestrictionInfo { user_id, username, banned: banned == 1, timeout_until: until.filter(|_| banned == 0), reason, created_at: at })
            .collect())
    }

    /// Records what a moderator did.
    pub async fn log(&self, host_id: i64, stream_id: Option<i64>, actor: i64, target: Option<i64>, message: Option<i64>, action: &str, seconds: Option<i64>, reason: &str) -> Result<(), ApiError> {
        sqlx::query(
            "INSERT INTO moderation_log (host_id, stream_id, actor_id, target_user_id, message_id, action, seconds, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(host_id)
        .bind(stream_id)
        .bind(actor)
        .bind(target)
        .bind(message)
        .bind(action)
        .bind(seconds)
        .bind(reason)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .db()?;
        Ok(())
    }
}

/// A ban or timeout as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RestrictionInfo {
    /// Who.
    pub user_id: i64,
    /// Their username.
    pub username: String,
    /// Banned (else timed out).
    pub banned: bool,
    /// Until when (timeouts).
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub timeout_until: Option<i64>,
    /// Why.
    pub reason: String,
    /// Since.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}
