//! Tips and gifts: viewers spending coins on a live stream's host.
//!
//! A send is checked (the stream is live and the sender may watch it and
//! is not banned from its chat; not to oneself), then made as one spend
//! under the sender's `Idempotency-Key` together with a system line in the
//! stream's chat, and once committed both are pushed to the stream's
//! WebSocket topic (a `tip` or `gift` event, and the chat line). Gifts sent again within [`COMBO_WINDOW`] build a combo the
//! pages show as "x12". The top supporters of a stream come from the
//! ledger.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::gifts::{self, Gift};
use super::idempotency::{self, Keyed, Reply};
use super::spend::{self, Spend};
use super::{invalid, not_allowed, Money, MAX_COINS};
use crate::accounts::Principal;
use crate::chat::moderation::Restriction;
use crate::chat::{Author, ChatMessage, Kind};
use crate::db::DbResult;
use crate::realtime::{Event, Topic};
use crate::streams::{access, State, Stream};

/// Gifts of the same kind from the same sender within this make a combo.
pub const COMBO_WINDOW: Duration = Duration::from_secs(10);
/// Most gifts in one send.
pub const MAX_COUNT: i64 = 99;
/// Longest tip message (characters).
pub const MAX_MESSAGE: usize = 200;

/// A tip.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TipInput {
    /// Coins, 1-1,000,000.
    pub coins: i64,
    /// Up to 200 characters, shown in chat.
    #[serde(default)]
    pub message: Option<String>,
}

/// A gift to send.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[schema(as = GiftSend)]
#[serde(deny_unknown_fields)]
pub struct GiftInput {
    /// The gift's id (see `GET /api/gifts`).
    pub gift: String,
    /// How many, 1-99 (default 1).
    #[serde(default)]
    pub count: Option<i64>,
    /// The host it is for (username or id): a host of the stream; default its primary host.
    #[serde(default)]
    pub to: Option<String>,
}

/// Coins a user can spend, after a send.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Balance {
    /// Bought coins.
    pub coins: i64,
    /// Promotional coins.
    pub promo_coins: i64,
}

/// A tip or gift as made (the answer to the sender).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Sent {
    /// Id (the base of its transfers' ids).
    pub id: String,
    /// `tip` or `gift`.
    pub kind: String,
    /// Stream.
    pub stream_id: i64,
    /// Coins in all.
    pub coins: i64,
    /// The gift (gifts).
    pub gift: Option<Gift>,
    /// How many (gifts).
    pub count: Option<i64>,
    /// The message (tips).
    pub message: Option<String>,
    /// Sender.
    pub from: Author,
    /// The host it went to.
    pub to: Author,
    /// To the host's earnings.
    pub creator_coins: i64,
    /// To the platform.
    pub platform_coins: i64,
    /// The ledger's commit-order timestamp (ns): what PK battles score by.
    pub timestamp: i64,
    /// The sender's coins after it.
    pub balance: Balance,
    /// The line it put in the stream's chat.
    pub chat_message_id: i64,
}

/// A tip or gift as the stream's watchers see it (`tip` / `gift` events).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SupportEvent {
    /// Id.
    pub id: String,
    /// Stream.
    pub stream_id: i64,
    /// Coins in all.
    pub coins: i64,
    /// The gift (gift events).
    pub gift: Option<Gift>,
    /// How many in this send.
    pub count: Option<i64>,
    /// The running combo of this gift from this sender (the pages show "x{combo}").
    pub combo: Option<i64>,
    /// A tip's message.
    pub message: Option<String>,
    /// Sender.
    pub from: Author,
    /// Host.
    pub to: Author,
    /// The ledger's commit-order timestamp (ns).
    pub timestamp: i64,
}

/// A top supporter of a stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Supporter {
    /// Who.
    pub user: Author,
    /// Coins they spent in tips and gifts in the stream.
    pub coins: i64,
}

fn tip_line(from: &Author, coins: i64, message: Option<&str>) -> String {
    match message {
        Some(m) => format!("{} tipped {coins} coins: {m}", from.display_name),
        None => format!("{} tipped {coins} coins", from.display_name),
    }
}

fn gift_line(from: &Author, g: &Gift, count: i64, coins: i64) -> String {
    format!("{} sent {} × {count} ({coins} coins)", from.display_name, g.name)
}

/// A system line in the stream's chat, written in the same transaction as
/// the coins (a tip and its line exist together or not at all).
async fn chat_line(tx: &mut super::tx::Tx, stream_id: i64, text: &str) -> Result<i64, ApiError> {
    let now = tx.now();
    let (id,): (i64,) = sqlx::query_as("INSERT INTO chat_messages (stream_id, user_id, kind, body, data, created_at) VALUES ($1, NULL, 'system', $2, NULL, $3) RETURNING id")
        .bind(stream_id)
        .bind(text)
        .bind(now)
        .fetch_one(tx.conn())
        .await
        .db()?;
    Ok(id)
}

