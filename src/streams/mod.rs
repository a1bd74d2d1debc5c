//! Streams (broadcasts): what they are, how they are stored and listed.
//!
//! A stream belongs to a host. Its state machine:
//! `scheduled -> live -> ended | archived`, and `scheduled -> cancelled`,
//! `live -> error`. While live, `media_state` says whether media is
//! arriving (`receiving`), expected (`waiting`: started by the API) or gone
//! for a grace period (`reconnecting`). [`lifecycle`] drives the transitions;
//! [`access`] decides who may watch; [`schedule`] computes recurrences.

pub mod access;
pub mod lifecycle;
pub mod schedule;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dashmap::DashMap;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use utoipa::{IntoParams, ToSchema};

use crate::accounts::{PublicUser, Role, User};
use crate::channels::ChannelDefaults;
use crate::clock::{now_ms, parse_rfc3339};
use crate::db::DbResult;
use crate::rooms::settings::{check_max_hosts, SessionType, Topology};
use crate::rooms::MAX_HOSTS;
use schedule::{Recurrence, Rule};

/// Where a stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not live yet (at a time, or whenever the host starts).
    Scheduled,
    /// On the air.
    Live,
    /// Over; not saved.
    Ended,
    /// Over and saved by the host (for replay once recording exists).
    Archived,
    /// Called off before it went live.
    Cancelled,
    /// Failed (started but media never came).
    Error,
}

impl State {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Scheduled => "scheduled",
            State::Live => "live",
            State::Ended => "ended",
            State::Archived => "archived",
            State::Cancelled => "cancelled",
            State::Error => "error",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "live" => State::Live,
            "ended" => State::Ended,
            "archived" => State::Archived,
            "cancelled" => State::Cancelled,
            "error" => State::Error,
            _ => State::Scheduled,
        }
    }
}

/// While live: is media arriving?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaState {
    /// Started by the API; the publisher has not connected yet.
    Waiting,
    /// The publisher's media is arriving.
    Receiving,
    /// The publisher left; the stream ends unless it comes back in time.
    Reconnecting,
}

impl MediaState {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaState::Waiting => "waiting",
            MediaState::Receiving => "receiving",
            MediaState::Reconnecting => "reconnecting",
        }
    }

    fn parse(s: &str) -> Option<MediaState> {
        match s {
            "waiting" => Some(MediaState::Waiting),
            "receiving" => Some(MediaState::Receiving),
            "reconnecting" => Some(MediaState::Reconnecting),
            _ => None,
        }
    }
}

/// Who may watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone.
    Public,
    /// The host's subscribers.
    Subscribers,
    /// Ticket holders (`ticket_price` coins).
    Ticketed,
}

impl Visibility {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Subscribers => "subscribers",
            Visibility::Ticketed => "ticketed",
        }
    }

    fn parse(s: &str) -> Visibility {
        match s {
            "subscribers" => Visibility::Subscribers,
            "ticketed" => Visibility::Ticketed,
            _ => Visibility::Public,
        }
    }
}

/// A stream as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Stream {
    /// Id (also its media stream name: `/whep/{id}`).
    pub id: i64,
    /// The host.
    pub host: PublicUser,
    /// The first stream of its recurring series.
    pub series_id: Option<i64>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Thumbnail image URL (an upload: `/images/...`).
    pub thumbnail_url: Option<String>,
    /// Category ("" for none).
    pub category: String,
    /// Who may watch.
    pub visibility: Visibility,
    /// Coins a ticket costs (ticketed streams).
    pub ticket_price: Option<i64>,
    /// Where it is in its life.
    pub state: State,
    /// While live: is media arriving?
    pub media_state: Option<MediaState>,
    /// When it is (next) due.
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<i64>,
    /// Seconds until `scheduled_at` (0 once due), for scheduled streams.
    pub starts_in_seconds: Option<i64>,
    /// How it recurs.
    pub recurrence: Option<Recurrence>,
    /// When it went live (by API, waiting for media; or at its first media).
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<i64>,
    /// When its first media arrived: what "live since" and durations count
    /// from. Null while a stream started by API still waits for media.
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub live_since: Option<i64>,
    /// When it ended.
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<i64>,
    /// Why it ended (`host`, `publisher_left`, ...).
    pub end_reason: Option<String>,
    /// What failed (state `error`).
    pub error: Option<String>,
    /// Viewers now (real viewers only; live streams).
    pub viewers: u64,
    /// Most viewers at once.
    pub peak_viewers: i64,
    /// Likes (reactions).
    pub likes: i64,
    /// Chat messages.
    pub chat_messages: i64,
    /// The host saved it (archived): it stays listed with its chat and
    /// figures, for the replay once recording exists. No media is recorded yet.
    pub saved: bool,
    /// What kind of session it is.
    pub session_type: SessionType,
    /// How its hosts connect to each other (`auto`: peer to peer up to
    /// four hosts; `sfu`: always through the SFU).
    pub topology: Topology,
    /// Hosts its room takes at most (2-9, the primary host included).
    pub max_hosts: i64,
    /// The watch page.
    pub watch_url: String,
    /// Made at.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// Last changed at (state, details): of two copies, the later one wins.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

