//! Polls during a stream.
//!
//! The host (or a moderator) opens a poll of 2-6 options, for a while or
//! until closed by hand; one poll is open per stream at a time (the database
//! says so). Viewers vote once and may change their vote while it is open.
//!
//! Exact counts under any load: votes go through one group-commit writer
//! (as chat does), and each vote is a conditional upsert that only lands if
//! the poll is still open, not past its time, and its stream not over. A
//! poll closes in one transaction that also takes its final counts, so every
//! vote is either in them or refused `poll_closed`; none is lost or counted
//! twice (the primary key is one vote per user).
//!
//! Results go to the stream's viewers as `poll_results`, at most five times
//! a second per poll however fast votes come (counted from the database at
//! that moment). Snapshots of the counts are kept (at most one a second)
//! with the poll's open and close times, so a replay can show the poll at
//! its moment. Load-test clients' votes are stored, flagged, never counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use dashmap::DashMap;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;

use crate::accounts::Principal;
use crate::chat::moderation::{Moderation, Restriction};
use crate::clock::now_ms;
use crate::db::{is_unique_violation, DbResult};
use crate::membership::Membership;
use crate::realtime::{Event, Hub, Topic};
use crate::streams::{access, Stream};

/// Options a poll has at least and at most.
pub const OPTIONS: std::ops::RangeInclusive<usize> = 2..=6;
/// Longest question, in characters.
pub const MAX_QUESTION: usize = 200;
/// Longest option, in characters.
pub const MAX_OPTION: usize = 80;
/// A timed poll runs 10 s to an hour.
pub const DURATION: std::ops::RangeInclusive<i64> = 10..=3600;
/// At most this often a poll's results go out (five a second).
pub const RESULTS_EVERY: Duration = Duration::from_millis(200);
/// At most this often a snapshot of the counts is stored.
pub const SNAPSHOT_EVERY_MS: i64 = 1000;
/// Most votes in one transaction.
const MAX_BATCH: usize = 1024;

/// Open or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PollState {
    /// Taking votes.
    Open,
    /// Over; its counts are final.
    Closed,
}

/// An option and its votes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PollOption {
    /// The option.
    pub text: String,
    /// Real users' votes for it (never load tests').
    pub votes: i64,
}

/// A poll as clients see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Poll {
    /// Id.
    pub id: i64,
    /// Stream.
    pub stream_id: i64,
    /// The question.
    pub question: String,
    /// Options with their votes, in order (a vote names one by its index).
    pub options: Vec<PollOption>,
    /// Open or closed.
    pub state: PollState,
    /// Only the host's subscribers may vote.
    pub subscribers_only: bool,
    /// How long it runs, if timed.
    pub duration_s: Option<i64>,
    /// When it opened.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: i64,
    /// When it closes by itself (timed polls).
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closes_at: Option<i64>,
    /// When it closed.
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<i64>,
    /// `host` (by hand), `timer` or `stream_ended`.
    pub close_reason: Option<String>,
    /// Votes in all.
    pub total_votes: i64,
    /// The caller's vote (an option index), when asked with a login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_vote: Option<i64>,
}

/// The counts at a moment (a replay shows the poll as it was).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PollSnapshot {
    /// When.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    /// Votes per option.
    pub votes: Vec<i64>,
}

/// A poll with its timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PollTimeline {
    /// The poll.
    #[serde(flatten)]
    pub poll: Poll,
    /// Seconds into the stream it opened (from its first media); null if
    /// it opened before the stream went live.
    pub offset_seconds: Option<i64>,
    /// Its counts over time, oldest first (the last one is the final count
    /// of a closed poll).
    pub snapshots: Vec<PollSnapshot>,
}

/// What opening a poll takes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPoll {
    /// 1-200 characters.
    pub question: String,
    /// 2-6 different options of 1-80 characters.
    pub options: Vec<String>,
    /// Close by itself after this many seconds (10-3600); without it, the
    /// poll runs until closed by hand or the stream ends.
    #[serde(default)]
    pub duration_s: Option<i64>,
    /// Only the host's subscribers may vote (default false).
    #[serde(default)]
    pub subscribers_only: bool,
}

