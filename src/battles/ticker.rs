//! Battles over time: every 100 ms the open battles (those holding their
//! hosts) are read and moved on by the server's clock: invitations expire,
//! countdowns start, battles end (winner, rewards) or abort (a host's
//! stream ended: its publisher was gone past the reconnect grace),
//! punishment phases run out and the rooms are unlinked. Changed scores
//! are pushed as `battle_score` at most once per tick: 10 a second.
//!
//! Every change is a writer job guarded by the state it expects, so a
//! tick that races an answer or a second server start does nothing twice;
//! the reward's transfer id is fixed by the battle, so even a job run
//! again after a crash pays once.

use std::sync::Weak;
use std::time::Duration;

use onair_signaling::ApiError;

use super::leaderboards::{self, Board};
use super::{load, not_found, Battle, Battles, PUNISHMENT_MS};
use crate::db::DbResult;
use crate::money::ledger::{self, AccountRef, Code, NewTransfer, COIN};
use crate::realtime::Event;

/// How often the clock is looked at (and scores pushed at most).
pub const TICK: Duration = Duration::from_millis(100);

/// The ticker task.
pub async fn run(me: Weak<Battles>) {
    // After a restart no room is linked in the media core.
    if let Some(b) = me.upgrade() {
        let r = b.money.writer.run(|tx| Box::pin(async move { sqlx::query("UPDATE battles SET linked = 0 WHERE linked = 1").execute(tx.conn()).await.db().map(|_| ()) })).await;
        if let Err(e) = r {
            tracing::error!("battles: {e}");
        }
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let Some(b) = me.upgrade() else { return };
        if let Err(e) = b.tick(b.now()).await {
            tracing::error!("battles: {e}");
        }
    }
}

/// An open battle as the ticker reads it.
struct Open {
    id: i64,
    state: String,
    expires_at: i64,
    starts_at: Option<i64>,
    ends_at: Option<i64>,
    release_at: Option<i64>,
    linked: bool,
    streams: [i64; 2],
    scores: [i64; 2],
}

type OpenRow = (i64, String, i64, Option<i64>, Option<i64>, Option<i64>, i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>);

impl Battles {
    /// One look at the clock (`now`): tests call it too.
    pub async fn tick(&self, now: i64) -> Result<(), ApiError> {
        let rows: Vec<OpenRow> = sqlx::query_as(
            "SELECT b.id, b.state, b.expires_at, b.starts_at, b.ends_at, b.release_at, b.linked, \
             MAX(CASE WHEN s.side = 0 THEN s.stream_id END), MAX(CASE WHEN s.side = 1 THEN s.stream_id END), \
             MAX(CASE WHEN s.side = 0 THEN s.score END), MAX(CASE WHEN s.side = 1 THEN s.score END) \
             FROM battles b JOIN battle_sides s ON s.battle_id = b.id WHERE s.busy = 1 \
             GROUP BY b.id, b.state, b.expires_at, b.starts_at, b.ends_at, b.release_at, b.linked",
        )
        .fetch_all(&self.pool)
        .await
        .db()?;
        let open: Vec<Open> = rows
            .into_iter()
            .map(|r| Open {
                id: r.0,
                state: r.1,
                expires_at: r.2,
                starts_at: r.3,
                ends_at: r.4,
                release_at: r.5,
                linked: r.6 != 0,
                streams: [r.7.unwrap_or(0), r.8.unwrap_or(0)],
                scores: [r.9.unwrap_or(0), r.10.unwrap_or(0)],
            })
            .collect();
        let mut active = Vec::new();
        for b in &open {
            let both_live = self.is_live(b.streams[0]).await && self.is_live(b.streams[1]).await;
            let [a, z] = b.streams;
            match b.state.as_str() {
                "invited" if now >= b.expires_at => self.expire(b.id).await?,
                "invited" if !both_live => self.abort(b.id).await?,
                "countdown" | "active" => {
                    if !both_live {
                        self.abort(b.id).await?;
                    } else if b.ends_at.is_some_and(|e| now >= e) {
                        self.end(b.id).await?;
                    } else {
                        if b.state == "countdown" && b.starts_at.is_some_and(|s| now >= s) {
                            self.activate(b.id).await?;
                        }
                        // Not linked yet (a room not live in the media core at the
                        // accept), or no longer (a host's room was made anew).
                        if !b.linked || !super::media::linked(&self.sfu, a, z) {
                            self.try_link(b.id, a, z).await;
                        }
                        active.push(b);
                    }
                }
                "invited" => {}
                // Ended: the punishment phase (or none) runs out, or a host left.
                _ if b.release_at.is_none_or(|r| now >= r) || !both_live => self.release(b.id, b.linked, a, z).await?,
                _ => {}
            }
        }
        self.push_scores(&active).await
    }

