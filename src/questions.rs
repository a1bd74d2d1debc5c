//! Q&A during a stream.
//!
//! Viewers ask questions under the chat's rules (access, bans, timeouts,
//! length, subscriber- and follower-only modes, banned words, slow mode, and
//! the same rate as chat messages, counted apart from them). Others upvote a
//! question once each (not their own). The host's team marks one question
//! "answering now" (the one before it becomes answered), then answered, and
//! hides questions: hidden ones are gone for viewers (the list leaves them
//! out, and the event announcing it carries no text).
//!
//! Upvote counts go out as `question_updated` at most five times a second
//! per stream however fast they come. Load-test clients' upvotes are
//! stored, flagged, and not counted.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dashmap::DashMap;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use utoipa::{IntoParams, ToSchema};

use crate::accounts::Principal;
use crate::chat::moderation::Restriction;
use crate::chat::rules::Sender;
use crate::chat::{Author, Chat};
use crate::clock::now_ms;
use crate::db::DbResult;
use crate::membership::Membership;
use crate::realtime::{Event, Hub, Topic};
use crate::streams::{access, Stream};

/// At most this often upvote counts go out, per stream.
pub const UPDATES_EVERY: Duration = Duration::from_millis(200);

/// Where a question is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuestionState {
    /// Asked, waiting.
    Open,
    /// The host is answering it now (one per stream; shown over the video).
    Answering,
    /// Answered.
    Answered,
    /// Hidden by the host's team (viewers no longer see it).
    Hidden,
}

impl QuestionState {
    fn as_str(self) -> &'static str {
        match self {
            QuestionState::Open => "open",
            QuestionState::Answering => "answering",
            QuestionState::Answered => "answered",
            QuestionState::Hidden => "hidden",
        }
    }

    fn parse(s: &str) -> QuestionState {
        match s {
            "answering" => QuestionState::Answering,
            "answered" => QuestionState::Answered,
            "hidden" => QuestionState::Hidden,
            _ => QuestionState::Open,
        }
    }
}

/// A question.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Question {
    /// Id.
    pub id: i64,
    /// Stream.
    pub stream_id: i64,
    /// The question ("" in the event that hides it).
    pub text: String,
    /// Who asked (null in the event that hides it, or if the account is gone).
    pub user: Option<Author>,
    /// Real users' upvotes.
    pub upvotes: i64,
    /// Where it is.
    pub state: QuestionState,
    /// When it was asked.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// Whether the caller upvoted it (lists asked with a login).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upvoted: Option<bool>,
}

/// A question to ask.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewQuestion {
    /// 1-500 characters (the chat's rules apply).
    pub text: String,
}

/// A change of state by the host's team.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionPatch {
    /// `answering` (the one answered before becomes `answered`), `answered`,
    /// `hidden`, or `open` again.
    pub state: QuestionState,
}

/// How to order the list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Most upvoted first (then oldest first).
    #[default]
    Top,
    /// Newest first.
    New,
}

/// Query of the list.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuestionsQuery {
    /// `top` (default) or `new`.
    #[param(inline)]
    pub sort: Option<Sort>,
    /// 1-500, default 200.
    pub limit: Option<i64>,
}

/// The Q&A service.
#[derive(Clone)]
pub struct Questions {
    pool: SqlitePool,
    hub: Arc<Hub>,
    chat: Chat,
    membership: Membership,
    /// Each asker's rate per stream (the chat's numbers, apart from chat).
    senders: Arc<DashMap<(i64, i64), Sender>>,
    /// Questions whose upvotes changed since they last went out.
    dirty: Arc<Mutex<HashSet<i64>>>,
}

fn not_found(id: i64) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "question_not_found", format!("no question {id} in this stream"))
}

type Row = (i64, i64, String, Option<i64>, Option<String>, Option<String>, i64, String, i64);
const COLS: &str = "q.id, q.stream_id, q.body, q.user_id, u.username, u.display_name, q.upvotes, q.state, q.created_at";

fn question_of(r: Row) -> Question {
    Question {
        id: r.0,
        stream_id: r.1,
        text: r.2,
        user: r.3.map(|id| Author { id, username: r.4.unwrap_or_default(), display_name: r.5.unwrap_or_default() }),
        upvotes: r.6,
        state: QuestionState::parse(&r.7),
        created_at: r.8,
        upvoted: None,
    }
}

/// What everyone is told of a question: a hidden one without its text or author.
fn public(mut q: Question) -> Question {
    if q.state == QuestionState::Hidden {
        q.text.clear();
        q.user = None;
    }
    q
}

