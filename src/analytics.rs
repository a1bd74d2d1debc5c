//! Viewer analytics from real connections only.
//!
//! A viewer is present in a stream while they have at least one connection
//! to it: a WebRTC session (counted once connected) or an open watch page
//! (its WebSocket said `watch`). A page sends the same viewer key with both,
//! and a logged-in user is one viewer however many tabs they open, so
//! nobody counts twice. Each continuous stay is one `viewer_sessions` row
//! (join, leave, device type from the user agent).
//!
//! Load-test clients are recorded, flagged, and left out of every public
//! figure: the viewer count, the peak, and all of the report.
//!
//! No one makes a crowd by script: a viewer is a logged-in user, or else the
//! viewer key its page holds (a WebSocket keeps the first key it names), or
//! else the connection itself; and at most `--viewers-per-ip` viewers of a
//! stream are counted (and recorded) per client network (an IPv4 address or
//! an IPv6 /64, behind trusted proxies the address they name). A viewer
//! who comes back within [`REJOIN`] (a page reload) resumes their stay.
//!
//! All presence changes go through one task, in order, so a join and a
//! quick leave can never cross; it also pushes viewer counts (at most twice
//! a second per stream) and keeps `last_seen_at` fresh so that a crash loses
//! at most half a minute of watch time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use onair_media::SessionId;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};
use utoipa::{IntoParams, ToSchema};

use crate::client_addr::Network;
use crate::clock::now_ms;
use crate::db::DbResult;
use crate::realtime::{Event, Hub, Topic};
use crate::streams::Stream;

/// One connection that makes a viewer present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conn {
    /// A watch page's WebSocket (hub connection id).
    Page(u64),
    /// A WebRTC viewer session.
    WebRtc(SessionId),
}

/// Who a connection belongs to.
#[derive(Debug, Clone, Default)]
pub struct ViewerInfo {
    /// `u:{user id}` for logged-in users, else the page's key, else the session.
    pub key: String,
    /// The user, if logged in.
    pub user_id: Option<i64>,
    /// User agent.
    pub user_agent: String,
    /// A load-test client.
    pub load_test: bool,
    /// Where they watch from (never their address).
    pub location: crate::geo::Location,
    /// The client's network, what the per-address cap counts by.
    pub network: Option<Network>,
}

/// A stay for the report: viewer key, joined, left (or now), device, webrtc, country, region.
type StayRow = (String, i64, i64, String, i64, Option<String>, Option<String>);
/// A session row: id, viewer key, user, device, user agent, webrtc, load test, joined, left, country, region.
type SessionRow = (i64, String, Option<i64>, String, String, i64, i64, i64, Option<i64>, Option<String>, Option<String>);

/// A viewer back this soon after leaving (a reload) resumes the same stay.
pub const REJOIN: Duration = Duration::from_secs(10);

impl ViewerInfo {
    /// The key a viewer is counted by.
    pub fn key_for(user_id: Option<i64>, page_key: Option<&str>, fallback: &str) -> String {
        match (user_id, page_key) {
            (Some(u), _) => format!("u:{u}"),
            (None, Some(k)) => format!("k:{k}"),
            (None, None) => fallback.to_owned(),
        }
    }
}

/// Device type from a user agent.
pub fn device_of(user_agent: &str) -> &'static str {
    let ua = user_agent.to_ascii_lowercase();
    let has = |s: &str| ua.contains(s);
    if ua.is_empty() {
        "unknown"
    } else if has("(load test)") {
        "load_test"
    } else if has("ipad") || has("tablet") || (has("android") && !has("mobile")) {
        "tablet"
    } else if has("mobi") || has("iphone") || has("android") {
        "mobile"
    } else if has("smart-tv") || has("smarttv") || has("tizen") || has("web0s") || has("webos") || has("hbbtv") || has("appletv") || has("roku") || has("crkey") {
        "tv"
    } else if has("mozilla") {
        "desktop"
    } else {
        // Encoders, players and libraries: ffplay, GStreamer, libwebrtc, ...
        "app"
    }
}

