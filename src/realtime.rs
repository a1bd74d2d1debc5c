//! The real-time hub: typed events to the WebSocket clients that want them.
//!
//! Every client has one WebSocket (`/api/ws`, see `api::ws`) and one bounded
//! outbox here. Clients join topics: a stream (its status, viewer count,
//! chat), its host's channel (moderation, chat settings), and their own user
//! (reminders). Publishing serialises an event once and hands the same bytes
//! to every outbox on the topic without waiting; a client too slow to keep
//! its outbox from filling is marked lagged and disconnected (it reconnects
//! and reloads), so one slow phone never holds up a room of thousands.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::chat::ChatMessage;
use crate::streams::Stream;

/// Events a client's outbox holds before it counts as lagged.
pub const OUTBOX: usize = 512;

/// What a client can listen to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A stream: status, viewer count, likes, chat.
    Stream(i64),
    /// A host's channel: moderation and chat settings.
    Channel(i64),
    /// One user: reminders and notices meant for them.
    User(i64),
    /// Every stream's status changes (the live directory page).
    Directory,
}

/// A moderation action as clients see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModerationNotice {
    /// The channel (host id).
    pub host_id: i64,
    /// `timeout`, `ban`, `untimeout`, `unban`.
    pub action: String,
    /// Whom it concerns.
    pub user_id: i64,
    /// Their username.
    pub username: String,
    /// Until when (timeouts).
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<i64>,
}