fn author(who: &Principal) -> Author {
    Author { id: who.id(), username: who.user.username.clone(), display_name: who.user.display_name.clone() }
}

fn host_author(s: &Stream) -> Author {
    Author { id: s.host.id, username: s.host.username.clone(), display_name: s.host.display_name.clone() }
}

impl Money {
    /// Whether `who` may spend coins in `s` (live, may watch, not banned, not theirs).
    async fn check_supporter(&self, s: &Stream, who: &Principal) -> Result<(), ApiError> {
        if s.state != State::Live {
            return Err(ApiError::new(StatusCode::CONFLICT, "stream_not_live", format!("stream {} is {}, not live", s.id, s.state.as_str())));
        }
        if who.id() == s.host.id {
            return Err(not_allowed("hosts cannot tip or gift their own stream"));
        }
        access::check_watch(&self.membership, s, Some(who)).await?;
        if let Some(Restriction::Banned | Restriction::TimedOut(_)) = self.chat.moderation.restriction(s.host.id, who.id()).await? {
            return Err(not_allowed("you are banned or timed out in this channel"));
        }
        Ok(())
    }

    /// The stream as chat sees it (its row read at most once a second, and
    /// again at every announced change).
    async fn live_stream(&self, id: i64) -> Result<Arc<Stream>, ApiError> {
        self.chat.stream(id).await
    }

