//! Live chat: posting (every rule, each refusal with its code), history,
//! reactions (likes), and moderators deleting messages.
//!
//! A message goes: checks ([`rules`], [`moderation`], stream access) ->
//! [`writer`] (on disk) -> the stream's topic on the real-time hub. Nothing
//! is shown before it is stored, and a store that fails is an error to the
//! sender, never a message that silently disappears.
//!
//! Reactions are stored one by one (each is a like), but pushed to viewers
//! as a running tally twice a second: a room of thousands tapping hearts
//! must not become thousands of events per tap.

pub mod moderation;
pub mod rules;
pub mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use utoipa::{IntoParams, ToSchema};

use crate::accounts::Principal;
use crate::clock::now_ms;
use crate::db::DbResult;
use crate::membership::Membership;
use crate::realtime::{Event, Hub, Topic};
use crate::streams::{access, no_stream, Stream, StreamStore};
use moderation::{Moderation, Restriction};
use rules::{Rejection, Sender, REACTIONS};

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A viewer's message.
    #[default]
    Chat,
    /// A reaction (one of the reaction emoji); counts as a like.
    Reaction,
    /// Said by OnAir itself (went live, slow mode on, ...).
    System,
    /// The host points at a product.
    ProductHighlight,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Reaction => "reaction",
            Kind::System => "system",
            Kind::ProductHighlight => "product_highlight",
        }
    }

    fn parse(s: &str) -> Kind {
        match s {
            "reaction" => Kind::Reaction,
            "system" => Kind::System,
            "product_highlight" => Kind::ProductHighlight,
            _ => Kind::Chat,
        }
    }
}

/// Who said it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Author {
    /// User id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Shown name.
    pub display_name: String,
}

/// A product a host highlights in chat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProductCard {
    /// The product's id in the shop, if it has one.
    #[serde(default)]
    pub product_id: Option<i64>,
    /// 1-140 characters.
    pub title: String,
    /// Price in the smallest currency unit (or coins).
    #[serde(default)]
    pub price: Option<i64>,
    /// Where to buy.
    #[serde(default)]
    pub url: Option<String>,
    /// Picture.
    #[serde(default)]
    pub image_url: Option<String>,
}

/// A chat message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChatMessage {
    /// Id (increasing within a stream).
    pub id: i64,
    /// Stream.
    pub stream_id: i64,
    /// Kind.
    pub kind: Kind,
    /// Author (none for system messages).
    pub user: Option<Author>,
    /// Text (empty once deleted).
    pub text: String,
    /// `host`, `moderator`, `subscriber`: what the author was when they said it.
    pub badges: Vec<String>,
    /// The product of a product highlight.
    pub product: Option<ProductCard>,
    /// Removed by a moderator.
    pub deleted: bool,
    /// When.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// What posting takes.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// `chat` (default), `reaction` or `product_highlight` (host and moderators).
    #[serde(default)]
    pub kind: Kind,
    /// The message; for a reaction, one of the reaction emoji.
    #[serde(default)]
    pub text: String,
    /// For a product highlight.
    #[serde(default)]
    pub product: Option<ProductCard>,
}

/// Query of the history.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Messages with ids below this (the previous page's `next_before`).
    pub before: Option<i64>,
    /// 1-200, default 50.
    pub limit: Option<i64>,
    /// Include reactions (default false: they are counted, not read).
    #[serde(default)]
    pub reactions: bool,
}

/// A page of history, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryPage {
    /// Messages, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Ask with `before` = this for older ones; null at the start.
    pub next_before: Option<i64>,
}

#[derive(Serialize, Deserialize, Default)]
struct Data {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    badges: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    product: Option<ProductCard>,
}

/// A text the channel's rules let through.
#[derive(Debug, Clone)]
pub struct Said {
    /// Trimmed.
    pub text: String,
    /// The author subscribes to the host.
    pub subscriber: bool,
    /// The channel's slow mode (zero: off).
    pub slow_mode: Duration,
    /// The author is the host, a moderator or staff (exempt from slow mode).
    pub is_team: bool,
}