/// A vote.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteInput {
    /// The option's index (0 for the first).
    pub option: i64,
}

/// A vote taken.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VoteTaken {
    /// Poll.
    pub poll_id: i64,
    /// The option voted for now.
    pub option: i64,
    /// The option voted for before (a changed vote), if any.
    pub previous: Option<i64>,
    /// Whether it counts: load-test clients' votes are kept but never counted.
    pub counted: bool,
}

/// What a vote write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteOutcome {
    /// Stored; the previous option, if the user had voted.
    Stored(Option<i64>),
    /// The poll closed first.
    Closed,
}

#[derive(Debug, Clone)]
struct OpenPoll {
    stream_id: i64,
    host_id: i64,
    options: usize,
    closes_at: Option<i64>,
    subscribers_only: bool,
}

struct VoteJob {
    poll_id: i64,
    user_id: i64,
    option: i64,
    load_test: bool,
    at: i64,
    done: oneshot::Sender<Result<VoteOutcome, String>>,
}

/// The polls service.
#[derive(Clone)]
pub struct Polls {
    pool: SqlitePool,
    hub: Arc<Hub>,
    membership: Membership,
    moderation: Moderation,
    /// Open polls (few: one per live stream at most).
    open: Arc<DashMap<i64, OpenPoll>>,
    /// Polls with votes since their last `poll_results`.
    dirty: Arc<Mutex<HashSet<i64>>>,
    /// When each poll's last snapshot was stored.
    snapshot_at: Arc<DashMap<i64, i64>>,
    /// Counts pushed to viewers and not stored yet.
    unsaved: Arc<Mutex<HashMap<i64, Vec<i64>>>>,
    votes: mpsc::Sender<VoteJob>,
}

fn conflict(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, msg)
}

fn poll_not_found(id: i64) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "poll_not_found", format!("no poll {id} in this stream"))
}

type PollRow = (i64, i64, String, String, i64, Option<i64>, String, i64, Option<i64>, Option<i64>, Option<String>, Option<String>);
const POLL_COLS: &str = "id, stream_id, question, options, subscribers_only, duration_s, state, opened_at, closes_at, closed_at, close_reason, results";