    /// `battle_score` for battles whose scores changed since the last push.
    async fn push_scores(&self, active: &[&Open]) -> Result<(), ApiError> {
        let changed: Vec<i64> = {
            let mut pushed = self.pushed.lock().unwrap_or_else(|e| e.into_inner());
            pushed.retain(|id, _| active.iter().any(|b| b.id == *id));
            active
                .iter()
                .filter(|b| {
                    let now = b.scores.to_vec();
                    let prev = pushed.insert(b.id, now.clone());
                    prev.as_ref() != Some(&now) && (prev.is_some() || now.iter().any(|s| *s != 0))
                })
                .map(|b| b.id)
                .collect()
        };
        for id in changed {
            let mut c = self.pool.acquire().await.db()?;
            let sides = super::sides(&mut c, id).await?;
            let ends_at = active.iter().find(|b| b.id == id).and_then(|b| b.ends_at);
            let ev = Event::BattleScore { battle_id: id, sides: sides.clone(), ends_at, server_time: self.now() };
            for s in &sides {
                self.hub.publish(crate::realtime::Topic::Stream(s.stream), &ev);
            }
        }
        Ok(())
    }

    async fn updated(&self, b: Option<Battle>) {
        if let Some(b) = b {
            self.publish(&b, &Event::BattleUpdated { battle: Box::new(b.clone()) }, true);
        }
    }

