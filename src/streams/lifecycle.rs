//! The stream state machine, driven by the host (API) and by media (SFU).
//!
//! - `scheduled -> live`: the host's WHIP publish connects (media
//!   `receiving`), or the host starts it by API (media `waiting`; if nothing
//!   arrives within the media wait, `-> error`).
//! - Publisher gone: media `reconnecting` for the grace period; a publish
//!   within it resumes the same stream, and its WebRTC viewers with it (the
//!   SFU holds them; they never renegotiate), else `-> ended` (at the moment
//!   the publisher left).
//! - The host ends it: `-> archived` (saved) or `-> ended`;
//!   an ended stream can still be archived, or deleted.
//! - `scheduled -> cancelled` by the host. A recurring stream's next
//!   occurrence is made when this one goes live or is cancelled.
//!
//! Going live the first time tells everyone who asked for a reminder (their
//! WebSocket, and the `stream.reminders` webhook) and posts a system message.
//! A change that has a webhook (going live with its reminders, ending,
//! cancelling) writes the webhook's deliveries in its own transaction (the
//! outbox, see [`crate::webhooks`]): what is committed is also announced.
//! Every change is pushed as `stream_status` to the stream's and the host's
//! topics. Transitions are single guarded `UPDATE`s (`WHERE state = ...`), so
//! racing requests cannot both win; the database allows one live stream per
//! host.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use dashmap::DashMap;
use onair_media::{Sfu, SfuEvent};
use onair_signaling::ApiError;

use crate::analytics::Analytics;
use crate::chat::Chat;
use crate::clock::now_ms;
use crate::db::{begin_immediate, is_unique_violation, DbResult};
use crate::realtime::{Event, Hub, Topic};
use crate::streams::{no_stream, MediaState, State, Stream, StreamStore};
use crate::webhooks::{self, Webhooks};

/// Timings of the state machine.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// How long a stream whose publisher left waits for it to come back.
    pub reconnect_grace: Duration,
    /// How long a stream started by API waits for media before it fails.
    pub media_wait: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings { reconnect_grace: Duration::from_secs(15), media_wait: Duration::from_secs(600) }
    }
}

struct Inner {
    streams: StreamStore,
    hub: Arc<Hub>,
    chat: Chat,
    analytics: Analytics,
    webhooks: Webhooks,
    sfu: Sfu,
    timings: Timings,
    /// Streams whose publisher is gone, and the grace timer's generation.
    grace: DashMap<i64, u64>,
    next_generation: std::sync::atomic::AtomicU64,
}

/// The lifecycle service.
#[derive(Clone)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

fn conflict(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, msg)
}