impl Polls {
    /// Loads the open polls and starts the vote writer and the results timer.
    pub async fn start(pool: SqlitePool, hub: Arc<Hub>, membership: Membership, moderation: Moderation) -> Result<Polls, String> {
        let rows: Vec<(i64, i64, i64, String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT p.id, p.stream_id, s.host_id, p.options, p.closes_at, p.subscribers_only FROM polls p JOIN streams s ON s.id = p.stream_id WHERE p.state = 'open'",
        )
        .fetch_all(&pool)
        .await
        .map_err(|e| e.to_string())?;
        let open = DashMap::new();
        for (id, stream_id, host_id, options, closes_at, subs) in rows {
            let n = serde_json::from_str::<Vec<String>>(&options).map(|o| o.len()).unwrap_or(0);
            open.insert(id, OpenPoll { stream_id, host_id, options: n, closes_at, subscribers_only: subs != 0 });
        }
        let (tx, rx) = mpsc::channel(16 * MAX_BATCH);
        tokio::spawn(write_votes(pool.clone(), rx));
        let polls = Polls { pool, hub, membership, moderation, open: Arc::new(open), dirty: Default::default(), snapshot_at: Default::default(), unsaved: Default::default(), votes: tx };
        let p = polls.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RESULTS_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0u64;
            loop {
                tick.tick().await;
                n += 1;
                if let Err(e) = p.tick(now_ms(), n.is_multiple_of(10)).await {
                    tracing::error!("polls: {e}");
                }
            }
        });
        Ok(polls)
    }

    /// Opens a poll in a stream (its host, moderators, staff).
    pub async fn open(&self, stream: &Stream, who: &Principal, input: NewPoll) -> Result<Poll, ApiError> {
        if !access::can_moderate(&self.membership, stream.host.id, &who.user).await? {
            return Err(ApiError::forbidden("only the host and moderators open polls"));
        }
        if stream.is_over() {
            return Err(conflict("stream_over", format!("stream {} is over", stream.id)));
        }
        let (question, options) = check_poll(&input)?;
        let now = now_ms();
        let closes_at = input.duration_s.map(|d| now + d * 1000);
        let r = sqlx::query_as::<_, PollRow>(&format!(
            "INSERT INTO polls (stream_id, created_by, question, options, subscribers_only, duration_s, state, opened_at, closes_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8) RETURNING {POLL_COLS}"
        ))
        .bind(stream.id)
        .bind(who.id())
        .bind(&question)
        .bind(serde_json::to_string(&options).unwrap_or_default())
        .bind(input.subscribers_only as i64)
        .bind(input.duration_s)
        .bind(now)
        .bind(closes_at)
        .fetch_one(&self.pool)
        .await;
        let row = match r {
            Ok(row) => row,
            Err(e) if is_unique_violation(&e) => return Err(conflict("poll_open", "this stream already has an open poll; close it first")),
            Err(e) => return Err(ApiError::internal(format!("database: {e}"))),
        };
        let poll = poll_of(row, &BTreeMap::new());
        self.open.insert(poll.id, OpenPoll { stream_id: stream.id, host_id: stream.host.id, options: options.len(), closes_at, subscribers_only: input.subscribers_only });
        self.snapshot_at.insert(poll.id, now);
        self.store_snapshot(poll.id, now, &vec![0; options.len()]).await?;
        self.hub.publish(Topic::Stream(stream.id), &Event::PollOpened { poll: Box::new(poll.clone()) });
        Ok(poll)
    }

    /// `who` votes in a poll of `stream` (or changes their vote).
    pub async fn vote(&self, stream: &Stream, poll_id: i64, who: &Principal, option: i64, load_test: bool) -> Result<VoteTaken, ApiError> {
        let now = now_ms();
        let Some(p) = self.open.get(&poll_id).map(|p| p.clone()) else {
            return Err(match self.stream_of(poll_id).await? {
                Some(s) if s == stream.id => conflict("poll_closed", "this poll is closed"),
                _ => poll_not_found(poll_id),
            });
        };
        if p.stream_id != stream.id {
            return Err(poll_not_found(poll_id));
        }
        if p.closes_at.is_some_and(|t| now >= t) || stream.is_over() {
            return Err(conflict("poll_closed", "this poll is closed"));
        }
        if option < 0 || option as usize >= p.options {
            return Err(ApiError::validation(BTreeMap::from([("option".to_owned(), format!("must be an option's index, 0-{}", p.options - 1))])));
        }
        let team = access::can_moderate(&self.membership, p.host_id, &who.user).await?;
        if !team {
            access::check_watch(&self.membership, stream, Some(who)).await?;
            if matches!(self.moderation.restriction(p.host_id, who.id()).await?, Some(Restriction::Banned)) {
                return Err(ApiError::new(StatusCode::FORBIDDEN, "banned", "you are banned from this channel"));
            }
            if p.subscribers_only && !self.membership.is_subscriber(who.id(), p.host_id).await? {
                return Err(ApiError::new(StatusCode::FORBIDDEN, "subscribers_only", format!("this poll is for {}'s subscribers", stream.host.display_name)));
            }
        }
        let (done, wait) = oneshot::channel();
        let job = VoteJob { poll_id, user_id: who.id(), option, load_test, at: now, done };
        self.votes.send(job).await.map_err(|_| ApiError::internal("vote writer stopped"))?;
        let outcome = match wait.await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Err(ApiError::internal(format!("vote: {e}"))),
            Err(_) => return Err(ApiError::internal("vote writer dropped a vote")),
        };
        match outcome {
            VoteOutcome::Closed => Err(conflict("poll_closed", "this poll is closed")),
            VoteOutcome::Stored(previous) => {
                if !load_test && previous != Some(option) {
                    self.dirty.lock().unwrap_or_else(|e| e.into_inner()).insert(poll_id);
                }
                Ok(VoteTaken { poll_id, option, previous, counted: !load_test })
            }
        }
    }

    /// Closes a poll by hand (its host, moderators, staff).
    pub async fn close_by(&self, stream: &Stream, poll_id: i64, who: &Principal) -> Result<Poll, ApiError> {
        if !access::can_moderate(&self.membership, stream.host.id, &who.user).await? {
            return Err(ApiError::forbidden("only the host and moderators close polls"));
        }
        match self.stream_of(poll_id).await? {
            Some(s) if s == stream.id => {}
            _ => return Err(poll_not_found(poll_id)),
        }
        self.close(poll_id, "host", now_ms()).await?.ok_or_else(|| conflict("poll_closed", "this poll is already closed"))
    }

    /// Closes a poll at `at` (if it is open): its final counts are taken in
    /// the same transaction, so no vote is both refused and counted.
    async fn close(&self, poll_id: i64, reason: &str, at: i64) -> Result<Option<Poll>, ApiError> {
        let mut tx = crate::db::begin_immediate(&self.pool).await.db()?;
        let r = sqlx::query("UPDATE polls SET state = 'closed', closed_at = $1, close_reason = $2 WHERE id = $3 AND state = 'open'")
            .bind(at)
            .bind(reason)
            .bind(poll_id)
            .execute(&mut *tx)
            .await
            .db()?;
        if r.rows_affected() == 0 {
            tx.rollback().await.db()?;
            self.open.remove(&poll_id);
            return Ok(None);
        }
        let counts = counts(&mut tx, poll_id).await?;
        let row: PollRow = sqlx::query_as(&format!("SELECT {POLL_COLS} FROM polls WHERE id = $1")).bind(poll_id).fetch_one(&mut *tx).await.db()?;
        let n = serde_json::from_str::<Vec<String>>(&row.3).map(|o| o.len()).unwrap_or(0);
        let votes: Vec<i64> = (0..n as i64).map(|i| counts.get(&i).copied().unwrap_or(0)).collect();
        sqlx::query("UPDATE polls SET results = $1 WHERE id = $2").bind(serde_json::to_string(&votes).unwrap_or_default()).bind(poll_id).execute(&mut *tx).await.db()?;
        sqlx::query("INSERT INTO poll_snapshots (poll_id, at, votes) VALUES ($1, $2, $3)")
            .bind(poll_id)
            .bind(at)
            .bind(serde_json::to_string(&votes).unwrap_or_default())
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()?;
        self.open.remove(&poll_id);
        self.snapshot_at.remove(&poll_id);
        self.dirty.lock().unwrap_or_else(|e| e.into_inner()).remove(&poll_id);
        self.unsaved.lock().unwrap_or_else(|e| e.into_inner()).remove(&poll_id);
        let mut row = row;
        row.11 = Some(serde_json::to_string(&votes).unwrap_or_default());
        let poll = poll_of(row, &counts);
        self.hub.publish(Topic::Stream(poll.stream_id), &Event::PollClosed { poll: Box::new(poll.clone()) });
        Ok(Some(poll))
    }

    /// The results timer: pushes the counts of polls with new votes (at most
    /// every [`RESULTS_EVERY`]), closes timed polls whose time is up and,
    /// with `sweep`, polls whose stream is over.
    async fn tick(&self, now: i64, sweep: bool) -> Result<(), ApiError> {
        let due: Vec<(i64, i64)> = self.open.iter().filter_map(|e| e.closes_at.filter(|t| *t <= now).map(|t| (*e.key(), t))).collect();
        for (id, at) in due {
            self.close(id, "timer", at).await?;
        }
        if sweep {
            let over: Vec<(i64, Option<i64>)> = sqlx::query_as(
                "SELECT p.id, s.ended_at FROM polls p JOIN streams s ON s.id = p.stream_id WHERE p.state = 'open' AND s.state NOT IN ('scheduled', 'live')",
            )
            .fetch_all(&self.pool)
            .await
            .db()?;
            for (id, ended) in over {
                self.close(id, "stream_ended", ended.unwrap_or(now).min(now)).await?;
            }
        }
        let dirty: Vec<i64> = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner())).into_iter().collect();
        for id in dirty {
            if !self.open.contains_key(&id) {
                continue;
            }
            let Some(poll) = self.get(id, None).await? else { continue };
            if poll.state != PollState::Open {
                continue;
            }
            self.hub.publish(Topic::Stream(poll.stream_id), &Event::PollResults { poll: Box::new(poll.clone()) });
            self.unsaved.lock().unwrap_or_else(|e| e.into_inner()).insert(id, poll.options.iter().map(|o| o.votes).collect());
        }
        // Store what viewers were shown, at most once a second per poll.
        let due: Vec<(i64, Vec<i64>)> = {
            let mut unsaved = self.unsaved.lock().unwrap_or_else(|e| e.into_inner());
            let ready: Vec<i64> = unsaved.keys().copied().filter(|id| now - self.snapshot_at.get(id).map(|t| *t).unwrap_or(0) >= SNAPSHOT_EVERY_MS).collect();
            ready.into_iter().filter_map(|id| unsaved.remove(&id).map(|v| (id, v))).collect()
        };
        for (id, votes) in due {
            if self.open.contains_key(&id) {
                self.snapshot_at.insert(id, now);
                self.store_snapshot(id, now, &votes).await?;
            }
        }
        Ok(())
    }

    async fn store_snapshot(&self, poll_id: i64, at: i64, votes: &[i64]) -> Result<(), ApiError> {
        sqlx::query("INSERT INTO poll_snapshots (poll_id, at, votes) VALUES ($1, $2, $3)")
            .bind(poll_id)
            .bind(at)
            .bind(serde_json::to_string(votes).unwrap_or_default())
            .execute(&self.pool)
            .await
            .db()?;
        Ok(())
    }

    async fn stream_of(&self, poll_id: i64) -> Result<Option<i64>, ApiError> {
        let r: Option<(i64,)> = sqlx::query_as("SELECT stream_id FROM polls WHERE id = $1").bind(poll_id).fetch_optional(&self.pool).await.db()?;
        Ok(r.map(|r| r.0))
    }

    /// A poll with its counts now (final ones once closed), and `viewer`'s vote.
    pub async fn get(&self, poll_id: i64, viewer: Option<i64>) -> Result<Option<Poll>, ApiError> {
        let row: Option<PollRow> = sqlx::query_as(&format!("SELECT {POLL_COLS} FROM polls WHERE id = $1")).bind(poll_id).fetch_optional(&self.pool).await.db()?;
        let Some(row) = row else { return Ok(None) };
        let counts = if row.11.is_some() { BTreeMap::new() } else { counts(&mut *self.pool.acquire().await.db()?, poll_id).await? };
        let mut poll = poll_of(row, &counts);
        if let Some(u) = viewer {
            poll.my_vote = self.my_votes(&[poll_id], u).await?.get(&poll_id).copied();
        }
        Ok(Some(poll))
    }

    /// A stream's polls, oldest first, with `viewer`'s votes.
    pub async fn list(&self, stream_id: i64, viewer: Option<i64>) -> Result<Vec<Poll>, ApiError> {
        let rows: Vec<PollRow> = sqlx::query_as(&format!("SELECT {POLL_COLS} FROM polls WHERE stream_id = $1 ORDER BY id")).bind(stream_id).fetch_all(&self.pool).await.db()?;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let mine = match viewer {
            Some(u) => self.my_votes(&ids, u).await?,
            None => BTreeMap::new(),
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.0;
            let counts = if row.11.is_some() { BTreeMap::new() } else { counts(&mut *self.pool.acquire().await.db()?, id).await? };
            let mut poll = poll_of(row, &counts);
            poll.my_vote = mine.get(&id).copied();
            out.push(poll);
        }
        Ok(out)
    }

    /// A poll with its snapshots, placed in its stream's timeline.
    pub async fn timeline(&self, stream: &Stream, poll_id: i64) -> Result<PollTimeline, ApiError> {
        let poll = self.get(poll_id, None).await?.filter(|p| p.stream_id == stream.id).ok_or_else(|| poll_not_found(poll_id))?;
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT at, votes FROM poll_snapshots WHERE poll_id = $1 ORDER BY at, id").bind(poll_id).fetch_all(&self.pool).await.db()?;
        let snapshots = rows.into_iter().map(|(at, v)| PollSnapshot { at, votes: serde_json::from_str(&v).unwrap_or_default() }).collect();
        let offset_seconds = stream.live_since.map(|t| (poll.opened_at - t) / 1000).filter(|s| *s >= 0);
        Ok(PollTimeline { poll, offset_seconds, snapshots })
    }

    async fn my_votes(&self, polls: &[i64], user: i64) -> Result<BTreeMap<i64, i64>, ApiError> {
        if polls.is_empty() {
            return Ok(BTreeMap::new());
        }
        let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT poll_id, option_idx FROM poll_votes WHERE user_id = $1 AND poll_id >= $2 AND poll_id <= $3")
            .bind(user)
            .bind(polls.iter().min().copied().unwrap_or(0))
            .bind(polls.iter().max().copied().unwrap_or(0))
            .fetch_all(&self.pool)
            .await
            .db()?;
        Ok(rows.into_iter().filter(|(p, _)| polls.contains(p)).collect())
    }
}