    async fn expire(&self, id: i64) -> Result<(), ApiError> {
        let b = self
            .money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    if !super::rules::expire_in(tx, id).await? {
                        return Ok(None);
                    }
                    let now = tx.now();
                    load(tx.conn(), id, now).await
                })
            })
            .await?;
        self.updated(b).await;
        Ok(())
    }

    async fn activate(&self, id: i64) -> Result<(), ApiError> {
        let b = self
            .money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let now = tx.now();
                    let n = sqlx::query("UPDATE battles SET state = 'active' WHERE id = $1 AND state = 'countdown' AND starts_at <= $2").bind(id).bind(now).execute(tx.conn()).await.db()?.rows_affected();
                    if n == 0 {
                        return Ok(None);
                    }
                    load(tx.conn(), id, now).await
                })
            })
            .await?;
        self.updated(b).await;
        Ok(())
    }

    /// A host's stream ended mid-battle: aborted, nobody wins, no reward.
    async fn abort(&self, id: i64) -> Result<(), ApiError> {
        let b = self
            .money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let now = tx.now();
                    let n = sqlx::query("UPDATE battles SET state = 'aborted', ended_at = $1 WHERE id = $2 AND state IN ('invited', 'countdown', 'active')").bind(now).bind(id).execute(tx.conn()).await.db()?.rows_affected();
                    if n == 0 {
                        return Ok(None);
                    }
                    let (linked,): (i64,) = sqlx::query_as("SELECT linked FROM battles WHERE id = $1").bind(id).fetch_one(tx.conn()).await.db()?;
                    sqlx::query("UPDATE battles SET linked = 0 WHERE id = $1").bind(id).execute(tx.conn()).await.db()?;
                    sqlx::query("UPDATE battle_sides SET busy = 0 WHERE battle_id = $1").bind(id).execute(tx.conn()).await.db()?;
                    Ok(load(tx.conn(), id, now).await?.map(|b| (b, linked != 0)))
                })
            })
            .await?;
        if let Some((b, linked)) = b {
            if linked {
                super::media::unlink(&self.sfu, &self.hub, b.sides[0].stream, b.sides[1].stream);
            }
            // Over, like an end: the pages take it down the same way (its state says why).
            self.publish(&b, &Event::BattleEnded { battle: Box::new(b.clone()) }, true);
        }
        Ok(())
    }

    /// The end, in a writer batch whose time is past `ends_at`: every gift
    /// committed before it has been scored, none after it will be. The
    /// winner (or a draw), the reward from the promo pool (its transfer id
    /// fixed by the battle: paid once), the winner's leaderboard win.
    pub async fn end(&self, id: i64) -> Result<(), ApiError> {
        let (coins, badge, tz) = (self.settings.reward_coins, self.settings.reward_badge.clone(), self.settings.timezone.clone());
        let ended = self
            .money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    let now = tx.now();
                    let row: Option<(String, Option<i64>, i64)> = sqlx::query_as("SELECT state, ends_at, punishment FROM battles WHERE id = $1").bind(id).fetch_optional(tx.conn()).await.db()?;
                    let (state, ends_at, punishment) = row.ok_or_else(|| not_found(id))?;
                    let Some(ends_at) = ends_at.filter(|e| now >= *e && matches!(state.as_str(), "countdown" | "active")) else { return Ok(None) };
                    let scores: Vec<(i64, i64)> = sqlx::query_as("SELECT host_id, score FROM battle_sides WHERE battle_id = $1 ORDER BY side").bind(id).fetch_all(tx.conn()).await.db()?;
                    let winner = match scores.as_slice() {
                        [(a, sa), (_, sb)] if sa > sb => Some(*a),
                        [(_, sa), (b, sb)] if sb > sa => Some(*b),
                        _ => None,
                    };
                    let reward = if winner.is_some() { coins } else { 0 };
                    let release_at = ends_at + if punishment != 0 { PUNISHMENT_MS } else { 0 };
                    sqlx::query("UPDATE battles SET state = 'ended', ended_at = $1, release_at = $2, winner_id = $3, reward_coins = $4, reward_badge = $5 WHERE id = $6")
                        .bind(now)
                        .bind(release_at)
                        .bind(winner)
                        .bind(reward)
                        .bind(winner.map(|_| badge))
                        .bind(id)
                        .execute(tx.conn())
                        .await
                        .db()?;
                    if let Some(w) = winner {
                        if reward > 0 {
                            let t = NewTransfer::new(format!("battle_{id}:reward"), AccountRef::platform(Code::PromoPool, COIN), AccountRef::user(w, Code::Promo), reward, "battle_reward")
                                .by(w)
                                .reference(format!("battle {id}"));
                            ledger::transfer(tx, &t).await?;
                        }
                        leaderboards::add(tx.conn(), Board::Hosts, w, now, &tz, 0, 0, 1).await?;
                    }
                    Ok(load(tx.conn(), id, now).await?.map(|b| (b, winner)))
                })
            })
            .await?;
        if let Some((b, winner)) = ended {
            self.publish(&b, &Event::BattleEnded { battle: Box::new(b.clone()) }, true);
            if let Some(w) = winner {
                self.money.wallet_changed(w);
            }
        }
        Ok(())
    }

    /// After the end (and the punishment phase): the hosts are free and
    /// their rooms unlinked.
    async fn release(&self, id: i64, linked: bool, a: i64, b: i64) -> Result<(), ApiError> {
        let battle = self
            .money
            .writer
            .run(move |tx| {
                Box::pin(async move {
                    sqlx::query("UPDATE battle_sides SET busy = 0 WHERE battle_id = $1").bind(id).execute(tx.conn()).await.db()?;
                    sqlx::query("UPDATE battles SET linked = 0 WHERE id = $1").bind(id).execute(tx.conn()).await.db()?;
                    let now = tx.now();
                    load(tx.conn(), id, now).await
                })
            })
            .await?;
        if linked {
            super::media::unlink(&self.sfu, &self.hub, a, b);
        }
        self.updated(battle).await;
        Ok(())
    }
}
