//! Co-host rooms through the platform: real server, real HTTP, WebSockets
//! and WebRTC peers. Invitations and requests to join, a co-host's stream
//! key publishing into the room, viewers and hosts over `/whep`, mutes
//! through the API reaching the media, permissions, removal for good, the
//! ninth-host limit, invitations expiring, and the room's events.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::api::{Api, User, Ws};
use common::peer::{self, PublishOpts, Rx, TestPeer, WatchOpts};
use serde_json::{json, Value};

fn opts(tag: u8) -> PublishOpts {
    PublishOpts { simulcast: false, tag: Some(tag), keyframe_every: 60, ..Default::default() }
}

/// Packets of host `tag` (video and audio) a peer received after `after`.
fn from(p: &TestPeer, tag: u8, after: Instant) -> usize {
    p.video().iter().chain(p.audio().iter()).filter(|r| r.tag() == Some(tag) && r.at > after).count()
}

fn video_tags(p: &TestPeer) -> BTreeSet<u8> {
    p.video().iter().filter_map(Rx::tag).collect()
}

async fn event(ws: &mut Ws, kind: &str, f: impl Fn(&Value) -> bool) -> Value {
    match ws.next_where(10, |v| v["type"] == kind && f(v)).await {
        Some(v) => v,
        None => panic!("no matching '{kind}' within 10 s; seen: {:?}", ws.seen),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_cohost_publishes_into_the_room_is_muted_and_removed_through_the_api() {
    let server = common::start_server(2).await;
    let addr = server.http_addr;
    let api = Api::new(addr);
    let ann = api.register("ann", "host").await;
    let bob = api.register("bob", "host").await;
    let cat = api.register("cat", "host").await;
    let mut ann_ws = Ws::connect(addr, Some(&ann.token)).await;
    let mut bob_ws = Ws::connect(addr, Some(&bob.token)).await;

    let s = api.create_stream(&ann, json!({ "title": "Two of us", "session_type": "interview", "topology": "sfu", "max_hosts": 4 })).await;
    assert_eq!((s["session_type"].as_str(), s["topology"].as_str(), s["max_hosts"].as_i64()), (Some("interview"), Some("sfu"), Some(4)));
    let sid = s["id"].as_i64().unwrap();
    let ann_key = api.stream_key(&ann).await;
    let bob_key = api.stream_key(&bob).await;
    let ann_pub = peer::publish(addr, &ann_key, opts(1)).await.expect("the primary publishes");
    common::wait_live(addr, "ann").await;

    let mut viewer_ws = Ws::connect(addr, None).await;
    viewer_ws.send(json!({ "type": "watch", "stream": sid, "viewer": "v1" })).await;
    viewer_ws.next_of("subscribed", 5).await;

    // Only the primary (or a co-host allowed to) invites.
    let r = api.post(&format!("/api/streams/{sid}/invitations"), Some(&bob.token), json!({ "user": "cat" })).await;
    assert_eq!((r.status, r.error_code()), (403, "forbidden".to_owned()), "{}", r.body);
    let r = api.post(&format!("/api/streams/{sid}/invitations"), Some(&ann.token), json!({ "user": "bob" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let inv = event(&mut bob_ws, "cohost_invitation", |_| true).await;
    assert_eq!((inv["invitation"]["stream_id"].as_i64(), inv["invitation"]["invited_by"].as_str(), inv["invitation"]["state"].as_str()), (Some(sid), Some("ann"), Some("pending")));
    let r = api.post(&format!("/api/streams/{sid}/invitations/accept"), Some(&bob.token), json!({})).await;
    assert_eq!((r.status, r.json()["state"].as_str()), (200, Some("accepted")), "{}", r.body);
    event(&mut ann_ws, "cohost_invitation", |v| v["invitation"]["state"] == "accepted").await;

    // Bob's key now publishes into Ann's room.
    let bob_pub = peer::publish(addr, &bob_key, opts(2)).await.expect("the co-host publishes into the room");
    assert!(common::wait_until(10, || bob_pub.connected()).await);
    event(&mut viewer_ws, "host_joined", |v| v["user"] == "bob" && v["stream_id"] == sid).await;
    event(&mut viewer_ws, "room_slots", |v| v["slots"][0] == "ann" && v["slots"][1] == "bob").await;

    // A two-slot viewer receives both hosts; Bob, watching as a host, gets Ann only.
    let v = peer::watch(addr, &sid.to_string(), WatchOpts { slots: 2, ..Default::default() }).await.expect("viewer");
    let bob_view = peer::watch(addr, &sid.to_string(), WatchOpts { slots: 2, token: Some(bob.token.clone()), ..Default::default() }).await.expect("bob watches as a host");
    let t0 = Instant::now() - Duration::from_secs(60);
    assert!(common::wait_until(15, || from(&v, 1, t0) > 30 && from(&v, 2, t0) > 30 && from(&bob_view, 1, t0) > 30).await, "tags seen: {:?}", video_tags(&v));
    assert_eq!(video_tags(&v), BTreeSet::from([1, 2]));
    assert_eq!(from(&bob_view, 2, t0), 0, "a host does not receive itself");

    // WHEP's server-sent events say which host each slot's mids show.
    let links = v.answer.headers_named("link");
    let sse_link = links.iter().find(|l| l.contains("urn:ietf:params:whep:ext:core:server-sent-events")).expect("the SSE extension is advertised");
    assert!(sse_link.contains("room_slots"), "{sse_link}");
    let v_events = common::http::EventStream::open(addr, &format!("{}/events", v.location)).await;
    let bob_events = common::http::EventStream::open(addr, &format!("{}/events", bob_view.location)).await;
    let host_in = |e: &Value, i: usize| e["slots"][i]["host"].as_str().map(str::to_owned);
    let mids = |sdp: &str| sdp.lines().filter_map(|l| l.strip_prefix("a=mid:")).map(str::to_owned).collect::<Vec<_>>();
    let slots = v_events.wait_for(10, "room_slots", |e| e["slots"].as_array().is_some_and(|s| s.len() == 2)).await.unwrap_or_else(|| panic!("room_slots over SSE: {:?}", v_events.seen()));
    assert_eq!((host_in(&slots, 0).as_deref(), host_in(&slots, 1).as_deref()), (Some("ann"), Some("bob")), "{slots}");
    let answer_mids = mids(&v.answer.body);
    for s in slots["slots"].as_array().unwrap() {
        for m in [&s["video_mid"], &s["audio_mid"]] {
            assert!(answer_mids.iter().any(|a| m.as_str() == Some(a)), "slot mids are the answer's: {s} vs {answer_mids:?}");
        }
    }
    let slots = bob_events.wait_for(10, "room_slots", |_| true).await.expect("bob's room_slots");
    assert_eq!((host_in(&slots, 0).as_deref(), host_in(&slots, 1)), (Some("ann"), None), "a host's own view leaves it out: {slots}");
    assert!(v_events.wait_for(5, "layers", |_| true).await.is_some(), "layers come on the same stream");

    let hosts = api.get(&format!("/api/streams/{sid}/hosts"), None).await.json();
    let hosts = hosts.as_array().unwrap();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    assert_eq!((hosts[0]["user"].as_str(), hosts[0]["role"].as_str(), hosts[0]["slot"].as_i64()), (Some("ann"), Some("primary"), Some(0)));
    assert_eq!((hosts[1]["user"].as_str(), hosts[1]["role"].as_str(), hosts[1]["slot"].as_i64()), (Some("bob"), Some("cohost"), Some(1)));
    assert!(hosts.iter().all(|h| h["connected"] == true && h["audio_muted"] == false), "{hosts:?}");
    assert_eq!(hosts[1]["permissions"], json!([]));

    // Permissions: a co-host without them mutes only itself, sets no layout.
    let r = api.patch(&format!("/api/streams/{sid}/hosts/ann"), Some(&bob.token), json!({ "audio_muted": true })).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api.call("PUT", &format!("/api/streams/{sid}/layout"), Some(&bob.token), Some(&json!({ "kind": "spotlight", "focus": "bob" }))).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api.patch(&format!("/api/streams/{sid}/hosts/bob"), Some(&bob.token), json!({ "permissions": ["layout"] })).await;
    assert_eq!(r.status, 403, "only the primary grants permissions: {}", r.body);
    let r = api.patch(&format!("/api/streams/{sid}/hosts/bob"), Some(&ann.token), json!({ "permissions": ["layout", "layout"] })).await;
    assert_eq!((r.status, &r.json()["permissions"]), (200, &json!(["layout"])), "{}", r.body);
    event(&mut viewer_ws, "host_updated", |v| v["host"]["user"] == "bob" && v["host"]["permissions"] == json!(["layout"])).await;
    let r = api.call("PUT", &format!("/api/streams/{sid}/layout"), Some(&bob.token), Some(&json!({ "kind": "spotlight", "focus": "bob" }))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    event(&mut viewer_ws, "room_layout", |v| v["layout"]["kind"] == "spotlight" && v["layout"]["focus"] == "bob").await;
    event(&mut viewer_ws, "room_slots", |v| v["slots"][0] == "bob" && v["program"] == "bob").await;
    let moved = v_events.wait_for(5, "room_slots", |e| host_in(e, 0).as_deref() == Some("bob")).await;
    assert!(moved.is_some_and(|e| host_in(&e, 1).as_deref() == Some("ann")), "the SSE follows the layout: {:?}", v_events.seen());
    let r = api.call("PUT", &format!("/api/streams/{sid}/layout"), Some(&ann.token), Some(&json!({ "kind": "grid", "focus": "cat" }))).await;
    assert_eq!((r.status, r.json()["error"]["fields"]["focus"].as_str()), (400, Some("cat is not a host of this room")), "{}", r.body);

    // A mute through the API: nothing of Bob reaches the viewer after 100 ms.
    // Measured from the server's acknowledgement: the request itself may
    // wait on a loaded machine before the server reads it.
    let r = api.patch(&format!("/api/streams/{sid}/hosts/bob"), Some(&ann.token), json!({ "audio_muted": true, "video_muted": true })).await;
    let muted_at = Instant::now();
    assert_eq!((r.status, r.json()["audio_muted"].as_bool(), r.json()["video_muted"].as_bool()), (200, Some(true), Some(true)), "{}", r.body);
    event(&mut viewer_ws, "host_updated", |v| v["host"]["user"] == "bob" && v["host"]["video_muted"] == true).await;
    assert!(common::wait_until(10, || from(&v, 1, muted_at + Duration::from_millis(100)) > 30).await, "Ann goes on");
    let late: Vec<String> = v.video().iter().chain(v.audio().iter()).filter(|r| r.tag() == Some(2) && r.at > muted_at + Duration::from_millis(100)).take(5).map(|r| format!("pt {} ssrc {:x} {:02x?}", r.pt, r.ssrc, &r.payload[..8.min(r.payload.len())])).collect();
    assert_eq!(from(&v, 2, muted_at + Duration::from_millis(100)), 0, "a muted host reaches no one: {late:?}");
    let unmuted_at = Instant::now();
    let r = api.patch(&format!("/api/streams/{sid}/hosts/bob"), Some(&bob.token), json!({ "audio_muted": false, "video_muted": false })).await;
    assert_eq!(r.status, 200, "a host unmutes itself: {}", r.body);
    assert!(common::wait_until(10, || from(&v, 2, unmuted_at) > 10).await, "unmuted: back");

    // Cat is no host: it cannot watch as one or be patched.
    let r = api.patch(&format!("/api/streams/{sid}/hosts/cat"), Some(&ann.token), json!({ "audio_muted": true })).await;
    assert_eq!((r.status, r.error_code()), (404, "host_not_found".to_owned()));
    let r = api.delete(&format!("/api/streams/{sid}/hosts/bob"), Some(&cat.token)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api.delete(&format!("/api/streams/{sid}/hosts/ann"), Some(&ann.token)).await;
    assert_eq!((r.status, r.error_code()), (409, "primary_host".to_owned()));

    // Kick: Bob's publishing session and his view of the room close at once,
    // and his key cannot publish into this room again.
    let sessions = server.sfu.session_count();
    let kicked_at = Instant::now();
    let r = api.delete(&format!("/api/streams/{sid}/hosts/bob"), Some(&ann.token)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(server.sfu.session_count(), sessions - 2, "his WHIP and his host WHEP sessions");
    event(&mut viewer_ws, "host_left", |v| v["user"] == "bob" && v["reason"] == "removed").await;
    let again = peer::publish(addr, &bob_key, opts(2)).await.err().expect("a removed host's key is refused");
    assert_eq!((again.status, again.error_code()), (403, "host_removed".to_owned()), "{}", again.body);
    assert!(common::wait_until(10, || from(&v, 1, kicked_at) > 30).await);
    assert_eq!(from(&v, 2, kicked_at + Duration::from_millis(100)), 0, "nothing of a removed host");
    let hosts = api.get(&format!("/api/streams/{sid}/hosts"), None).await.json();
    assert_eq!(hosts.as_array().unwrap().len(), 1);
    let r = api.post(&format!("/api/streams/{sid}/invitations"), Some(&ann.token), json!({ "user": "bob" })).await;
    assert_eq!((r.status, r.error_code()), (403, "host_removed".to_owned()), "a removed host is not invited back");

    // The primary ends the stream: the room ends for everyone.
    let r = api.post(&format!("/api/streams/{sid}/end"), Some(&ann.token), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    event(&mut viewer_ws, "room_ended", |v| v["stream_id"] == sid).await;
    drop((ann_pub, bob_pub, v, bob_view));
}

async fn host(api: &Api, name: &str) -> User {
    api.register(name, "host").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_hosts_at_most_requests_to_join_and_invitations_that_expire() {
    let server = common::start_server(1).await;
    let addr = server.http_addr;
    let api = Api::new(addr);
    let ann = host(&api, "ann").await;
    let mut ann_ws = Ws::connect(addr, Some(&ann.token)).await;

    let r = api.post("/api/streams", Some(&ann.token), json!({ "title": "Too many", "max_hosts": 10 })).await;
    assert_eq!((r.status, r.json()["error"]["fields"]["max_hosts"].as_str()), (400, Some("must be 2-9")), "{}", r.body);
    let s = api.create_stream(&ann, json!({ "title": "Panel", "session_type": "panel" })).await;
    assert_eq!((s["max_hosts"].as_i64(), s["topology"].as_str()), (Some(9), Some("auto")), "the defaults");
    let sid = s["id"].as_i64().unwrap();
    let r = api.patch(&format!("/api/streams/{sid}"), Some(&ann.token), json!({ "session_type": "podcast", "max_hosts": 3 })).await;
    assert_eq!((r.status, r.json()["session_type"].as_str(), r.json()["max_hosts"].as_i64()), (200, Some("podcast"), Some(3)), "{}", r.body);
    assert_eq!(api.patch(&format!("/api/streams/{sid}"), Some(&ann.token), json!({ "max_hosts": 9 })).await.status, 200);

    // Nine hosts: eight co-hosts accept, the tenth host is refused.
    let mut guests = Vec::new();
    for i in 1..=9 {
        let u = host(&api, &format!("guest{i}")).await;
        let r = api.post(&format!("/api/streams/{sid}/invitations"), Some(&ann.token), json!({ "user": u.username })).await;
        assert_eq!(r.status, 201, "{}", r.body);
        guests.push(u);
    }
    for (i, u) in guests.iter().enumerate() {
        let r = api.post(&format!("/api/streams/{sid}/invitations/accept"), Some(&u.token), json!({})).await;
        if i < 8 {
            assert_eq!(r.status, 200, "host {}: {}", i + 2, r.body);
        } else {
            assert_eq!((r.status, r.error_code()), (409, "room_full".to_owned()), "the tenth host: {}", r.body);
        }
    }
    assert_eq!(api.get(&format!("/api/streams/{sid}/hosts"), None).await.json().as_array().unwrap().len(), 9);
    let r = api.patch(&format!("/api/streams/{sid}"), Some(&ann.token), json!({ "max_hosts": 5 })).await;
    assert_eq!((r.status, r.json()["error"]["fields"]["max_hosts"].as_str()), (400, Some("the room has 9 hosts now")), "{}", r.body);

    // A request to join: the primary hears of it; approval waits for a place.
    let jo = host(&api, "joe").await;
    let mut jo_ws = Ws::connect(addr, Some(&jo.token)).await;
    let r = api.post(&format!("/api/streams/{sid}/join-requests"), Some(&jo.token), json!({})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let req = event(&mut ann_ws, "cohost_request", |_| true).await;
    assert_eq!((req["request"]["user"].as_str(), req["request"]["state"].as_str()), (Some("joe"), Some("pending")));
    let listed = api.get(&format!("/api/streams/{sid}/join-requests"), Some(&ann.token)).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(api.get(&format!("/api/streams/{sid}/join-requests"), Some(&jo.token)).await.status, 403);
    assert_eq!(api.post(&format!("/api/streams/{sid}/join-requests/joe/approve"), Some(&guests[0].token), json!({})).await.status, 403, "the primary approves");
    let r = api.post(&format!("/api/streams/{sid}/join-requests/joe/approve"), Some(&ann.token), json!({})).await;
    assert_eq!((r.status, r.error_code()), (409, "room_full".to_owned()));
    // A guest leaves by itself: a place frees up.
    assert_eq!(api.delete(&format!("/api/streams/{sid}/hosts/guest8"), Some(&guests[7].token)).await.status, 204);
    let r = api.post(&format!("/api/streams/{sid}/join-requests/joe/approve"), Some(&ann.token), json!({})).await;
    assert_eq!((r.status, r.json()["state"].as_str()), (200, Some("approved")), "{}", r.body);
    event(&mut jo_ws, "cohost_request", |v| v["request"]["state"] == "approved").await;
    let r = api.post(&format!("/api/streams/{sid}/join-requests/joe/reject"), Some(&ann.token), json!({})).await;
    assert_eq!((r.status, r.error_code()), (404, "request_not_found".to_owned()), "decided once");
    let r = api.post(&format!("/api/streams/{sid}/join-requests"), Some(&guests[7].token), json!({})).await;
    assert_eq!((r.status, r.error_code()), (403, "host_removed".to_owned()), "who left does not come back: {}", r.body);
    let viewer = api.register("val", "viewer").await;
    let r = api.post(&format!("/api/streams/{sid}/join-requests"), Some(&viewer.token), json!({})).await;
    assert_eq!((r.status, r.error_code()), (422, "not_a_host".to_owned()));

    // Invitations: declined, and expired after ten minutes (time passed in).
    let s2 = api.create_stream(&ann, json!({ "title": "Later" })).await;
    let sid2 = s2["id"].as_i64().unwrap();
    let dee = host(&api, "dee").await;
    let eve = host(&api, "eve").await;
    for u in ["dee", "eve"] {
        assert_eq!(api.post(&format!("/api/streams/{sid2}/invitations"), Some(&ann.token), json!({ "user": u })).await.status, 201);
    }
    let r = api.post(&format!("/api/streams/{sid2}/invitations/decline"), Some(&dee.token), json!({})).await;
    assert_eq!((r.status, r.json()["state"].as_str()), (200, Some("declined")));
    let r = api.post(&format!("/api/streams/{sid2}/invitations/accept"), Some(&dee.token), json!({})).await;
    assert_eq!((r.status, r.error_code()), (404, "invitation_not_found".to_owned()));
    let stream2 = server.app.stream(sid2).await.unwrap();
    let eve_user = server.app.accounts.by_username("eve").await.unwrap().unwrap();
    let now = onair::clock::now_ms();
    let late = server.app.rooms.answer_invitation(&stream2, &eve_user, true, now + onair::rooms::INVITATION_TTL_MS + 1).await.err().expect("expired");
    assert_eq!((late.status.as_u16(), late.code), (410, "invitation_expired"));
    let r = api.post(&format!("/api/streams/{sid2}/invitations/accept"), Some(&eve.token), json!({})).await;
    assert_eq!(r.status, 200, "within the ten minutes: {}", r.body);
}
