//! PK battles: two hosts, each live in their own stream, head to head for
//! 1-10 minutes; the gifts (or likes) their viewers send score for them.
//!
//! - [`rules`]: challenge, accept, decline, cancel: `invited -> countdown
//!   (3 s) -> active -> ended`, or `declined`, `cancelled`, `expired` (30 s
//!   unanswered), `aborted` (a host's stream ended: gone past the
//!   reconnect grace). One battle per host at a time (a unique index).
//! - [`scoring`]: a gift scores inside its own ledger transaction, by its
//!   commit timestamp against the battle's fixed end.
//! - [`ticker`]: time: expiries, the start, the end (winner, rewards from
//!   the promo pool under fixed transfer ids, paid once), the punishment
//!   phase, aborts, and `battle_score` pushes coalesced to 10 a second.
//! - [`leaderboards`]: counters per period bucket kept as things commit.
//! - [`media`]: the two rooms linked in the SFU.
//!
//! Every write goes through the money writer (the one writer of the
//! database's money side), so battle state and scores change in the same
//! serial order as the ledger. Time is the server's [`Clock`], which
//! tests drive.

pub mod leaderboards;
pub mod media;
pub mod rules;
pub mod scoring;
pub mod ticker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use onair_media::Sfu;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::{SqliteConnection, SqlitePool};
use utoipa::ToSchema;

use crate::clock::Clock;
use crate::config::BattleSettings;
use crate::db::DbResult;
use crate::money::Money;
use crate::realtime::{Event, Hub, Topic};
use crate::streams::StreamStore;

/// An invitation is open this long.
pub const INVITATION_MS: i64 = 30_000;
/// The countdown between the accept and the start.
pub const COUNTDOWN_MS: i64 = 3_000;
/// The punishment phase after the end (when asked for), the link kept.
pub const PUNISHMENT_MS: i64 = 30_000;
/// Shortest and longest battle (seconds).
pub const DURATION_S: std::ops::RangeInclusive<i64> = 60..=600;

/// What scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = BattleMode)]
pub enum Mode {
    /// Gifts, by their coin value.
    Gifts,
    /// Likes, one point each.
    Likes,
    /// Both.
    GiftsAndLikes,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Gifts => "gifts",
            Mode::Likes => "likes",
            Mode::GiftsAndLikes => "gifts_and_likes",
        }
    }

    fn parse(s: &str) -> Mode {
        match s {
            "likes" => Mode::Likes,
            "gifts_and_likes" => Mode::GiftsAndLikes,
            _ => Mode::Gifts,
        }
    }
}

/// A battle's extra rule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BattleRule)]
pub struct Rule {
    /// Only this gift scores (an id from `GET /api/gifts`).
    pub gift: String,
}

/// A supporter's points for one side.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TopSupporter {
    /// Username.
    pub user: String,
    /// Shown name.
    pub display_name: String,
    /// Points they scored for this side.
    pub points: i64,
}

/// One side of a battle.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = BattleSide)]
pub struct Side {
    /// The host's user id (for user topics; not shown).
    #[serde(skip)]
    pub host_id: i64,
    /// The host (username).
    pub host: String,
    /// The host's shown name.
    pub display_name: String,
    /// The host's stream (its id).
    pub stream: i64,
    /// Points so far.
    pub score: i64,
    /// The top three supporters, by points.
    pub top_supporters: Vec<TopSupporter>,
}

/// The winner's reward.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = BattleReward)]
pub struct Reward {
    /// Promotional coins from the platform (0: none configured).
    pub coins: i64,
    /// The badge.
    pub badge: Option<String>,
}

/// A battle.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Battle {
    /// Id.
    pub id: i64,
    /// `invited`, `countdown`, `active`, `ended`, `declined`, `cancelled`, `expired`, `aborted`.
    pub state: String,
    /// What scores.
    pub mode: Mode,
    /// Only this gift scores, if set.
    pub rule: Option<Rule>,
    /// Length in seconds.
    pub duration_s: i64,
    /// A 30 s punishment phase after the end.
    pub punishment: bool,
    /// Sent.
    #[serde(serialize_with = "crate::clock::json::ms", skip_deserializing)]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// The invitation lapses then.
    #[serde(serialize_with = "crate::clock::json::ms", skip_deserializing)]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    /// The start (after the 3 s countdown), fixed at the accept.
    #[serde(serialize_with = "crate::clock::json::opt_ms", skip_deserializing)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starts_at: Option<i64>,
    /// The end, fixed at the accept: a gift counts iff committed before it.
    #[serde(serialize_with = "crate::clock::json::opt_ms", skip_deserializing)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<i64>,
    /// When it ended (or was declined, cancelled, expired, aborted).
    #[serde(serialize_with = "crate::clock::json::opt_ms", skip_deserializing)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<i64>,
    /// The end of the punishment phase, when there is one.
    #[serde(serialize_with = "crate::clock::json::opt_ms", skip_deserializing)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub punishment_ends_at: Option<i64>,
    /// The challenger first, then the opponent.
    pub sides: Vec<Side>,
    /// The winner (username); null before the end and for a draw.
    pub winner: Option<String>,
    /// Ended level.
    pub draw: bool,
    /// The winner's reward.
    pub reward: Option<Reward>,
    /// The server's clock when this was read (pages count down by it).
    #[serde(serialize_with = "crate::clock::json::ms", skip_deserializing)]
    #[schema(value_type = String, format = DateTime)]
    pub server_time: i64,
}

