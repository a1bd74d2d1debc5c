//! Challenging, answering and cancelling a battle.
//!
//! A challenge is an invitation, open [`super::INVITATION_MS`]; both hosts
//! must be live, and neither may be in another battle (invited, counting
//! down, fighting or in a punishment phase): the `battle_sides` index
//! allows one open side per host, so two challenges racing for one host
//! cannot both succeed. Accepting fixes the start (after the countdown)
//! and the end; from then on the clock decides.

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{load, not_found, Battle, Battles, Mode, Rule, COUNTDOWN_MS, DURATION_S, INVITATION_MS};
use crate::accounts::{Principal, User};
use crate::db::DbResult;
use crate::money::tx::Tx;
use crate::money::{invalid, not_allowed};
use crate::realtime::Event;
use crate::streams::State;

/// `POST /api/battles`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeInput {
    /// The host challenged (username): live now, in no other battle.
    pub opponent: String,
    /// 60-600 seconds.
    pub duration_s: i64,
    /// What scores.
    pub mode: Mode,
    /// Only this gift scores (gift modes).
    #[serde(default)]
    pub rule: Option<Rule>,
    /// A 30 s punishment phase after the end, the hosts still linked (default false).
    #[serde(default)]
    pub punishment: bool,
}

fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

/// What answering did.
pub enum Answered {
    /// Accepted or declined.
    Done(Battle),
    /// It had lapsed (now marked `expired`).
    Expired(Battle),
}

