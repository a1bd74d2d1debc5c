//! `GET /api/ws`: each client's one WebSocket.
//!
//! Client to server, JSON with a `type`:
//! - `auth` `{token}`: log in on this socket (or pass `?token=` on the URL);
//! - `subscribe` / `unsubscribe` `{stream, id?}`: a stream's events (id or
//!   channel); answered `subscribed {id, asked, stream, chat}` or
//!   `error {id, stream, error}`;
//! - `directory`: every stream's `stream_status` (the live directory page);
//! - `watch` / `unwatch` `{stream, viewer?, id?}`: subscribe, and count as an open
//!   watch page (`viewer` is the page's key, shared with its WHEP session);
//! - `chat` `{stream, text, kind?, product?, id?}` and `react` `{stream, emoji, id?}`:
//!   answered `ack {id, message}` or `error {id, error}` (the same codes as HTTP);
//! - `room_signal` `{stream_id, to, data, id?}`: a host's mesh signal (an
//!   offer, an answer or a candidate) to another host of the same live
//!   room, who gets `room_signal {stream_id, from, data}`; refused with
//!   `error {id, error}` (`not_room_member`, `signal_too_large`,
//!   `bad_signal`, `rate_limited`) otherwise (see `rooms::topology`);
//! - `ping` `{id?}`: answered `pong`.
//!
//! Server to client: `hello`, `subscribed {stream, chat}`, and every
//! [`crate::realtime::Event`] of the topics joined.
//!
//! Who counts as a viewer (open watch pages count once per client and
//! stream): the logged-in user when the socket is logged in; else the
//! viewer key bound to the socket (the first one it names, at the upgrade
//! as `?viewer=` / `X-OnAir-Viewer` or in a `watch`: a socket cannot change
//! it later, so cycling keys on one socket counts once); else the socket
//! itself. The same viewer key on the page's WHEP session makes page and
//! video one viewer. Whatever the keys, at most `--viewers-per-ip` viewers
//! of a stream count per client address (IPv6: /64), so a script opening
//! sockets with fresh keys cannot raise a stream's count past that.
//!
//! Limits ([`super::ws_guard`]): open sockets per address and per user
//! (`429 too_many_connections` at the upgrade, or as the `auth` answer),
//! and messages per socket: past the rate a message is answered
//! `error {id, error: {code: "rate_limited", retry_after_ms}}` unhandled,
//! and a socket that keeps flooding is closed (1008). A socket the server
//! closes otherwise gets 4000 (`lagged`, `idle`: reconnect) or 1001 (the
//! server is shutting down: reconnect later).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use onair_signaling::{ApiError, Client};
use serde::Deserialize;

use super::extract::AppState;
use super::ws_guard::{Budget, NetworkSlot, UserSlot, Verdict};
use crate::accounts::Principal;
use crate::analytics::ViewerInfo;
use crate::chat::{Kind, PostMessage, ProductCard};
use crate::client_addr::Network;
use crate::realtime::{Connection, Topic};
use crate::streams::access;

/// How long a silent client is kept (browsers answer our pings).
const IDLE: Duration = Duration::from_secs(75);

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMsg {
    Auth {
        token: String,
    },
    Subscribe {
        stream: serde_json::Value,
        #[serde(default)]
        id: Option<serde_json::Value>,
    },
    Unsubscribe {
        stream: serde_json::Value,
    },
    Watch {
        stream: serde_json::Value,
        #[serde(default)]
        viewer: Option<String>,
        #[serde(default)]
        id: Option<serde_json::Value>,
    },
    Unwatch {
        stream: serde_json::Value,
    },
    Chat {
        stream: serde_json::Value,
        #[serde(default)]
        text: String,
        #[serde(default)]
        kind: Kind,
        #[serde(default)]
        product: Option<ProductCard>,
        #[serde(default)]
        id: Option<serde_json::Value>,
    },
    React {
        stream: serde_json::Value,
        emoji: String,
        #[serde(default)]
        id: Option<serde_json::Value>,
    },
    Ping {
        #[serde(default)]
        id: Option<serde_json::Value>,
    },
    Directory,
    RoomSignal {
        stream_id: i64,
        to: String,
        data: serde_json::Value,
        #[serde(default)]
        id: Option<serde_json::Value>,
    },
}