impl Battle {
    /// Over, one way or another.
    pub fn is_final(&self) -> bool {
        !matches!(self.state.as_str(), "invited" | "countdown" | "active")
    }
}

type Row = (i64, String, String, Option<String>, i64, i64, i64, i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<String>, i64, Option<String>);

const SELECT: &str = "SELECT b.id, b.state, b.mode, b.rule_gift, b.duration_s, b.punishment, b.created_at, b.expires_at, b.starts_at, b.ends_at, b.ended_at, \
     b.release_at, w.username, b.reward_coins, b.reward_badge FROM battles b LEFT JOIN users w ON w.id = b.winner_id";

/// A battle as stored, at `now`.
pub async fn load(c: &mut SqliteConnection, id: i64, now: i64) -> Result<Option<Battle>, ApiError> {
    let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE b.id = $1")).bind(id).fetch_optional(&mut *c).await.db()?;
    let Some(r) = row else { return Ok(None) };
    let sides = sides(c, id).await?;
    Ok(Some(battle_of(r, sides, now)))
}

fn battle_of(r: Row, sides: Vec<Side>, now: i64) -> Battle {
    let (id, state, mode, rule, duration_s, punishment, created_at, expires_at, starts_at, ends_at, ended_at, release_at, winner, reward_coins, badge) = r;
    let ended = state == "ended";
    Battle {
        id,
        draw: ended && winner.is_none(),
        reward: winner.as_ref().map(|_| Reward { coins: reward_coins, badge }),
        state,
        mode: Mode::parse(&mode),
        rule: rule.map(|gift| Rule { gift }),
        duration_s,
        punishment: punishment != 0,
        created_at,
        expires_at,
        starts_at,
        ends_at,
        ended_at,
        punishment_ends_at: if punishment != 0 && ended { release_at } else { None },
        sides,
        winner,
        server_time: now,
    }
}

/// A battle's two sides with their top three supporters.
pub async fn sides(c: &mut SqliteConnection, id: i64) -> Result<Vec<Side>, ApiError> {
    let rows: Vec<(i64, i64, String, String, i64, i64)> = sqlx::query_as(
        "SELECT s.side, s.host_id, u.username, u.display_name, s.stream_id, s.score FROM battle_sides s JOIN users u ON u.id = s.host_id WHERE s.battle_id = $1 ORDER BY s.side",
    )
    .bind(id)
    .fetch_all(&mut *c)
    .await
    .db()?;
    let mut out = Vec::with_capacity(2);
    for (side, host_id, host, display_name, stream, score) in rows {
        let top: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT u.username, u.display_name, p.points FROM battle_supporters p JOIN users u ON u.id = p.user_id \
             WHERE p.battle_id = $1 AND p.side = $2 ORDER BY p.points DESC, p.user_id LIMIT 3",
        )
        .bind(id)
        .bind(side)
        .fetch_all(&mut *c)
        .await
        .db()?;
        out.push(Side { host_id, host, display_name, stream, score, top_supporters: top.into_iter().map(|(user, display_name, points)| TopSupporter { user, display_name, points }).collect() });
    }
    Ok(out)
}

/// `404 battle_not_found`.
pub fn not_found(id: i64) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "battle_not_found", format!("no battle {id}"))
}

/// The battles service.
pub struct Battles {
    pub(crate) pool: SqlitePool,
    pub(crate) hub: Arc<Hub>,
    pub(crate) money: Arc<Money>,
    pub(crate) streams: StreamStore,
    pub(crate) sfu: Sfu,
    pub(crate) clock: Clock,
    pub(crate) settings: BattleSettings,
    /// The scores last pushed per battle (a push only when they change).
    pushed: Mutex<HashMap<i64, Vec<i64>>>,
}

