//! Streams over real HTTP, WebSocket and WebRTC: scheduling and recurrence
//! across a DST change, the state machine driven by a real WHIP publish and
//! its disconnect (a WebRTC viewer held through the reconnect), ending, one
//! live stream per host, access rules on WHEP,
//! reminders over the socket and a signed webhook, restart.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::api::{Api, Ws};
use common::peer::{self, PublishOpts, WatchOpts};
use serde_json::{json, Value};

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_and_recurrence_across_dst() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;

    // Weekly, Saturday and Sunday 20:00 New York time, not before 12 March
    // 2027: New York springs forward on Sunday 14 March.
    let weekly = api
        .create_stream(&ana, json!({ "title": "Weekend show", "scheduled_at": "2027-03-12T12:00:00Z",
            "recurrence": { "freq": "weekly", "days": ["sat", "sun"], "time": "20:00", "timezone": "America/New_York" } }))
        .await;
    assert_eq!(weekly["scheduled_at"], "2027-03-14T01:00:00Z", "Saturday 20:00 EST is 01:00Z: {weekly}");
    assert_eq!(weekly["series_id"], weekly["id"]);
    let wid = id(&weekly);
    let occ = api.get(&format!("/api/streams/{wid}/occurrences?count=4&from=2027-03-12T12:00:00Z"), None).await.json();
    assert_eq!(occ["timezone"], "America/New_York");
    assert_eq!(
        occ["occurrences"],
        json!(["2027-03-14T01:00:00Z", "2027-03-15T00:00:00Z", "2027-03-21T00:00:00Z", "2027-03-22T00:00:00Z"]),
        "Sunday 20:00 EDT is 00:00Z: the wall-clock time holds across the change"
    );
    // And back in the fall (7 November 2027).
    let fall = api.get(&format!("/api/streams/{wid}/occurrences?count=2&from=2027-11-06T12:00:00Z"), None).await.json();
    assert_eq!(fall["occurrences"], json!(["2027-11-07T00:00:00Z", "2027-11-08T01:00:00Z"]));
    let bad = api.get(&format!("/api/streams/{wid}/occurrences?count=500"), None).await;
    assert_eq!(bad.json()["error"]["fields"]["count"], "must be 1-52");

    // A one-off at a local time with an offset; times in the past and bad
    // recurrences are refused field by field.
    let soon = chrono_like_in(120);
    let once = api.create_stream(&ana, json!({ "title": "One-off", "scheduled_at": soon })).await;
    let starts = once["starts_in_seconds"].as_i64().unwrap();
    assert!((110..=120).contains(&starts), "counts down to the start: {starts}");
    let r = api.post("/api/streams", Some(&ana.token), json!({ "title": "Past", "scheduled_at": "2020-01-01T00:00:00Z" })).await;
    assert_eq!(r.json()["error"]["fields"]["scheduled_at"], "must not be in the past");
    let r = api.post("/api/streams", Some(&ana.token), json!({ "title": "x", "recurrence": { "freq": "weekly", "days": [], "time": "25:61", "timezone": "Moon/Base" } })).await;
    let f = &r.json()["error"]["fields"];
    assert!(f["recurrence.timezone"].is_string() && f["recurrence.time"].is_string(), "{f}");
    let r = api.post("/api/streams", Some(&ana.token), json!({ "title": "x", "visibility": "ticketed" })).await;
    assert!(r.json()["error"]["fields"]["ticket_price"].as_str().unwrap().contains("price"));
    let r = api.post("/api/streams", Some(&ana.token), json!({ "title": "x", "recurrence": { "freq": "monthly", "time": "10:00", "timezone": "UTC" } })).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"]["fields"]["recurrence.freq"].is_string(), "{}", r.body);

    // The scheduled list: soonest first, with counts of every list.
    let daily = api.create_stream(&ana, json!({ "title": "Daily", "recurrence": { "freq": "daily", "time": "06:00", "timezone": "Europe/Berlin" } })).await;
    let draft = api.create_stream(&ana, json!({ "title": "Whenever" })).await;
    let list = api.get("/api/streams?type=scheduled", None).await.json();
    let titles: Vec<&str> = list["streams"].as_array().unwrap().iter().map(|s| s["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["One-off", "Daily", "Weekend show"], "soonest first; an unscheduled draft is not upcoming");
    assert_eq!(list["counts"], json!({ "live": 0, "scheduled": 3, "recent": 0, "all": 4 }));
    assert_eq!(list["total"], 3);
    let page = api.get("/api/streams?type=all&limit=2&offset=1", None).await.json();
    assert_eq!((page["streams"].as_array().unwrap().len(), page["total"].as_i64()), (2, Some(4)));
    assert_eq!(page["streams"][0]["id"], daily["id"], "newest first");
    assert_eq!(api.get("/api/streams?type=soon", None).await.status, 400);
    assert_eq!(api.get("/api/streams?limit=0", None).await.json()["error"]["fields"]["limit"], "must be 1-100");
    let by_host = api.get("/api/streams?host=ana&type=all", None).await.json();
    assert_eq!(by_host["total"], 4);
    assert_eq!(api.get("/api/streams?host=nobody", None).await.status, 404);

    // Rescheduling, and cancelling one occurrence moves the series on.
    let r = api.patch(&format!("/api/streams/{}", id(&draft)), Some(&ana.token), json!({ "scheduled_at": chrono_like_in(7200) })).await;
    assert_eq!(r.json()["starts_in_seconds"].as_i64().map(|s| s > 7000), Some(true), "{}", r.body);
    let did = id(&daily);
    let cancelled = api.post(&format!("/api/streams/{did}/cancel"), Some(&ana.token), json!({})).await.json();
    assert_eq!(cancelled["state"], "cancelled");
    let next = api.get("/api/streams?type=scheduled", None).await.json();
    let next_daily = next["streams"].as_array().unwrap().iter().find(|s| s["title"] == "Daily").expect("the series goes on").clone();
    assert_ne!(next_daily["id"], daily["id"]);
    assert_eq!(next_daily["series_id"], daily["id"]);
    let day_ms = 24 * 3600;
    let gap = next_daily["starts_in_seconds"].as_i64().unwrap() - daily["starts_in_seconds"].as_i64().unwrap();
    assert!((day_ms - 3700..=day_ms + 3700).contains(&gap), "the next day's 06:00 (give or take a DST hour): {gap}");
    let r = api.post(&format!("/api/streams/{}/cancel", id(&next_daily)), Some(&ana.token), json!({ "series": true })).await;
    assert_eq!(r.status, 200);
    let after = api.get("/api/streams?type=scheduled", None).await.json();
    assert!(after["streams"].as_array().unwrap().iter().all(|s| s["title"] != "Daily"), "the whole series is off");
    let r = api.post(&format!("/api/streams/{did}/cancel"), Some(&ana.token), json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "bad_state"));
    server.stop().await;
}

