//! `/api/ws` against a hostile client: one address opening many sockets
//! with fresh viewer keys cannot raise a stream's viewer count past the cap;
//! a message flood is refused and closed while other clients' chat goes on;
//! sockets are capped per address and per user; `subscribe` is answered
//! from caches.

mod common;

use std::time::Duration;

use common::api::{Api, Ws};
use serde_json::{json, Value};

fn fresh_key() -> String {
    format!("k_{:016x}", rand::random::<u64>())
}

/// The stream's viewer count as the API shows it, once it has settled.
async fn settled_viewers(api: &Api, sid: i64) -> u64 {
    let mut last = u64::MAX;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let now = api.get(&format!("/api/streams/{sid}"), None).await.json()["viewers"].as_u64().unwrap();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_raise_a_streams_viewer_count_past_the_cap() {
    let server = common::start_server_with(common::temp_dir("cap"), |a| {
        a.viewers_per_ip = Some(5);
        a.trusted_proxies = Some(vec!["127.0.0.1/32".into()]);
    })
    .await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let sid = api.create_stream(&ana, json!({ "title": "Crowd?" })).await["id"].as_i64().unwrap();
    assert_eq!(api.post(&format!("/api/streams/{sid}/start"), Some(&ana.token), json!({})).await.status, 200);

    // A script at one address: 40 sockets, each watching with a fresh key.
    let mut script = Vec::new();
    for _ in 0..40 {
        let mut ws = Ws::connect(server.http_addr, None).await;
        ws.send(json!({ "type": "watch", "stream": sid, "viewer": fresh_key() })).await;
        ws.next_of("subscribed", 5).await;
        script.push(ws);
    }
    assert_eq!(settled_viewers(&api, sid).await, 5, "the cap per address");
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM viewer_sessions WHERE stream_id = $1").bind(sid).fetch_one(&server.app.pool).await.unwrap();
    assert_eq!(rows, 5, "and no row past it");

    // One socket (another address, through the trusted proxy) cycling keys:
    // it keeps the first, and coming back at once resumes the same stay.
    let mut cycler = Ws::try_connect(server.http_addr, None, &[("x-forwarded-for", "198.51.100.7")]).await.unwrap();
    for _ in 0..10 {
        cycler.send(json!({ "type": "watch", "stream": sid, "viewer": fresh_key() })).await;
        cycler.next_of("subscribed", 5).await;
        cycler.send(json!({ "type": "unwatch", "stream": sid })).await;
    }
    cycler.send(json!({ "type": "watch", "stream": sid, "viewer": fresh_key() })).await;
    cycler.next_of("subscribed", 5).await;
    // Three real viewers elsewhere count, one each.
    let mut others = Vec::new();
    for i in 1..=3 {
        let xff = format!("203.0.113.{i}");
        let mut ws = Ws::try_connect(server.http_addr, None, &[("x-forwarded-for", xff.as_str())]).await.unwrap();
        ws.send(json!({ "type": "watch", "stream": sid, "viewer": fresh_key() })).await;
        ws.next_of("subscribed", 5).await;
        others.push(ws);
    }
    assert_eq!(settled_viewers(&api, sid).await, 5 + 1 + 3, "the script's five, the cycler once, three others");
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM viewer_sessions WHERE stream_id = $1").bind(sid).fetch_one(&server.app.pool).await.unwrap();
    assert_eq!(rows, 5 + 1 + 3, "the cycler's comings and goings are one stay");

    // The script's sockets leave: its place is free for real viewers there.
    for ws in script {
        ws.close().await;
    }
    assert_eq!(settled_viewers(&api, sid).await, 4);
    server.stop().await;
}

/// Floods `/api/ws` with subscribes, watches and chats while reading the
/// answers; returns what came back and the close code, if a close frame came.
async fn flood(addr: std::net::SocketAddr, token: String, sid: i64) -> (Vec<Value>, Option<u16>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/ws?token={token}")).await.unwrap();
    let (mut tx, mut rx) = socket.split();
    let sender = tokio::spawn(async move {
        for i in 0..3000 {
            let msg = match i % 3 {
                0 => json!({ "type": "subscribe", "stream": sid, "id": i }),
                1 => json!({ "type": "watch", "stream": sid, "viewer": fresh_key(), "id": i }),
                _ => json!({ "type": "chat", "stream": sid, "text": format!("spam {i}"), "id": i }),
            };
            if tx.send(Message::Text(msg.to_string().into())).await.is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut code = None;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(10), rx.next()).await {
        match m {
            Message::Text(t) => seen.push(serde_json::from_str(t.as_str()).unwrap()),
            Message::Close(f) => {
                code = f.map(|f| u16::from(f.code));
                break;
            }
            _ => {}
        }
    }
    sender.abort();
    (seen, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_flood_is_refused_then_closed_and_others_chat_on() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let bea = api.register("bea", "viewer").await;
    let cid = api.register("cid", "viewer").await;
    let mal = api.register("mallory", "viewer").await;
    let sid = api.create_stream(&ana, json!({ "title": "Under attack" })).await["id"].as_i64().unwrap();
    assert_eq!(api.post(&format!("/api/streams/{sid}/start"), Some(&ana.token), json!({})).await.status, 200);

    let mut watcher = Ws::connect(server.http_addr, Some(&cid.token)).await;
    watcher.send(json!({ "type": "watch", "stream": sid, "viewer": fresh_key() })).await;
    watcher.next_of("subscribed", 5).await;
    let mut talker = Ws::connect(server.http_addr, Some(&bea.token)).await;
    talker.send(json!({ "type": "subscribe", "stream": sid })).await;
    talker.next_of("subscribed", 5).await;

    // Mallory sends 3,000 subscribes, watches and chats as fast as she can
    // (and reads what comes back at the same time).
    let flooding = tokio::spawn(flood(server.http_addr, mal.token.clone(), sid));

    // Meanwhile Bea chats, and Cid sees every message.
    for i in 0..5 {
        let ack = talker.chat(sid, &format!("hello {i}")).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        let seen = watcher.next_where(3, |v| v["type"] == "chat_message" && v["message"]["text"] == format!("hello {i}")).await;
        assert!(seen.is_some(), "Cid got Bea's message {i} during the flood");
        // Bea keeps to the chat's own pace (a message per 0.7 s after three).
        tokio::time::sleep(Duration::from_millis(750)).await;
    }

    let (seen, code) = flooding.await.unwrap();
    let metrics = api.get("/metrics", None).await.body;
    assert_eq!(common::metric(&metrics, "onair_ws_flood_closes"), 1, "a socket that keeps flooding is closed: {metrics}");
    assert_eq!(code, Some(1008), "closed with 1008 (policy)");
    let errors: Vec<&Value> = seen.iter().filter(|v| v["type"] == "error" && v["error"]["code"] == "rate_limited").collect();
    assert!(errors.iter().any(|e| e["error"]["message"].as_str().unwrap().contains("connection") && e["error"]["retry_after_ms"].as_u64() > Some(0) && e["id"].is_number()), "refused with rate_limited: {:?}; {} answers, close {code:?}, last {:?}", errors.first(), seen.len(), seen.last());
    let handled = seen.iter().filter(|v| v["type"] == "subscribed").count();
    assert!(handled <= 2 * 60, "at most about a burst of messages was handled: {handled}");
    // Mallory's watch counted once at most; the room is Cid (and maybe her).
    let viewers = api.get(&format!("/api/streams/{sid}"), None).await.json()["viewers"].as_u64().unwrap();
    assert!(viewers <= 2, "{viewers}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_are_capped_per_address_and_per_user() {
    let server = common::start_server_with(common::temp_dir("wscap"), |a| {
        a.ws_per_ip = Some(5);
        a.ws_per_user = Some(2);
    })
    .await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "viewer").await;

    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(Ws::connect(server.http_addr, None).await);
    }
    assert_eq!(Ws::try_connect(server.http_addr, None, &[]).await.err(), Some(429), "a sixth from the same address");
    open.pop().unwrap().close().await;
    let mut again = None;
    for _ in 0..50 {
        if let Ok(ws) = Ws::try_connect(server.http_addr, None, &[]).await {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "a closed socket frees its place");
    drop(open);
    drop(again);

    // Per user: two sockets of Ana; a third is refused, at the upgrade or by `auth`.
    let server = common::start_server_with(common::temp_dir("wscap"), |a| a.ws_per_user = Some(2)).await;
    let api = Api::new(server.http_addr);
    let ana2 = api.register("ana", "viewer").await;
    let _a1 = Ws::connect(server.http_addr, Some(&ana2.token)).await;
    let _a2 = Ws::connect(server.http_addr, Some(&ana2.token)).await;
    assert_eq!(Ws::try_connect(server.http_addr, Some(&ana2.token), &[]).await.err(), Some(429));
    let mut anon = Ws::connect(server.http_addr, None).await;
    anon.send(json!({ "type": "auth", "token": ana2.token })).await;
    let e = anon.next_of("error", 5).await;
    assert_eq!(e["error"]["code"], "too_many_connections", "{e}");
    let _ = ana;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribes_are_answered_from_caches() {
    let server = common::start_server_with(common::temp_dir("cache"), |a| a.ws_rate = Some(1000)).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let sid = api.create_stream(&ana, json!({ "title": "Popular" })).await["id"].as_i64().unwrap();
    let mut ws = Ws::connect(server.http_addr, None).await;
    // Warm: one read of the stream and one of the channel.
    for asked in [json!(sid), json!("ana")] {
        ws.send(json!({ "type": "subscribe", "stream": asked })).await;
        ws.next_of("subscribed", 5).await;
    }
    let before = server.app.streams.cache_misses();
    let t0 = std::time::Instant::now();
    for i in 0..200 {
        let asked = if i % 2 == 0 { json!(sid) } else { json!("ana") };
        ws.send(json!({ "type": "subscribe", "stream": asked })).await;
        let got = ws.next_of("subscribed", 5).await;
        assert_eq!(got["stream"]["id"], sid);
    }
    let misses = server.app.streams.cache_misses() - before;
    // The cache lives a second: at most one read per second of the run.
    let allowed = 2 * (t0.elapsed().as_secs() + 1);
    assert!(misses <= allowed, "200 subscribes read the stream {misses} times (allowed {allowed})");
    // A change is seen at once, not after the cache's second.
    assert_eq!(api.patch(&format!("/api/streams/{sid}"), Some(&ana.token), json!({ "title": "Renamed" })).await.status, 200);
    ws.send(json!({ "type": "subscribe", "stream": "ana" })).await;
    let got = ws.next_where(5, |v| v["type"] == "subscribed" && v["stream"]["title"] == "Renamed").await;
    assert!(got.is_some(), "the update dropped the cached copy: {:?}", ws.seen.last());
    server.stop().await;
}