impl Battles {
    /// Starts the service and its ticker.
    pub fn start(pool: SqlitePool, hub: Arc<Hub>, money: Arc<Money>, streams: StreamStore, sfu: Sfu, clock: Clock, settings: BattleSettings) -> Arc<Battles> {
        let me = Arc::new(Battles { pool, hub, money, streams, sfu, clock, settings, pushed: Mutex::new(HashMap::new()) });
        tokio::spawn(ticker::run(Arc::downgrade(&me)));
        me
    }

    /// Now, by the server's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// A battle.
    pub async fn get(&self, id: i64) -> Result<Battle, ApiError> {
        let mut c = self.pool.acquire().await.db()?;
        load(&mut c, id, self.now()).await?.ok_or_else(|| not_found(id))
    }

    /// Battles in a state (newest first), at most `limit`.
    pub async fn list(&self, state: Option<&str>, limit: i64) -> Result<Vec<Battle>, ApiError> {
        const STATES: [&str; 8] = ["invited", "countdown", "active", "ended", "declined", "cancelled", "expired", "aborted"];
        if let Some(s) = state {
            if !STATES.contains(&s) {
                return Err(crate::money::invalid("state", format!("must be one of {}", STATES.join(", "))));
            }
        }
        if !(1..=100).contains(&limit) {
            return Err(crate::money::invalid("limit", "must be 1-100"));
        }
        let now = self.now();
        let mut c = self.pool.acquire().await.db()?;
        let rows: Vec<Row> = match state {
            Some(s) => sqlx::query_as(&format!("{SELECT} WHERE b.state = $1 ORDER BY b.id DESC LIMIT $2")).bind(s).bind(limit).fetch_all(&mut *c).await,
            None => sqlx::query_as(&format!("{SELECT} ORDER BY b.id DESC LIMIT $1")).bind(limit).fetch_all(&mut *c).await,
        }
        .db()?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let s = sides(&mut c, r.0).await?;
            out.push(battle_of(r, s, now));
        }
        Ok(out)
    }

    /// A host's record and latest battles.
    pub async fn of_user(&self, user: &crate::accounts::User, limit: i64) -> Result<UserBattles, ApiError> {
        if !(1..=100).contains(&limit) {
            return Err(crate::money::invalid("limit", "must be 1-100"));
        }
        let now = self.now();
        let mut c = self.pool.acquire().await.db()?;
        let (wins, losses, draws): (Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT SUM(CASE WHEN b.winner_id = $1 THEN 1 ELSE 0 END), SUM(CASE WHEN b.winner_id IS NOT NULL AND b.winner_id <> $1 THEN 1 ELSE 0 END), \
             SUM(CASE WHEN b.winner_id IS NULL THEN 1 ELSE 0 END) FROM battle_sides s JOIN battles b ON b.id = s.battle_id WHERE s.host_id = $1 AND b.state = 'ended'",
        )
        .bind(user.id)
        .fetch_one(&mut *c)
        .await
        .db()?;
        let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} WHERE b.id IN (SELECT battle_id FROM battle_sides WHERE host_id = $1) ORDER BY b.id DESC LIMIT $2"))
            .bind(user.id)
            .bind(limit)
            .fetch_all(&mut *c)
            .await
            .db()?;
        let mut battles = Vec::with_capacity(rows.len());
        for r in rows {
            let s = sides(&mut c, r.0).await?;
            battles.push(battle_of(r, s, now));
        }
        let wins = wins.unwrap_or(0);
        Ok(UserBattles { user: user.username.clone(), wins, losses: losses.unwrap_or(0), draws: draws.unwrap_or(0), badge: (wins > 0).then(|| self.settings.reward_badge.clone()), battles })
    }

    /// Tells both hosts' pages and both streams' viewers.
    pub(crate) fn publish(&self, b: &Battle, event: &Event, users: bool) {
        for s in &b.sides {
            self.hub.publish(Topic::Stream(s.stream), event);
        }
        if users {
            for s in &b.sides {
                self.hub.publish(Topic::User(s.host_id), event);
            }
        }
    }
}

/// A host's battles: `GET /api/users/{name}/battles`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserBattles {
    /// The host.
    pub user: String,
    /// Battles won.
    pub wins: i64,
    /// Battles lost.
    pub losses: i64,
    /// Battles ended level.
    pub draws: i64,
    /// The winner's badge, once they have won.
    pub badge: Option<String>,
    /// The latest battles, newest first.
    pub battles: Vec<Battle>,
}
