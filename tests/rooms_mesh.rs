//! The studio pages' mesh, server side: `room_signal` goes only between
//! hosts of the same live room (not to or from outsiders, not across
//! rooms), bounded in size and rate; `room_topology` tells the hosts when
//! the room is a mesh and when it goes through the SFU (mesh up to four
//! connected hosts, sfu at the fifth, mesh again at three). Real server,
//! real WebSockets, real WebRTC publishers.

mod common;

use common::api::{Api, User, Ws};
use common::peer::{self, PublishOpts, TestPeer};
use serde_json::{json, Value};

fn opts(tag: u8) -> PublishOpts {
    PublishOpts { simulcast: false, tag: Some(tag), keyframe_every: 60, ..Default::default() }
}

async fn event(ws: &mut Ws, kind: &str, f: impl Fn(&Value) -> bool) -> Value {
    match ws.next_where(15, |v| v["type"] == kind && f(v)).await {
        Some(v) => v,
        None => panic!("no matching '{kind}' within 15 s; seen: {:?}", ws.seen),
    }
}

/// Sends a signal with a nonce and returns the socket's error answer, if
/// one comes within `secs` (a relayed signal has no answer).
async fn signal(ws: &mut Ws, stream_id: i64, to: &str, data: Value, secs: u64) -> Option<Value> {
    let nonce = rand::random::<u32>();
    ws.send(json!({ "type": "room_signal", "stream_id": stream_id, "to": to, "data": data, "id": nonce })).await;
    ws.next_where(secs, |v| v["type"] == "error" && v["id"] == nonce).await
}

fn code(v: &Option<Value>) -> Option<&str> {
    v.as_ref().and_then(|v| v["error"]["code"].as_str())
}