async fn counts(conn: &mut sqlx::SqliteConnection, poll_id: i64) -> Result<BTreeMap<i64, i64>, ApiError> {
    let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT option_idx, COUNT(*) FROM poll_votes WHERE poll_id = $1 AND load_test = 0 GROUP BY option_idx")
        .bind(poll_id)
        .fetch_all(conn)
        .await
        .db()?;
    Ok(rows.into_iter().collect())
}

/// A poll from its row; `counts` for an open one (a closed one has its final results).
fn poll_of(r: PollRow, counts: &BTreeMap<i64, i64>) -> Poll {
    let texts: Vec<String> = serde_json::from_str(&r.3).unwrap_or_default();
    let finals: Option<Vec<i64>> = r.11.as_deref().and_then(|v| serde_json::from_str(v).ok());
    let options: Vec<PollOption> = texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let votes = match &finals {
                Some(f) => f.get(i).copied().unwrap_or(0),
                None => counts.get(&(i as i64)).copied().unwrap_or(0),
            };
            PollOption { text, votes }
        })
        .collect();
    let total_votes = options.iter().map(|o| o.votes).sum();
    Poll {
        id: r.0,
        stream_id: r.1,
        question: r.2,
        options,
        subscribers_only: r.4 != 0,
        duration_s: r.5,
        state: if r.6 == "open" { PollState::Open } else { PollState::Closed },
        opened_at: r.7,
        closes_at: r.8,
        closed_at: r.9,
        close_reason: r.10,
        total_votes,
        my_vote: None,
    }
}

