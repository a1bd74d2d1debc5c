//! Channels over real HTTP, WebSockets and WebRTC (issue 11: what a new user
//! trips over):
//! - an OBS-style publish with nothing prepared goes live with the channel's
//!   defaults, and its chat does not say "NAME is live: NAME is live";
//! - the host edits a live stream's title; viewers get it at once;
//! - ended streams that were not saved are not listed publicly;
//! - thumbnails: checked by their bytes, stored under the data directory,
//!   served with caching headers, let go when replaced;
//! - following: the profile a channel page shows, and followers-only chat
//!   that opens at once to a new follower;
//! - "live since" and durations count from the first media, not from a
//!   start by API that waited for it;
//! - words for people: chat modes, dates a browser cannot even send.

mod common;

use std::time::Duration;

use common::api::{Api, Ws};
use common::http::request;
use common::peer::{self, PublishOpts};
use serde_json::{json, Value};

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}"))
}

/// The header of a PNG of this size (what the checks read; enough for the API).
fn png(w: u32, h: u32) -> Vec<u8> {
    let mut b = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
    b.extend_from_slice(&w.to_be_bytes());
    b.extend_from_slice(&h.to_be_bytes());
    b.extend_from_slice(&[8, 2, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]);
    b
}

/// The start of a baseline JPEG of this size (SOI, SOF0).
fn jpeg(w: u16, h: u16) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    b.extend_from_slice(&h.to_be_bytes());
    b.extend_from_slice(&w.to_be_bytes());
    b.extend_from_slice(&[0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xFF, 0xD9]);
    b
}

async fn put_image(api: &Api, path: &str, token: &str, content_type: &str, data: &[u8]) -> common::http::Response {
    let auth = format!("Bearer {token}");
    request(api.addr, "PUT", path, &[("Authorization", auth.as_str()), ("Content-Type", content_type)], data).await
}

