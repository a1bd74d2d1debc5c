//! The platform's services in one place, as every handler sees them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use onair_media::Sfu;
use onair_signaling::ApiError;
use sqlx::SqlitePool;

use crate::accounts::token::KeyRing;
use crate::accounts::{Accounts, Principal, Role, TokenLifetimes};
use crate::admin::Admin;
use crate::geo::GeoIp;
use crate::analytics::Analytics;
use crate::channels::Channels;
use crate::api::ws_guard::WsLimits;
use crate::chat::Chat;
use crate::config::PlatformSettings;
use crate::images::Images;
use crate::keys::KeyStore;
use crate::membership::Membership;
use crate::money::Money;
use crate::polls::Polls;
use crate::questions::Questions;
use crate::shop::Shop;
use crate::rooms::Rooms;
use crate::ratelimit::{Limiter, Rate};
use crate::realtime::Hub;
use crate::streams::lifecycle::{Lifecycle, Timings};
use crate::streams::{access, no_stream, Stream, StreamStore};
use crate::webhooks::Webhooks;

/// Request limits (429 past them).
pub struct Limits {
    /// Login, register, refresh: per IP.
    pub auth: Limiter<IpAddr>,
    /// API writes per IP.
    pub writes_ip: Limiter<IpAddr>,
    /// API writes per user.
    pub writes_user: Limiter<i64>,
    /// WHIP/WHEP offers per IP (each makes a peer connection).
    pub media_ip: Limiter<IpAddr>,
    /// Requests on WHIP/WHEP session URLs (trickle, layer, DELETE) per IP:
    /// a session URL cannot be guessed, and nobody gets to try fast.
    pub session_ip: Limiter<IpAddr>,
    /// WebSockets: open per network and per user, messages per socket.
    pub ws: Arc<WsLimits>,
}

/// Every service of the platform.
pub struct App {
    /// Settings.
    pub settings: PlatformSettings,
    /// The database.
    pub pool: SqlitePool,
    /// The media engine.
    pub sfu: Sfu,
    /// Users and tokens.
    pub accounts: Accounts,
    /// Stream keys.
    pub keys: KeyStore,
    /// Streams.
    pub streams: StreamStore,
    /// Followers, subscribers, tickets, moderators.
    pub membership: Membership,
    /// Real-time events.
    pub hub: Arc<Hub>,
    /// Chat.
    pub chat: Chat,
    /// Viewer analytics.
    pub analytics: Analytics,
    /// Stream state machine.
    pub lifecycle: Lifecycle,
    /// Outbound webhooks.
    pub webhooks: Webhooks,
    /// Request limits.
    pub limits: Limits,
    /// The coin wallet, its ledger and payments.
    pub money: Arc<Money>,
    /// Channel profiles and defaults.
    pub channels: Channels,
    /// Uploaded images.
    pub images: Images,
    /// Polls during streams.
    pub polls: Polls,
    /// Q&A during streams.
    pub questions: Questions,
    /// Live shopping.
    pub shop: Arc<Shop>,
    /// Co-host rooms.
    pub rooms: Rooms,
    /// Recordings of live streams.
    pub recordings: crate::recording::Recordings,
    /// PK battles.
    pub battles: Arc<crate::battles::Battles>,
    /// The admin console's data: audit log, reports, approvals, health.
    pub admin: Admin,
    /// The stream-filter catalogue and entitlements.
    pub filters: crate::filters::Filters,
    /// The IP location database (viewers' country and region).
    pub geo: GeoIp,
    /// Set when the server starts shutting down (WebSockets close politely).
    pub shutdown: Shutdown,
}

/// Tells long-lived connections (WebSockets) that the server is stopping,
/// and knows when the last of them has gone.
#[derive(Clone, Default)]
pub struct Shutdown {
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
    open: Arc<tokio::sync::watch::Sender<usize>>,
}

/// One open connection, counted until dropped.
pub struct Hold {
    open: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.open.send_modify(|n| *n -= 1);
    }
}