impl Battles {
    /// `who` challenges `opponent`; the opponent gets `battle_invitation`.
    pub async fn challenge(&self, who: &Principal, opponent: &User, input: ChallengeInput) -> Result<Battle, ApiError> {
        if !DURATION_S.contains(&input.duration_s) {
            return Err(invalid("duration_s", "must be 60-600 seconds"));
        }
        if opponent.id == who.id() {
            return Err(invalid("opponent", "you cannot battle yourself"));
        }
        if let Some(rule) = &input.rule {
            if input.mode == Mode::Likes {
                return Err(invalid("rule", "a gift rule needs a mode with gifts"));
            }
            let mut c = self.pool.acquire().await.db()?;
            if !crate::money::gifts::get(&mut c, &rule.gift).await?.is_some_and(|g| g.enabled) {
                return Err(invalid("rule", format!("no gift '{}'; see GET /api/gifts", rule.gift)));
            }
        }
        let mine = self.streams.live_of(who.id()).await?.ok_or_else(|| conflict("not_live", "go live before you challenge someone"))?;
        let theirs = self.streams.live_of(opponent.id).await?.ok_or_else(|| conflict("opponent_not_live", format!("{} is not live", opponent.username)))?;
        let (me, them, opp_name) = (who.id(), opponent.id, opponent.username.clone());
        let battle = self
            .money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let busy: Vec<(i64,)> = sqlx::query_as("SELECT host_id FROM battle_sides WHERE busy = 1 AND host_id IN ($1, $2)").bind(me).bind(them).fetch_all(tx.conn()).await.db()?;
                    if let Some((id,)) = busy.first() {
                        let whom = if *id == me { "you are".to_owned() } else { format!("{opp_name} is") };
                        return Err(conflict("host_busy", format!("{whom} already in a battle")));
                    }
                    let now = tx.now();
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO battles (state, mode, rule_gift, duration_s, punishment, challenger_id, opponent_id, created_at, expires_at) \
                         VALUES ('invited', $1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    )
                    .bind(input.mode.as_str())
                    .bind(input.rule.map(|r| r.gift))
                    .bind(input.duration_s)
                    .bind(input.punishment as i64)
                    .bind(me)
                    .bind(them)
                    .bind(now)
                    .bind(now + INVITATION_MS)
                    .fetch_one(tx.conn())
                    .await
                    .db()?;
                    for (side, host, stream) in [(0, me, mine.id), (1, them, theirs.id)] {
                        sqlx::query("INSERT INTO battle_sides (battle_id, side, host_id, stream_id) VALUES ($1, $2, $3, $4)").bind(id).bind(side).bind(host).bind(stream).execute(tx.conn()).await.db()?;
                    }
                    load(tx.conn(), id, now).await?.ok_or_else(|| not_found(id))
                })
            })
            .await?;
        self.publish(&battle, &Event::BattleInvitation { battle: Box::new(battle.clone()) }, true);
        Ok(battle)
    }

    /// The opponent accepts (`accept`) or declines.
    pub async fn answer(&self, who: &Principal, id: i64, accept: bool) -> Result<Answered, ApiError> {
        let me = who.id();
        let answered = self
            .money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let row: Option<(String, i64, i64, i64)> = sqlx::query_as("SELECT state, opponent_id, expires_at, duration_s FROM battles WHERE id = $1").bind(id).fetch_optional(tx.conn()).await.db()?;
                    let (state, opponent, expires_at, duration_s) = row.ok_or_else(|| not_found(id))?;
                    if opponent != me {
                        return Err(not_allowed("only the challenged host answers a challenge"));
                    }
                    if state != "invited" {
                        return Err(conflict("battle_not_pending", format!("this battle is {state}")));
                    }
                    let now = tx.now();
                    if now >= expires_at {
                        expire_in(tx, id).await?;
                        return Ok(Answered::Expired(load(tx.conn(), id, now).await?.ok_or_else(|| not_found(id))?));
                    }
                    if accept {
                        let (live,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM streams WHERE state = 'live' AND id IN (SELECT stream_id FROM battle_sides WHERE battle_id = $1)")
                            .bind(id)
                            .fetch_one(tx.conn())
                            .await
                            .db()?;
                        if live != 2 {
                            return Err(conflict("stream_not_live", "both hosts must be live to battle"));
                        }
                        let starts_at = now + COUNTDOWN_MS;
                        sqlx::query("UPDATE battles SET state = 'countdown', answered_at = $1, starts_at = $2, ends_at = $3 WHERE id = $4")
                            .bind(now)
                            .bind(starts_at)
                            .bind(starts_at + duration_s * 1000)
                            .bind(id)
                            .execute(tx.conn())
                            .await
                            .db()?;
                    } else {
                        sqlx::query("UPDATE battles SET state = 'declined', answered_at = $1, ended_at = $1 WHERE id = $2").bind(now).bind(id).execute(tx.conn()).await.db()?;
                        sqlx::query("UPDATE battle_sides SET busy = 0 WHERE battle_id = $1").bind(id).execute(tx.conn()).await.db()?;
                    }
                    Ok(Answered::Done(load(tx.conn(), id, now).await?.ok_or_else(|| not_found(id))?))
                })
            })
            .await?;
        let b = match &answered {
            Answered::Done(b) | Answered::Expired(b) => b,
        };
        self.publish(b, &Event::BattleUpdated { battle: Box::new(b.clone()) }, true);
        if b.state == "countdown" {
            self.try_link(b.id, b.sides[0].stream, b.sides[1].stream).await;
        }
        Ok(answered)
    }

    /// Cancels before the start: the challenger while it is an invitation,
    /// either host during the countdown.
    pub async fn cancel(&self, who: &Principal, id: i64) -> Result<Battle, ApiError> {
        let me = who.id();
        let (battle, was_linked) = self
            .money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let row: Option<(String, i64, i64, i64)> = sqlx::query_as("SELECT state, challenger_id, opponent_id, linked FROM battles WHERE id = $1").bind(id).fetch_optional(tx.conn()).await.db()?;
                    let (state, challenger, opponent, linked) = row.ok_or_else(|| not_found(id))?;
                    let allowed = match state.as_str() {
                        "invited" => me == challenger,
                        "countdown" => me == challenger || me == opponent,
                        _ => return Err(conflict("battle_started", format!("this battle is {state}: only an invitation or a countdown can be cancelled"))),
                    };
                    if !allowed {
                        return Err(not_allowed(if me == opponent { "decline the invitation instead" } else { "not your battle" }));
                    }
                    let now = tx.now();
                    sqlx::query("UPDATE battles SET state = 'cancelled', ended_at = $1, linked = 0 WHERE id = $2").bind(now).bind(id).execute(tx.conn()).await.db()?;
                    sqlx::query("UPDATE battle_sides SET busy = 0 WHERE battle_id = $1").bind(id).execute(tx.conn()).await.db()?;
                    Ok((load(tx.conn(), id, now).await?.ok_or_else(|| not_found(id))?, linked != 0))
                })
            })
            .await?;
        if was_linked {
            super::media::unlink(&self.sfu, &self.hub, battle.sides[0].stream, battle.sides[1].stream);
        }
        self.publish(&battle, &Event::BattleUpdated { battle: Box::new(battle.clone()) }, true);
        Ok(battle)
    }

    /// A like in `stream` by `user` (accepted by chat): 1 point in a like
    /// mode battle, by the like's commit time.
    pub async fn like(&self, stream: i64, user: i64) {
        let side: Result<Option<(i64,)>, _> = sqlx::query_as("SELECT host_id FROM battle_sides WHERE stream_id = $1 AND busy = 1").bind(stream).fetch_optional(&self.pool).await;
        let Ok(Some((host,))) = side else { return };
        let tz = self.settings.timezone.clone();
        let r = self.money.writer.run(move |tx| Box::pin(async move { super::scoring::like(tx, &tz, stream, host, user).await })).await;
        if let Err(e) = r {
            tracing::warn!("battle like in stream {stream}: {e}");
        }
    }

    /// Links the two rooms and records it; a room not live in the media
    /// core yet is tried again by the ticker.
    pub(crate) async fn try_link(&self, id: i64, a: i64, b: i64) {
        match super::media::link(&self.sfu, &self.hub, a, b) {
            Ok(()) => {
                let r = self
                    .money
                    .writer
                    .run(move |tx| Box::pin(async move { sqlx::query("UPDATE battles SET linked = 1 WHERE id = $1").bind(id).execute(tx.conn()).await.db().map(|_| ()) }))
                    .await;
                if let Err(e) = r {
                    tracing::warn!("battle {id}: link recorded: {e}");
                }
            }
            Err(e) => tracing::debug!("battle {id}: rooms {a} and {b} not linked yet: {e}"),
        }
    }

    /// Whether a stream is live now.
    pub(crate) async fn is_live(&self, stream: i64) -> bool {
        matches!(self.streams.cached(stream).await, Ok(Some(s)) if s.state == State::Live)
    }
}

/// Marks an invitation expired (its end is when it lapsed).
pub(crate) async fn expire_in(tx: &mut Tx, id: i64) -> Result<bool, ApiError> {
    let now = tx.now();
    let done = sqlx::query("UPDATE battles SET state = 'expired', ended_at = expires_at WHERE id = $1 AND state = 'invited' AND expires_at <= $2").bind(id).bind(now).execute(tx.conn()).await.db()?.rows_affected();
    if done == 1 {
        sqlx::query("UPDATE battle_sides SET busy = 0 WHERE battle_id = $1").bind(id).execute(tx.conn()).await.db()?;
    }
    Ok(done == 1)
}