/// Trims and checks a new poll: the question, 2-6 different options, the duration.
pub fn check_poll(input: &NewPoll) -> Result<(String, Vec<String>), ApiError> {
    let mut fields = BTreeMap::new();
    let question = input.question.trim().to_owned();
    let qn = question.chars().count();
    if qn == 0 || qn > MAX_QUESTION {
        fields.insert("question".to_owned(), format!("must be 1-{MAX_QUESTION} characters"));
    }
    let options: Vec<String> = input.options.iter().map(|o| o.trim().to_owned()).collect();
    if !OPTIONS.contains(&options.len()) {
        fields.insert("options".to_owned(), format!("must be {}-{} options", OPTIONS.start(), OPTIONS.end()));
    } else {
        for (i, o) in options.iter().enumerate() {
            let n = o.chars().count();
            if n == 0 || n > MAX_OPTION {
                fields.insert(format!("options[{i}]"), format!("must be 1-{MAX_OPTION} characters"));
            } else if options[..i].iter().any(|p| p.to_lowercase() == o.to_lowercase()) {
                fields.insert(format!("options[{i}]"), "repeats another option".to_owned());
            }
        }
    }
    if input.duration_s.is_some_and(|d| !DURATION.contains(&d)) {
        fields.insert("duration_s".to_owned(), format!("must be {}-{} seconds", DURATION.start(), DURATION.end()));
    }
    if fields.is_empty() {
        Ok((question, options))
    } else {
        Err(ApiError::validation(fields))
    }
}

