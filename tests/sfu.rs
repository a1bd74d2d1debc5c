//! The SFU end to end over real WebRTC: WHIP publish, WHEP watch, simulcast
//! layer switching, NACK, lifecycle.

mod common;

use std::time::Duration;

use common::http;
use common::peer::{self, PublishOpts, WatchOpts};

/// Sequence numbers of one viewer's video must run +1 without a gap or repeat.
fn assert_continuous(rx: &[peer::Rx]) {
    for w in rx.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "sequence jumps {} -> {}", w[0].seq, w[1].seq);
        let dt = w[1].ts.wrapping_sub(w[0].ts) as i32;
        assert!(dt >= 0, "timestamp goes back {} -> {}", w[0].ts, w[1].ts);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_receive_simulcast_vp8_and_opus() {
    let server = common::start_server(2).await;
    let key = server.keys.create("demo").await.unwrap();
    let publisher = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert_eq!(publisher.answer.header("x-onair-stream"), Some("demo"));
    assert!(publisher.location.starts_with("/whip/"), "{}", publisher.location);
    assert!(common::wait_until(10, || publisher.connected()).await, "publisher never connected");

    let mut viewers = Vec::new();
    for cap in [None, None, Some("q"), Some("h"), None] {
        viewers.push(peer::watch(server.http_addr, "demo", WatchOpts { max_layer: cap, ..Default::default() }).await.expect("watch"));
    }
    let ok = common::wait_until(15, || viewers.iter().all(|v| v.video().len() > 60 && v.audio().len() > 20)).await;
    assert!(ok, "viewers got {:?}", viewers.iter().map(|v| (v.video().len(), v.audio().len())).collect::<Vec<_>>());

    for (i, v) in viewers.iter().enumerate() {
        let video = v.video();
        assert!(video[0].is_vp8_keyframe(), "viewer {i}: first video packet must start a keyframe");
        assert_continuous(&video);
        let want = match i {
            2 => 0, // capped to q
            3 => 1, // capped to h
            _ => 2, // auto: the top layer on a clean loopback link
        };
        let layers: Vec<u8> = video.iter().filter_map(|r| r.vp8_layer()).collect();
        assert!(!layers.is_empty());
        assert!(layers.iter().all(|l| *l == want), "viewer {i} wanted layer {want}, got {:?}", &layers[..layers.len().min(20)]);
        // One SSRC per viewer track, whatever layer it came from.
        assert!(video.iter().all(|r| r.ssrc == video[0].ssrc));
        assert_continuous(&v.audio());
    }

    let health = http::request(server.http_addr, "GET", "/api/streams/demo/health", &[], b"").await;
    assert_eq!(health.status, 200, "{}", health.body);
    let h = health.json();
    assert_eq!(h["live"], true);
    assert_eq!(h["viewer_count"], 5);
    let tracks = h["publisher"]["tracks"].as_array().unwrap();
    assert_eq!(tracks.iter().filter(|t| t["kind"] == "video").count(), 3, "{h}");
    // The test publisher tags its audio with RFC 6464 level 30 and voice on.
    let audio = tracks.iter().find(|t| t["kind"] == "audio").expect("audio track");
    assert_eq!(audio["audio_level_dbov"], 30, "{h}");
    assert_eq!(audio["voice"], true, "{h}");
    let capped_q = h["viewers"].as_array().unwrap().iter().filter(|v| v["layer"] == "q").count();
    assert_eq!(capped_q, 1, "{h}");

    let metrics = http::request(server.http_addr, "GET", "/metrics", &[], b"").await.body;
    let forwarded: u64 = metrics.lines().find(|l| l.starts_with("onair_forwarded_packets_total ")).unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    assert!(forwarded > 5 * 80, "forwarded {forwarded}");
    assert!(metrics.contains("onair_viewers 5"), "{metrics}");

    for v in viewers {
        v.stop().await;
    }
    publisher.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_switch_keeps_the_stream_continuous() {
    let server = common::start_server(2).await;
    let key = server.keys.create("sw").await.unwrap();
    let publisher = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert!(common::wait_until(10, || publisher.connected()).await);
    let viewer = peer::watch(server.http_addr, "sw", WatchOpts::default()).await.expect("watch");
    assert!(common::wait_until(10, || viewer.video().len() > 30).await, "no video");

    let layer_url = format!("{}/layer", viewer.location);
    for (cap, want) in [("q", 0u8), ("h", 1), ("auto", 2)] {
        let before = viewer.video().len();
        let res = http::request(server.http_addr, "POST", &layer_url, &[("Content-Type", "application/json")], format!("{{\"max_layer\":\"{cap}\"}}").as_bytes()).await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.json()["max_layer"], cap);
        let switched = common::wait_until(10, || viewer.video()[before..].iter().filter_map(|r| r.vp8_layer()).any(|l| l == want)).await;
        assert!(switched, "never switched to layer {want}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let video = viewer.video();
    assert_continuous(&video);
    // Every change of layer happens on a keyframe, and picture ids stay continuous.
    let mut last_layer = None;
    let mut last_pid: Option<u16> = None;
    let mut switches = 0;
    for r in &video {
        if let Some(l) = r.vp8_layer() {
            if last_layer.is_some_and(|x| x != l) {
                assert!(r.is_vp8_keyframe(), "switch to layer {l} not on a keyframe");
                switches += 1;
            }
            last_layer = Some(l);
            let pid = r.picture_id().unwrap();
            if let Some(p) = last_pid {
                assert_eq!(pid, (p + 1) & 0x7fff, "picture id jumps {p} -> {pid}");
            }
            last_pid = Some(pid);
        }
    }
    assert_eq!(switches, 3, "f->q->h->f");
    let health = http::request(server.http_addr, "GET", "/api/streams/sw/health", &[], b"").await.json();
    assert_eq!(health["viewers"][0]["layer_switches"], 3, "{health}");

    viewer.stop().await;
    publisher.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_packets_are_retransmitted_from_the_sfu_cache() {
    let server = common::start_server(1).await;
    let key = server.keys.create("nack").await.unwrap();
    let publisher = peer::publish(server.http_addr, &key, PublishOpts { simulcast: false, ..Default::default() }).await.expect("publish");
    assert!(common::wait_until(10, || publisher.connected()).await);
    let viewer = peer::watch(server.http_addr, "nack", WatchOpts { drop_nth: Some(40), ..Default::default() }).await.expect("watch");
    assert!(common::wait_until(10, || viewer.seen.lock().unwrap().dropped.is_some()).await, "nothing dropped");
    let (ssrc, seq) = viewer.seen.lock().unwrap().dropped.unwrap();
    let healed = common::wait_until(5, || viewer.video().iter().any(|r| r.ssrc == ssrc && r.seq == seq)).await;
    assert!(healed, "packet {seq} was never retransmitted");
    viewer.stop().await;
    publisher.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_leaving_ends_the_stream_and_frees_its_viewers() {
    let server = common::start_server(2).await;
    let key = server.keys.create("bye").await.unwrap();
    let publisher = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert!(common::wait_until(10, || publisher.connected()).await);
    let mut events = server.sfu.subscribe();
    let v1 = peer::watch(server.http_addr, "bye", WatchOpts::default()).await.unwrap();
    let v2 = peer::watch(server.http_addr, "bye", WatchOpts::default()).await.unwrap();
    assert!(common::wait_until(10, || v1.video().len() > 10 && v2.video().len() > 10).await);
    assert_eq!(server.sfu.session_count(), 3);

    // A second publisher on the same stream is refused while the first is live.
    let second = peer::publish(server.http_addr, &key, PublishOpts::default()).await.err().expect("must be refused");
    assert_eq!(second.status, 409, "{}", second.body);
    assert_eq!(second.error_code(), "stream_busy");

    let res = http::request(server.http_addr, "DELETE", &publisher.location, &[], b"").await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(common::wait_until(5, || server.sfu.session_count() == 0).await, "sessions left: {}", server.sfu.session_count());
    let mut ended = false;
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(2), events.recv()).await {
        if e == (onair_media::SfuEvent::StreamEnded { stream: "bye".into() }) {
            ended = true;
            break;
        }
    }
    assert!(ended, "no StreamEnded event");
    // Viewers' connections are closed by the server.
    assert!(common::wait_until(10, || !v1.connected() && !v2.connected()).await, "viewers still connected: {:?} {:?}", v1.state(), v2.state());
    let res = http::request(server.http_addr, "GET", "/api/streams/bye/health", &[], b"").await;
    assert_eq!(res.status, 404);
    let res = http::request(server.http_addr, "DELETE", &v1.location, &[], b"").await;
    assert_eq!(res.status, 404, "already gone");
    v1.stop().await;
    v2.stop().await;
    publisher.stop().await;

    // The stream can go live again.
    let again = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("republish");
    assert!(common::wait_until(10, || again.connected()).await);
    again.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_vanishes_is_timed_out() {
    let server = common::start_server(1).await;
    let key = server.keys.create("gone").await.unwrap();
    let publisher = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert!(common::wait_until(10, || publisher.connected()).await);
    let viewer = peer::watch(server.http_addr, "gone", WatchOpts::default()).await.unwrap();
    assert!(common::wait_until(10, || viewer.video().len() > 10).await);
    publisher.stop().await; // no DELETE: the browser tab just died
    assert!(common::wait_until(40, || server.sfu.session_count() == 0).await, "sessions left: {}", server.sfu.session_count());
    viewer.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_bind_on_all_interfaces_works_for_local_clients() {
    // `cargo run` binds media to 0.0.0.0 and announces every local address.
    let server = common::start_server_default_bind(2).await;
    let key = server.keys.create("any").await.unwrap();
    let publisher = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert!(publisher.answer.body.contains("127.0.0.1"), "loopback candidate announced: {}", publisher.answer.body);
    assert!(common::wait_until(10, || publisher.connected()).await, "publisher never connected");
    let viewer = peer::watch(server.http_addr, "any", WatchOpts::default()).await.expect("watch");
    assert!(common::wait_until(10, || viewer.video().len() > 30).await, "viewer got {}", viewer.video().len());
    viewer.stop().await;
    publisher.stop().await;
    server.stop().await;
}