impl Stream {
    /// The SFU's name for its media.
    pub fn media_name(&self) -> String {
        self.id.to_string()
    }

    /// Over (ended, archived, cancelled or failed).
    pub fn is_over(&self) -> bool {
        matches!(self.state, State::Ended | State::Archived | State::Cancelled | State::Error)
    }
}

const SELECT: &str = "SELECT s.*, u.username AS host_username, u.display_name AS host_display_name, u.role AS host_role FROM streams s JOIN users u ON u.id = s.host_id";

fn stream_of(row: &SqliteRow) -> Result<Stream, sqlx::Error> {
    let id: i64 = row.try_get("id")?;
    let state = State::parse(row.try_get::<String, _>("state")?.as_str());
    let scheduled_at: Option<i64> = row.try_get("scheduled_at")?;
    let recurrence = match row.try_get::<Option<String>, _>("recur_freq")? {
        Some(freq) => Rule::from_columns(
            &freq,
            &row.try_get::<Option<String>, _>("recur_days")?.unwrap_or_default(),
            &row.try_get::<Option<String>, _>("recur_time")?.unwrap_or_default(),
            &row.try_get::<Option<String>, _>("timezone")?.unwrap_or_default(),
            row.try_get("recur_until")?,
        )
        .map(|r| r.to_api()),
        None => None,
    };
    let starts_in_seconds = match (state, scheduled_at) {
        (State::Scheduled, Some(at)) => Some(((at - now_ms()) / 1000).max(0)),
        _ => None,
    };
    Ok(Stream {
        id,
        host: PublicUser {
            id: row.try_get("host_id")?,
            username: row.try_get("host_username")?,
            display_name: row.try_get("host_display_name")?,
            role: Role::parse(row.try_get::<String, _>("host_role")?.as_str()).unwrap_or(Role::Host),
        },
        series_id: row.try_get("series_id")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        thumbnail_url: row.try_get("thumbnail_url")?,
        category: row.try_get("category")?,
        visibility: Visibility::parse(row.try_get::<String, _>("visibility")?.as_str()),
        ticket_price: row.try_get("ticket_price")?,
        state,
        media_state: row.try_get::<Option<String>, _>("media_state")?.as_deref().and_then(MediaState::parse),
        scheduled_at,
        starts_in_seconds,
        recurrence,
        started_at: row.try_get("started_at")?,
        live_since: row.try_get("media_started_at")?,
        ended_at: row.try_get("ended_at")?,
        end_reason: row.try_get("end_reason")?,
        error: row.try_get("error")?,
        viewers: 0,
        peak_viewers: row.try_get("peak_viewers")?,
        likes: row.try_get("likes")?,
        chat_messages: row.try_get("chat_messages")?,
        saved: state == State::Archived,
        session_type: SessionType::parse(row.try_get::<String, _>("session_type")?.as_str()),
        topology: Topology::parse(row.try_get::<String, _>("topology")?.as_str()),
        max_hosts: row.try_get("max_hosts")?,
        watch_url: format!("/watch/{id}"),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// What creating a stream takes.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStream {
    /// 1-140 characters.
    pub title: String,
    /// Up to 5,000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// An http(s) image URL (or upload one: `PUT /api/streams/{id}/thumbnail`);
    /// default: the channel's default thumbnail.
    #[serde(default)]
    pub thumbnail_url: Option<String>,
    /// Up to 40 characters.
    #[serde(default)]
    pub category: Option<String>,
    /// `public` (default), `subscribers` or `ticketed`.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// Coins per ticket, 1-1,000,000 (ticketed only).
    #[serde(default)]
    pub ticket_price: Option<i64>,
    /// A one-off start time (RFC 3339), or for a recurrence the first day it may start.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<String>,
    /// Repeat daily or weekly at a local time.
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
    /// `solo` (default), `collaboration`, `interview`, `panel`, `gaming`, `podcast` or `workshop`.
    #[serde(default)]
    pub session_type: Option<SessionType>,
    /// `auto` (default) or `sfu`.
    #[serde(default)]
    pub topology: Option<Topology>,
    /// Hosts the room takes at most, 2-9 (default 9).
    #[serde(default)]
    #[schema(minimum = 2, maximum = 9)]
    pub max_hosts: Option<i64>,
}

/// What updating a stream may change (absent fields stay as they are).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamPatch {
    /// 1-140 characters.
    pub title: Option<String>,
    /// Up to 5,000 characters.
    pub description: Option<String>,
    /// An http(s) image URL, or "" to remove it.
    pub thumbnail_url: Option<String>,
    /// Up to 40 characters ("" for none).
    pub category: Option<String>,
    /// Who may watch.
    pub visibility: Option<Visibility>,
    /// Coins per ticket.
    pub ticket_price: Option<i64>,
    /// New start time (scheduled streams).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<String>,
    /// New recurrence (scheduled streams).
    pub recurrence: Option<Recurrence>,
    /// What kind of session it is.
    pub session_type: Option<SessionType>,
    /// `auto` or `sfu`.
    pub topology: Option<Topology>,
    /// Hosts the room takes at most, 2-9 (not fewer than it has now).
    #[schema(minimum = 2, maximum = 9)]
    pub max_hosts: Option<i64>,
}

/// Checked fields, ready to store.
struct Fields {
    title: String,
    description: String,
    thumbnail_url: Option<String>,
    category: String,
    visibility: Visibility,
    ticket_price: Option<i64>,
    scheduled_at: Option<i64>,
    rule: Option<Rule>,
    session_type: SessionType,
    topology: Topology,
    max_hosts: i64,
}

fn check_title(t: &str, fields: &mut BTreeMap<String, String>) -> String {
    let t = t.trim();
    if t.is_empty() || t.chars().count() > 140 {
        fields.insert("title".into(), "must be 1-140 characters".into());
    }
    t.to_owned()
}

fn check_url(u: &str, fields: &mut BTreeMap<String, String>) -> Option<String> {
    crate::channels::check_image_url("thumbnail_url", u, fields)
}

fn check_price(visibility: Visibility, price: Option<i64>, fields: &mut BTreeMap<String, String>) -> Option<i64> {
    match (visibility, price) {
        (Visibility::Ticketed, Some(p)) if (1..=1_000_000).contains(&p) => Some(p),
        (Visibility::Ticketed, _) => {
            fields.insert("ticket_price".into(), "a ticketed stream needs a price of 1-1,000,000 coins".into());
            None
        }
        (_, Some(_)) => {
            fields.insert("ticket_price".into(), "only ticketed streams have a price".into());
            None
        }
        (_, None) => None,
    }
}

/// Checks a start time and recurrence; returns (scheduled_at, rule).
fn check_schedule(at: Option<&str>, rec: Option<&Recurrence>, now: i64, fields: &mut BTreeMap<String, String>) -> (Option<i64>, Option<Rule>) {
    let at = match at.map(parse_rfc3339) {
        Some(Ok(ms)) => Some(ms),
        Some(Err(e)) => {
            fields.insert("scheduled_at".into(), e);
            None
        }
        None => None,
    };
    let rule = match rec.map(Rule::parse) {
        Some(Ok(r)) => Some(r),
        Some(Err(errors)) => {
            for (field, msg) in errors {
                fields.insert(format!("recurrence.{field}"), msg);
            }
            None
        }
        None => None,
    };
    const YEAR: i64 = 366 * 24 * 3600 * 1000;
    match (&rule, at) {
        (Some(r), _) => {
            let from = at.unwrap_or(now).max(now);
            match r.next_after(from - 1) {
                Some(next) => (Some(next), rule),
                None => {
                    fields.insert("recurrence.until".into(), "the recurrence has no occurrence left".into());
                    (None, None)
                }
            }
        }
        (None, Some(ms)) if ms < now - 60_000 => {
            fields.insert("scheduled_at".into(), "must not be in the past".into());
            (None, None)
        }
        (None, Some(ms)) if ms > now + YEAR => {
            fields.insert("scheduled_at".into(), "must be within a year".into());
            (None, None)
        }
        (None, at) => (at, None),
    }
}

impl NewStream {
    fn check(&self, now: i64) -> Result<Fields, ApiError> {
        let mut fields = BTreeMap::new();
        let title = check_title(&self.title, &mut fields);
        let description = self.description.clone().unwrap_or_default().trim().to_owned();
        if description.chars().count() > 5000 {
            fields.insert("description".into(), "must be at most 5,000 characters".into());
        }
        let thumbnail_url = self.thumbnail_url.as_deref().and_then(|u| check_url(u, &mut fields));
        let category = crate::channels::check_category(self.category.as_deref().unwrap_or(""), &mut fields);
        let visibility = self.visibility.unwrap_or(Visibility::Public);
        let ticket_price = check_price(visibility, self.ticket_price, &mut fields);
        let (scheduled_at, rule) = check_schedule(self.scheduled_at.as_deref(), self.recurrence.as_ref(), now, &mut fields);
        let max_hosts = check_max_hosts(self.max_hosts.unwrap_or(MAX_HOSTS as i64), &mut fields);
        if !fields.is_empty() {
            return Err(ApiError::validation(fields));
        }
        let (session_type, topology) = (self.session_type.unwrap_or_default(), self.topology.unwrap_or_default());
        Ok(Fields { title, description, thumbnail_url, category, visibility, ticket_price, scheduled_at, rule, session_type, topology, max_hosts })
    }
}

/// Which streams a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum ListType {
    /// On the air now, newest first.
    Live,
    /// Scheduled at a time, soonest first.
    Scheduled,
    /// Over, most recent first: saved (archived) ones; the host also sees
    /// those ended without saving.
    Recent,
    /// Everything, newest first (ended-unsaved, cancelled and failed
    /// streams only for their host).
    #[default]
    All,
}