/// The upgrade.
#[utoipa::path(get, path = "/api/ws", tag = "real-time",
    params(("token" = Option<String>, Query, description = "Access token (browsers cannot set headers on a WebSocket; a `?token=` anywhere but a WebSocket upgrade is refused with `400 token_in_query`)"),
           ("viewer" = Option<String>, Query, description = "The page's viewer key")),
    responses((status = 101, description = "Switching to the WebSocket protocol described in the module docs"),
              (status = 401, description = "A bad or expired token", body = super::ErrorBody),
              (status = 429, description = "`too_many_connections`: too many sockets open from this address or for this user", body = super::ErrorBody),
              (status = 503, description = "`shutting_down`: the server is stopping; try again in a moment", body = super::ErrorBody)))]
pub async fn upgrade(State(app): State<AppState>, client: Client, ws: WebSocketUpgrade) -> Result<Response, ApiError> {
    if app.shutdown.begun() {
        return Err(ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down; try again in a moment").retry_after(5_000));
    }
    let open = app.shutdown.hold();
    // Cheapest refusal first: the address's open sockets.
    let network = client.ip.map(Network::of);
    let network_slot = network.map(|n| app.limits.ws.admit_network(n)).transpose()?;
    // A bad token fails the upgrade; no token is an anonymous socket.
    let who = app.principal(client.bearer.as_deref()).await?;
    let user_slot = who.as_ref().map(|w| app.limits.ws.admit_user(w.id())).transpose()?;
    let token = client.bearer.clone().filter(|_| who.is_some());
    let budget = app.limits.ws.budget(Instant::now());
    let viewer_key = client.viewer_key.clone();
    // A small read buffer: tungstenite zero-fills the whole buffer before
    // every read, and with its 128 KiB default that memset was half the CPU
    // of fanning a chat message out to thousands of sockets.
    Ok(ws.max_message_size(16 * 1024).read_buffer_size(4 * 1024).on_upgrade(move |socket| {
        Session { app, client, network, who, token, viewer_key, watching: HashMap::new(), topics: Vec::new(), budget, _network_slot: network_slot, user_slot, _open: open }.run(socket)
    }))
}

struct Session {
    app: AppState,
    client: Client,
    network: Option<Network>,
    who: Option<Principal>,
    token: Option<String>,
    /// The viewer key bound to this socket (see the module docs).
    viewer_key: Option<String>,
    /// Streams this page watches (counted as present).
    watching: HashMap<i64, ()>,
    topics: Vec<Topic>,
    /// Messages this socket may still send.
    budget: Budget,
    /// Its place in the per-address count (given back when dropped).
    _network_slot: Option<NetworkSlot>,
    /// Its place in its user's count.
    user_slot: Option<UserSlot>,
    /// Counted as open until the session ends (shutdown waits for it).
    _open: crate::app::Hold,
}

/// A message's `id`, read from a message that will not be handled.
#[derive(Deserialize)]
struct JustId {
    #[serde(default)]
    id: Option<serde_json::Value>,
}

fn stream_ref(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An error answering a subscribe or watch: says which stream was refused.
fn error_reply_for(id: &Option<serde_json::Value>, stream: &serde_json::Value, e: &ApiError) -> String {
    let mut body = error_body(id, e);
    body["stream"] = stream.clone();
    body.to_string()
}

fn error_reply(id: &Option<serde_json::Value>, e: &ApiError) -> String {
    error_body(id, e).to_string()
}

fn error_body(id: &Option<serde_json::Value>, e: &ApiError) -> serde_json::Value {
    let mut body = e.body();
    body["type"] = "error".into();
    body["status"] = e.status.as_u16().into();
    if let Some(id) = id {
        body["id"] = id.clone();
    }
    body
}

impl Session {
    async fn run(mut self, mut socket: WebSocket) {
        let mut conn = self.app.hub.connect();
        if let Some(w) = &self.who {
            self.join(&conn, Topic::User(w.id()));
        }
        let hello = serde_json::json!({ "type": "hello", "user": self.who.as_ref().map(|w| &w.user) }).to_string();
        if socket.send(Message::Text(hello.into())).await.is_err() {
            return;
        }
        let mut heard = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(25));
        tick.tick().await;
        let shutdown = self.app.shutdown.clone();
        let why = loop {
            tokio::select! {
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                    Some(Ok(Message::Pong(_))) => heard = Instant::now(),
                    Some(Ok(msg)) => {
                        heard = Instant::now();
                        match self.budget.on_message(heard) {
                            Verdict::Handle => {
                                if let Message::Text(t) = msg {
                                    self.handle(&conn, t.as_str()).await;
                                }
                            }
                            Verdict::Refuse(wait) => {
                                self.app.limits.ws.refused_messages.fetch_add(1, Ordering::Relaxed);
                                if let Message::Text(t) = msg {
                                    let id = serde_json::from_str::<JustId>(t.as_str()).ok().and_then(|m| m.id);
                                    let e = ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many messages on this connection; slow down").retry_after(wait.as_millis() as u64 + 1);
                                    conn.reply(error_reply(&id, &e));
                                }
                            }
                            Verdict::Close => {
                                self.app.limits.ws.flood_closes.fetch_add(1, Ordering::Relaxed);
                                break Some((1008, "rate limited: too many messages"));
                            }
                        }
                    }
                },
                _ = shutdown.cancelled() => break Some((1001, "the server is shutting down; reconnect in a moment")),
                out = conn.rx.recv() => match out {
                    Some(body) => {
                        if socket.send(Message::Text(body)).await.is_err() {
                            break None;
                        }
                    }
                    None => break None,
                },
                _ = tick.tick() => {
                    if heard.elapsed() > IDLE {
                        break Some((4000, "idle"));
                    }
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        break None;
                    }
                }
            }
            if conn.lagged.load(Ordering::Relaxed) {
                break Some((4000, "lagged: reconnect and reload"));
            }
        };
        if let Some((code, reason)) = why {
            // Politely: what is queued for the client (answers, the refusals
            // of a flood) first, then the close, then the closing handshake
            // (reading, and dropping, until the client's close: unread data
            // would end the connection with a reset, and the client would
            // lose what was just sent). A client that does not play along
            // gets 3 s, not more.
            let polite = async {
                while let Ok(body) = conn.rx.try_recv() {
                    if socket.send(Message::Text(body)).await.is_err() {
                        return;
                    }
                }
                if socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await.is_err() {
                    return;
                }
                while let Some(Ok(m)) = socket.recv().await {
                    if matches!(m, Message::Close(_)) {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(3), polite).await;
        }
        for t in &self.topics {
            self.app.hub.leave(conn.id, *t);
        }
        if !self.watching.is_empty() {
            self.app.analytics.page_left(conn.id);
        }
        conn.rx.close();
    }

    fn join(&mut self, conn: &Connection, t: Topic) {
        if !self.topics.contains(&t) {
            self.app.hub.join(conn, t);
            self.topics.push(t);
        }
    }

    fn leave(&mut self, conn: &Connection, t: Topic) {
        self.app.hub.leave(conn.id, t);
        self.topics.retain(|x| *x != t);
    }

    /// The caller for a write: logged in, with a token still valid.
    fn writer(&self) -> Result<&Principal, ApiError> {
        let (Some(who), Some(token)) = (&self.who, &self.token) else {
            return Err(ApiError::unauthorized("log in to chat: send {\"type\":\"auth\",\"token\":...}"));
        };
        self.app.accounts.verify(token)?;
        Ok(who)
    }

    async fn handle(&mut self, conn: &Connection, text: &str) {
        let msg: ClientMsg = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                conn.reply(error_reply(&None, &ApiError::new(axum::http::StatusCode::BAD_REQUEST, "bad_message", format!("not a message this socket knows: {e}"))));
                return;
            }
        };
        match msg {
            ClientMsg::Auth { token } => match self.app.accounts.authenticate(&token).await {
                Ok(p) => {
                    if self.user_slot.as_ref().map(|s| s.user) != Some(p.id()) {
                        match self.app.limits.ws.admit_user(p.id()) {
                            Ok(slot) => self.user_slot = Some(slot),
                            Err(e) => return conn.reply(error_reply(&None, &e)),
                        }
                    }
                    if let Some(old) = &self.who {
                        if old.id() != p.id() {
                            self.leave(conn, Topic::User(old.id()));
                        }
                    }
                    self.join(conn, Topic::User(p.id()));
                    conn.reply(serde_json::json!({ "type": "hello", "user": &p.user }).to_string());
                    self.who = Some(p);
                    self.token = Some(token);
                }
                Err(e) => conn.reply(error_reply(&None, &e)),
            },
            ClientMsg::Subscribe { stream, id } => {
                if let Err(e) = self.subscribe(conn, &stream, &id).await {
                    conn.reply(error_reply_for(&id, &stream, &e));
                }
            }
            ClientMsg::Unsubscribe { stream } => {
                if let Ok(Some(s)) = self.app.resolve_stream(&stream_ref(&stream)).await {
                    self.leave(conn, Topic::Stream(s.id));
                    self.unwatch(s.id, conn);
                }
            }
            ClientMsg::Watch { stream, viewer, id: nonce } => match self.subscribe(conn, &stream, &nonce).await {
                Ok(id) => {
                    if self.watching.insert(id, ()).is_none() {
                        // One watched stream per page connection counts.
                        if self.watching.len() > 1 {
                            self.watching.retain(|k, _| *k == id);
                            self.app.analytics.page_left(conn.id);
                        }
                        // The socket keeps the first viewer key it names.
                        if self.viewer_key.is_none() {
                            self.viewer_key = viewer.filter(|k| onair_signaling::valid_viewer_key(k));
                        }
                        let user_id = self.who.as_ref().map(|w| w.id());
                        let info = ViewerInfo {
                            key: ViewerInfo::key_for(user_id, self.viewer_key.as_deref(), &format!("c:{}", conn.id)),
                            user_id,
                            user_agent: self.client.user_agent.clone(),
                            load_test: self.client.load_test,
                            location: self.app.geo.locate(self.client.ip),
                            network: self.network,
                        };
                        self.app.analytics.page_joined(id, conn.id, info);
                    }
                }
                Err(e) => conn.reply(error_reply_for(&nonce, &stream, &e)),
            },
            ClientMsg::Unwatch { stream } => {
                if let Ok(Some(s)) = self.app.resolve_stream(&stream_ref(&stream)).await {
                    self.unwatch(s.id, conn);
                }
            }
            ClientMsg::Chat { stream, text, kind, product, id } => {
                let r = self.post(&stream_ref(&stream), PostMessage { kind, text, product }).await;
                conn.reply(match r {
                    Ok(m) => serde_json::json!({ "type": "ack", "id": id, "message": m }).to_string(),
                    Err(e) => error_reply(&id, &e),
                });
            }
            ClientMsg::React { stream, emoji, id } => {
                let r = self.post(&stream_ref(&stream), PostMessage { kind: Kind::Reaction, text: emoji, product: None }).await;
                conn.reply(match r {
                    Ok(m) => serde_json::json!({ "type": "ack", "id": id, "message": m }).to_string(),
                    Err(e) => error_reply(&id, &e),
                });
            }
            ClientMsg::RoomSignal { stream_id, to, data, id } => {
                let r = match self.writer() {
                    Ok(who) => self.app.rooms.relay_signal(stream_id, who, &to, data).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    conn.reply(error_reply(&id, &e));
                }
            }
            ClientMsg::Ping { id } => conn.reply(serde_json::json!({ "type": "pong", "id": id }).to_string()),
            ClientMsg::Directory => {
                self.join(conn, Topic::Directory);
                conn.reply(serde_json::json!({ "type": "subscribed_directory" }).to_string());
            }
        }
    }

    fn unwatch(&mut self, id: i64, conn: &Connection) {
        if self.watching.remove(&id).is_some() {
            self.app.analytics.page_left(conn.id);
        }
    }

    async fn post(&self, stream: &str, msg: PostMessage) -> Result<crate::chat::ChatMessage, ApiError> {
        let who = self.writer()?;
        let id = stream.parse::<i64>().map_err(|_| ApiError::not_found(format!("no stream '{stream}'")))?;
        self.app.chat.post(id, who, msg).await
    }

    async fn subscribe(&mut self, conn: &Connection, asked: &serde_json::Value, nonce: &Option<serde_json::Value>) -> Result<i64, ApiError> {
        let stream = stream_ref(asked);
        let s = self.app.resolve_stream(&stream).await?.ok_or_else(|| ApiError::not_found(format!("no stream '{stream}'")))?;
        access::check_watch(&self.app.membership, &s, self.who.as_ref()).await?;
        self.join(conn, Topic::Stream(s.id));
        self.join(conn, Topic::Channel(s.host.id));
        let mut chat = self.app.chat.moderation.rules(s.host.id).await?.settings.clone();
        chat.banned_words.clear();
        let id = s.id;
        conn.reply(serde_json::json!({ "type": "subscribed", "id": nonce, "asked": asked, "stream": s, "chat": chat }).to_string());
        // A host of the room learns at once how its hosts connect.
        if let Some(who) = &self.who {
            if let Some(ev) = self.app.rooms.topology_for(id, who.id()).await {
                if let Ok(body) = serde_json::to_string(&ev) {
                    conn.reply(body);
                }
            }
        }
        Ok(id)
    }
}