enum Msg {
    Join { stream: i64, conn: Conn, info: ViewerInfo },
    Leave { conn: Conn },
    End { stream: i64 },
    Flush { done: oneshot::Sender<()> },
    Shutdown { done: oneshot::Sender<()> },
}

struct Present {
    conns: HashSet<Conn>,
    row: i64,
    load_test: bool,
    webrtc: bool,
    network: Option<Network>,
}

/// A stay that just ended, which a quick return resumes.
struct Left {
    row: i64,
    webrtc: bool,
    at: Instant,
}

#[derive(Default)]
struct Room {
    viewers: HashMap<String, Present>,
    public: u64,
    peak: u64,
    dirty: bool,
    stored_peak: u64,
    /// The stream ended: forget the room once its last count is out.
    ended: bool,
    /// When it last went empty (a room empty for an hour is forgotten too).
    empty_since: Option<Instant>,
    /// Viewers present per client network (the cap).
    networks: HashMap<Network, usize>,
    /// Viewers who left in the last [`REJOIN`].
    recent: HashMap<String, Left>,
}

/// Live figures of a stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    /// Real viewers now.
    pub viewers: u64,
    /// Most at once this run.
    pub peak: u64,
}

/// The analytics handle.
#[derive(Clone)]
pub struct Analytics {
    tx: mpsc::UnboundedSender<Msg>,
    live: Arc<DashMap<i64, Live>>,
    /// WHEP sessions opened but not yet connected, with who they are.
    pending: Arc<DashMap<SessionId, ViewerInfo>>,
    pool: SqlitePool,
    /// Whether an IP location database is loaded (else locations are unknown).
    geo: bool,
}

impl Analytics {
    /// Closes the sessions a previous run left open (at their last sign of
    /// life) and starts the presence task; `per_network` caps the viewers
    /// counted per client network (0: no cap).
    pub async fn start(pool: SqlitePool, hub: Arc<Hub>, per_network: usize, geo: bool) -> Result<Analytics, String> {
        sqlx::query("UPDATE viewer_sessions SET left_at = last_seen_at WHERE left_at IS NULL").execute(&pool).await.map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let live: Arc<DashMap<i64, Live>> = Default::default();
        tokio::spawn(run(pool.clone(), hub, rx, live.clone(), per_network));
        Ok(Analytics { tx, live, pending: Default::default(), pool, geo })
    }

    /// Real viewers of a stream now.
    pub fn live(&self, stream: i64) -> Live {
        self.live.get(&stream).map(|l| *l).unwrap_or_default()
    }

    /// Real viewers of every stream now, together.
    pub fn viewers_total(&self) -> u64 {
        self.live.iter().map(|l| l.viewers).sum()
    }

    /// Fills in a stream's live viewer count.
    pub fn with_viewers(&self, mut s: Stream) -> Stream {
        s.viewers = self.live(s.id).viewers;
        s
    }

    /// A WHEP session was opened for this viewer (it counts once connected).
    pub fn webrtc_opened(&self, session: SessionId, info: ViewerInfo) {
        self.pending.insert(session, info);
    }

    /// A WebRTC viewer connected.
    pub fn webrtc_joined(&self, stream: i64, session: SessionId) {
        let info = self.pending.remove(&session).map(|(_, i)| i).unwrap_or_else(|| ViewerInfo { key: format!("s:{session}"), ..Default::default() });
        let _ = self.tx.send(Msg::Join { stream, conn: Conn::WebRtc(session), info });
    }

    /// A WebRTC viewer left (or never connected).
    pub fn webrtc_left(&self, session: SessionId) {
        self.pending.remove(&session);
        let _ = self.tx.send(Msg::Leave { conn: Conn::WebRtc(session) });
    }