/// Query of `GET /api/streams`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `live`, `scheduled`, `recent` or `all` (default).
    #[serde(rename = "type", default)]
    pub kind: ListType,
    /// 1-100, default 20.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
    /// Only this host's streams (username).
    pub host: Option<String>,
}

/// How many streams each listing has.
#[derive(Debug, Clone, Serialize, ToSchema, Default)]
pub struct ListCounts {
    /// Live now.
    pub live: i64,
    /// Scheduled at a time.
    pub scheduled: i64,
    /// Ended or archived.
    pub recent: i64,
    /// Every stream.
    pub all: i64,
}

/// A page of streams.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamPage {
    /// The streams.
    pub streams: Vec<Stream>,
    /// Streams of this type in all.
    pub total: i64,
    /// Per type.
    pub counts: ListCounts,
    /// As asked.
    pub limit: i64,
    /// As asked.
    pub offset: i64,
}

/// How long a cached stream (or channel) is trusted without asking the
/// database again. Every change the lifecycle announces drops the copy at
/// once, so this only bounds what is not announced (counters, the hour a
/// scheduled stream becomes a channel's publish target).
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// More entries than this and the cache forgets the stale ones.
const CACHE_MAX: usize = 10_000;

/// Streams and channel names as last read: what every chat message and
/// WebSocket `subscribe` / `watch` needs, answered without a query.
#[derive(Default)]
struct Cache {
    streams: DashMap<i64, (Instant, Option<Arc<Stream>>)>,
    /// Channel (host username) -> the stream it names.
    channels: DashMap<String, (Instant, Option<i64>)>,
    /// Bumped by every `forget`, so that a read that raced with a change
    /// does not store what it saw before it.
    generation: AtomicU64,
    /// Reads that had to go to the database.
    misses: AtomicU64,
    /// One read per stream at a time: a thousand requests that find the
    /// copy stale at once wait for the first one's read (a flash sale).
    filling: DashMap<i64, Arc<tokio::sync::Mutex<()>>>,
}