/// Every event the server pushes, as `{"type": "...", ...}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A stream changed state (scheduled, live, ended, ...), or its details changed.
    StreamStatus {
        /// The stream as it is now.
        stream: Box<Stream>,
    },
    /// Real viewers now (live viewers and open watch pages; never load tests).
    ViewerCount {
        /// Stream id.
        stream_id: i64,
        /// Viewers now.
        viewers: u64,
        /// Most at once.
        peak: u64,
    },
    /// Likes so far, and the reactions since the last such event (sent at
    /// most twice a second per stream).
    Likes {
        /// Stream id.
        stream_id: i64,
        /// Likes in all.
        likes: i64,
        /// Reactions since the last event, per emoji.
        reactions: std::collections::BTreeMap<String, u64>,
    },
    /// A chat message (any kind: chat, reaction, system, product highlight).
    ChatMessage {
        /// The message.
        message: Box<ChatMessage>,
    },
    /// A moderator removed a message.
    ChatDeleted {
        /// Stream id.
        stream_id: i64,
        /// Message id.
        message_id: i64,
    },
    /// A user was timed out, banned, or let back in.
    Moderation(ModerationNotice),
    /// A channel's chat rules changed.
    ChatSettings {
        /// The rules now.
        settings: crate::chat::moderation::ChatSettings,
    },
    /// A stream you asked to be reminded of is live.
    Reminder {
        /// The stream.
        stream: Box<Stream>,
    },
    /// A viewer tipped the host (on the stream's topic, once the coins moved).
    Tip(Box<crate::money::support::SupportEvent>),
    /// A viewer sent gifts: what the pages animate, with the running combo.
    Gift(Box<crate::money::support::SupportEvent>),
    /// Your balances changed (to your own pages only).
    Wallet(Box<crate::money::wallet::Wallet>),
    /// You applied a stream filter (to your own pages: the studio's other tabs follow).
    FilterApplied(Box<crate::filters::engagement::Applied>),
    /// A poll opened in the stream.
    PollOpened {
        /// The poll (no votes yet).
        poll: Box<crate::polls::Poll>,
    },
    /// A poll's counts now (at most five times a second per poll).
    PollResults {
        /// The poll.
        poll: Box<crate::polls::Poll>,
    },
    /// A poll closed; its counts are final.
    PollClosed {
        /// The poll.
        poll: Box<crate::polls::Poll>,
    },
    /// A viewer asked a question.
    QuestionAdded {
        /// The question.
        question: Box<crate::questions::Question>,
    },
    /// A question's upvotes or state changed (at most five times a second
    /// per stream for upvotes). A hidden one comes without its text: drop it.
    QuestionUpdated {
        /// The question.
        question: Box<crate::questions::Question>,
    },
    /// A product was put on the stream's shelf.
    ProductAdded {
        /// Stream id.
        stream_id: i64,
        /// The product as the shelf shows it.
        item: Box<crate::shop::shelf::ShelfItem>,
    },
    /// A product left the stream's shelf.
    ProductRemoved {
        /// Stream id.
        stream_id: i64,
        /// Product id.
        product_id: i64,
    },
    /// The pinned product changed (`item` null: none is pinned now).
    ProductPinned {
        /// Stream id.
        stream_id: i64,
        /// The pinned product.
        item: Option<Box<crate::shop::shelf::ShelfItem>>,
    },
    /// A product's price in the stream changed (a live price set or
    /// cleared, or its catalogue price).
    PriceChanged {
        /// Stream id.
        stream_id: i64,
        /// Product id.
        product_id: i64,
        /// What it costs in the stream now.
        price: i64,
        /// The live price, if any.
        live_price: Option<i64>,
        /// The catalogue price.
        list_price: i64,
    },
    /// A flash sale was made or changed state (countdown, active, ended,
    /// sold out), with the server's start and end times.
    FlashSale {
        /// The sale.
        sale: Box<crate::shop::flash_sales::FlashSale>,
    },
    /// A flash sale's remaining quantity (at most ten a second per sale).
    FlashSaleStock {
        /// Stream id.
        stream_id: i64,
        /// The sale.
        flash_sale_id: i64,
        /// Its product.
        product_id: i64,
        /// Units left.
        remaining: i64,
        /// Units it had.
        quantity: i64,
    },
    /// The last unit went (once per sale).
    SoldOut {
        /// Stream id.
        stream_id: i64,
        /// Product id.
        product_id: i64,
        /// The sale that sold out.
        flash_sale_id: Option<i64>,
        /// Units of the product still on sale at its own price (outside the sale).
        product_stock: i64,
    },
    /// The host dropped a voucher in the stream.
    Voucher {
        /// The voucher.
        voucher: Box<crate::shop::vouchers::Voucher>,
    },
    /// A stream's sales so far (to its seller's own pages, at most twice a second).
    ShopSales(Box<crate::shop::analytics::Sales>),
    /// You are invited to co-host a stream (to the invitee), or an
    /// invitation you made or to your stream was answered.
    CohostInvitation {
        /// The invitation.
        invitation: Box<crate::rooms::invitations::Invitation>,
    },
    /// A host asks to join your stream's room (to its primary host), or
    /// your request was approved or rejected (to the requester).
    CohostRequest {
        /// The request.
        request: Box<crate::rooms::invitations::JoinRequest>,
    },
    /// A host's publisher connected in the room.
    HostJoined {
        /// Stream id.
        stream_id: i64,
        /// The host (username).
        user: String,
    },
    /// A host left the room (`left`), was removed (`removed`), or its
    /// publisher went away and did not come back (`disconnected`).
    HostLeft {
        /// Stream id.
        stream_id: i64,
        /// The host (username).
        user: String,
        /// `left`, `removed` or `disconnected`.
        reason: String,
    },
    /// A host's mutes or permissions changed.
    HostUpdated {
        /// Stream id.
        stream_id: i64,
        /// The host now.
        host: Box<crate::rooms::hosts::RoomHost>,
    },
    /// A host started or stopped speaking (the pages' speaking ring).
    HostSpeaking {
        /// Stream id.
        stream_id: i64,
        /// The host (username).
        user: String,
        /// Speaking now.
        speaking: bool,
    },
    /// The room's layout changed.
    RoomLayout {
        /// Stream id.
        stream_id: i64,
        /// The layout now.
        layout: crate::rooms::layout::RoomLayout,
    },
    /// Which host is in which slot: a viewer with K slots (K >= 2) gets the
    /// first K of `slots`; a one-slot player gets `program`.
    RoomSlots {
        /// Stream id.
        stream_id: i64,
        /// Hosts by slot (usernames; null: the slot sends nothing).
        slots: Vec<Option<String>>,
        /// What a one-slot player shows (the focus or the active speaker).
        program: Option<String>,
    },
    /// The room's dominant speaker changed.
    ActiveSpeaker {
        /// Stream id.
        stream_id: i64,
        /// The host (username).
        user: String,
    },
    /// How the room's hosts connect to each other now (to its hosts only:
    /// on every change of its hosts or mode, and when a host subscribes).
    RoomTopology {
        /// Stream id.
        stream_id: i64,
        /// `mesh`: page to page; `sfu`: host WHEP.
        topology: crate::rooms::topology::Mode,
        /// Its connected hosts (usernames), in join order.
        hosts: Vec<String>,
    },
    /// A mesh signal from another host of the room (to its recipient only).
    RoomSignal {
        /// Stream id.
        stream_id: i64,
        /// The sending host (username).
        from: String,
        /// What it sent: an offer, an answer or a candidate.
        #[schema(value_type = Object)]
        data: serde_json::Value,
    },
    /// The room is over (its primary host left, or the stream ended).
    RoomEnded {
        /// Stream id.
        stream_id: i64,
    },
    /// A notice for one user from the platform's admins (a stream of theirs
    /// ended or taken down, and why).
    Notice {
        /// `stream_ended_by_admin`, `replay_taken_down`, `host_approved`, ...
        kind: String,
        /// For people.
        message: String,
        /// The stream it is about, if any.
        stream_id: Option<i64>,
    },
    /// A host challenges you to a PK battle (to both hosts).
    BattleInvitation {
        /// The battle (`invited`, with `expires_at`).
        battle: Box<crate::battles::Battle>,
    },
    /// A battle moved on: accepted (`countdown`), `active`, `declined`,
    /// `cancelled`, `expired`, or its punishment phase is over
    /// (to both hosts and both streams).
    BattleUpdated {
        /// The battle now.
        battle: Box<crate::battles::Battle>,
    },
    /// A battle's scores and top three supporters per side (to both
    /// streams, at most ten a second).
    BattleScore {
        /// Battle id.
        battle_id: i64,
        /// The challenger's side, then the opponent's.
        sides: Vec<crate::battles::Side>,
        /// The end.
        #[serde(serialize_with = "crate::clock::json::opt_ms")]
        #[schema(value_type = Option<String>, format = DateTime)]
        ends_at: Option<i64>,
        /// The server's clock.
        #[serde(serialize_with = "crate::clock::json::ms")]
        #[schema(value_type = String, format = DateTime)]
        server_time: i64,
    },
    /// A battle ended: final scores, the winner (or a draw) and the reward;
    /// or it was `aborted` (a host's stream ended mid-battle: gone past the
    /// reconnect grace; no winner, no reward). To both hosts and both streams.
    BattleEnded {
        /// The battle, `ended` or `aborted`.
        battle: Box<crate::battles::Battle>,
    },
}