    /// A watch page opened.
    pub fn page_joined(&self, stream: i64, conn: u64, info: ViewerInfo) {
        let _ = self.tx.send(Msg::Join { stream, conn: Conn::Page(conn), info });
    }

    /// A watch page closed.
    pub fn page_left(&self, conn: u64) {
        let _ = self.tx.send(Msg::Leave { conn: Conn::Page(conn) });
    }

    /// The stream ended: every stay in it ends now.
    pub fn stream_ended(&self, stream: i64) {
        let _ = self.tx.send(Msg::End { stream });
    }

    /// The server stops: every stay still open ends now (its watch time
    /// stored), peaks are stored; waits until that is on disk.
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Shutdown { done }).is_ok() {
            let _ = wait.await;
        }
    }

    /// Waits until every change sent so far is applied and stored.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush { done }).is_ok() {
            let _ = wait.await;
        }
    }

    /// The report of a stream (live or over).
    pub async fn report(&self, s: &Stream) -> Result<Report, ApiError> {
        self.flush().await;
        let now = now_ms();
        let rows: Vec<StayRow> = sqlx::query_as(
            "SELECT viewer_key, joined_at, COALESCE(left_at, $2), device, webrtc, country, region FROM viewer_sessions WHERE stream_id = $1 AND load_test = 0 ORDER BY joined_at, id",
        )
        .bind(s.id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .db()?;
        let (load_tests,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM viewer_sessions WHERE stream_id = $1 AND load_test = 1").bind(s.id).fetch_one(&self.pool).await.db()?;
        let live = self.live(s.id);
        let mut per_viewer: HashMap<&str, i64> = HashMap::new();
        let mut devices: BTreeMap<String, i64> = BTreeMap::new();
        let mut device_seen: HashSet<(&str, &str)> = HashSet::new();
        let mut webrtc: HashSet<&str> = HashSet::new();
        for (key, from, to, device, rtc, _, _) in &rows {
            *per_viewer.entry(key).or_default() += (to - from).max(0);
            if device_seen.insert((key, device)) {
                *devices.entry(device.clone()).or_default() += 1;
            }
            if *rtc != 0 {
                webrtc.insert(key);
            }
        }
        let unique = per_viewer.len() as i64;
        let geography = geography(self.geo, rows.iter().map(|r| (r.0.as_str(), (r.2 - r.1).max(0), r.5.as_deref(), r.6.as_deref())));
        let total_ms: i64 = per_viewer.values().sum();
        let avg = if unique > 0 { total_ms / unique / 1000 } else { 0 };
        let retention = [30, 60, 300, 600, 1800, 3600]
            .into_iter()
            .map(|after| {
                let n = per_viewer.values().filter(|ms| **ms >= after * 1000).count() as i64;
                RetentionPoint { after_seconds: after, viewers: n, share: if unique > 0 { n as f64 / unique as f64 } else { 0.0 } }
            })
            .collect();
        // Durations count from the first media, not from a start by API
        // that waited for it.
        let start = s.live_since.or(rows.first().map(|r| r.1));
        let end = s.ended_at.unwrap_or(now);
        let timeline = match start {
            Some(start) if end > start => {
                let bucket = ((end - start) / 120).max(60_000);
                let mut points = Vec::new();
                let mut t = start;
                while t <= end {
                    let present: HashSet<&str> = rows.iter().filter(|r| r.1 <= t && r.2 > t).map(|r| r.0.as_str()).collect();
                    points.push(TimelinePoint { at: t, viewers: present.len() as i64 });
                    t += bucket;
                }
                points
            }
            _ => Vec::new(),
        };
        let duration = match (s.live_since, s.ended_at) {
            (Some(a), Some(b)) => (b - a) / 1000,
            (Some(a), None) => (now - a) / 1000,
            _ => 0,
        };
        let peak = (s.peak_viewers.max(0) as u64).max(live.peak) as i64;
        let (orders, _, revenue) = crate::shop::analytics::totals(&self.pool, s.id).await?;
        let summary = Summary {
            orders,
            revenue,
            duration_seconds: duration,
            unique_viewers: unique,
            peak_viewers: peak,
            likes: s.likes,
            chat_messages: s.chat_messages,
            total_watch_seconds: total_ms / 1000,
            average_watch_seconds: avg,
        };
        Ok(Report {
            stream_id: s.id,
            state: s.state,
            viewers_now: live.viewers,
            webrtc_viewers: webrtc.len() as i64,
            retention,
            timeline,
            devices,
            load_test_sessions: load_tests,
            over: s.is_over(),
            summary,
            geography,
        })
    }

    /// Viewer sessions of a stream, newest first.
    pub async fn sessions(&self, stream: i64, q: &SessionsQuery) -> Result<Vec<ViewerSession>, ApiError> {
        self.flush().await;
        let limit = q.limit.unwrap_or(100).clamp(1, 1000);
        let offset = q.offset.unwrap_or(0).max(0);
        let lt = if q.load_tests { "" } else { " AND load_test = 0" };
        let rows: Vec<SessionRow> = sqlx::query_as(&format!(
            "SELECT id, viewer_key, user_id, device, user_agent, webrtc, load_test, joined_at, left_at, country, region FROM viewer_sessions \
             WHERE stream_id = $1{lt} ORDER BY joined_at DESC, id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(stream)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .db()?;
        let now = now_ms();
        Ok(rows
            .into_iter()
            .map(|(id, key, user_id, device, user_agent, webrtc, load_test, joined, left, country, region)| ViewerSession {
                id,
                viewer: key,
                user_id,
                device,
                user_agent,
                webrtc: webrtc != 0,
                load_test: load_test != 0,
                joined_at: joined,
                left_at: left,
                watch_seconds: (left.unwrap_or(now) - joined).max(0) / 1000,
                country,
                region,
            })
            .collect())
    }
}

/// The end-of-stream figures (also while live, so far).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Summary {
    /// From going live to the end (or now).
    pub duration_seconds: i64,
    /// Different viewers.
    pub unique_viewers: i64,
    /// Most at once.
    pub peak_viewers: i64,
    /// Likes (reactions).
    pub likes: i64,
    /// Chat messages (comments).
    pub chat_messages: i64,
    /// All viewers' watch time together.
    pub total_watch_seconds: i64,
    /// Per viewer.
    pub average_watch_seconds: i64,
    /// Paid shop orders placed in the stream.
    pub orders: i64,
    /// What they paid, minor units of the platform's currency.
    pub revenue: i64,
}

/// Share of viewers who watched at least so long.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetentionPoint {
    /// Watch time, seconds.
    pub after_seconds: i64,
    /// Viewers who watched at least that long.
    pub viewers: i64,
    /// As a share of unique viewers.
    pub share: f64,
}

/// Viewers present at a time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimelinePoint {
    /// When.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    /// Viewers then.
    pub viewers: i64,
}

