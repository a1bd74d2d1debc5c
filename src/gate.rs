//! The platform's answers to WHIP/WHEP signaling: which stream a stream key
//! goes live on, who may watch, who may see a stream's health.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dashmap::DashMap;
use onair_media::SessionId;
use onair_signaling::{ApiError, BoxFuture, Client, PlayTarget, Platform, PublishTarget};

use crate::analytics::ViewerInfo;
use crate::app::App;
use crate::rooms::PublishRoom;
use crate::streams::{access, State, Stream};

/// Implements [`Platform`] over the app.
pub struct Gate {
    app: Arc<App>,
    /// Ad-hoc streams made for a publish in the last minute (the SFU may
    /// still refuse its offer).
    adhoc: DashMap<i64, Instant>,
}

impl Gate {
    /// A gate over the app.
    pub fn new(app: Arc<App>) -> Self {
        Gate { app, adhoc: DashMap::new() }
    }

    /// Where a stream key publishes: the live room its holder co-hosts
    /// (named by their username, not primary), or their own stream, as its
    /// primary host.
    async fn publish_target(&self, key: &str) -> Result<PublishTarget, ApiError> {
        let app = &self.app;
        let host_id = app.keys.host_of(key).await?.ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_stream_key", "this stream key is unknown or was revoked"))?;
        let host = app.accounts.user(host_id).await?.ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "account_disabled", "the account of this stream key is disabled"))?;
        if !host.role.can_host() {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "not_a_host", "this account may not publish"));
        }
        app.admin.check_may_stream(host.id).await?;
        match app.rooms.publish_room(host.id).await? {
            PublishRoom::Cohost(id) => return Ok(PublishTarget { stream: id.to_string(), host: host.username.clone(), primary: false }),
            PublishRoom::Removed(id) => {
                return Err(ApiError::new(StatusCode::FORBIDDEN, "host_removed", format!("you were removed from the room of stream {id} and cannot publish into it again")));
            }
            PublishRoom::Own => {}
        }
        let target = match app.streams.publish_target(host.id).await? {
            Some(s) => s,
            None => {
                let defaults = app.channels.defaults(host.id).await?;
                let s = app.streams.create_adhoc(&host, &defaults).await?;
                self.adhoc.retain(|_, at| at.elapsed() < Duration::from_secs(60));
                self.adhoc.insert(s.id, Instant::now());
                s
            }
        };
        Ok(PublishTarget { stream: target.media_name(), host: host.username.clone(), primary: true })
    }

    /// Who watches: a host of the room (its access token) watches as that
    /// host, its own producer left out; anyone else as a viewer.
    async fn play_target(&self, path: &str, client: &Client) -> Result<PlayTarget, ApiError> {
        let s = self.live(path).await?;
        let who = self.app.principal(client.bearer.as_deref()).await?;
        let host = match &who {
            Some(w) => self.app.rooms.watching_host(&s, &w.user).await?,
            None => None,
        };
        if host.is_none() {
            access::check_watch(&self.app.membership, &s, who.as_ref()).await?;
        }
        Ok(PlayTarget { stream: s.media_name(), host })
    }

    async fn live(&self, path: &str) -> Result<Stream, ApiError> {
        match self.app.resolve_stream(path).await? {
            Some(s) if s.state == State::Live => Ok(s),
            Some(s) => Err(ApiError::new(StatusCode::NOT_FOUND, "stream_not_live", format!("stream {} is {}, not live", s.id, s.state.as_str()))),
            None => Err(ApiError::new(StatusCode::NOT_FOUND, "stream_not_live", format!("no live stream '{path}'"))),
        }
    }

    async fn health_stream(&self, path: &str, client: &Client) -> Result<String, ApiError> {
        // Any stream that is or may go live (a page may open the feed first).
        let s = match self.app.resolve_stream(path).await? {
            Some(s) if !s.is_over() => s,
            _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "stream_not_live", format!("no live stream '{path}'"))),
        };
        let bearer = client.bearer.as_deref().ok_or_else(|| ApiError::unauthorized("stream health is for the host: send their access token or the stream key"))?;
        let allowed = if bearer.starts_with("sk_") {
            self.app.keys.peek(bearer).await? == Some(s.host.id)
        } else {
            let who = self.app.accounts.authenticate(bearer).await?;
            access::can_moderate(&self.app.membership, s.host.id, &who.user).await?
        };
        if allowed {
            Ok(s.media_name())
        } else {
            Err(ApiError::forbidden("stream health is for the stream's host and moderators"))
        }
    }
}

impl Platform for Gate {
    fn authorize_publish<'a>(&'a self, key: &'a str, _client: &'a Client) -> BoxFuture<'a, Result<PublishTarget, ApiError>> {
        Box::pin(self.publish_target(key))
    }

    fn publish_failed<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Ok(id) = stream.parse::<i64>() else { return };
            if self.adhoc.remove(&id).is_some() {
                // Made for this publish and never live: it should not linger as a draft.
                let _ = sqlx::query("DELETE FROM streams WHERE id = $1 AND state = 'scheduled' AND media_started_at IS NULL").bind(id).execute(&self.app.pool).await;
            }
        })
    }

    fn authorize_play<'a>(&'a self, path: &'a str, client: &'a Client) -> BoxFuture<'a, Result<PlayTarget, ApiError>> {
        Box::pin(self.play_target(path, client))
    }

    fn viewer_opened(&self, _stream: &str, session: SessionId, client: &Client) {
        let user_id = client.bearer.as_deref().filter(|t| !t.starts_with("sk_")).and_then(|t| self.app.accounts.verify(t).ok()).map(|c| c.sub);
        let info = ViewerInfo {
            key: ViewerInfo::key_for(user_id, client.viewer_key.as_deref(), &format!("s:{session}")),
            user_id,
            user_agent: client.user_agent.clone(),
            load_test: client.load_test,
            location: self.app.geo.locate(client.ip),
            network: client.ip.map(crate::client_addr::Network::of),
        };
        self.app.analytics.webrtc_opened(session, info);
    }

    fn authorize_health<'a>(&'a self, path: &'a str, client: &'a Client) -> BoxFuture<'a, Result<String, ApiError>> {
        Box::pin(self.health_stream(path, client))
    }

    fn resolve<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move { self.app.resolve_stream(path).await.ok().flatten().map(|s| s.media_name()) })
    }

    fn principal(&self, bearer: &str) -> String {
        match self.app.accounts.verify(bearer) {
            Ok(claims) => format!("user:{}", claims.sub),
            Err(_) => bearer.to_owned(),
        }
    }
}