/// The vote writer: takes whatever votes are waiting and commits them in
/// one transaction; each is answered once it is on disk.
async fn write_votes(pool: SqlitePool, mut rx: mpsc::Receiver<VoteJob>) {
    let mut batch: Vec<VoteJob> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match commit_votes(&pool, &batch).await {
            Ok(outcomes) => {
                for (job, o) in batch.drain(..).zip(outcomes) {
                    let _ = job.done.send(Ok(o));
                }
            }
            Err(e) => {
                tracing::error!("vote batch of {} not stored: {e}", batch.len());
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(e.to_string()));
                }
            }
        }
    }
}

async fn commit_votes(pool: &SqlitePool, batch: &[VoteJob]) -> Result<Vec<VoteOutcome>, sqlx::Error> {
    let mut tx = crate::db::begin_immediate(pool).await?;
    let mut out = Vec::with_capacity(batch.len());
    for v in batch {
        let before: Option<(i64,)> = sqlx::query_as("SELECT option_idx FROM poll_votes WHERE poll_id = $1 AND user_id = $2").bind(v.poll_id).bind(v.user_id).fetch_optional(&mut *tx).await?;
        // Lands only while the poll is open, before its time, in a stream not over.
        let r = sqlx::query(
            "INSERT INTO poll_votes (poll_id, user_id, option_idx, load_test, voted_at, updated_at) \
             SELECT $1, $2, $3, $4, $5, $5 WHERE EXISTS (SELECT 1 FROM polls p JOIN streams s ON s.id = p.stream_id \
                 WHERE p.id = $1 AND p.state = 'open' AND (p.closes_at IS NULL OR p.closes_at > $5) AND s.state IN ('scheduled', 'live')) \
             ON CONFLICT (poll_id, user_id) DO UPDATE SET option_idx = excluded.option_idx, load_test = excluded.load_test, updated_at = excluded.updated_at",
        )
        .bind(v.poll_id)
        .bind(v.user_id)
        .bind(v.option)
        .bind(v.load_test as i64)
        .bind(v.at)
        .execute(&mut *tx)
        .await?;
        out.push(if r.rows_affected() == 0 { VoteOutcome::Closed } else { VoteOutcome::Stored(before.map(|b| b.0)) });
    }
    tx.commit().await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(q: &str, opts: &[&str], d: Option<i64>) -> NewPoll {
        NewPoll { question: q.into(), options: opts.iter().map(|s| s.to_string()).collect(), duration_s: d, subscribers_only: false }
    }

    #[test]
    fn polls_are_checked() {
        let (q, o) = check_poll(&new("  Best pasta? ", &[" Carbonara", "Amatriciana "], Some(60))).unwrap();
        assert_eq!((q.as_str(), o), ("Best pasta?", vec!["Carbonara".to_owned(), "Amatriciana".to_owned()]));
        let e = check_poll(&new("", &["a"], Some(5))).unwrap_err();
        assert_eq!(e.fields.keys().collect::<Vec<_>>(), ["duration_s", "options", "question"]);
        let e = check_poll(&new("q", &["Yes", "yes ", ""], None)).unwrap_err();
        assert_eq!(e.fields.get("options[1]").map(String::as_str), Some("repeats another option"));
        assert_eq!(e.fields.get("options[2]").map(String::as_str), Some("must be 1-80 characters"));
        assert!(check_poll(&new("q", &["1", "2", "3", "4", "5", "6", "7"], None)).is_err());
        assert!(check_poll(&new(&"é".repeat(200), &["a", "b"], Some(3600))).is_ok());
    }
}