/// A stream's analytics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Report {
    /// Stream.
    pub stream_id: i64,
    /// Its state.
    pub state: crate::streams::State,
    /// Over (the summary is final).
    pub over: bool,
    /// Real viewers now.
    pub viewers_now: u64,
    /// Viewers who watched over WebRTC (the rest only had the page open).
    pub webrtc_viewers: i64,
    /// The figures.
    pub summary: Summary,
    /// How long viewers stayed.
    pub retention: Vec<RetentionPoint>,
    /// Viewers over time.
    pub timeline: Vec<TimelinePoint>,
    /// Viewers per device type.
    pub devices: BTreeMap<String, i64>,
    /// Load-test sessions seen (never in the figures above).
    pub load_test_sessions: i64,
    /// Viewers and watch time by country and region.
    pub geography: Geography,
}

/// Where the audience watched from.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Geography {
    /// Whether the server has an IP location database (`--geoip-db`);
    /// without one every viewer is `unknown`.
    pub database: bool,
    /// Per country (ISO 3166-1 code, or `unknown`), most viewers first.
    pub countries: Vec<PlaceFigures>,
    /// Per region within a country (`unknown` when the database has none).
    pub regions: Vec<PlaceFigures>,
}

/// The audience of one place.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct PlaceFigures {
    /// Country code, or `unknown`.
    pub country: String,
    /// Region (in `regions` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Different viewers (each counted where their first stay began).
    pub viewers: i64,
    /// Their watch time there, seconds.
    pub watch_seconds: i64,
}

