//! Chat over real HTTP and WebSocket: every rule and its refusal code,
//! moderation (delete, timeout, ban, moderators), modes, history, reactions.

mod common;

use std::time::Duration;

use common::api::{Api, User, Ws};
use serde_json::{json, Value};

async fn say(api: &Api, sid: i64, who: &User, text: &str) -> common::http::Response {
    api.post(&format!("/api/streams/{sid}/chat"), Some(&who.token), json!({ "text": text })).await
}

fn code(r: &common::http::Response) -> (u16, String) {
    (r.status, if r.status >= 400 { r.error_code() } else { String::new() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_chat_rule_has_its_code() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let s = api.create_stream(&ana, json!({ "title": "Chatty" })).await;
    let sid = s["id"].as_i64().unwrap();
    let users: Vec<User> = {
        let mut v = Vec::new();
        for name in ["vic", "wes", "xan", "yul", "zed", "amy", "bea"] {
            v.push(api.register(name, "viewer").await);
        }
        v
    };
    let [vic, wes, xan, yul, zed, amy, bea] = <[User; 7]>::try_from(users).unwrap();

    // Anonymous: log in first.
    let r = api.post(&format!("/api/streams/{sid}/chat"), None, json!({ "text": "hi" })).await;
    assert_eq!(code(&r), (401, "unauthorized".into()));

    // Length: 500 characters is fine, 501 is too long; nothing is empty.
    assert_eq!(say(&api, sid, &vic, &"é".repeat(500)).await.status, 201);
    let r = say(&api, sid, &vic, &"é".repeat(501)).await;
    assert_eq!(code(&r), (422, "too_long".into()));
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("501"));
    assert_eq!(code(&say(&api, sid, &vic, "   ").await), (422, "empty".into()));

    // The same message again within 30 s, whatever the case and spacing.
    assert_eq!(say(&api, sid, &wes, "Hello there").await.status, 201);
    assert_eq!(code(&say(&api, sid, &wes, "hello   THERE").await), (422, "duplicate".into()));

    // Rate: a burst of three, then about one per 0.7 s.
    for i in 0..3 {
        assert_eq!(say(&api, sid, &xan, &format!("burst {i}")).await.status, 201);
    }
    let r = say(&api, sid, &xan, "one too many").await;
    assert_eq!(code(&r), (429, "rate_limited".into()));
    let wait = r.json()["error"]["retry_after_ms"].as_u64().unwrap();
    assert!((1..=700).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    assert_eq!(say(&api, sid, &xan, "one too many").await.status, 201, "after the wait");

    // Slow mode (3-120 s); the host's team is exempt.
    let settings = |body: Value| {
        let api = api;
        let token = ana.token.clone();
        async move { api.patch("/api/channels/ana/chat-settings", Some(&token), body).await }
    };
    for bad in [2, 121, -5] {
        let r = settings(json!({ "slow_mode_seconds": bad })).await;
        assert_eq!(r.json()["error"]["fields"]["slow_mode_seconds"], "must be 0 (off) or 3-120", "{bad}");
    }
    assert_eq!(settings(json!({ "slow_mode_seconds": 3 })).await.json()["slow_mode_seconds"], 3);
    assert_eq!(say(&api, sid, &yul, "first").await.status, 201);
    let r = say(&api, sid, &yul, "second").await;
    assert_eq!(code(&r), (429, "slow_mode".into()));
    let wait = r.json()["error"]["retry_after_ms"].as_u64().unwrap();
    assert!((2000..=3000).contains(&wait), "{wait}");
    assert_eq!(say(&api, sid, &ana, "host one").await.status, 201);
    assert_eq!(say(&api, sid, &ana, "host two").await.status, 201, "the host is not slowed");
    settings(json!({ "slow_mode_seconds": 0 })).await;

    // Banned words: whole words, any case; the host's team may say them.
    settings(json!({ "banned_words": ["darn", "bad phrase"] })).await;
    assert_eq!(code(&say(&api, sid, &zed, "well DARN it").await), (422, "banned_word".into()));
    assert_eq!(code(&say(&api, sid, &zed, "a bad   phrase").await), (422, "banned_word".into()));
    assert_eq!(say(&api, sid, &zed, "I darned my socks").await.status, 201);
    let public = api.get("/api/channels/ana/chat-settings", None).await.json();
    assert_eq!(public["banned_words"], json!([]), "the list is the host's business");
    let full = api.get("/api/channels/ana/chat-settings/full", Some(&ana.token)).await.json();
    assert_eq!(full["banned_words"], json!(["darn", "bad phrase"]));
    assert_eq!(api.get("/api/channels/ana/chat-settings/full", Some(&zed.token)).await.status, 403);

    // Subscribers-only.
    settings(json!({ "subscribers_only": true })).await;
    assert_eq!(code(&say(&api, sid, &amy, "let me in").await), (403, "subscribers_only".into()));
    api.post("/api/channels/ana/subscriptions", Some(&ana.token), json!({ "user": "amy", "days": 7 })).await;
    let r = say(&api, sid, &amy, "let me in").await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["badges"], json!(["subscriber"]));
    settings(json!({ "subscribers_only": false })).await;

    // Followers-only, and followers for at least N minutes.
    settings(json!({ "followers_only_minutes": 0 })).await;
    assert_eq!(code(&say(&api, sid, &bea, "hi").await), (403, "followers_only".into()));
    assert_eq!(api.post("/api/users/ana/follow", Some(&bea.token), json!({})).await.status, 204);
    assert_eq!(say(&api, sid, &bea, "hi").await.status, 201);
    settings(json!({ "followers_only_minutes": 10 })).await;
    let r = say(&api, sid, &bea, "still me").await;
    assert_eq!(code(&r), (403, "followers_only".into()));
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("10 minutes"));
    settings(json!({ "followers_only_minutes": -1 })).await;
    assert_eq!(say(&api, sid, &bea, "still me").await.status, 201);

    // Timeouts (1 s to two weeks) and bans; lifting them.
    let r = api.post("/api/channels/ana/timeouts", Some(&ana.token), json!({ "user": "wes", "seconds": 0 })).await;
    assert!(r.json()["error"]["fields"]["seconds"].is_string());
    let r = api.post("/api/channels/ana/timeouts", Some(&ana.token), json!({ "user": "wes", "seconds": 1_209_601 })).await;
    assert_eq!(r.status, 400);
    let r = api.post("/api/channels/ana/timeouts", Some(&ana.token), json!({ "user": "wes", "seconds": 2, "reason": "cool off" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = say(&api, sid, &wes, "can I talk").await;
    assert_eq!(code(&r), (403, "timed_out".into()));
    assert!(r.json()["error"]["retry_after_ms"].as_u64().unwrap() <= 2000);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(say(&api, sid, &wes, "can I talk").await.status, 201, "a timeout ends by itself");
    assert_eq!(api.post("/api/channels/ana/bans", Some(&ana.token), json!({ "user": "wes", "reason": "spam" })).await.status, 201);
    assert_eq!(code(&say(&api, sid, &wes, "hello?").await), (403, "banned".into()));
    let list = api.get("/api/channels/ana/restrictions", Some(&ana.token)).await.json();
    assert_eq!((list[0]["username"].as_str(), list[0]["banned"].as_bool(), list[0]["reason"].as_str()), (Some("wes"), Some(true), Some("spam")));
    assert_eq!(api.delete("/api/channels/ana/bans/wes", Some(&ana.token)).await.status, 204);
    assert_eq!(api.delete("/api/channels/ana/bans/wes", Some(&ana.token)).await.status, 404);
    assert_eq!(say(&api, sid, &wes, "thanks").await.status, 201);
    let r = api.post("/api/channels/ana/bans", Some(&ana.token), json!({ "user": "ana" })).await;
    assert_eq!(code(&r), (422, "cannot_target_host".into()));

    // Reactions count as likes; only known reactions.
    let r = api.post(&format!("/api/streams/{sid}/chat"), Some(&vic.token), json!({ "kind": "reaction", "text": "🍕" })).await;
    assert_eq!(code(&r), (422, "bad_reaction".into()));
    for _ in 0..3 {
        assert_eq!(api.post(&format!("/api/streams/{sid}/like"), Some(&vic.token), json!({})).await.status, 201);
    }
    let s = api.get(&format!("/api/streams/{sid}"), None).await.json();
    assert_eq!(s["likes"], 3);
    // Product highlights are the host team's.
    let card = json!({ "kind": "product_highlight", "text": "look", "product": { "title": "Mug", "price": 1200 } });
    assert_eq!(code(&api.post(&format!("/api/streams/{sid}/chat"), Some(&vic.token), card.clone()).await), (403, "not_allowed".into()));
    let r = api.post(&format!("/api/streams/{sid}/chat"), Some(&ana.token), card).await;
    assert_eq!((r.status, r.json()["product"]["title"].as_str()), (201, Some("Mug")));
    let r = api.post(&format!("/api/streams/{sid}/chat"), Some(&ana.token), json!({ "kind": "product_highlight", "product": { "title": "" } })).await;
    assert!(r.json()["error"]["fields"]["product.title"].is_string());
    let r = api.post(&format!("/api/streams/{sid}/chat"), Some(&ana.token), json!({ "kind": "system", "text": "fake" })).await;
    assert_eq!(code(&r).1, "not_allowed", "nobody fakes a system message");

    // Over: chat is closed.
    api.post(&format!("/api/streams/{sid}/cancel"), Some(&ana.token), json!({})).await;
    assert_eq!(code(&say(&api, sid, &amy, "anyone?").await), (409, "chat_closed".into()));
    assert_eq!(code(&say(&api, 999_999, &amy, "anyone?").await), (404, "stream_not_found".into()));

    let s = api.get(&format!("/api/streams/{sid}"), None).await.json();
    let stored = api.get(&format!("/api/streams/{sid}/chat?limit=200"), None).await.json();
    let chats = stored["messages"].as_array().unwrap().iter().filter(|m| m["kind"] == "chat").count();
    assert_eq!(s["chat_messages"].as_u64(), Some(chats as u64), "the count is the messages stored");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderators_and_the_socket() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let mod1 = api.register("modest", "viewer").await;
    let vic = api.register("vic", "viewer").await;
    let bob = api.register("bob", "host").await;
    let sid = api.create_stream(&ana, json!({ "title": "Modded" })).await["id"].as_i64().unwrap();

    let mut watcher = Ws::connect(server.http_addr, None).await;
    watcher.send(json!({ "type": "subscribe", "stream": "ana" })).await;
    let sub = watcher.next_of("subscribed", 5).await;
    assert_eq!(sub["stream"]["id"], sid, "a channel name resolves to its stream");
    let mut vic_ws = Ws::connect(server.http_addr, Some(&vic.token)).await;

    // Over the socket: an ack with the stored message, or an error with the code.
    let ack = vic_ws.chat(sid, "hello from the socket").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let mid = ack["message"]["id"].as_i64().unwrap();
    let seen = watcher.next_of("chat_message", 5).await;
    assert_eq!((seen["message"]["id"].as_i64(), seen["message"]["user"]["username"].as_str()), (Some(mid), Some("vic")));
    let err = vic_ws.chat(sid, "").await;
    assert_eq!((err["type"].as_str(), err["error"]["code"].as_str(), err["status"].as_u64()), (Some("error"), Some("empty"), Some(422)));
    let mut anon = Ws::connect(server.http_addr, None).await;
    assert_eq!(anon.chat(sid, "me too").await["error"]["code"], "unauthorized");
    anon.send(json!({ "type": "subscribe", "stream": "nobody", "id": 7 })).await;
    let refused = anon.next_of("error", 5).await;
    assert_eq!((refused["id"].as_i64(), refused["stream"].as_str(), refused["error"]["code"].as_str()), (Some(7), Some("nobody"), Some("not_found")), "says which request failed");
    anon.send(json!({ "type": "dance" })).await;
    assert_eq!(anon.next_of("error", 5).await["error"]["code"], "bad_message");

    // Only the host's team deletes; everyone watching sees it go.
    let r = api.delete(&format!("/api/streams/{sid}/chat/{mid}"), Some(&vic.token)).await;
    assert_eq!(r.status, 403);
    assert_eq!(api.post("/api/channels/ana/moderators", Some(&mod1.token), json!({ "user": "modest" })).await.status, 403, "no self-appointment");
    assert_eq!(api.post("/api/channels/ana/moderators", Some(&ana.token), json!({ "user": "modest" })).await.status, 204);
    let mods = api.get("/api/channels/ana/moderators", None).await.json();
    assert_eq!(mods[0]["username"], "modest");
    assert_eq!(api.delete(&format!("/api/streams/{sid}/chat/{mid}"), Some(&mod1.token)).await.status, 204);
    let gone = watcher.next_of("chat_deleted", 5).await;
    assert_eq!((gone["stream_id"].as_i64(), gone["message_id"].as_i64()), (Some(sid), Some(mid)));
    assert_eq!(api.delete(&format!("/api/streams/{sid}/chat/{mid}"), Some(&mod1.token)).await.status, 404, "already deleted");
    let hist = api.get(&format!("/api/streams/{sid}/chat"), None).await.json();
    let m = hist["messages"].as_array().unwrap().iter().find(|m| m["id"] == mid).unwrap().clone();
    assert_eq!((m["deleted"].as_bool(), m["text"].as_str()), (Some(true), Some("")), "kept, but blanked");

    // A moderator times out a viewer (everyone's socket hears of it), but
    // cannot act against the host or a fellow moderator; another host cannot moderate here.
    let r = api.post("/api/channels/ana/timeouts", Some(&mod1.token), json!({ "user": "vic", "seconds": 600 })).await;
    assert_eq!(r.status, 201);
    let note = watcher.next_of("moderation", 5).await;
    assert_eq!((note["action"].as_str(), note["username"].as_str()), (Some("timeout"), Some("vic")));
    assert!(note["until"].is_string());
    assert_eq!(vic_ws.chat(sid, "why").await["error"]["code"], "timed_out");
    assert_eq!(api.post("/api/channels/ana/bans", Some(&mod1.token), json!({ "user": "ana" })).await.error_code(), "cannot_target_host");
    let mod2 = api.register("modtwo", "viewer").await;
    api.post("/api/channels/ana/moderators", Some(&ana.token), json!({ "user": "modtwo" })).await;
    assert_eq!(api.post("/api/channels/ana/bans", Some(&mod1.token), json!({ "user": "modtwo" })).await.status, 403);
    assert_eq!(api.post("/api/channels/ana/timeouts", Some(&bob.token), json!({ "user": "vic", "seconds": 5 })).await.status, 403);
    assert_eq!(api.delete("/api/channels/ana/timeouts/vic", Some(&mod1.token)).await.status, 204);
    assert_eq!(vic_ws.chat(sid, "back").await["type"], "ack");
    // Losing the role takes effect at once (chat remembers who moderates).
    assert_eq!(api.delete("/api/channels/ana/moderators/modtwo", Some(&ana.token)).await.status, 204);
    assert_eq!(api.post("/api/channels/ana/timeouts", Some(&mod2.token), json!({ "user": "vic", "seconds": 5 })).await.status, 403, "no longer a moderator");

    // Slow mode reaches the room as settings, and as a system message only
    // while live (this stream is not).
    api.patch("/api/channels/ana/chat-settings", Some(&mod1.token), json!({ "slow_mode_seconds": 30 })).await;
    let cs = watcher.next_of("chat_settings", 5).await;
    assert_eq!(cs["settings"]["slow_mode_seconds"], 30);

    // Reactions arrive as a tally, not one event each.
    for _ in 0..4 {
        vic_ws.send(json!({ "type": "react", "stream": sid, "emoji": "🔥" })).await;
    }
    let likes = watcher.next_where(5, |v| v["type"] == "likes" && v["likes"].as_i64() == Some(4)).await.expect("a likes tally");
    assert_eq!(likes["reactions"]["🔥"], 4, "{likes}");
    assert!(!watcher.seen.iter().any(|v| v["type"] == "chat_message" && v["message"]["kind"] == "reaction"), "reactions are not chat lines");

    // History: oldest first, paged backwards; reactions left out unless asked.
    let all = api.get(&format!("/api/streams/{sid}/chat?limit=200&reactions=true"), None).await.json();
    let n_all = all["messages"].as_array().unwrap().len();
    let without = api.get(&format!("/api/streams/{sid}/chat?limit=200"), None).await.json();
    assert_eq!(n_all - without["messages"].as_array().unwrap().len(), 4);
    let p1 = api.get(&format!("/api/streams/{sid}/chat?limit=1"), None).await.json();
    let before = p1["next_before"].as_i64().expect("more");
    let p2 = api.get(&format!("/api/streams/{sid}/chat?limit=5&before={before}"), None).await.json();
    let ids: Vec<i64> = p2["messages"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids.iter().all(|i| *i < before), "{ids:?}");
    assert_eq!(p2["next_before"], Value::Null, "the start");
    assert_eq!(api.get(&format!("/api/streams/{sid}/chat?limit=0"), None).await.status, 400);

    watcher.close().await;
    vic_ws.close().await;
    anon.close().await;
    server.stop().await;
}