/// The stream store.
#[derive(Clone)]
pub struct StreamStore {
    pool: SqlitePool,
    cache: Arc<Cache>,
}

impl StreamStore {
    /// A store on this pool.
    pub fn new(pool: SqlitePool) -> Self {
        StreamStore { pool, cache: Default::default() }
    }

    /// A stream, from the cache if read within [`CACHE_TTL`].
    pub async fn cached(&self, id: i64) -> Result<Option<Arc<Stream>>, ApiError> {
        let now = Instant::now();
        if let Some(e) = self.cache.streams.get(&id).filter(|e| now.saturating_duration_since(e.0) < CACHE_TTL) {
            return Ok(e.1.clone());
        }
        let fill = self.cache.filling.entry(id).or_default().clone();
        let _filling = fill.lock().await;
        // Another request may have read it while this one waited.
        if let Some(e) = self.cache.streams.get(&id).filter(|e| Instant::now().saturating_duration_since(e.0) < CACHE_TTL) {
            return Ok(e.1.clone());
        }
        let now = Instant::now();
        let seen = self.cache.generation.load(Ordering::Acquire);
        self.cache.misses.fetch_add(1, Ordering::Relaxed);
        let s = self.get(id).await?.map(Arc::new);
        if self.cache.streams.len() >= CACHE_MAX {
            self.cache.streams.retain(|_, e| now.saturating_duration_since(e.0) < CACHE_TTL);
            self.cache.filling.retain(|_, m| Arc::strong_count(m) > 1);
        }
        if self.cache.generation.load(Ordering::Acquire) == seen {
            self.cache.streams.insert(id, (now, s.clone()));
        }
        Ok(s)
    }

    /// The stream a channel name resolved to, if cached within [`CACHE_TTL`].
    pub fn cached_channel(&self, name: &str) -> Option<Option<i64>> {
        self.cache.channels.get(name).filter(|e| e.0.elapsed() < CACHE_TTL).map(|e| e.1)
    }