/// RFC 3339 `secs` from now.
fn chrono_like_in(secs: i64) -> String {
    onair::clock::rfc3339(onair::clock::now_ms() + secs * 1000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_whip_publish_drives_the_state_machine() {
    let server = common::start_server_with(common::temp_dir("sm"), |a| a.reconnect_grace = Some(2)).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let key = api.stream_key(&ana).await;
    let show = api.create_stream(&ana, json!({ "title": "Show" })).await;
    let sid = id(&show);
    let mut ws = Ws::connect(server.http_addr, None).await;
    ws.send(json!({ "type": "subscribe", "stream": sid })).await;
    assert_eq!(ws.next_of("subscribed", 5).await["stream"]["state"], "scheduled");

    // The WHIP publish goes live on the prepared stream.
    let p = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert_eq!(p.answer.header("x-onair-stream"), Some(sid.to_string().as_str()));
    let live = ws.next_where(10, |v| v["type"] == "stream_status" && v["stream"]["media_state"] == "receiving").await.expect("went live");
    assert_eq!(live["stream"]["state"], "live");
    let went_live = ws.next_where(5, |v| v["type"] == "chat_message" && v["message"]["kind"] == "system").await.expect("system message");
    assert_eq!(went_live["message"]["text"], "ana is live: Show");
    let s = api.get(&format!("/api/streams/{sid}"), None).await.json();
    assert!(s["started_at"].is_string() && s["ended_at"].is_null(), "{s}");
    let lists = api.get("/api/streams?type=live", None).await.json();
    assert_eq!((lists["counts"]["live"].as_i64(), lists["streams"][0]["id"].as_i64()), (Some(1), Some(sid)));

    // A WebRTC viewer watches.
    let viewer = peer::watch(server.http_addr, &sid.to_string(), WatchOpts::default()).await.expect("watch");
    assert!(common::wait_until(10, || viewer.video().len() > 20 && !viewer.audio().is_empty()).await, "viewer gets media");

    // The publisher drops; it comes back within the grace: the same stream resumes.
    assert_eq!(common::http::delete_auth(server.http_addr, &p.location, &key).await.status, 200);
    p.stop().await;
    let gone = ws.next_where(5, |v| v["type"] == "stream_status").await.unwrap();
    assert_eq!((gone["stream"]["state"].as_str(), gone["stream"]["media_state"].as_str()), (Some("live"), Some("reconnecting")));
    let before = (viewer.video().len(), viewer.video().last().unwrap().clone(), viewer.audio().last().unwrap().clone());
    let again = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("republish");
    assert_eq!(again.answer.header("x-onair-stream"), Some(sid.to_string().as_str()), "resumes, no new stream");
    let back = ws.next_where(10, |v| v["type"] == "stream_status" && v["stream"]["media_state"] == "receiving").await.expect("resumed");
    assert_eq!(back["stream"]["id"], sid);
    // The viewer was held through the drop: the new publisher's media reaches
    // it on the same connection, from a keyframe, numbered on from before.
    assert!(common::wait_until(10, || viewer.video().len() > before.0 + 20).await, "the held viewer gets the new publisher's video");
    assert!(viewer.connected(), "the viewer's connection was kept: {:?}", viewer.state());
    let video = viewer.video();
    let first_new = &video[before.0];
    assert_eq!(first_new.ssrc, before.1.ssrc, "same track toward the viewer");
    assert_eq!(first_new.seq, before.1.seq.wrapping_add(1), "sequence numbers continue across the publisher's return");
    assert!(first_new.is_vp8_keyframe(), "forwarding resumes at a keyframe");
    assert!(first_new.ts.wrapping_sub(before.1.ts) < 90_000 * 30, "the timestamp moves on, not back: {} -> {}", before.1.ts, first_new.ts);
    let audio = viewer.audio();
    let first_audio = audio.iter().find(|a| a.at > before.2.at && a.seq != before.2.seq).expect("audio again");
    assert_eq!(first_audio.seq, before.2.seq.wrapping_add(1), "audio numbering continues too");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(api.get(&format!("/api/streams/{sid}"), None).await.json()["state"], "live", "the grace timer of the first drop did not end it");
    let systems = ws.seen.iter().filter(|v| v["type"] == "chat_message" && v["message"]["kind"] == "system").count();
    assert_eq!(systems, 1, "a reconnect is not a new go-live");

    // The publisher vanishes for good: ended after the grace, at the time it left.
    let left = onair::clock::now_ms();
    assert_eq!(common::http::delete_auth(server.http_addr, &again.location, &key).await.status, 200);
    again.stop().await;
    let ended = ws.next_where(10, |v| v["type"] == "stream_status" && v["stream"]["state"] == "ended").await.expect("ended after the grace");
    let s = &ended["stream"];
    assert_eq!(s["end_reason"], "publisher_left");
    let ended_at = onair::clock::parse_rfc3339(s["ended_at"].as_str().unwrap()).unwrap();
    assert!((ended_at - left).abs() < 1000, "ended when the publisher left, not when the grace ran out: {ended_at} vs {left}");
    assert_eq!(s["saved"], false);
    // With the stream over, the server lets the held viewer go.
    assert!(common::wait_until(10, || !viewer.connected()).await, "viewer closed at the end: {:?}", viewer.state());
    viewer.stop().await;

    // The host saves it; then deletes it.
    let r = api.post(&format!("/api/streams/{sid}/archive"), Some(&ana.token), json!({})).await;
    assert_eq!((r.status, r.json()["state"].as_str(), r.json()["saved"].as_bool()), (200, Some("archived"), Some(true)));
    let recent = api.get("/api/streams?type=recent", None).await.json();
    assert_eq!(recent["streams"][0]["id"], sid);
    assert_eq!(api.delete(&format!("/api/streams/{sid}"), Some(&ana.token)).await.status, 204);
    assert_eq!(api.get(&format!("/api/streams/{sid}"), None).await.error_code(), "stream_not_found");
    ws.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_by_api_one_live_stream_per_host_and_media_that_never_comes() {
    let server = common::start_server_with(common::temp_dir("end"), |a| a.media_wait = Some(1)).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let key = api.stream_key(&ana).await;
    let a = id(&api.create_stream(&ana, json!({ "title": "A" })).await);
    let b = id(&api.create_stream(&ana, json!({ "title": "B" })).await);

    // Started by API: live, waiting for media.
    let r = api.post(&format!("/api/streams/{a}/start"), Some(&ana.token), json!({})).await.json();
    assert_eq!((r["state"].as_str(), r["media_state"].as_str()), (Some("live"), Some("waiting")));
    let r = api.post(&format!("/api/streams/{b}/start"), Some(&ana.token), json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "already_live"), "one live stream per host");
    // The publish goes to the started stream, though B is newer.
    let p = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert_eq!(p.answer.header("x-onair-stream"), Some(a.to_string().as_str()));
    assert!(common::wait_until(10, || p.connected()).await);
    let v = peer::watch(server.http_addr, "ana", WatchOpts::default()).await.expect("watch the channel");
    assert!(common::wait_until(10, || v.video().len() > 5).await);

    // The host ends it (not saved): publisher and viewers are disconnected.
    let r = api.post(&format!("/api/streams/{a}/end"), Some(&ana.token), json!({ "save": false })).await;
    assert_eq!((r.status, r.json()["state"].as_str(), r.json()["end_reason"].as_str()), (200, Some("ended"), Some("host")), "{}", r.body);
    assert!(common::wait_until(10, || server.sfu.live_streams().is_empty()).await, "the publisher was closed");
    assert!(common::wait_until(10, || !v.connected()).await, "viewers were closed");
    let r = api.post(&format!("/api/streams/{a}/end"), Some(&ana.token), json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "bad_state"));
    assert_eq!(api.delete(&format!("/api/streams/{b}"), Some(&ana.token)).await.status, 204, "not live: may go");
    p.stop().await;
    v.stop().await;

    // Started, but no media within the wait: error.
    let c = id(&api.create_stream(&ana, json!({ "title": "C" })).await);
    assert_eq!(api.post(&format!("/api/streams/{c}/start"), Some(&ana.token), json!({})).await.status, 200);
    let failed = common::wait_for_json(server.http_addr, &format!("/api/streams/{c}"), |s| s["state"] == "error").await;
    assert!(failed["error"].as_str().unwrap().contains("no media"), "{failed}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_enforces_who_may_watch() {
    let server = common::start_server(2).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let vic = api.register("vic", "viewer").await;
    let key = api.stream_key(&ana).await;
    let s = api.create_stream(&ana, json!({ "title": "Subs only", "visibility": "subscribers" })).await;
    let sid = id(&s);
    let p = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert!(common::wait_until(10, || p.connected()).await);
    common::wait_for_json(server.http_addr, &format!("/api/streams/{sid}"), |s| s["media_state"] == "receiving").await;

    let anon = peer::watch(server.http_addr, &sid.to_string(), WatchOpts::default()).await.err().expect("anonymous refused");
    assert_eq!((anon.status, anon.error_code().as_str()), (401, "login_required"));
    let as_vic = WatchOpts { token: Some(vic.token.clone()), ..Default::default() };
    let denied = peer::watch(server.http_addr, &sid.to_string(), as_vic.clone()).await.err().expect("not a subscriber");
    assert_eq!((denied.status, denied.error_code().as_str()), (403, "subscription_required"));
    assert!(denied.json()["error"]["message"].as_str().unwrap().contains("subscribers"));
    let mut ws = Ws::connect(server.http_addr, Some(&vic.token)).await;
    ws.send(json!({ "type": "subscribe", "stream": sid })).await;
    assert_eq!(ws.next_of("error", 5).await["error"]["code"], "subscription_required", "nor its chat and events");
    let r = api.get(&format!("/api/streams/{sid}/chat"), Some(&vic.token)).await;
    assert_eq!((r.status, r.error_code().as_str()), (403, "subscription_required"), "nor its chat history");
    assert_eq!(api.get(&format!("/api/streams/{sid}/chat"), None).await.status, 401);

    // The host gives Vic a subscription: now he may.
    let r = api.post("/api/channels/ana/subscriptions", Some(&ana.token), json!({ "user": "vic", "days": 30 })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v = peer::watch(server.http_addr, &sid.to_string(), as_vic.clone()).await.expect("a subscriber watches");
    assert!(common::wait_until(10, || v.video().len() > 5).await);
    v.stop().await;
    let r = api.post("/api/channels/ana/subscriptions", Some(&vic.token), json!({ "user": "vic", "days": 30 })).await;
    assert_eq!(r.status, 403, "only the host gives subscriptions");

    // Ticketed: a ticket is needed, the host's own token is enough.
    let r = api.post(&format!("/api/streams/{sid}/end"), Some(&ana.token), json!({})).await;
    assert_eq!(r.status, 200);
    p.stop().await;
    let t = api.create_stream(&ana, json!({ "title": "Concert", "visibility": "ticketed", "ticket_price": 500 })).await;
    let tid = id(&t);
    let p = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert_eq!(p.answer.header("x-onair-stream"), Some(tid.to_string().as_str()));
    common::wait_for_json(server.http_addr, &format!("/api/streams/{tid}"), |s| s["media_state"] == "receiving").await;
    let denied = peer::watch(server.http_addr, "ana", as_vic.clone()).await.err().expect("no ticket");
    assert_eq!((denied.status, denied.error_code().as_str()), (403, "ticket_required"));
    assert!(denied.json()["error"]["message"].as_str().unwrap().contains("500"));
    let host = peer::watch(server.http_addr, "ana", WatchOpts { token: Some(ana.token.clone()), ..Default::default() }).await.expect("the host may");
    host.stop().await;
    assert_eq!(api.post(&format!("/api/streams/{tid}/tickets"), Some(&ana.token), json!({ "user": "vic" })).await.status, 201);
    assert_eq!(api.post(&format!("/api/streams/{tid}/tickets"), Some(&ana.token), json!({ "user": "vic" })).await.status, 200, "once");
    let v = peer::watch(server.http_addr, "ana", as_vic).await.expect("a ticket holder watches");
    assert!(common::wait_until(10, || v.video().len() > 5).await);
    v.stop().await;
    p.stop().await;
    ws.close().await;
    server.stop().await;
}

/// A webhook receiver on loopback: every request's headers and body.
async fn webhook_receiver() -> (std::net::SocketAddr, Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>) {
    let got: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>> = Default::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, got)
}

fn hmac_hex(secret: &str, msg: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::sign(&key, msg.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_reach_the_socket_and_a_signed_webhook() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let (hook_addr, got) = webhook_receiver().await;
    let root = api.register("root", "viewer").await;
    assert_eq!(api.post("/api/admin/webhooks", Some(&root.token), json!({ "url": format!("http://{hook_addr}/hook") })).await.status, 403, "admins only");
    server.app.accounts.set_role(root.id, onair::accounts::Role::Admin).await.unwrap();
    let r = api.post("/api/admin/webhooks", Some(&root.token), json!({ "url": "ftp://x", "events": ["stream.exploded"] })).await;
    let f = &r.json()["error"]["fields"];
    assert!(f["url"].is_string() && f["events"].as_str().unwrap().contains("stream.exploded"), "{f}");
    let hook = api.post("/api/admin/webhooks", Some(&root.token), json!({ "url": format!("http://{hook_addr}/hook"), "events": ["stream.live", "stream.reminders"] })).await;
    assert_eq!(hook.status, 201, "{}", hook.body);
    let secret = hook.json()["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));

    let ana = api.register("ana", "host").await;
    let vic = api.register("vic", "viewer").await;
    let key = api.stream_key(&ana).await;
    let s = api.create_stream(&ana, json!({ "title": "Premiere", "scheduled_at": chrono_like_in(1800) })).await;
    let sid = id(&s);
    assert_eq!(api.post(&format!("/api/streams/{sid}/reminder"), Some(&vic.token), json!({})).await.status, 204);
    assert_eq!(api.post(&format!("/api/streams/{sid}/reminder"), Some(&vic.token), json!({})).await.status, 204, "idempotent");
    let mine = api.get("/api/me/reminders", Some(&vic.token)).await.json();
    assert_eq!(mine.as_array().map(|a| a.iter().map(|s| s["id"].as_i64().unwrap()).collect::<Vec<_>>()), Some(vec![sid]));
    let mut vic_ws = Ws::connect(server.http_addr, Some(&vic.token)).await;

    // Going live half an hour early (within the hour): the scheduled stream goes live.
    let p = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert_eq!(p.answer.header("x-onair-stream"), Some(sid.to_string().as_str()));
    let rem = vic_ws.next_of("reminder", 10).await;
    assert_eq!((rem["stream"]["id"].as_i64(), rem["stream"]["title"].as_str()), (Some(sid), Some("Premiere")));
    assert_eq!(api.get("/api/me/reminders", Some(&vic.token)).await.json(), json!([]), "a reminder is spent once it fired");

    assert!(common::wait_until(10, || got.lock().unwrap().len() >= 2).await, "two webhooks: {:?}", got.lock().unwrap());
    let now = onair::clock::now_ms() / 1000;
    let deliveries = got.lock().unwrap().clone();
    let mut events = Vec::new();
    for (headers, body) in &deliveries {
        let sig = headers["onair-signature"].to_str().unwrap();
        let (t, v1) = sig.split_once(',').unwrap();
        let t = t.strip_prefix("t=").unwrap();
        assert!((now - t.parse::<i64>().unwrap()).abs() < 30, "a fresh timestamp");
        assert_eq!(v1.strip_prefix("v1=").unwrap(), hmac_hex(&secret, &format!("{t}.{body}")), "signed with the endpoint's secret");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(headers["onair-event"].to_str().unwrap(), v["event"].as_str().unwrap());
        events.push(v);
    }
    let live = events.iter().find(|e| e["event"] == "stream.live").expect("stream.live");
    assert_eq!(live["data"]["stream"]["id"], sid);
    let reminders = events.iter().find(|e| e["event"] == "stream.reminders").expect("stream.reminders");
    assert_eq!(reminders["data"]["user_ids"], json!([vic.id]));

    // Only once: a reconnect does not remind again.
    assert_eq!(common::http::delete_auth(server.http_addr, &p.location, &key).await.status, 200);
    p.stop().await;
    let p = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("republish");
    assert!(common::wait_until(10, || p.connected()).await);
    assert!(vic_ws.next_where(2, |v| v["type"] == "reminder").await.is_none(), "no second reminder");
    assert_eq!(got.lock().unwrap().len(), 2, "no second webhook");
    p.stop().await;
    vic_ws.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_everything() {
    let dir = common::temp_dir("restart");
    let server = common::start_server_in(dir.clone(), 1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let vic = api.register("vic", "viewer").await;
    let key = api.stream_key(&ana).await;
    let s = api.create_stream(&ana, json!({ "title": "Kept", "recurrence": { "freq": "weekly", "days": ["fri"], "time": "18:00", "timezone": "Asia/Tokyo" } })).await;
    let sid = id(&s);
    let mut texts = Vec::new();
    for i in 0..5 {
        let r = api.post(&format!("/api/streams/{sid}/chat"), Some(&vic.token), json!({ "text": format!("message {i}") })).await;
        assert_eq!(r.status, 201, "{}", r.body);
        texts.push(r.json()["text"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(750)).await;
    }
    assert_eq!(api.post(&format!("/api/streams/{sid}/reminder"), Some(&vic.token), json!({})).await.status, 204);
    server.stop().await;

    let server = common::start_server_in(dir, 1).await;
    let api = Api::new(server.http_addr);
    assert_eq!(api.get("/api/me", Some(&vic.token)).await.status, 200, "tokens survive (the signing secret is kept)");
    let r = api.post("/api/auth/login", None, json!({ "username": "ana", "password": "correct horse" })).await;
    assert_eq!(r.status, 200);
    let again = api.get(&format!("/api/streams/{sid}"), None).await.json();
    assert_eq!((again["title"].as_str(), again["recurrence"]["timezone"].as_str()), (Some("Kept"), Some("Asia/Tokyo")));
    let history = api.get(&format!("/api/streams/{sid}/chat"), None).await.json();
    let got: Vec<&str> = history["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(got, texts.iter().map(String::as_str).collect::<Vec<_>>(), "every acknowledged message is there");
    assert_eq!(api.get(&format!("/api/streams/{sid}"), None).await.json()["chat_messages"], 5);
    let p = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("the key still publishes");
    assert!(p.answer.header("x-onair-stream").unwrap().parse::<i64>().is_ok());
    p.stop().await;
    server.stop().await;
}