impl Lifecycle {
    /// Starts following the SFU's events and the timers. Streams a previous
    /// run left live get the grace period to be published again.
    pub async fn start(streams: StreamStore, hub: Arc<Hub>, chat: Chat, analytics: Analytics, webhooks: Webhooks, sfu: Sfu, timings: Timings) -> Result<Lifecycle, String> {
        let lc = Lifecycle {
            inner: Arc::new(Inner {
                streams,
                hub,
                chat,
                analytics,
                webhooks,
                sfu: sfu.clone(),
                timings,
                grace: DashMap::new(),
                next_generation: Default::default(),
            }),
        };
        let pool = lc.inner.streams.pool().clone();
        let orphans: Vec<(i64,)> = sqlx::query_as("SELECT id FROM streams WHERE state = 'live' AND media_state IN ('receiving', 'reconnecting')")
            .fetch_all(&pool)
            .await
            .map_err(|e| e.to_string())?;
        for (id,) in orphans {
            lc.media_lost(id).await;
        }
        let mut events = sfu.event_sink();
        let me = lc.clone();
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                me.on_sfu_event(e).await;
            }
        });
        let me = lc.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                if let Err(e) = me.sweep().await {
                    tracing::error!("lifecycle sweep: {e}");
                }
            }
        });
        Ok(lc)
    }

    async fn on_sfu_event(&self, e: SfuEvent) {
        let Ok(id) = e.stream().parse::<i64>() else { return };
        match &e {
            SfuEvent::StreamLive { .. } => self.media_arrived(id).await,
            // With the SFU's publisher hold, `PublisherLeft` comes first; the
            // end is only news if the lifecycle missed the departure.
            SfuEvent::PublisherLeft { .. } | SfuEvent::StreamEnded { .. } => self.media_lost(id).await,
            SfuEvent::ViewerJoined { session, .. } => self.inner.analytics.webrtc_joined(id, *session),
            SfuEvent::ViewerLeft { session, .. } | SfuEvent::SessionClosed { session, .. } => self.inner.analytics.webrtc_left(*session),
            _ => {}
        }
    }

    /// Pushes a stream's state to its watchers and its host.
    pub fn announce(&self, s: &Stream) {
        self.inner.streams.forget(s);
        let s = self.inner.analytics.with_viewers(s.clone());
        let ev = Event::StreamStatus { stream: Box::new(s.clone()) };
        self.inner.hub.publish(Topic::Stream(s.id), &ev);
        self.inner.hub.publish(Topic::User(s.host.id), &ev);
        self.inner.hub.publish(Topic::Directory, &ev);
    }

    async fn reload(&self, id: i64) -> Result<Stream, ApiError> {
        self.inner.streams.get(id).await?.ok_or_else(|| no_stream(id))
    }

    /// The host starts a scheduled stream by API: live, waiting for media.
    pub async fn start_by_api(&self, s: &Stream) -> Result<Stream, ApiError> {
        let now = now_ms();
        let r = sqlx::query("UPDATE streams SET state = 'live', media_state = 'waiting', started_at = COALESCE(started_at, $1), updated_at = $1 WHERE id = $2 AND state = 'scheduled'")
            .bind(now)
            .bind(s.id)
            .execute(self.inner.streams.pool())
            .await;
        match r {
            Ok(r) if r.rows_affected() == 1 => {}
            Ok(_) => return Err(conflict("bad_state", format!("a {} stream cannot be started", s.state.as_str()))),
            Err(e) if is_unique_violation(&e) => return Err(conflict("already_live", "you have another stream live; end it first")),
            Err(e) => return Err(ApiError::internal(e)),
        }
        let s = self.reload(s.id).await?;
        self.spawn_next(&s).await;
        self.announce(&s);
        Ok(s)
    }

    /// The publisher's media arrived (WHIP connected).
    pub async fn media_arrived(&self, id: i64) {
        self.inner.grace.remove(&id);
        if let Err(e) = self.try_media_arrived(id).await {
            tracing::error!(stream = id, "going live: {e}");
        }
    }

    async fn try_media_arrived(&self, id: i64) -> Result<(), ApiError> {
        let now = now_ms();
        // Going live, marking reminders sent and queueing their webhooks are
        // one transaction: none of it can be committed without the rest.
        let mut tx = begin_immediate(self.inner.streams.pool()).await.db()?;
        let (media_before,): (Option<i64>,) = sqlx::query_as("SELECT media_started_at FROM streams WHERE id = $1").bind(id).fetch_optional(&mut *tx).await.db()?.ok_or_else(|| no_stream(id))?;
        let r = sqlx::query(
            "UPDATE streams SET state = 'live', media_state = 'receiving', started_at = COALESCE(started_at, $1), \
             media_started_at = COALESCE(media_started_at, $1), updated_at = $1 WHERE id = $2 AND state IN ('scheduled', 'live')",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await;
        match r {
            Ok(r) if r.rows_affected() == 1 => {}
            Ok(_) => {
                // Over already (ended by the host while connecting): no media for it.
                drop(tx);
                self.inner.sfu.end_stream(&id.to_string()).await;
                return Ok(());
            }
            Err(e) if is_unique_violation(&e) => {
                drop(tx);
                self.inner.sfu.end_stream(&id.to_string()).await;
                return Err(conflict("already_live", "the host has another stream live"));
            }
            Err(e) => return Err(ApiError::internal(e)),
        }
        let s = StreamStore::get_in(&mut tx, id).await.db()?.ok_or_else(|| no_stream(id))?;
        // Reminders and the rest once, at the first media; a reconnect resumes quietly.
        let first = media_before.is_none();
        let mut reminded: Vec<(i64,)> = Vec::new();
        if first {
            reminded = sqlx::query_as("UPDATE reminders SET notified_at = $1 WHERE stream_id = $2 AND notified_at IS NULL RETURNING user_id")
                .bind(now)
                .bind(id)
                .fetch_all(&mut *tx)
                .await
                .db()?;
            let stream_json = serde_json::to_value(&s).unwrap_or_default();
            webhooks::queue(&mut tx, "stream.live", serde_json::json!({ "stream": stream_json }), now).await.db()?;
            if !reminded.is_empty() {
                let ids: Vec<i64> = reminded.iter().map(|u| u.0).collect();
                webhooks::queue(&mut tx, "stream.reminders", serde_json::json!({ "stream": stream_json, "user_ids": ids }), now).await.db()?;
            }
        }
        tx.commit().await.db()?;
        self.inner.webhooks.wake();
        self.announce(&s);
        if first {
            let ev = Event::Reminder { stream: Box::new(s.clone()) };
            for (user,) in &reminded {
                self.inner.hub.publish(Topic::User(*user), &ev);
            }
            self.spawn_next(&s).await;
            // "Ana is live: Cooking", but never "Ana is live: Ana is live".
            let auto = crate::channels::automatic_title(&s.host.display_name);
            let text = if s.title == auto { auto } else { format!("{auto}: {}", s.title) };
            self.inner.chat.system(s.id, text).await?;
        }
        Ok(())
    }

    /// The publisher left: wait for it for the grace period, then end.
    pub async fn media_lost(&self, id: i64) {
        let left_at = now_ms();
        let r = sqlx::query("UPDATE streams SET media_state = 'reconnecting', updated_at = $1 WHERE id = $2 AND state = 'live' AND media_state <> 'waiting'")
            .bind(left_at)
            .bind(id)
            .execute(self.inner.streams.pool())
            .await;
        if !matches!(r, Ok(ref r) if r.rows_affected() == 1) {
            return;
        }
        if let Ok(s) = self.reload(id).await {
            self.announce(&s);
        }
        let generation = self.inner.next_generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.grace.insert(id, generation);
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(me.inner.timings.reconnect_grace).await;
            if me.inner.grace.remove_if(&id, |_, g| *g == generation).is_none() {
                return; // it came back
            }
            match me.reload(id).await {
                Ok(s) if s.state == State::Live && s.media_state == Some(MediaState::Reconnecting) => {
                    if let Err(e) = me.finish(&s, "publisher_left", false, left_at).await {
                        tracing::error!(stream = id, "ending: {e}");
                    }
                    // The SFU still holds the viewers for the publisher: let them go.
                    me.inner.sfu.end_stream(&s.media_name()).await;
                }
                _ => {}
            }
        });
    }

    /// The host ends a live stream now; `save` archives it.
    pub async fn end(&self, s: &Stream, save: bool) -> Result<Stream, ApiError> {
        self.end_because(s, "host", save).await
    }

    /// Ends a live stream now, for `reason` (`host`, `admin`); `save` archives it.
    pub async fn end_because(&self, s: &Stream, reason: &str, save: bool) -> Result<Stream, ApiError> {
        if s.state != State::Live {
            return Err(conflict("bad_state", format!("a {} stream cannot be ended", s.state.as_str())));
        }
        self.inner.grace.remove(&s.id);
        let s = self.finish(s, reason, save, now_ms()).await?;
        self.inner.sfu.end_stream(&s.media_name()).await;
        Ok(s)
    }

    async fn finish(&self, s: &Stream, reason: &str, save: bool, at: i64) -> Result<Stream, ApiError> {
        let state = if save { State::Archived } else { State::Ended };
        // The summary as of the end, worked out before the transaction (the
        // analytics task writes too, and must not wait for this one).
        let mut ending = self.reload(s.id).await?;
        (ending.state, ending.media_state, ending.ended_at) = (state, None, Some(at));
        let summary = self.inner.analytics.report(&ending).await.map(|r| r.summary).ok();
        let now = now_ms();
        // The state change and its webhook: one transaction.
        let mut tx = begin_immediate(self.inner.streams.pool()).await.db()?;
        let r = sqlx::query("UPDATE streams SET state = $1, media_state = NULL, ended_at = $2, end_reason = $3, updated_at = $4 WHERE id = $5 AND state = 'live'")
            .bind(state.as_str())
            .bind(at)
            .bind(reason)
            .bind(now)
            .bind(s.id)
            .execute(&mut *tx)
            .await
            .db()?;
        if r.rows_affected() == 0 {
            return Err(conflict("bad_state", "the stream is not live any more"));
        }
        let ended = StreamStore::get_in(&mut tx, s.id).await.db()?.ok_or_else(|| no_stream(s.id))?;
        webhooks::queue(&mut tx, "stream.ended", serde_json::json!({ "stream": ended, "summary": summary }), now).await.db()?;
        tx.commit().await.db()?;
        self.inner.webhooks.wake();
        self.inner.analytics.stream_ended(s.id);
        self.announce(&ended);
        Ok(ended)
    }

    /// Saves an ended stream (archived).
    pub async fn archive(&self, s: &Stream) -> Result<Stream, ApiError> {
        let r = sqlx::query("UPDATE streams SET state = 'archived', updated_at = $1 WHERE id = $2 AND state = 'ended'").bind(now_ms()).bind(s.id).execute(self.inner.streams.pool()).await.db()?;
        if r.rows_affected() == 0 {
            return Err(conflict("bad_state", format!("only an ended stream can be archived; this one is {}", s.state.as_str())));
        }
        let s = self.reload(s.id).await?;
        self.announce(&s);
        Ok(s)
    }

    /// Calls off a scheduled stream; a recurring one moves on to its next
    /// occurrence unless the whole series is cancelled.
    pub async fn cancel(&self, s: &Stream, series: bool) -> Result<Stream, ApiError> {
        let now = now_ms();
        // The state change and its webhook: one transaction.
        let mut tx = begin_immediate(self.inner.streams.pool()).await.db()?;
        let r = sqlx::query("UPDATE streams SET state = 'cancelled', end_reason = 'cancelled', updated_at = $1 WHERE id = $2 AND state = 'scheduled'")
            .bind(now)
            .bind(s.id)
            .execute(&mut *tx)
            .await
            .db()?;
        if r.rows_affected() == 0 {
            return Err(conflict("bad_state", format!("a {} stream cannot be cancelled", s.state.as_str())));
        }
        let cancelled = StreamStore::get_in(&mut tx, s.id).await.db()?.ok_or_else(|| no_stream(s.id))?;
        webhooks::queue(&mut tx, "stream.cancelled", serde_json::json!({ "stream": cancelled }), now).await.db()?;
        tx.commit().await.db()?;
        self.inner.webhooks.wake();
        if !series {
            self.spawn_next(&cancelled).await;
        }
        self.announce(&cancelled);
        Ok(cancelled)
    }

    async fn spawn_next(&self, s: &Stream) {
        match self.inner.streams.spawn_next(s).await {
            Ok(Some(next)) => self.announce(&next),
            Ok(None) => {}
            Err(e) => tracing::error!(stream = s.id, "next occurrence: {e}"),
        }
    }

    /// Timed transitions: media that never came; recurring streams whose
    /// time passed without them.
    async fn sweep(&self) -> Result<(), ApiError> {
        let wait = self.inner.timings.media_wait.as_millis() as i64;
        let stale: Vec<(i64,)> = sqlx::query_as("SELECT id FROM streams WHERE state = 'live' AND media_state = 'waiting' AND started_at < $1")
            .bind(now_ms() - wait)
            .fetch_all(self.inner.streams.pool())
            .await
            .db()?;
        for (id,) in stale {
            let msg = format!("no media arrived within {} s of starting", wait / 1000);
            let r = sqlx::query("UPDATE streams SET state = 'error', media_state = NULL, error = $1, ended_at = $2, updated_at = $2 WHERE id = $3 AND state = 'live' AND media_state = 'waiting'")
                .bind(&msg)
                .bind(now_ms())
                .bind(id)
                .execute(self.inner.streams.pool())
                .await
                .db()?;
            if r.rows_affected() == 1 {
                let s = self.reload(id).await?;
                self.announce(&s);
            }
        }
        for s in self.inner.streams.missed_occurrences(3600 * 1000).await? {
            self.inner.streams.roll_forward(&s).await?;
            self.announce(&self.reload(s.id).await?);
        }
        Ok(())
    }
}