struct Outbox {
    tx: mpsc::Sender<Utf8Bytes>,
    lagged: Arc<AtomicBool>,
}

/// One client's end: what the WebSocket task reads from.
pub struct Connection {
    /// Its id.
    pub id: u64,
    /// Events to send.
    pub rx: mpsc::Receiver<Utf8Bytes>,
    /// Set when an event could not be queued: close and let the client reload.
    pub lagged: Arc<AtomicBool>,
    tx: mpsc::Sender<Utf8Bytes>,
}

impl Connection {
    /// Queues a direct reply to this client (not through a topic).
    pub fn reply(&self, body: String) {
        if self.tx.try_send(Utf8Bytes::from(body)).is_err() {
            self.lagged.store(true, Ordering::Relaxed);
        }
    }
}

/// The hub.
#[derive(Default)]
pub struct Hub {
    next: AtomicU64,
    topics: DashMap<Topic, HashMap<u64, Outbox>>,
    /// Events not queued because a client was lagging.
    pub dropped: AtomicU64,
    /// Events published.
    pub published: AtomicU64,
}

impl Hub {
    /// A new client.
    pub fn connect(&self) -> Connection {
        let (tx, rx) = mpsc::channel(OUTBOX);
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        Connection { id, rx, lagged: Arc::new(AtomicBool::new(false)), tx }
    }

    /// The client listens to `topic`.
    pub fn join(&self, conn: &Connection, topic: Topic) {
        self.topics.entry(topic).or_default().insert(conn.id, Outbox { tx: conn.tx.clone(), lagged: conn.lagged.clone() });
    }

    /// The client stops listening to `topic`.
    pub fn leave(&self, conn_id: u64, topic: Topic) {
        if let dashmap::Entry::Occupied(mut e) = self.topics.entry(topic) {
            e.get_mut().remove(&conn_id);
            if e.get().is_empty() {
                e.remove();
            }
        }
    }

    /// Clients listening to `topic`.
    pub fn listeners(&self, topic: Topic) -> usize {
        self.topics.get(&topic).map(|m| m.len()).unwrap_or(0)
    }

    /// Sends `event` to every client on `topic`; returns how many got it.
    pub fn publish(&self, topic: Topic, event: &Event) -> usize {
        let Some(subs) = self.topics.get(&topic) else { return 0 };
        let body = match serde_json::to_string(event) {
            Ok(b) => Utf8Bytes::from(b),
            Err(e) => {
                tracing::error!("event not serialisable: {e}");
                return 0;
            }
        };
        self.published.fetch_add(1, Ordering::Relaxed);
        let mut sent = 0;
        for out in subs.values() {
            match out.tx.try_send(body.clone()) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    out.lagged.store(true, Ordering::Relaxed);
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn topics_reach_only_their_listeners_and_slow_clients_are_marked() {
        let hub = Hub::default();
        let mut a = hub.connect();
        let mut b = hub.connect();
        hub.join(&a, Topic::Stream(1));
        hub.join(&b, Topic::Stream(2));
        let ev = Event::Likes { stream_id: 1, likes: 3, reactions: Default::default() };
        assert_eq!(hub.publish(Topic::Stream(1), &ev), 1);
        let got = a.rx.recv().await.unwrap();
        assert_eq!(got.as_str(), r#"{"type":"likes","stream_id":1,"likes":3,"reactions":{}}"#);
        assert!(b.rx.try_recv().is_err(), "b listens to another stream");

        for _ in 0..OUTBOX {
            hub.publish(Topic::Stream(2), &ev);
        }
        assert!(!b.lagged.load(Ordering::Relaxed));
        hub.publish(Topic::Stream(2), &ev);
        assert!(b.lagged.load(Ordering::Relaxed), "a full outbox marks the client lagged");
        assert_eq!(hub.dropped.load(Ordering::Relaxed), 1);

        hub.leave(a.id, Topic::Stream(1));
        assert_eq!(hub.publish(Topic::Stream(1), &ev), 0);
        assert_eq!(hub.listeners(Topic::Stream(1)), 0);
    }
}