impl Shutdown {
    /// Starts the shutdown: every waiter of [`Shutdown::cancelled`] wakes.
    pub fn begin(&self) {
        self.stopping.send_replace(true);
    }

    /// Whether the shutdown has begun.
    pub fn begun(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Resolves once the shutdown has begun.
    pub async fn cancelled(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    /// Counts a connection until the returned guard is dropped.
    pub fn hold(&self) -> Hold {
        self.open.send_modify(|n| *n += 1);
        Hold { open: self.open.clone() }
    }

    /// Resolves once no connection is held.
    pub async fn idle(&self) {
        let mut rx = self.open.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

impl App {
    /// Starts every service over an open database and a running SFU.
    pub async fn start(pool: SqlitePool, sfu: Sfu, settings: PlatformSettings, keys: KeyRing, data_dir: &std::path::Path) -> Result<Arc<App>, String> {
        let accounts = Accounts::open(pool.clone(), keys, TokenLifetimes::default()).await?;
        let hub = Arc::new(Hub::default());
        let streams = StreamStore::new(pool.clone());
        let membership = Membership::new(pool.clone());
        let chat = Chat::start(pool.clone(), hub.clone(), streams.clone(), membership.clone());
        let geo = GeoIp::open(settings.geoip_db.as_deref())?;
        let analytics = Analytics::start(pool.clone(), hub.clone(), settings.viewers_per_network as usize, geo.enabled()).await?;
        let money = Money::start(pool.clone(), settings.money.clone(), hub.clone(), chat.clone(), streams.clone(), membership.clone(), settings.clock.clone(), settings.battles.timezone.clone()).await?;
        let webhooks = Webhooks::start(pool.clone());
        let timings = Timings { reconnect_grace: settings.reconnect_grace, media_wait: settings.media_wait };
        let lifecycle = Lifecycle::start(streams.clone(), hub.clone(), chat.clone(), analytics.clone(), webhooks.clone(), sfu.clone(), timings).await?;
        let auth = settings.auth_per_minute as f64;
        let writes = settings.writes_per_second as f64;
        let limits = Limits {
            auth: Limiter::new(Rate::per_minute(auth, auth)),
            writes_ip: Limiter::new(Rate { per_sec: writes * 5.0, burst: writes * 25.0 }),
            writes_user: Limiter::new(Rate { per_sec: writes, burst: writes * 5.0 }),
            media_ip: Limiter::new(Rate { per_sec: settings.media_offers_per_second as f64, burst: settings.media_offers_per_second as f64 * 10.0 }),
            // A session's URL sees a few trickled candidates, a layer change
            // now and then, one DELETE: twice the offer rate (20 a second
            // by default, bursts of 100) leaves every real client room.
            session_ip: Limiter::new(Rate { per_sec: settings.media_offers_per_second as f64 * 2.0, burst: settings.media_offers_per_second as f64 * 10.0 }),
            ws: WsLimits::new(settings.ws_per_network, settings.ws_per_user, settings.ws_messages_per_second),
        };
        let channels = Channels::new(pool.clone());
        let images = Images::new(data_dir);
        let polls = Polls::start(pool.clone(), hub.clone(), membership.clone(), chat.moderation.clone()).await?;
        let questions = Questions::start(pool.clone(), hub.clone(), chat.clone(), membership.clone());
        let admin = Admin::new(pool.clone(), settings.host_approval);
        let shop = Shop::start(pool.clone(), money.clone(), hub.clone(), chat.clone(), membership.clone(), images.clone()).await?;
        let filters = crate::filters::Filters::new(pool.clone(), hub.clone());
        let rooms = Rooms::start(pool.clone(), hub.clone(), sfu.clone(), membership.clone());
        let recordings = crate::recording::Recordings::new(sfu.clone(), data_dir);
        let battles = crate::battles::Battles::start(pool.clone(), hub.clone(), money.clone(), streams.clone(), sfu.clone(), settings.clock.clone(), settings.battles.clone());
        let app = Arc::new(App { settings, keys: KeyStore::new(pool.clone()), pool, sfu, accounts, streams, membership, hub, chat, analytics, lifecycle, webhooks, limits, channels, images, money, polls, questions, shop, rooms, recordings, battles, admin, filters, geo, shutdown: Shutdown::default() });
        crate::admin::health::start(Arc::downgrade(&app), app.admin.history.clone());
        let weak = Arc::downgrade(&app);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(app) = weak.upgrade() else { return };
                app.limits.auth.prune();
                app.limits.writes_ip.prune();
                app.limits.writes_user.prune();
                app.limits.media_ip.prune();
                app.limits.session_ip.prune();
            }
        });
        Ok(app)
    }

    /// The caller of a bearer token, if one was sent (a bad one is a 401).
    pub async fn principal(&self, bearer: Option<&str>) -> Result<Option<Principal>, ApiError> {
        match bearer {
            Some(t) if t.starts_with("sk_") => Ok(None),
            Some(t) => self.accounts.authenticate(t).await.map(Some),
            None => Ok(None),
        }
    }

    /// A stream by id, with its live viewer count.
    pub async fn stream(&self, id: i64) -> Result<Stream, ApiError> {
        let s = self.streams.get(id).await?.ok_or_else(|| no_stream(id))?;
        Ok(self.analytics.with_viewers(s))
    }

    /// A stream by id from the stream cache (its lifecycle's changes drop
    /// the copy at once; see [`crate::streams::CACHE_TTL`]): for requests
    /// that come a thousand at once, such as a flash sale's orders.
    pub async fn stream_cached(&self, id: i64) -> Result<Stream, ApiError> {
        let s = self.streams.cached(id).await?.ok_or_else(|| no_stream(id))?;
        Ok(self.analytics.with_viewers((*s).clone()))
    }

    /// A stream the caller owns (admins own every stream), or with `team`
    /// one they moderate: 403 otherwise.
    pub async fn owned_stream(&self, id: i64, who: &Principal, team: bool) -> Result<Stream, ApiError> {
        let s = self.stream(id).await?;
        let ok = if team { access::can_moderate(&self.membership, s.host.id, &who.user).await? } else { s.host.id == who.id() || who.role() == Role::Admin };
        if ok {
            Ok(s)
        } else {
            Err(ApiError::forbidden("this is another host's stream"))
        }
    }

    /// What a URL segment names: a stream id (`42`), or a channel (`ana`:
    /// her live stream, else the one her next publish would go live on,
    /// else her next scheduled one). Answered from the stream cache (every
    /// WebSocket `subscribe` and `watch` asks this).
    pub async fn resolve_stream(&self, segment: &str) -> Result<Option<Stream>, ApiError> {
        let id = match segment.parse::<i64>() {
            Ok(id) => id,
            Err(_) => {
                let name = segment.trim().to_ascii_lowercase();
                let cached = self.streams.cached_channel(&name);
                let resolved = match cached {
                    Some(id) => id,
                    None => {
                        let seen = self.streams.cache_generation();
                        let id = self.channel_stream(&name).await?;
                        self.streams.remember_channel(&name, id, seen);
                        id
                    }
                };
                match resolved {
                    Some(id) => id,
                    None => return Ok(None),
                }
            }
        };
        Ok(self.streams.cached(id).await?.map(|s| self.analytics.with_viewers((*s).clone())))
    }

    /// The stream a channel name stands for now (see [`App::resolve_stream`]).
    async fn channel_stream(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(host) = self.accounts.by_username(name).await? else { return Ok(None) };
        if let Some(s) = self.streams.publish_target(host.id).await? {
            return Ok(Some(s.id));
        }
        let page = self.streams.list(&crate::streams::ListQuery { kind: crate::streams::ListType::Scheduled, limit: Some(1), offset: None, host: Some(host.username.clone()) }, None).await?;
        Ok(page.streams.first().map(|s| s.id))
    }
}