impl Questions {
    /// Starts the service and its update timer.
    pub fn start(pool: SqlitePool, hub: Arc<Hub>, chat: Chat, membership: Membership) -> Questions {
        let q = Questions { pool, hub, chat, membership, senders: Default::default(), dirty: Default::default() };
        let me = q.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPDATES_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0u64;
            loop {
                tick.tick().await;
                n += 1;
                if let Err(e) = me.flush().await {
                    tracing::error!("questions: {e}");
                }
                if n.is_multiple_of(900) {
                    let now = Instant::now();
                    me.senders.retain(|_, s| now.saturating_duration_since(s.seen) < Duration::from_secs(180));
                }
            }
        });
        q
    }

    async fn flush(&self) -> Result<(), ApiError> {
        let ids: Vec<i64> = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner())).into_iter().collect();
        for id in ids {
            if let Some(q) = self.get(id).await? {
                if q.state != QuestionState::Hidden {
                    self.hub.publish(Topic::Stream(q.stream_id), &Event::QuestionUpdated { question: Box::new(q) });
                }
            }
        }
        Ok(())
    }

    async fn get(&self, id: i64) -> Result<Option<Question>, ApiError> {
        let r: Option<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM questions q LEFT JOIN users u ON u.id = q.user_id WHERE q.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        Ok(r.map(question_of))
    }

    /// A question of this stream, or 404.
    async fn of_stream(&self, stream_id: i64, id: i64) -> Result<Question, ApiError> {
        self.get(id).await?.filter(|q| q.stream_id == stream_id).ok_or_else(|| not_found(id))
    }

    /// `who` asks a question, under the chat's rules.
    pub async fn ask(&self, stream_id: i64, who: &Principal, text: &str) -> Result<Question, ApiError> {
        let said = self.chat.admit_text(stream_id, who, text).await?;
        let now = Instant::now();
        self.senders
            .entry((stream_id, who.id()))
            .or_insert_with(|| Sender::new(now))
            .admit_message(&said.text, said.slow_mode, said.is_team, now)
            .map_err(|r| r.to_api())?;
        let r = sqlx::query_as::<_, (i64,)>("INSERT INTO questions (stream_id, user_id, body, state, created_at) VALUES ($1, $2, $3, 'open', $4) RETURNING id")
            .bind(stream_id)
            .bind(who.id())
            .bind(&said.text)
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await;
        let (id,) = match r {
            Ok(r) => r,
            Err(e) => {
                if let Some(mut s) = self.senders.get_mut(&(stream_id, who.id())) {
                    s.undo_message();
                }
                return Err(ApiError::internal(format!("database: {e}")));
            }
        };
        let q = self.of_stream(stream_id, id).await?;
        self.hub.publish(Topic::Stream(stream_id), &Event::QuestionAdded { question: Box::new(q.clone()) });
        Ok(q)
    }

    /// Whether `who` may take part (upvote) in the stream: it is not over,
    /// they may watch it, and are not banned from the channel.
    async fn check_participant(&self, stream: &Stream, who: &Principal) -> Result<(), ApiError> {
        if stream.is_over() {
            return Err(ApiError::new(StatusCode::CONFLICT, "chat_closed", "this stream's Q&A is closed"));
        }
        if access::can_moderate(&self.membership, stream.host.id, &who.user).await? {
            return Ok(());
        }
        access::check_watch(&self.membership, stream, Some(who)).await?;
        if matches!(self.chat.moderation.restriction(stream.host.id, who.id()).await?, Some(Restriction::Banned)) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "banned", "you are banned from this channel"));
        }
        Ok(())
    }

    /// `who` upvotes a question (once; not their own).
    pub async fn upvote(&self, stream: &Stream, id: i64, who: &Principal, load_test: bool) -> Result<Question, ApiError> {
        self.check_participant(stream, who).await?;
        let q = self.of_stream(stream.id, id).await?;
        if q.state == QuestionState::Hidden {
            return Err(not_found(id));
        }
        if q.user.as_ref().is_some_and(|u| u.id == who.id()) {
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "own_question", "you cannot upvote your own question"));
        }
        let mut tx = crate::db::begin_immediate(&self.pool).await.db()?;
        let r = sqlx::query("INSERT INTO question_upvotes (question_id, user_id, load_test, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (question_id, user_id) DO NOTHING")
            .bind(id)
            .bind(who.id())
            .bind(load_test as i64)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .db()?;
        if r.rows_affected() == 0 {
            tx.rollback().await.db()?;
            return Err(ApiError::new(StatusCode::CONFLICT, "already_upvoted", "you already upvoted this question"));
        }
        if !load_test {
            sqlx::query("UPDATE questions SET upvotes = upvotes + 1 WHERE id = $1").bind(id).execute(&mut *tx).await.db()?;
        }
        tx.commit().await.db()?;
        self.dirty.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
        let mut q = self.of_stream(stream.id, id).await?;
        q.upvoted = Some(true);
        Ok(q)
    }

    /// `who` takes their upvote back.
    pub async fn unupvote(&self, stream: &Stream, id: i64, who: &Principal) -> Result<Question, ApiError> {
        let q = self.of_stream(stream.id, id).await?;
        if q.state == QuestionState::Hidden {
            return Err(not_found(id));
        }
        let mut tx = crate::db::begin_immediate(&self.pool).await.db()?;
        let r: Option<(i64,)> = sqlx::query_as("DELETE FROM question_upvotes WHERE question_id = $1 AND user_id = $2 RETURNING load_test").bind(id).bind(who.id()).fetch_optional(&mut *tx).await.db()?;
        let Some((load_test,)) = r else {
            tx.rollback().await.db()?;
            return Err(ApiError::new(StatusCode::NOT_FOUND, "not_upvoted", "you have not upvoted this question"));
        };
        if load_test == 0 {
            sqlx::query("UPDATE questions SET upvotes = upvotes - 1 WHERE id = $1 AND upvotes > 0").bind(id).execute(&mut *tx).await.db()?;
        }
        tx.commit().await.db()?;
        self.dirty.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
        let mut q = self.of_stream(stream.id, id).await?;
        q.upvoted = Some(false);
        Ok(q)
    }

    /// The host's team changes a question's state. Marking one `answering`
    /// marks the one answered before it `answered`.
    pub async fn set_state(&self, stream: &Stream, id: i64, who: &Principal, state: QuestionState) -> Result<Question, ApiError> {
        if !access::can_moderate(&self.membership, stream.host.id, &who.user).await? {
            return Err(ApiError::forbidden("only the host and moderators manage questions"));
        }
        self.of_stream(stream.id, id).await?;
        let now = now_ms();
        let mut tx = crate::db::begin_immediate(&self.pool).await.db()?;
        let mut touched: Vec<i64> = Vec::new();
        if state == QuestionState::Answering {
            let before: Vec<(i64,)> = sqlx::query_as("UPDATE questions SET state = 'answered', answered_at = $1, updated_by = $2 WHERE stream_id = $3 AND state = 'answering' AND id <> $4 RETURNING id")
                .bind(now)
                .bind(who.id())
                .bind(stream.id)
                .bind(id)
                .fetch_all(&mut *tx)
                .await
                .db()?;
            touched.extend(before.into_iter().map(|r| r.0));
        }
        let col = match state {
            QuestionState::Answering => ", answering_at = $1",
            QuestionState::Answered => ", answered_at = $1",
            QuestionState::Hidden => ", hidden_at = $1",
            QuestionState::Open => "",
        };
        sqlx::query(&format!("UPDATE questions SET state = $2, updated_by = $3{col} WHERE id = $4"))
            .bind(now)
            .bind(state.as_str())
            .bind(who.id())
            .bind(id)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()?;
        touched.push(id);
        let mut out = None;
        for t in touched {
            if let Some(q) = self.get(t).await? {
                self.hub.publish(Topic::Stream(stream.id), &Event::QuestionUpdated { question: Box::new(public(q.clone())) });
                if t == id {
                    out = Some(q);
                }
            }
        }
        out.ok_or_else(|| not_found(id))
    }

    /// A stream's questions: viewers see all but hidden ones, the host's
    /// team all of them; `viewer`'s upvotes are marked.
    pub async fn list(&self, stream: &Stream, who: Option<&Principal>, q: &QuestionsQuery) -> Result<Vec<Question>, ApiError> {
        let limit = q.limit.unwrap_or(200);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::validation(BTreeMap::from([("limit".to_owned(), "must be 1-500".to_owned())])));
        }
        let team = match who {
            Some(w) => access::can_moderate(&self.membership, stream.host.id, &w.user).await?,
            None => false,
        };
        let hidden = if team { "" } else { " AND q.state <> 'hidden'" };
        let order = match q.sort.unwrap_or_default() {
            Sort::Top => "q.upvotes DESC, q.id ASC",
            Sort::New => "q.id DESC",
        };
        let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {COLS} FROM questions q LEFT JOIN users u ON u.id = q.user_id WHERE q.stream_id = $1{hidden} ORDER BY {order} LIMIT $2"))
            .bind(stream.id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .db()?;
        let mut out: Vec<Question> = rows.into_iter().map(question_of).collect();
        if let Some(w) = who {
            let mine: HashSet<i64> = sqlx::query_as::<_, (i64,)>("SELECT v.question_id FROM question_upvotes v JOIN questions q ON q.id = v.question_id WHERE q.stream_id = $1 AND v.user_id = $2")
                .bind(stream.id)
                .bind(w.id())
                .fetch_all(&self.pool)
                .await
                .db()?
                .into_iter()
                .map(|r| r.0)
                .collect();
            for q in &mut out {
                q.upvoted = Some(mine.contains(&q.id));
            }
        }
        Ok(out)
    }
}