/// The chat service.
#[derive(Clone)]
pub struct Chat {
    pool: SqlitePool,
    writer: writer::Writer,
    hub: Arc<Hub>,
    streams: StreamStore,
    membership: Membership,
    /// Channel rules, bans and timeouts.
    pub moderation: Moderation,
    senders: Arc<DashMap<(i64, i64), Sender>>,
    /// Reactions since the last tally, per stream: (emoji counts, likes in all).
    tallies: Arc<DashMap<i64, (BTreeMap<String, u64>, i64)>>,
}

impl Chat {
    /// Starts the chat service (its writer and its tally timer).
    pub fn start(pool: SqlitePool, hub: Arc<Hub>, streams: StreamStore, membership: Membership) -> Chat {
        let chat = Chat {
            writer: writer::Writer::start(pool.clone()),
            moderation: Moderation::new(pool.clone()),
            pool,
            hub,
            streams,
            membership,
            senders: Default::default(),
            tallies: Default::default(),
        };
        let c = chat.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut sweeps = 0u32;
            loop {
                tick.tick().await;
                c.flush_tallies();
                sweeps += 1;
                if sweeps % 120 == 0 {
                    // Forget senders idle for longer than any rule looks back.
                    let now = Instant::now();
                    c.senders.retain(|_, s| now.saturating_duration_since(s.seen) < Duration::from_secs(180));
                }
            }
        });
        chat
    }

    fn flush_tallies(&self) {
        let ids: Vec<i64> = self.tallies.iter().map(|e| *e.key()).collect();
        for id in ids {
            let Some((_, (counts, likes))) = self.tallies.remove(&id) else { continue };
            self.hub.publish(Topic::Stream(id), &Event::Likes { stream_id: id, likes, reactions: counts });
        }
    }

    /// A stream's row (cached: every message needs its state, host and visibility).
    pub async fn stream(&self, id: i64) -> Result<Arc<Stream>, ApiError> {
        self.streams.cached(id).await?.ok_or_else(|| no_stream(id))
    }

    /// Waits until every message sent so far is stored (or refused).
    pub async fn flush(&self) {
        self.writer.flush().await;
    }

    /// Posts a message as `who`, applying every rule.
    pub async fn post(&self, stream_id: i64, who: &Principal, input: PostMessage) -> Result<ChatMessage, ApiError> {
        let stream = self.stream(stream_id).await?;
        let is_team = self.check_access(&stream, who).await?;
        let host = stream.host.id;
        let mut badges = Vec::new();
        if who.id() == host {
            badges.push("host".to_owned());
        } else if is_team {
            badges.push("moderator".to_owned());
        }
        let now = Instant::now();
        let (text, product) = match input.kind {
            Kind::Chat => {
                let said = self.check_text_rules(host, who, is_team, &input.text).await?;
                if said.subscriber {
                    badges.push("subscriber".to_owned());
                }
                self.senders.entry((stream_id, who.id())).or_insert_with(|| Sender::new(now)).admit_message(&said.text, said.slow_mode, is_team, now).map_err(|r| r.to_api())?;
                (said.text, None)
            }
            Kind::Reaction => {
                let text = input.text.trim().to_owned();
                if !REACTIONS.contains(&text.as_str()) {
                    return Err(Rejection::BadReaction.to_api());
                }
                self.senders.entry((stream_id, who.id())).or_insert_with(|| Sender::new(now)).admit_reaction(now).map_err(|r| r.to_api())?;
                (text, None)
            }
            Kind::ProductHighlight => {
                if !is_team {
                    return Err(Rejection::NotAllowed.to_api());
                }
                let card = check_product(input.product)?;
                (input.text.trim().chars().take(rules::MAX_CHARS).collect(), Some(card))
            }
            Kind::System => return Err(Rejection::NotAllowed.to_api()),
        };
        let data = Data { badges: badges.clone(), product: product.clone() };
        let row = writer::Row {
            stream_id,
            user_id: Some(who.id()),
            kind: input.kind.as_str(),
            body: text.clone(),
            data: Some(serde_json::to_string(&data).unwrap_or_default()),
            created_at: now_ms(),
        };
        let created_at = row.created_at;
        let id = match self.writer.write(row).await {
            Ok(id) => id,
            Err(e) => {
                if input.kind == Kind::Chat {
                    if let Some(mut s) = self.senders.get_mut(&(stream_id, who.id())) {
                        s.undo_message();
                    }
                }
                return Err(e);
            }
        };
        let message = ChatMessage {
            id,
            stream_id,
            kind: input.kind,
            user: Some(Author { id: who.id(), username: who.user.username.clone(), display_name: who.user.display_name.clone() }),
            text,
            badges,
            product,
            deleted: false,
            created_at,
        };
        if input.kind == Kind::Reaction {
            // The stored count includes this reaction: its batch has committed.
            let likes = self.like_count(stream_id).await?;
            let mut t = self.tallies.entry(stream_id).or_insert_with(|| (BTreeMap::new(), 0));
            *t.0.entry(message.text.clone()).or_default() += 1;
            t.1 = t.1.max(likes);
        } else {
            self.hub.publish(Topic::Stream(stream_id), &Event::ChatMessage { message: Box::new(message.clone()) });
        }
        Ok(message)
    }

    /// Whether `who` may take part in the stream's chat now: the stream is
    /// not over; for everyone but the host's team, they may watch it and are
    /// neither banned nor timed out. Returns whether they are of the team.
    async fn check_access(&self, stream: &Stream, who: &Principal) -> Result<bool, ApiError> {
        if stream.is_over() {
            return Err(Rejection::ChatClosed.to_api());
        }
        let host = stream.host.id;
        let is_team = access::can_moderate(&self.membership, host, &who.user).await?;
        if !is_team {
            // The host's team may always watch; for others, ask (once).
            access::check_watch(&self.membership, stream, Some(who)).await?;
            match self.moderation.restriction(host, who.id()).await? {
                Some(Restriction::Banned) => return Err(Rejection::Banned.to_api()),
                Some(Restriction::TimedOut(until)) => return Err(Rejection::TimedOut(until).to_api()),
                None => {}
            }
        }
        Ok(is_team)
    }

    /// The channel's rules for a text: length, subscriber- and
    /// follower-only modes and banned words (the team is exempt from the
    /// last three).
    async fn check_text_rules(&self, host: i64, who: &Principal, is_team: bool, text: &str) -> Result<Said, ApiError> {
        let text = rules::check_text(text).map_err(|r| r.to_api())?;
        let rules = self.moderation.rules(host).await?;
        let subscriber = self.membership.is_subscriber(who.id(), host).await?;
        if !is_team {
            if rules.settings.subscribers_only && !subscriber {
                return Err(Rejection::SubscribersOnly.to_api());
            }
            if let Some(minutes) = rules.settings.followers_only_minutes {
                let since = self.membership.following_since(who.id(), host).await?;
                if since.is_none_or(|t| t > now_ms() - minutes * 60_000) {
                    return Err(Rejection::FollowersOnly(minutes).to_api());
                }
            }
            if rules.banned.matches(&text) {
                return Err(Rejection::BannedWord.to_api());
            }
        }
        Ok(Said { text, subscriber, slow_mode: Duration::from_secs(rules.settings.slow_mode_seconds.max(0) as u64), is_team })
    }

    /// Every chat rule but the rate for something `who` says in a stream
    /// that is not a chat message (a question): access, bans, timeouts,
    /// length, modes, banned words. The caller applies the rate (with
    /// [`Said::slow_mode`]) to its own kind of message.
    pub async fn admit_text(&self, stream_id: i64, who: &Principal, text: &str) -> Result<Said, ApiError> {
        let stream = self.stream(stream_id).await?;
        let is_team = self.check_access(&stream, who).await?;
        self.check_text_rules(stream.host.id, who, is_team, text).await
    }

    async fn like_count(&self, stream_id: i64) -> Result<i64, ApiError> {
        let (n,): (i64,) = sqlx::query_as("SELECT likes FROM streams WHERE id = $1").bind(stream_id).fetch_one(&self.pool).await.db()?;
        Ok(n)
    }

    /// A system message (went live, slow mode, ...), stored and pushed.
    pub async fn system(&self, stream_id: i64, text: String) -> Result<ChatMessage, ApiError> {
        let row = writer::Row { stream_id, user_id: None, kind: "system", body: text.clone(), data: None, created_at: now_ms() };
        let created_at = row.created_at;
        let id = self.writer.write(row).await?;
        let message = ChatMessage { id, stream_id, kind: Kind::System, user: None, text, badges: vec![], product: None, deleted: false, created_at };
        self.hub.publish(Topic::Stream(stream_id), &Event::ChatMessage { message: Box::new(message.clone()) });
        Ok(message)
    }

    /// History, oldest first, a page at a time going back.
    pub async fn history(&self, stream_id: i64, q: &HistoryQuery) -> Result<HistoryPage, ApiError> {
        let limit = q.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::validation(BTreeMap::from([("limit".into(), "must be 1-200".into())])));
        }
        let kinds = if q.reactions { "" } else { " AND m.kind <> 'reaction'" };
        let rows: Vec<(i64, String, Option<i64>, Option<String>, Option<String>, String, Option<String>, i64, Option<i64>)> = sqlx::query_as(&format!(
            "SELECT m.id, m.kind, m.user_id, u.username, u.display_name, m.body, m.data, m.created_at, m.deleted_at \
             FROM chat_messages m LEFT JOIN users u ON u.id = m.user_id WHERE m.stream_id = $1 AND m.id < $2{kinds} ORDER BY m.id DESC LIMIT $3"
        ))
        .bind(stream_id)
        .bind(q.before.unwrap_or(i64::MAX))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
        .db()?;
        let more = rows.len() as i64 > limit;
        let mut messages: Vec<ChatMessage> = rows
            .into_iter()
            .take(limit as usize)
            .map(|(id, kind, uid, username, display, body, data, at, deleted)| {
                let data: Data = data.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or_default();
                ChatMessage {
                    id,
                    stream_id,
                    kind: Kind::parse(&kind),
                    user: uid.map(|id| Author { id, username: username.clone().unwrap_or_default(), display_name: display.clone().unwrap_or_default() }),
                    text: if deleted.is_some() { String::new() } else { body },
                    badges: data.badges,
                    product: data.product.filter(|_| deleted.is_none()),
                    deleted: deleted.is_some(),
                    created_at: at,
                }
            })
            .collect();
        messages.reverse();
        let next_before = if more { messages.first().map(|m| m.id) } else { None };
        Ok(HistoryPage { messages, next_before })
    }

    /// A moderator removes a message.
    pub async fn delete(&self, stream: &Stream, message_id: i64, who: &Principal) -> Result<(), ApiError> {
        if !access::can_moderate(&self.membership, stream.host.id, &who.user).await? {
            return Err(ApiError::forbidden("only the host and moderators may delete messages"));
        }
        let r: Option<(Option<i64>,)> = sqlx::query_as("UPDATE chat_messages SET deleted_at = $1, deleted_by = $2 WHERE id = $3 AND stream_id = $4 AND deleted_at IS NULL RETURNING user_id")
            .bind(now_ms())
            .bind(who.id())
            .bind(message_id)
            .bind(stream.id)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        let Some((author,)) = r else {
            return Err(ApiError::not_found(format!("no message {message_id} in stream {} (or already deleted)", stream.id)));
        };
        self.moderation.log(stream.host.id, Some(stream.id), who.id(), author, Some(message_id), "delete_message", None, "").await?;
        self.hub.publish(Topic::Stream(stream.id), &Event::ChatDeleted { stream_id: stream.id, message_id });
        Ok(())
    }
}

fn check_product(p: Option<ProductCard>) -> Result<ProductCard, ApiError> {
    let mut fields = BTreeMap::new();
    let Some(mut p) = p else {
        return Err(ApiError::validation(BTreeMap::from([("product".into(), "a product highlight needs a product".into())])));
    };
    p.title = p.title.trim().to_owned();
    if p.title.is_empty() || p.title.chars().count() > 140 {
        fields.insert("product.title".into(), "must be 1-140 characters".into());
    }
    if p.price.is_some_and(|v| v < 0) {
        fields.insert("product.price".into(), "must not be negative".into());
    }
    for (name, url) in [("product.url", &p.url), ("product.image_url", &p.image_url)] {
        if url.as_deref().is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://") || u.starts_with('/')) || u.len() > 2048) {
            fields.insert(name.into(), "must be an http(s) URL".into());
        }
    }
    if fields.is_empty() {
        Ok(p)
    } else {
        Err(ApiError::validation(fields))
    }
}