/// `who` joins `primary`'s room `sid` through an invitation.
async fn join(api: &Api, primary: &User, sid: i64, who: &User) {
    let r = api.post(&format!("/api/streams/{sid}/invitations"), Some(&primary.token), json!({ "user": who.username })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api.post(&format!("/api/streams/{sid}/invitations/accept"), Some(&who.token), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn go_live(api: &Api, u: &User, body: Value, tag: u8) -> (i64, TestPeer) {
    let s = api.create_stream(u, body).await;
    let key = api.stream_key(u).await;
    let p = peer::publish(api.addr, &key, opts(tag)).await.expect("publishes");
    common::wait_live(api.addr, &u.username).await;
    (s["id"].as_i64().unwrap(), p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_go_only_between_hosts_of_the_same_live_room() {
    let server = common::start_server(1).await;
    let addr = server.http_addr;
    let api = Api::new(addr);
    let ann = api.register("ann", "host").await;
    let bob = api.register("bob", "host").await;
    let cat = api.register("cat", "host").await;
    let dan = api.register("dan", "host").await;
    let (sid, _ann_pub) = go_live(&api, &ann, json!({ "title": "Ours" }), 1).await;
    let (other, _dan_pub) = go_live(&api, &dan, json!({ "title": "Theirs" }), 2).await;
    join(&api, &ann, sid, &bob).await;

    let mut ann_ws = Ws::connect(addr, Some(&ann.token)).await;
    let mut bob_ws = Ws::connect(addr, Some(&bob.token)).await;
    let mut cat_ws = Ws::connect(addr, Some(&cat.token)).await;
    let mut dan_ws = Ws::connect(addr, Some(&dan.token)).await;

    // Between two hosts of the room: relayed, both ways, with the sender named.
    let offer = json!({ "description": { "type": "offer", "sdp": "v=0\r\n" } });
    assert_eq!(signal(&mut ann_ws, sid, "bob", offer.clone(), 1).await, None);
    let got = event(&mut bob_ws, "room_signal", |_| true).await;
    assert_eq!((got["stream_id"].as_i64(), got["from"].as_str(), &got["data"]), (Some(sid), Some("ann"), &offer));
    assert_eq!(signal(&mut bob_ws, sid, "ann", json!({ "candidates": [] }), 1).await, None);
    let got = event(&mut ann_ws, "room_signal", |_| true).await;
    assert_eq!((got["from"].as_str(), &got["data"]), (Some("bob"), &json!({ "candidates": [] })));

    // An outsider reaches no host; a host reaches no outsider.
    assert_eq!(code(&signal(&mut cat_ws, sid, "ann", json!({ "x": 1 }), 5).await), Some("not_room_member"));
    assert_eq!(code(&signal(&mut ann_ws, sid, "cat", json!({ "x": 2 }), 5).await), Some("not_room_member"));
    assert_eq!(code(&signal(&mut ann_ws, sid, "nobody", json!({ "x": 3 }), 5).await), Some("not_room_member"));
    assert_eq!(code(&signal(&mut ann_ws, sid, "ann", json!({ "x": 4 }), 5).await), Some("not_room_member"), "not to oneself");
    // Across rooms: Dan, primary host of another live room, reaches no one here,
    // whichever room he names; nor does Ann reach him through hers.
    assert_eq!(code(&signal(&mut dan_ws, sid, "ann", json!({ "x": 5 }), 5).await), Some("not_room_member"));
    assert_eq!(code(&signal(&mut dan_ws, other, "ann", json!({ "x": 6 }), 5).await), Some("not_room_member"));
    assert_eq!(code(&signal(&mut ann_ws, other, "dan", json!({ "x": 7 }), 5).await), Some("not_room_member"));
    // An anonymous socket signals no one.
    let mut anon = Ws::connect(addr, None).await;
    assert_eq!(code(&signal(&mut anon, sid, "ann", json!({ "x": 8 }), 5).await), Some("unauthorized"));
    // Bad and oversized data.
    assert_eq!(code(&signal(&mut ann_ws, sid, "bob", json!("just a string"), 5).await), Some("bad_signal"));
    let big = json!({ "sdp": "a".repeat(13 * 1024) });
    assert_eq!(code(&signal(&mut ann_ws, sid, "bob", big, 5).await), Some("signal_too_large"));

    // None of the refused signals arrived: the next thing Bob and Dan get is
    // what a host of their room sends them.
    assert_eq!(signal(&mut ann_ws, sid, "bob", json!({ "marker": 1 }), 1).await, None);
    let got = event(&mut bob_ws, "room_signal", |_| true).await;
    assert_eq!(got["data"], json!({ "marker": 1 }), "bob got only what ann sent: {:?}", bob_ws.seen);
    assert!(ann_ws.seen.iter().chain(dan_ws.seen.iter()).all(|v| v["type"] != "room_signal" || v["from"] == "bob"), "{:?}", ann_ws.seen);

    // A flooding host is cut off at its rate (40 at once), however many
    // sockets it uses; the other host is not flooded, and the socket stays open.
    let mut bob_ws2 = Ws::connect(addr, Some(&bob.token)).await;
    for i in 0..30 {
        bob_ws.send(json!({ "type": "room_signal", "stream_id": sid, "to": "ann", "data": { "n": i }, "id": i })).await;
        bob_ws2.send(json!({ "type": "room_signal", "stream_id": sid, "to": "ann", "data": { "n": 100 + i }, "id": 100 + i })).await;
    }
    let mut refused = 0;
    for ws in [&mut bob_ws, &mut bob_ws2] {
        while let Some(e) = ws.next_where(2, |v| v["type"] == "error").await {
            assert_eq!(e["error"]["code"], "rate_limited", "{e}");
            assert!(e["error"]["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{e}");
            refused += 1;
        }
    }
    let mut relayed = 0;
    while ann_ws.next_where(2, |v| v["type"] == "room_signal").await.is_some() {
        relayed += 1;
    }
    assert_eq!(relayed + refused, 60, "every signal relayed or refused");
    // The burst, plus what the bucket refilled (5/s) while they arrived.
    assert!(relayed >= 40 && refused >= 10, "relayed {relayed}, refused {refused}");

    // Once Bob is out of the room, nothing of his is relayed (once his
    // bucket has a token again: he waits as long as he was told).
    assert_eq!(api.delete(&format!("/api/streams/{sid}/hosts/bob"), Some(&ann.token)).await.status, 204);
    let answer = loop {
        let e = signal(&mut bob_ws, sid, "ann", json!({ "late": true }), 5).await;
        match e.as_ref().map(|e| (e["error"]["code"].as_str(), e["error"]["retry_after_ms"].as_u64())) {
            Some((Some("rate_limited"), Some(ms))) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
            _ => break e,
        }
    };
    assert_eq!(code(&answer), Some("not_room_member"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_room_is_a_mesh_up_to_four_hosts_sfu_at_five_and_mesh_again_at_three() {
    let server = common::start_server(2).await;
    let addr = server.http_addr;
    let api = Api::new(addr);
    let ann = api.register("ann", "host").await;
    let mut ann_ws = Ws::connect(addr, Some(&ann.token)).await;
    let (sid, _ann_pub) = go_live(&api, &ann, json!({ "title": "Five of us" }), 1).await;

    // A host subscribing to its room learns the topology at once; a viewer does not.
    ann_ws.send(json!({ "type": "subscribe", "stream": sid })).await;
    let t = event(&mut ann_ws, "room_topology", |_| true).await;
    assert_eq!((t["stream_id"].as_i64(), t["topology"].as_str(), &t["hosts"]), (Some(sid), Some("mesh"), &json!(["ann"])));
    let mut viewer = Ws::connect(addr, None).await;
    viewer.send(json!({ "type": "watch", "stream": sid })).await;
    viewer.next_of("subscribed", 5).await;

    let mut guests = Vec::new();
    let mut pubs = Vec::new();
    for (i, name) in ["bob", "cat", "dee", "eve"].into_iter().enumerate() {
        let u = api.register(name, "host").await;
        join(&api, &ann, sid, &u).await;
        let key = api.stream_key(&u).await;
        pubs.push(peer::publish(addr, &key, opts(2 + i as u8)).await.expect("a co-host publishes"));
        let want = if i < 3 { "mesh" } else { "sfu" };
        let t = event(&mut ann_ws, "room_topology", |v| v["hosts"].as_array().is_some_and(|h| h.len() == i + 2)).await;
        assert_eq!(t["topology"], want, "{} hosts: {t}", i + 2);
        guests.push(u);
    }
    // Every host hears of it, on its own socket.
    let mut bob_ws = Ws::connect(addr, Some(&guests[0].token)).await;
    bob_ws.send(json!({ "type": "subscribe", "stream": sid })).await;
    let t = event(&mut bob_ws, "room_topology", |_| true).await;
    assert_eq!((t["topology"].as_str(), t["hosts"].as_array().map(Vec::len)), (Some("sfu"), Some(5)));

    // Hysteresis: back to four stays sfu; at three it is a mesh again.
    assert_eq!(api.delete(&format!("/api/streams/{sid}/hosts/eve"), Some(&guests[3].token)).await.status, 204);
    let t = event(&mut bob_ws, "room_topology", |v| v["hosts"].as_array().is_some_and(|h| h.len() == 4)).await;
    assert_eq!(t["topology"], "sfu", "four hosts after five: still sfu");
    assert_eq!(api.delete(&format!("/api/streams/{sid}/hosts/dee"), Some(&ann.token)).await.status, 204);
    let t = event(&mut bob_ws, "room_topology", |v| v["hosts"].as_array().is_some_and(|h| h.len() == 3)).await;
    assert_eq!(t["topology"], "mesh", "three hosts: mesh again");
    assert_eq!(t["hosts"], json!(["ann", "bob", "cat"]));

    // `topology: sfu` forces the SFU at once, whatever the count.
    let r = api.patch(&format!("/api/streams/{sid}"), Some(&ann.token), json!({ "topology": "sfu" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = event(&mut bob_ws, "room_topology", |v| v["topology"] == "sfu").await;
    assert_eq!(t["hosts"].as_array().map(Vec::len), Some(3));
    let r = api.patch(&format!("/api/streams/{sid}"), Some(&ann.token), json!({ "topology": "auto" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    event(&mut bob_ws, "room_topology", |v| v["topology"] == "mesh").await;

    // The topology is the hosts' business: the viewer's socket got none of it.
    viewer.next_where(1, |_| false).await;
    assert!(viewer.seen.iter().all(|v| v["type"] != "room_topology" && v["type"] != "room_signal"), "{:?}", viewer.seen);
    drop(pubs);
}