    /// Remembers what a channel name resolved to; `seen` is
    /// [`StreamStore::cache_generation`] from before the lookup.
    pub fn remember_channel(&self, name: &str, stream: Option<i64>, seen: u64) {
        let now = Instant::now();
        if self.cache.channels.len() >= CACHE_MAX {
            self.cache.channels.retain(|_, e| now.saturating_duration_since(e.0) < CACHE_TTL);
        }
        if self.cache.generation.load(Ordering::Acquire) == seen {
            self.cache.channels.insert(name.to_owned(), (now, stream));
        }
    }

    /// The cache's generation now (see [`StreamStore::remember_channel`]).
    pub fn cache_generation(&self) -> u64 {
        self.cache.generation.load(Ordering::Acquire)
    }

    /// Drops the cached copies of a stream and of its host's channel (it changed).
    pub fn forget(&self, s: &Stream) {
        self.cache.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.streams.remove(&s.id);
        self.cache.channels.remove(&s.host.username);
    }

    /// Stream reads the cache could not answer, since the start.
    pub fn cache_misses(&self) -> u64 {
        self.cache.misses.load(Ordering::Relaxed)
    }

    /// The pool (for the lifecycle's transactions).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Creates a scheduled stream for a host.
    /// Without a thumbnail of its own it gets the channel's default one.
    pub async fn create(&self, host: &User, input: &NewStream, defaults: &ChannelDefaults) -> Result<Stream, ApiError> {
        let now = now_ms();
        let mut f = input.check(now)?;
        if f.thumbnail_url.is_none() {
            f.thumbnail_url = defaults.thumbnail_url.clone();
        }
        self.insert(host.id, &f, None, now).await
    }