    /// Tips a stream's host.
    pub async fn tip(self: &Arc<Self>, who: &Principal, stream_id: i64, keyed: Keyed, input: TipInput) -> Result<Reply<Sent>, ApiError> {
        if !(1..=MAX_COINS).contains(&input.coins) {
            return Err(invalid("coins", format!("must be 1-{MAX_COINS}")));
        }
        let message = input.message.as_deref().map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned);
        if message.as_ref().is_some_and(|m| m.chars().count() > MAX_MESSAGE) {
            return Err(invalid("message", format!("must be at most {MAX_MESSAGE} characters")));
        }
        let s = self.live_stream(stream_id).await?;
        self.check_supporter(&s, who).await?;
        if let Some(m) = &message {
            if self.chat.moderation.rules(s.host.id).await?.banned.matches(m) {
                return Err(invalid("message", "contains a word this channel does not allow"));
            }
        }
        let share = self.settings.creator_share;
        let (from, to) = (author(who), host_author(&s));
        let reply = idempotency::run(&self.writer, keyed, StatusCode::CREATED, move |tx| {
            Box::pin(async move {
                let sp = Spend { base: spend::new_base("tip"), kind: "tip", payer: from.id, creator: to.id, coins: input.coins, stream_id: Some(stream_id), reference: None, hold: None };
                let (split, _) = spend::spend(tx, &sp, share).await?;
                let chat_message_id = chat_line(tx, stream_id, &tip_line(&from, input.coins, message.as_deref())).await?;
                Ok(Sent {
                    chat_message_id,
                    id: sp.base,
                    kind: "tip".into(),
                    stream_id,
                    coins: input.coins,
                    gift: None,
                    count: None,
                    message,
                    from,
                    to,
                    creator_coins: split.creator_coins,
                    platform_coins: split.platform_coins,
                    timestamp: split.timestamp,
                    balance: Balance { coins: split.wallet_after, promo_coins: split.promo_after },
                })
            })
        })
        .await?;
        if let Reply::Fresh(sent) = &reply {
            self.announce(sent, None);
        }
        Ok(reply)
    }

    /// Sends gifts to a stream's host. A load-test client's gift moves its
    /// coins like any other, but scores in no battle and counts on no
    /// leaderboard (OnAir never fabricates engagement).
    pub async fn gift(self: &Arc<Self>, who: &Principal, stream_id: i64, keyed: Keyed, input: GiftInput, load_test: bool) -> Result<Reply<Sent>, ApiError> {
        let count = input.count.unwrap_or(1);
        if !(1..=MAX_COUNT).contains(&count) {
            return Err(invalid("count", format!("must be 1-{MAX_COUNT}")));
        }
        let s = self.live_stream(stream_id).await?;
        // Co-host rooms will add hosts here; today a stream has its primary host.
        if let Some(to) = input.to.as_deref() {
            if to != s.host.username && to != s.host.id.to_string() {
                return Err(invalid("to", format!("'{to}' is not a host of this stream")));
            }
        }
        self.check_supporter(&s, who).await?;
        let share = self.settings.creator_share;
        let (from, to) = (author(who), host_author(&s));
        let gift_id = input.gift.clone();
        let tz = self.leaderboard_tz.clone();
        let reply = idempotency::run(&self.writer, keyed, StatusCode::CREATED, move |tx| {
            Box::pin(async move {
                // The price as it is in this transaction (an admin may be changing it).
                let gift = gifts::get(tx.conn(), &gift_id).await?.filter(|g| g.enabled).ok_or_else(|| invalid("gift", format!("no gift '{gift_id}'; see GET /api/gifts")))?;
                let coins = gift.coins * count;
                if coins > MAX_COINS {
                    return Err(invalid("count", format!("at most {MAX_COINS} coins at once")));
                }
                let sp = Spend { base: spend::new_base("gift"), kind: "gift", payer: from.id, creator: to.id, coins, stream_id: Some(stream_id), reference: Some(gift.id.clone()), hold: None };
                let (split, _) = spend::spend(tx, &sp, share).await?;
                // A PK battle's score and the leaderboards, decided here, in the
                // gift's own transaction, by its commit timestamp.
                if !load_test {
                    crate::battles::scoring::gift(tx, &tz, stream_id, to.id, from.id, &gift.id, coins, split.timestamp).await?;
                }
                let chat_message_id = chat_line(tx, stream_id, &gift_line(&from, &gift, count, coins)).await?;
                Ok(Sent {
                    chat_message_id,
                    id: sp.base,
                    kind: "gift".into(),
                    stream_id,
                    coins,
                    gift: Some(gift),
                    count: Some(count),
                    message: None,
                    from,
                    to,
                    creator_coins: split.creator_coins,
                    platform_coins: split.platform_coins,
                    timestamp: split.timestamp,
                    balance: Balance { coins: split.wallet_after, promo_coins: split.promo_after },
                })
            })
        })
        .await?;
        if let Reply::Fresh(sent) = &reply {
            let combo = self.combo(sent, count, Instant::now());
            self.announce(sent, Some(combo));
        }
        Ok(reply)
    }

    /// The running combo after this send.
    fn combo(&self, sent: &Sent, count: i64, now: Instant) -> i64 {
        let key = (sent.stream_id, sent.from.id, sent.gift.as_ref().map(|g| g.id.clone()).unwrap_or_default());
        if self.combos.len() > 50_000 {
            self.combos.retain(|_, (_, at)| now.saturating_duration_since(*at) < COMBO_WINDOW);
        }
        let mut e = self.combos.entry(key).or_insert((0, now));
        if now.saturating_duration_since(e.1) > COMBO_WINDOW {
            e.0 = 0;
        }
        e.0 += count;
        e.1 = now;
        e.0
    }

    /// Once committed: the event, the chat line, the balances.
    fn announce(self: &Arc<Self>, sent: &Sent, combo: Option<i64>) {
        let ev = SupportEvent {
            id: sent.id.clone(),
            stream_id: sent.stream_id,
            coins: sent.coins,
            gift: sent.gift.clone(),
            count: sent.count,
            combo,
            message: sent.message.clone(),
            from: sent.from.clone(),
            to: sent.to.clone(),
            timestamp: sent.timestamp,
        };
        let (event, line) = match &sent.gift {
            Some(g) => (Event::Gift(Box::new(ev)), gift_line(&sent.from, g, sent.count.unwrap_or(1), sent.coins)),
            None => (Event::Tip(Box::new(ev)), tip_line(&sent.from, sent.coins, sent.message.as_deref())),
        };
        self.hub.publish(Topic::Stream(sent.stream_id), &event);
        // The chat line committed with the coins; now it is shown.
        let message = ChatMessage {
            id: sent.chat_message_id,
            stream_id: sent.stream_id,
            kind: Kind::System,
            user: None,
            text: line,
            badges: Vec::new(),
            product: None,
            deleted: false,
            created_at: crate::clock::now_ms(),
        };
        self.hub.publish(Topic::Stream(sent.stream_id), &Event::ChatMessage { message: Box::new(message) });
        self.wallet_changed(sent.from.id);
        self.wallet_changed(sent.to.id);
    }

    /// The stream's top supporters by coins spent in tips and gifts.
    pub async fn supporters(&self, stream_id: i64, limit: i64) -> Result<Vec<Supporter>, ApiError> {
        if !(1..=100).contains(&limit) {
            return Err(invalid("limit", "must be 1-100"));
        }
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT t.user_id, u.username, u.display_name, SUM(t.amount) AS coins FROM ledger_transfers t JOIN users u ON u.id = t.user_id \
             WHERE t.stream_id = $1 AND t.code IN ('tip', 'gift') AND t.phase = 'single' GROUP BY t.user_id, u.username, u.display_name ORDER BY coins DESC, t.user_id LIMIT $2",
        )
        .bind(stream_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .db()?;
        Ok(rows.into_iter().map(|(id, username, display_name, coins)| Supporter { user: Author { id, username, display_name }, coins }).collect())
    }
}