/// Viewers and watch time per country and region, from stays (viewer key,
/// milliseconds watched, country, region) in the order they began.
pub fn geography<'a>(geo: bool, stays: impl Iterator<Item = (&'a str, i64, Option<&'a str>, Option<&'a str>)>) -> Geography {
    const UNKNOWN: &str = "unknown";
    let mut seen: HashSet<&str> = HashSet::new();
    let mut countries: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut regions: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for (key, ms, country, region) in stays {
        let c = country.unwrap_or(UNKNOWN).to_owned();
        let r = region.unwrap_or(UNKNOWN).to_owned();
        let first = seen.insert(key) as i64;
        let e = countries.entry(c.clone()).or_default();
        e.0 += first;
        e.1 += ms;
        let e = regions.entry((c, r)).or_default();
        e.0 += first;
        e.1 += ms;
    }
    let mut countries: Vec<PlaceFigures> = countries.into_iter().map(|(country, (v, ms))| PlaceFigures { country, region: None, viewers: v, watch_seconds: ms / 1000 }).collect();
    let mut regions: Vec<PlaceFigures> = regions.into_iter().map(|((country, region), (v, ms))| PlaceFigures { country, region: Some(region), viewers: v, watch_seconds: ms / 1000 }).collect();
    countries.sort_by(|a, b| b.viewers.cmp(&a.viewers).then(b.watch_seconds.cmp(&a.watch_seconds)).then(a.country.cmp(&b.country)));
    regions.sort_by(|a, b| b.viewers.cmp(&a.viewers).then(b.watch_seconds.cmp(&a.watch_seconds)).then(a.country.cmp(&b.country)).then(a.region.cmp(&b.region)));
    Geography { database: geo, countries, regions }
}

/// Query of the sessions list.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionsQuery {
    /// 1-1000, default 100.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
    /// Include load-test clients (default false).
    #[serde(default)]
    pub load_tests: bool,
}

/// One viewer's stay.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ViewerSession {
    /// Id.
    pub id: i64,
    /// The key the viewer is counted by.
    pub viewer: String,
    /// The user, if logged in.
    pub user_id: Option<i64>,
    /// desktop, mobile, tablet, tv, app, unknown.
    pub device: String,
    /// User agent.
    pub user_agent: String,
    /// Watched over WebRTC (else only had the page open).
    pub webrtc: bool,
    /// A load-test client.
    pub load_test: bool,
    /// Joined.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: i64,
    /// Left (null: still here).
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub left_at: Option<i64>,
    /// So far.
    pub watch_seconds: i64,
    /// Country (ISO code) the stay began in; null: unknown.
    pub country: Option<String>,
    /// Region; null: unknown.
    pub region: Option<String>,
}