    async fn insert(&self, host_id: i64, f: &Fields, series: Option<i64>, now: i64) -> Result<Stream, ApiError> {
        let cols = f.rule.as_ref().map(Rule::columns);
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO streams (host_id, series_id, title, description, thumbnail_url, visibility, ticket_price, state, scheduled_at, \
             recur_freq, recur_days, recur_time, timezone, recur_until, created_at, updated_at, category, session_type, topology, max_hosts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'scheduled', $8, $9, $10, $11, $12, $13, $14, $14, $15, $16, $17, $18) RETURNING id",
        )
        .bind(host_id)
        .bind(series)
        .bind(&f.title)
        .bind(&f.description)
        .bind(&f.thumbnail_url)
        .bind(f.visibility.as_str())
        .bind(f.ticket_price)
        .bind(f.scheduled_at)
        .bind(cols.as_ref().map(|c| c.0))
        .bind(cols.as_ref().map(|c| c.1.clone()))
        .bind(cols.as_ref().map(|c| c.2.clone()))
        .bind(cols.as_ref().map(|c| c.3.clone()))
        .bind(cols.as_ref().and_then(|c| c.4))
        .bind(now)
        .bind(&f.category)
        .bind(f.session_type.as_str())
        .bind(f.topology.as_str())
        .bind(f.max_hosts)
        .fetch_one(&self.pool)
        .await
        .db()?;
        if f.rule.is_some() && series.is_none() {
            sqlx::query("UPDATE streams SET series_id = id WHERE id = $1").bind(id).execute(&self.pool).await.db()?;
        }
        self.get(id).await?.ok_or_else(|| ApiError::internal("stream vanished after insert"))
    }

    /// An ad-hoc stream for a host who went live with nothing prepared:
    /// their channel's defaults (title, description, category, thumbnail,
    /// visibility).
    pub async fn create_adhoc(&self, host: &User, defaults: &ChannelDefaults) -> Result<Stream, ApiError> {
        let title = if defaults.title.is_empty() { crate::channels::automatic_title(&host.display_name) } else { defaults.title.clone() };
        let f = Fields {
            title,
            description: defaults.description.clone(),
            thumbnail_url: defaults.thumbnail_url.clone(),
            category: defaults.category.clone(),
            visibility: defaults.visibility,
            ticket_price: None,
            scheduled_at: None,
            rule: None,
            session_type: SessionType::Solo,
            topology: Topology::Auto,
            max_hosts: MAX_HOSTS as i64,
        };
        self.insert(host.id, &f, None, now_ms()).await
    }

    /// The next occurrence of a recurring stream, as a new scheduled stream
    /// with the same details (and reminders).
    pub async fn spawn_next(&self, s: &Stream) -> Result<Option<Stream>, ApiError> {
        let Some(rec) = &s.recurrence else { return Ok(None) };
        let Ok(rule) = Rule::parse(rec) else { return Ok(None) };
        let after = s.scheduled_at.unwrap_or(0).max(now_ms());
        let Some(next) = rule.next_after(after) else { return Ok(None) };
        let f = Fields {
            title: s.title.clone(),
            description: s.description.clone(),
            thumbnail_url: s.thumbnail_url.clone(),
            category: s.category.clone(),
            visibility: s.visibility,
            ticket_price: s.ticket_price,
            scheduled_at: Some(next),
            rule: Some(rule),
            session_type: s.session_type,
            topology: s.topology,
            max_hosts: s.max_hosts,
        };
        let series = s.series_id.unwrap_or(s.id);
        // One scheduled occurrence per series at a time.
        let existing: Option<(i64,)> = sqlx::query_as("SELECT id FROM streams WHERE series_id = $1 AND state = 'scheduled' AND id <> $2")
            .bind(series)
            .bind(s.id)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        if existing.is_some() {
            return Ok(None);
        }
        let created = self.insert(s.host.id, &f, Some(series), now_ms()).await?;
        sqlx::query("INSERT INTO reminders (stream_id, user_id, created_at) SELECT $1, user_id, created_at FROM reminders WHERE stream_id = $2 ON CONFLICT DO NOTHING")
            .bind(created.id)
            .bind(s.id)
            .execute(&self.pool)
            .await
            .db()?;
        Ok(Some(created))
    }

    /// A stream by id.
    pub async fn get(&self, id: i64) -> Result<Option<Stream>, ApiError> {
        let row = sqlx::query(&format!("{SELECT} WHERE s.id = $1")).bind(id).fetch_optional(&self.pool).await.db()?;
        row.as_ref().map(stream_of).transpose().db()
    }

    /// A stream by id, read on a transaction (as that transaction sees it).
    pub async fn get_in(conn: &mut sqlx::SqliteConnection, id: i64) -> Result<Option<Stream>, sqlx::Error> {
        let row = sqlx::query(&format!("{SELECT} WHERE s.id = $1")).bind(id).fetch_optional(conn).await?;
        row.as_ref().map(stream_of).transpose()
    }

    /// A host's live stream, if any.
    pub async fn live_of(&self, host_id: i64) -> Result<Option<Stream>, ApiError> {
        let row = sqlx::query(&format!("{SELECT} WHERE s.host_id = $1 AND s.state = 'live'")).bind(host_id).fetch_optional(&self.pool).await.db()?;
        row.as_ref().map(stream_of).transpose().db()
    }

    /// The stream a WHIP publish of this host goes live on: its live stream
    /// (started by the API, or reconnecting); else a scheduled one due within
    /// an hour either side (the nearest); else its newest unscheduled one
    /// made in the last day. `None`: make an ad-hoc stream.
    pub async fn publish_target(&self, host_id: i64) -> Result<Option<Stream>, ApiError> {
        if let Some(s) = self.live_of(host_id).await? {
            return Ok(Some(s));
        }
        let now = now_ms();
        const HOUR: i64 = 3600 * 1000;
        let row = sqlx::query(&format!(
            "{SELECT} WHERE s.host_id = $1 AND s.state = 'scheduled' AND s.scheduled_at BETWEEN $2 AND $3 \
             ORDER BY CASE WHEN s.scheduled_at > $4 THEN s.scheduled_at - $4 ELSE $4 - s.scheduled_at END LIMIT 1"
        ))
        .bind(host_id)
        .bind(now - HOUR)
        .bind(now + HOUR)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        if let Some(r) = row {
            return stream_of(&r).map(Some).db();
        }
        let row = sqlx::query(&format!(
            "{SELECT} WHERE s.host_id = $1 AND s.state = 'scheduled' AND s.scheduled_at IS NULL AND s.created_at > $2 ORDER BY s.id DESC LIMIT 1"
        ))
        .bind(host_id)
        .bind(now - 24 * HOUR)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        row.as_ref().map(stream_of).transpose().db()
    }

    /// A page of streams with counts.
    ///
    /// Streams ended without saving, cancelled or failed are the host's
    /// business: they are listed only when `caller` (user id, is staff) asks
    /// for their own channel's streams (`host`), or is staff.
    pub async fn list(&self, q: &ListQuery, caller: Option<(i64, bool)>) -> Result<StreamPage, ApiError> {
        let limit = q.limit.unwrap_or(20);
        let offset = q.offset.unwrap_or(0);
        let mut fields = BTreeMap::new();
        if !(1..=100).contains(&limit) {
            fields.insert("limit".into(), "must be 1-100".into());
        }
        if offset < 0 {
            fields.insert("offset".into(), "must not be negative".into());
        }
        if !fields.is_empty() {
            return Err(ApiError::validation(fields));
        }
        let host_id = match &q.host {
            Some(name) => {
                let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE username = $1").bind(name.to_ascii_lowercase()).fetch_optional(&self.pool).await.db()?;
                match row {
                    Some((id,)) => Some(id),
                    None => return Err(ApiError::not_found(format!("no host '{name}'"))),
                }
            }
            None => None,
        };
        let private = host_id.is_some() && caller.is_some_and(|(id, staff)| staff || Some(id) == host_id);
        let (recent, all) = if private { ("s.state IN ('ended', 'archived')", "1 = 1") } else { ("s.state = 'archived'", "s.state IN ('scheduled', 'live', 'archived')") };
        let (filter, order) = match q.kind {
            ListType::Live => ("s.state = 'live'", "s.started_at DESC, s.id DESC"),
            ListType::Scheduled => ("s.state = 'scheduled' AND s.scheduled_at IS NOT NULL", "s.scheduled_at ASC, s.id ASC"),
            ListType::Recent => (recent, "s.ended_at DESC, s.id DESC"),
            ListType::All => (all, "s.id DESC"),
        };
        // The host filter is the last parameter, and only there when asked.
        let by_host = |n: usize| if host_id.is_some() { format!(" AND s.host_id = ${n}") } else { String::new() };
        let sql = format!("{SELECT} WHERE {filter}{} ORDER BY {order} LIMIT $1 OFFSET $2", by_host(3));
        let mut query = sqlx::query(&sql).bind(limit).bind(offset);
        if let Some(h) = host_id {
            query = query.bind(h);
        }
        let rows = query.fetch_all(&self.pool).await.db()?;
        let streams = rows.iter().map(stream_of).collect::<Result<Vec<_>, _>>().db()?;
        let sql = format!(
            "SELECT SUM(CASE WHEN s.state = 'live' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN s.state = 'scheduled' AND s.scheduled_at IS NOT NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN {recent} THEN 1 ELSE 0 END), SUM(CASE WHEN {all} THEN 1 ELSE 0 END) FROM streams s WHERE 1 = 1{}",
            by_host(1)
        );
        let mut query = sqlx::query_as::<_, (Option<i64>, Option<i64>, Option<i64>, Option<i64>)>(&sql);
        if let Some(h) = host_id {
            query = query.bind(h);
        }
        let (live, scheduled, recent, all) = query.fetch_one(&self.pool).await.db()?;
        let counts = ListCounts { live: live.unwrap_or(0), scheduled: scheduled.unwrap_or(0), recent: recent.unwrap_or(0), all: all.unwrap_or(0) };
        let total = match q.kind {
            ListType::Live => counts.live,
            ListType::Scheduled => counts.scheduled,
            ListType::Recent => counts.recent,
            ListType::All => counts.all,
        };
        Ok(StreamPage { streams, total, counts, limit, offset })
    }

    /// Applies a patch (the caller checked ownership).
    pub async fn update(&self, s: &Stream, p: &StreamPatch) -> Result<Stream, ApiError> {
        let now = now_ms();
        let mut fields = BTreeMap::new();
        let title = p.title.as_deref().map(|t| check_title(t, &mut fields)).unwrap_or_else(|| s.title.clone());
        let description = p.description.as_deref().map(|d| d.trim().to_owned()).unwrap_or_else(|| s.description.clone());
        if description.chars().count() > 5000 {
            fields.insert("description".into(), "must be at most 5,000 characters".into());
        }
        let thumbnail_url = match &p.thumbnail_url {
            Some(u) => check_url(u, &mut fields),
            None => s.thumbnail_url.clone(),
        };
        let category = match &p.category {
            Some(c) => crate::channels::check_category(c, &mut fields),
            None => s.category.clone(),
        };
        let visibility = p.visibility.unwrap_or(s.visibility);
        let price = if p.ticket_price.is_some() || p.visibility.is_some() { p.ticket_price.or(s.ticket_price.filter(|_| visibility == Visibility::Ticketed)) } else { s.ticket_price };
        let ticket_price = check_price(visibility, price, &mut fields);
        let rescheduling = p.scheduled_at.is_some() || p.recurrence.is_some();
        if rescheduling && s.state != State::Scheduled {
            fields.insert("scheduled_at".into(), format!("a {} stream cannot be rescheduled", s.state.as_str()));
        }
        let current_rec = s.recurrence.clone();
        let (scheduled_at, rule) = if rescheduling {
            check_schedule(p.scheduled_at.as_deref(), p.recurrence.as_ref().or(current_rec.as_ref()), now, &mut fields)
        } else {
            (s.scheduled_at, current_rec.as_ref().and_then(|r| Rule::parse(r).ok()))
        };
        let max_hosts = match p.max_hosts {
            Some(n) => {
                let n = check_max_hosts(n, &mut fields);
                let hosts = crate::rooms::host_count(&self.pool, s.id).await?;
                if fields.is_empty() && n < hosts {
                    fields.insert("max_hosts".into(), format!("the room has {hosts} hosts now"));
                }
                n
            }
            None => s.max_hosts,
        };
        if !fields.is_empty() {
            return Err(ApiError::validation(fields));
        }
        let cols = rule.as_ref().map(Rule::columns);
        sqlx::query(
            "UPDATE streams SET title = $1, description = $2, thumbnail_url = $3, visibility = $4, ticket_price = $5, scheduled_at = $6, \
             recur_freq = $7, recur_days = $8, recur_time = $9, timezone = $10, recur_until = $11, updated_at = $12, \
             series_id = CASE WHEN $7 IS NOT NULL AND series_id IS NULL THEN id ELSE series_id END, category = $14 WHERE id = $13",
        )
        .bind(&title)
        .bind(&description)
        .bind(&thumbnail_url)
        .bind(visibility.as_str())
        .bind(ticket_price)
        .bind(scheduled_at)
        .bind(cols.as_ref().map(|c| c.0))
        .bind(cols.as_ref().map(|c| c.1.clone()))
        .bind(cols.as_ref().map(|c| c.2.clone()))
        .bind(cols.as_ref().map(|c| c.3.clone()))
        .bind(cols.as_ref().and_then(|c| c.4))
        .bind(now)
        .bind(s.id)
        .bind(&category)
        .execute(&self.pool)
        .await
        .db()?;
        sqlx::query("UPDATE streams SET session_type = $1, topology = $2, max_hosts = $3 WHERE id = $4")
            .bind(p.session_type.unwrap_or(s.session_type).as_str())
            .bind(p.topology.unwrap_or(s.topology).as_str())
            .bind(max_hosts)
            .bind(s.id)
            .execute(&self.pool)
            .await
            .db()?;
        self.get(s.id).await?.ok_or_else(|| ApiError::not_found("no such stream"))
    }

    /// Sets (or removes) a stream's thumbnail.
    pub async fn set_thumbnail(&self, id: i64, url: Option<&str>) -> Result<Stream, ApiError> {
        sqlx::query("UPDATE streams SET thumbnail_url = $1, updated_at = $2 WHERE id = $3").bind(url).bind(now_ms()).bind(id).execute(&self.pool).await.db()?;
        self.get(id).await?.ok_or_else(|| no_stream(id))
    }

    /// Deletes a stream that is not live (with its chat and analytics).
    pub async fn delete(&self, s: &Stream) -> Result<bool, ApiError> {
        let r = sqlx::query("DELETE FROM streams WHERE id = $1 AND state <> 'live'").bind(s.id).execute(&self.pool).await.db()?;
        self.forget(s);
        Ok(r.rows_affected() == 1)
    }

    /// Scheduled recurring streams whose time passed more than `late_ms` ago
    /// without going live.
    pub async fn missed_occurrences(&self, late_ms: i64) -> Result<Vec<Stream>, ApiError> {
        let rows = sqlx::query(&format!("{SELECT} WHERE s.state = 'scheduled' AND s.recur_freq IS NOT NULL AND s.scheduled_at < $1"))
            .bind(now_ms() - late_ms)
            .fetch_all(&self.pool)
            .await
            .db()?;
        rows.iter().map(stream_of).collect::<Result<Vec<_>, _>>().db()
    }

    /// Moves a missed recurring stream to its next occurrence.
    pub async fn roll_forward(&self, s: &Stream) -> Result<(), ApiError> {
        let Some(rule) = s.recurrence.as_ref().and_then(|r| Rule::parse(r).ok()) else { return Ok(()) };
        match rule.next_after(now_ms()) {
            Some(next) => {
                sqlx::query("UPDATE streams SET scheduled_at = $1, updated_at = $2 WHERE id = $3 AND state = 'scheduled'")
                    .bind(next)
                    .bind(now_ms())
                    .bind(s.id)
                    .execute(&self.pool)
                    .await
                    .db()?;
            }
            None => {
                sqlx::query("UPDATE streams SET state = 'cancelled', end_reason = 'series_over', updated_at = $1 WHERE id = $2 AND state = 'scheduled'")
                    .bind(now_ms())
                    .bind(s.id)
                    .execute(&self.pool)
                    .await
                    .db()?;
            }
        }
        Ok(())
    }

    /// Upcoming occurrences of a stream (one for a one-off).
    pub fn occurrences(s: &Stream, from: i64, count: usize) -> Vec<i64> {
        match s.recurrence.as_ref().and_then(|r| Rule::parse(r).ok()) {
            Some(rule) => rule.occurrences(from - 1, count),
            None => s.scheduled_at.filter(|at| *at >= from).into_iter().collect(),
        }
    }
}

/// 404 for a stream id that does not exist.
pub fn no_stream(id: i64) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "stream_not_found", format!("no stream {id}"))
}