fn images_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("images")).map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprepared_publish_goes_live_with_the_channel_defaults_and_unsaved_streams_stay_private() {
    let dir = common::temp_dir("chan");
    let server = common::start_server_in(dir.clone(), 1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let bob = api.register("bob", "host").await;
    let key = api.stream_key(&ana).await;

    // The defaults: checked, then stored.
    let defaults = |body: Value| {
        let token = ana.token.clone();
        async move { api.patch("/api/channels/ana/defaults", Some(&token), body).await }
    };
    let r = defaults(json!({ "visibility": "ticketed" })).await;
    assert_eq!((r.status, r.json()["error"]["fields"]["visibility"].is_string()), (400, true), "{}", r.body);
    let r = defaults(json!({ "category": "x".repeat(41) })).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = api.patch("/api/channels/ana/defaults", Some(&bob.token), json!({ "title": "mine now" })).await;
    assert_eq!(r.status, 403, "another host's channel");
    let r = defaults(json!({ "title": "Cooking with Ana", "description": "Pasta tonight", "category": "Cooking", "record": true })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.json();
    assert_eq!((d["title"].as_str(), d["category"].as_str(), d["record"].as_bool(), d["visibility"].as_str()), (Some("Cooking with Ana"), Some("Cooking"), Some(true), Some("public")));
    let r = put_image(&api, "/api/channels/ana/defaults/thumbnail", &ana.token, "image/png", &png(640, 360)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let default_thumb = r.json()["thumbnail_url"].as_str().unwrap().to_owned();
    assert_eq!(api.get("/api/channels/ana/defaults", Some(&ana.token)).await.json()["thumbnail_url"], default_thumb.as_str(), "stored");

    // OBS publishes with nothing prepared: the stream is the defaults'.
    let mut ws = Ws::connect(server.http_addr, None).await;
    ws.send(json!({ "type": "directory" })).await;
    let p = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    let sid: i64 = p.answer.header("x-onair-stream").unwrap().parse().unwrap();
    let live = ws.next_where(10, |v| v["type"] == "stream_status" && v["stream"]["media_state"] == "receiving").await.expect("live");
    let s = &live["stream"];
    assert_eq!((s["id"].as_i64(), s["title"].as_str(), s["description"].as_str(), s["category"].as_str()), (Some(sid), Some("Cooking with Ana"), Some("Pasta tonight"), Some("Cooking")));
    assert_eq!(s["thumbnail_url"], default_thumb.as_str(), "OBS streams show the channel's thumbnail");
    ws.send(json!({ "type": "subscribe", "stream": sid })).await;
    ws.next_of("subscribed", 5).await;
    let history = common::wait_for_json(server.http_addr, &format!("/api/streams/{sid}/chat"), |h| h["messages"][0].is_object()).await;
    assert_eq!(history["messages"][0]["text"], "ana is live: Cooking with Ana");

    // The host edits the live stream's title and description: viewers see it at once.
    let r = api.patch(&format!("/api/streams/{sid}"), Some(&ana.token), json!({ "title": "Pasta night", "description": "Carbonara" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let edited = ws.next_where(5, |v| v["type"] == "stream_status" && v["stream"]["title"] == "Pasta night").await.expect("the edit reaches viewers");
    assert_eq!((edited["stream"]["state"].as_str(), edited["stream"]["description"].as_str()), (Some("live"), Some("Carbonara")));

    // Slow mode while live: the system message reads as a sentence.
    let r = api.patch("/api/channels/ana/chat-settings", Some(&ana.token), json!({ "slow_mode_seconds": 10 })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let m = ws.next_where(5, |v| v["type"] == "chat_message" && v["message"]["kind"] == "system").await.expect("system message");
    assert_eq!(m["message"]["text"], "Chat is in slow mode (10 s)");

    // Ended without saving: gone from public lists, still the host's.
    let r = api.post(&format!("/api/streams/{sid}/end"), Some(&ana.token), json!({ "save": false })).await;
    assert_eq!(r.json()["state"], "ended", "{}", r.body);
    p.stop().await;
    for path in ["/api/streams?type=recent", "/api/streams?type=all", "/api/streams?type=recent&host=ana", "/api/streams?type=all&host=ana"] {
        let anon = api.get(path, None).await.json();
        assert!(anon["streams"].as_array().unwrap().iter().all(|s| s["id"] != sid), "{path} lists an unsaved stream publicly: {anon}");
        let other = api.get(path, Some(&bob.token)).await.json();
        assert!(other["streams"].as_array().unwrap().iter().all(|s| s["id"] != sid), "{path} shows it to another host");
    }
    let own = api.get("/api/streams?type=recent&host=ana", Some(&ana.token)).await.json();
    assert_eq!((own["streams"][0]["id"].as_i64(), own["counts"]["recent"].as_i64()), (Some(sid), Some(1)), "the host still sees it: {own}");
    assert_eq!(api.get("/api/streams?type=recent&host=ana", None).await.json()["counts"]["recent"], 0);
    // Saved afterwards, it is listed.
    api.post(&format!("/api/streams/{sid}/archive"), Some(&ana.token), json!({})).await;
    assert_eq!(api.get("/api/streams?type=recent", None).await.json()["streams"][0]["id"], sid);

    // A host without defaults: "bob is live", and the chat says it once.
    let bob_key = api.stream_key(&bob).await;
    let p = peer::publish(server.http_addr, &bob_key, PublishOpts::default()).await.expect("publish");
    let bid: i64 = p.answer.header("x-onair-stream").unwrap().parse().unwrap();
    ws.next_where(10, |v| v["type"] == "stream_status" && v["stream"]["id"] == bid && v["stream"]["media_state"] == "receiving").await.expect("bob live");
    let s = api.get(&format!("/api/streams/{bid}"), None).await.json();
    assert_eq!((s["title"].as_str(), s["thumbnail_url"].as_str()), (Some("bob is live"), None));
    let history = common::wait_for_json(server.http_addr, &format!("/api/streams/{bid}/chat"), |h| h["messages"][0].is_object()).await;
    assert_eq!(history["messages"][0]["text"], "bob is live", "not 'bob is live: bob is live'");
    p.stop().await;
    ws.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thumbnails_are_checked_stored_under_the_data_dir_and_cached() {
    let dir = common::temp_dir("thumbs");
    let server = common::start_server_in(dir.clone(), 1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let bob = api.register("bob", "host").await;
    let sid = id(&api.create_stream(&ana, json!({ "title": "Show" })).await);
    let path = format!("/api/streams/{sid}/thumbnail");

    // Refusals say why.
    let refused = |r: common::http::Response| (r.status, r.error_code());
    assert_eq!(refused(put_image(&api, &path, &ana.token, "image/png", &jpeg(640, 360)).await), (415, "unsupported_image".into()), "a JPEG sent as PNG");
    assert_eq!(refused(put_image(&api, &path, &ana.token, "image/gif", b"GIF89a\x10\x00\x10\x00").await), (415, "unsupported_image".into()));
    assert_eq!(refused(put_image(&api, &path, &ana.token, "image/jpeg", b"<script>alert(1)</script>").await), (415, "unsupported_image".into()), "not an image at all");
    assert_eq!(refused(put_image(&api, &path, &ana.token, "image/jpeg", &jpeg(8, 8)).await), (422, "bad_image_size".into()));
    assert_eq!(refused(put_image(&api, &path, &ana.token, "image/jpeg", &jpeg(9000, 100)).await), (422, "bad_image_size".into()));
    let mut huge = jpeg(640, 360);
    huge.resize(2 * 1024 * 1024 + 1, 0);
    assert_eq!(refused(put_image(&api, &path, &ana.token, "image/jpeg", &huge).await), (413, "image_too_large".into()));
    assert_eq!(put_image(&api, &path, &bob.token, "image/jpeg", &jpeg(640, 360)).await.status, 403, "another host's stream");
    assert!(images_in(&dir).is_empty(), "nothing refused was stored: {:?}", images_in(&dir));

    // Stored under the data directory, named by its content, served with caching headers.
    let first = jpeg(640, 360);
    let r = put_image(&api, &path, &ana.token, "image/jpeg", &first).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.json()["thumbnail_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("/images/") && url.ends_with(".jpg"), "{url}");
    assert_eq!(images_in(&dir), vec![url.trim_start_matches("/images/").to_owned()]);
    let got = request(server.http_addr, "GET", &url, &[], b"").await;
    assert_eq!((got.status, got.header("content-type")), (200, Some("image/jpeg")));
    assert_eq!(got.header("content-length"), Some(first.len().to_string().as_str()));
    assert!(got.header("cache-control").unwrap_or("").contains("max-age=31536000"), "{:?}", got.headers);
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
    let etag = got.header("etag").expect("ETag").to_owned();
    let again = request(server.http_addr, "GET", &url, &[("If-None-Match", etag.as_str())], b"").await;
    assert_eq!((again.status, again.body.len()), (304, 0), "revalidation answers 304");
    assert_eq!(request(server.http_addr, "GET", "/images/..%2Fonair.db", &[], b"").await.status, 404);
    assert_eq!(request(server.http_addr, "GET", "/images/00000000000000000000000000000000.jpg", &[], b"").await.error_code(), "image_not_found");

    // A new thumbnail replaces the old file, which nothing refers to any more.
    let r = put_image(&api, &path, &ana.token, "image/png", &png(1280, 720)).await;
    let url2 = r.json()["thumbnail_url"].as_str().unwrap().to_owned();
    assert_ne!(url, url2);
    assert_eq!(images_in(&dir), vec![url2.trim_start_matches("/images/").to_owned()], "the old one was deleted");
    assert_eq!(request(server.http_addr, "GET", &url, &[], b"").await.status, 404);
    // The same picture as a channel default is one file; removing one use keeps it.
    assert_eq!(put_image(&api, "/api/channels/ana/defaults/thumbnail", &ana.token, "image/png", &png(1280, 720)).await.status, 200);
    assert_eq!(api.delete(&path, Some(&ana.token)).await.json()["thumbnail_url"], Value::Null);
    assert_eq!(images_in(&dir).len(), 1, "still the channel's");
    // A stream made later without a thumbnail gets the channel's.
    let later = api.create_stream(&ana, json!({ "title": "Later" })).await;
    assert_eq!(later["thumbnail_url"], url2.as_str());

    // Avatars: the same checks, on the profile.
    let r = put_image(&api, "/api/me/avatar", &bob.token, "image/png", &png(256, 256)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["avatar_url"].as_str().unwrap().starts_with("/images/"));
    assert_eq!(api.get("/api/users/bob", None).await.json()["avatar_url"], r.json()["avatar_url"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_opens_followers_only_chat_and_the_profile_shows_the_channel() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let bea = api.register("bea", "viewer").await;
    let r = api.patch("/api/me", Some(&ana.token), json!({ "bio": "  Cooking every Friday.  " })).await;
    assert_eq!((r.status, r.json()["bio"].as_str()), (200, Some("Cooking every Friday.")), "{}", r.body);
    assert_eq!(api.patch("/api/me", Some(&ana.token), json!({ "bio": "x".repeat(1001) })).await.status, 400);
    let sid = id(&api.create_stream(&ana, json!({ "title": "Show" })).await);
    api.post(&format!("/api/streams/{sid}/start"), Some(&ana.token), json!({})).await;
    api.patch("/api/channels/ana/chat-settings", Some(&ana.token), json!({ "followers_only_minutes": 0 })).await;

    let mut ws = Ws::connect(server.http_addr, Some(&bea.token)).await;
    let refused = ws.chat(sid, "hi").await;
    assert_eq!(refused["error"]["code"], "followers_only");
    let p = api.get("/api/users/ana", Some(&bea.token)).await.json();
    assert_eq!((p["followers"].as_i64(), p["following"].as_bool(), p["bio"].as_str()), (Some(0), Some(false), Some("Cooking every Friday.")));
    assert_eq!(p["live"]["id"], sid);
    assert_eq!(api.post("/api/users/ana/follow", Some(&bea.token), json!({})).await.status, 204);
    let p = api.get("/api/users/ana", Some(&bea.token)).await.json();
    assert_eq!((p["followers"].as_i64(), p["following"].as_bool(), p["following_since"].is_string()), (Some(1), Some(true), true), "{p}");
    assert_eq!(ws.chat(sid, "hi").await["type"], "ack", "a new follower may chat at once");
    // With a follow age, not before it passes.
    api.patch("/api/channels/ana/chat-settings", Some(&ana.token), json!({ "followers_only_minutes": 10 })).await;
    assert_eq!(ws.chat(sid, "hello again").await["error"]["code"], "followers_only");
    assert_eq!(api.delete("/api/users/ana/follow", Some(&bea.token)).await.status, 204);
    assert_eq!(api.get("/api/users/ana", None).await.json()["followers"], 0);
    ws.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_since_and_durations_count_from_the_first_media() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let key = api.stream_key(&ana).await;
    let sid = id(&api.create_stream(&ana, json!({ "title": "Show" })).await);
    let started = api.post(&format!("/api/streams/{sid}/start"), Some(&ana.token), json!({})).await.json();
    assert_eq!((started["state"].as_str(), started["media_state"].as_str()), (Some("live"), Some("waiting")));
    assert!(started["started_at"].is_string() && started["live_since"].is_null(), "no media yet: not live since anything: {started}");

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let p = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    let s = common::wait_for_json(server.http_addr, &format!("/api/streams/{sid}"), |s| s["media_state"] == "receiving").await;
    let ms = |v: &Value| onair::clock::parse_rfc3339(v.as_str().unwrap()).unwrap();
    let waited = ms(&s["live_since"]) - ms(&s["started_at"]);
    assert!(waited >= 2000, "live since the first media, {waited} ms after the start: {s}");
    let ended = api.post(&format!("/api/streams/{sid}/end"), Some(&ana.token), json!({ "save": true })).await.json();
    p.stop().await;
    let on_air_ms = ms(&ended["ended_at"]) - ms(&ended["live_since"]);
    let report = api.get(&format!("/api/streams/{sid}/analytics"), Some(&ana.token)).await.json();
    let duration = report["summary"]["duration_seconds"].as_i64().unwrap();
    assert_eq!(duration, on_air_ms / 1000, "the duration counts from the first media: {report}");
    assert!(duration < 2, "not from the start by API (which waited 2.5 s): {duration}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_errors_are_words_for_people() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    // What a browser west of UTC sends for 9999-12-31 23:00: a year it cannot even write in four digits.
    for at in ["+010000-01-01T04:00:00.000Z", "tomorrow at six"] {
        let r = api.post("/api/streams", Some(&ana.token), json!({ "title": "x", "scheduled_at": at })).await;
        let msg = r.json()["error"]["fields"]["scheduled_at"].as_str().unwrap_or_default().to_owned();
        assert_eq!((r.status, msg.as_str()), (400, "is not a valid date and time"), "{}", r.body);
    }
    let r = api.post("/api/streams", Some(&ana.token), json!({ "title": "x", "scheduled_at": "9000-12-31T23:00:00Z" })).await;
    assert_eq!(r.json()["error"]["fields"]["scheduled_at"], "must be within a year");
    server.stop().await;
}