async fn run(pool: SqlitePool, hub: Arc<Hub>, mut rx: mpsc::UnboundedReceiver<Msg>, live: Arc<DashMap<i64, Live>>, per_network: usize) {
    let mut rooms: HashMap<i64, Room> = HashMap::new();
    let mut index: HashMap<Conn, (i64, String)> = HashMap::new();
    let mut push = tokio::time::interval(Duration::from_millis(500));
    let mut heartbeat = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { return };
                match apply(&pool, &mut rooms, &mut index, msg, per_network).await {
                    // Readers see a change at once; events go out at the next push.
                    Ok(Some(id)) => {
                        if let Some(room) = rooms.get(&id) {
                            live.insert(id, Live { viewers: room.public, peak: room.peak });
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!("analytics: {e}"),
                }
            }
            _ = push.tick() => {
                for (id, room) in rooms.iter_mut().filter(|(_, r)| r.dirty) {
                    room.dirty = false;
                    hub.publish(Topic::Stream(*id), &Event::ViewerCount { stream_id: *id, viewers: room.public, peak: room.peak });
                    if room.peak > room.stored_peak {
                        room.stored_peak = room.peak;
                        let _ = sqlx::query("UPDATE streams SET peak_viewers = $1 WHERE id = $2 AND peak_viewers < $1").bind(room.peak as i64).bind(*id).execute(&pool).await;
                    }
                }
                // A room lives as long as its stream (so the peak is of the whole stream).
                rooms.retain(|id, r| {
                    r.recent.retain(|_, l| l.at.elapsed() < REJOIN);
                    if r.viewers.is_empty() {
                        r.empty_since.get_or_insert_with(Instant::now);
                    } else {
                        r.empty_since = None;
                    }
                    let stale = r.empty_since.is_some_and(|t| t.elapsed() > Duration::from_secs(3600));
                    let keep = r.dirty || !(r.ended || stale);
                    if !keep {
                        live.remove(id);
                    }
                    keep
                });
            }
            _ = heartbeat.tick() => {
                let _ = sqlx::query("UPDATE viewer_sessions SET last_seen_at = $1 WHERE left_at IS NULL").bind(now_ms()).execute(&pool).await;
            }
        }
    }
}

