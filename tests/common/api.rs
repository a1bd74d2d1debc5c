//! The platform API as a client uses it: JSON over HTTP with a bearer
//! token, and the `/api/ws` WebSocket.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::http::{request, Response};

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub token: String,
    pub refresh: String,
}

/// A client of one server.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    pub addr: SocketAddr,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Api {
        Api { addr }
    }

    /// Any request with an optional token and JSON body.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        request(self.addr, method, path, &headers, bytes.as_bytes()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.call("GET", path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.call("POST", path, token, Some(&body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.call("PATCH", path, token, Some(&body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.call("DELETE", path, token, None).await
    }

    /// Registers (and so logs in) a user; panics unless 201.
    pub async fn register(&self, username: &str, role: &str) -> User {
        let r = self.post("/api/auth/register", None, json!({ "username": username, "email": format!("{username}@example.org"), "password": "correct horse", "role": role })).await;
        assert_eq!(r.status, 201, "register {username}: {}", r.body);
        user_of(&r.json())
    }

    /// Creates a stream as `host`; panics unless 201.
    pub async fn create_stream(&self, host: &User, body: Value) -> Value {
        let r = self.post("/api/streams", Some(&host.token), body).await;
        assert_eq!(r.status, 201, "create stream: {}", r.body);
        r.json()
    }

    /// A stream key for `host`; panics unless 201.
    pub async fn stream_key(&self, host: &User) -> String {
        let r = self.post("/api/me/stream-keys", Some(&host.token), json!({ "label": "test" })).await;
        assert_eq!(r.status, 201, "stream key: {}", r.body);
        r.json()["key"].as_str().unwrap().to_owned()
    }
}

/// The user of a token pair answer.
pub fn user_of(v: &Value) -> User {
    User {
        id: v["user"]["id"].as_i64().expect("user id"),
        username: v["user"]["username"].as_str().unwrap().to_owned(),
        token: v["access_token"].as_str().expect("access token").to_owned(),
        refresh: v["refresh_token"].as_str().unwrap().to_owned(),
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One `/api/ws` connection; remembers what it received.
pub struct Ws {
    socket: Socket,
    pub seen: Vec<Value>,
}

impl Ws {
    /// Connects (with a token, and optionally as a load test or with a
    /// user agent) and waits for `hello`.
    pub async fn connect(addr: SocketAddr, token: Option<&str>) -> Ws {
        Ws::connect_as(addr, token, None).await
    }

    pub async fn connect_as(addr: SocketAddr, token: Option<&str>, user_agent: Option<&str>) -> Ws {
        let headers: Vec<(&str, &str)> = user_agent.map(|ua| ("user-agent", ua)).into_iter().collect();
        Ws::try_connect(addr, token, &headers).await.expect("websocket")
    }

    /// Connects with these extra headers; `Err(status)` if the upgrade is refused.
    pub async fn try_connect(addr: SocketAddr, token: Option<&str>, headers: &[(&str, &str)]) -> Result<Ws, u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = match token {
            Some(t) => format!("ws://{addr}/api/ws?token={t}"),
            None => format!("ws://{addr}/api/ws"),
        };
        let mut req = url.into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let socket = match tokio_tungstenite::connect_async(req).await {
            Ok((socket, _)) => socket,
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => return Err(r.status().as_u16()),
            Err(e) => panic!("websocket: {e}"),
        };
        let mut ws = Ws { socket, seen: Vec::new() };
        ws.next_of("hello", 5).await;
        Ok(ws)
    }

    /// Reads until the server closes the socket (or `secs` pass); returns
    /// the close code, if a close frame came. Messages go to `seen`.
    pub async fn until_closed(&mut self, secs: u64) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => self.seen.push(serde_json::from_str(t.as_str()).expect("JSON event")),
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_))) | Ok(None) | Err(_) => return None,
            }
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.socket.send(Message::Text(v.to_string().into())).await.expect("ws send");
    }

    /// The next message of this type (others are kept in `seen`).
    pub async fn next_of(&mut self, kind: &str, secs: u64) -> Value {
        self.next_where(secs, |v| v["type"] == kind).await.unwrap_or_else(|| panic!("no '{kind}' within {secs} s; seen: {:?}", self.seen))
    }

    /// The next message matching `f`, or `None` after `secs`.
    pub async fn next_where(&mut self, secs: u64, f: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Ok(Some(Ok(m))) => m,
                _ => return None,
            };
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON event");
                self.seen.push(v.clone());
                if f(&v) {
                    return Some(v);
                }
            }
        }
    }

    /// Sends chat and returns the answer (`ack` or `error`).
    pub async fn chat(&mut self, stream: i64, text: &str) -> Value {
        let nonce = rand::random::<u32>();
        self.send(json!({ "type": "chat", "stream": stream, "text": text, "id": nonce })).await;
        self.next_where(10, |v| (v["type"] == "ack" || v["type"] == "error") && v["id"] == nonce).await.expect("chat answer")
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