/// Applies one change; returns the stream whose figures it changed.
async fn apply(pool: &SqlitePool, rooms: &mut HashMap<i64, Room>, index: &mut HashMap<Conn, (i64, String)>, msg: Msg, per_network: usize) -> Result<Option<i64>, sqlx::Error> {
    let now = now_ms();
    let changed = match msg {
        Msg::Join { stream, conn, info } => {
            if index.contains_key(&conn) {
                return Ok(None);
            }
            let room = rooms.entry(stream).or_default();
            room.ended = false;
            let webrtc = matches!(conn, Conn::WebRtc(_));
            match room.viewers.get_mut(&info.key) {
                Some(p) => {
                    p.conns.insert(conn);
                    if webrtc && !p.webrtc {
                        p.webrtc = true;
                        sqlx::query("UPDATE viewer_sessions SET webrtc = 1 WHERE id = $1").bind(p.row).execute(pool).await?;
                    }
                }
                None => {
                    let full = info.network.is_some_and(|n| per_network > 0 && room.networks.get(&n).copied().unwrap_or(0) >= per_network);
                    if full {
                        // One address cannot make a crowd: past the cap a new
                        // viewer is neither counted nor recorded.
                        return Ok(None);
                    }
                    let (row, was_webrtc) = match room.recent.remove(&info.key) {
                        Some(left) if left.at.elapsed() < REJOIN => {
                            sqlx::query("UPDATE viewer_sessions SET left_at = NULL, last_seen_at = $1, webrtc = CASE WHEN $2 = 1 THEN 1 ELSE webrtc END WHERE id = $3")
                                .bind(now)
                                .bind(webrtc as i64)
                                .bind(left.row)
                                .execute(pool)
                                .await?;
                            (left.row, left.webrtc)
                        }
                        _ => {
                            let (row,): (i64,) = sqlx::query_as(
                                "INSERT INTO viewer_sessions (stream_id, viewer_key, user_id, device, user_agent, webrtc, load_test, joined_at, last_seen_at, country, region) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10) RETURNING id",
                            )
                            .bind(stream)
                            .bind(&info.key)
                            .bind(info.user_id)
                            .bind(device_of(&info.user_agent))
                            .bind(&info.user_agent)
                            .bind(webrtc as i64)
                            .bind(info.load_test as i64)
                            .bind(now)
                            .bind(&info.location.country)
                            .bind(&info.location.region)
                            .fetch_one(pool)
                            .await?;
                            (row, false)
                        }
                    };
                    if let Some(n) = info.network {
                        *room.networks.entry(n).or_default() += 1;
                    }
                    room.viewers.insert(info.key.clone(), Present { conns: HashSet::from([conn]), row, load_test: info.load_test, webrtc: webrtc || was_webrtc, network: info.network });
                    if !info.load_test {
                        room.public += 1;
                        room.peak = room.peak.max(room.public);
                    }
                    room.dirty = true;
                }
            }
            index.insert(conn, (stream, info.key));
            Some(stream)
        }
        Msg::Leave { conn } => {
            let Some((stream, key)) = index.remove(&conn) else { return Ok(None) };
            let Some(room) = rooms.get_mut(&stream) else { return Ok(None) };
            let gone = match room.viewers.get_mut(&key) {
                Some(p) => {
                    p.conns.remove(&conn);
                    p.conns.is_empty()
                }
                None => false,
            };
            if gone {
                if let Some(p) = room.viewers.remove(&key) {
                    sqlx::query("UPDATE viewer_sessions SET left_at = $1, last_seen_at = $1 WHERE id = $2").bind(now).bind(p.row).execute(pool).await?;
                    if !p.load_test {
                        room.public = room.public.saturating_sub(1);
                    }
                    if let Some(n) = p.network {
                        if let Some(c) = room.networks.get_mut(&n) {
                            *c -= 1;
                            if *c == 0 {
                                room.networks.remove(&n);
                            }
                        }
                    }
                    room.recent.insert(key, Left { row: p.row, webrtc: p.webrtc, at: Instant::now() });
                    room.dirty = true;
                }
            }
            Some(stream)
        }
        Msg::End { stream } => {
            sqlx::query("UPDATE viewer_sessions SET left_at = $1, last_seen_at = $1 WHERE stream_id = $2 AND left_at IS NULL").bind(now).bind(stream).execute(pool).await?;
            index.retain(|_, (s, _)| *s != stream);
            if let Some(room) = rooms.get_mut(&stream) {
                room.viewers.clear();
                room.networks.clear();
                room.recent.clear();
                room.public = 0;
                room.dirty = true;
                room.ended = true;
            }
            Some(stream)
        }
        Msg::Flush { done } => {
            let _ = done.send(());
            None
        }
        Msg::Shutdown { done } => {
            sqlx::query("UPDATE viewer_sessions SET left_at = $1, last_seen_at = $1 WHERE left_at IS NULL").bind(now).execute(pool).await?;
            for (id, room) in rooms.iter() {
                if room.peak > room.stored_peak {
                    sqlx::query("UPDATE streams SET peak_viewers = $1 WHERE id = $2 AND peak_viewers < $1").bind(room.peak as i64).bind(*id).execute(pool).await?;
                }
            }
            rooms.clear();
            index.clear();
            let _ = done.send(());
            None
        }
    };
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_from_user_agents() {
        let cases = [
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0 Safari/537.36", "desktop"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148", "mobile"),
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/130.0 Mobile Safari/537.36", "mobile"),
            ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 Chrome/130.0 Safari/537.36", "tablet"),
            ("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)", "tablet"),
            ("Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) AppleWebKit/537.36", "tv"),
            ("onair-bench/0.1.0 (load test)", "load_test"),
            ("Lavf/62.3.100", "app"),
            ("", "unknown"),
        ];
        for (ua, want) in cases {
            assert_eq!(device_of(ua), want, "{ua}");
        }
    }

    #[test]
    fn keys_prefer_the_user_then_the_page() {
        assert_eq!(ViewerInfo::key_for(Some(7), Some("abcdefgh"), "s:1"), "u:7");
        assert_eq!(ViewerInfo::key_for(None, Some("abcdefgh"), "s:1"), "k:abcdefgh");
        assert_eq!(ViewerInfo::key_for(None, None, "s:1"), "s:1");
    }
}
