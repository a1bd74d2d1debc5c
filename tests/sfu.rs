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
    let key = server.host_key("demo").await.unwrap();
    let publisher = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    let stream_id: i64 = publisher.answer.header("x-onair-stream").expect("stream id header").parse().expect("a numeric stream id");
    assert!(common::wait_until(10, || publisher.connected()).await, "publisher never connected");
    let live = common::wait_for_json(server.http_addr, "/api/users/demo", |p| p["live"]["media_state"] == "receiving").await;
    assert_eq!(live["live"]["id"], stream_id, "the host's channel shows the stream WHIP went live on: {live}");
    assert!(publisher.location.starts_with("/whip/"), "{}", publisher.location);

    let mut viewers = Vec::new();
    for cap in [None, None, Some("q"), Some("h"), None] {
        common::wait_live(server.http_addr, "demo").await;
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

    let health = http::get_auth(server.http_addr, "/api/streams/demo/health", &key).await;
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
    // Viewers' receiver reports reach the SFU: RTT (from our sender reports'
    // LSR/DLSR round trip), jitter and loss are known for every viewer.
    let mut h = h;
    for _ in 0..50 {
        if h["viewers"].as_array().unwrap().iter().all(|v| v["rtt_ms"].is_number() && v["jitter_ms"].is_number()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        h = http::get_auth(server.http_addr, "/api/streams/demo/health", &key).await.json();
    }
    for v in h["viewers"].as_array().unwrap() {
        let rtt = v["rtt_ms"].as_f64().unwrap_or_else(|| panic!("no RTT for a viewer: {h}"));
        assert!((0.0..1000.0).contains(&rtt), "loopback RTT {rtt} ms");
        assert_eq!(v["loss"], 0.0, "{h}");
        assert_eq!(v["quality"], "excellent", "{h}");
    }

    let metrics = http::request(server.http_addr, "GET", "/metrics", &[], b"").await.body;
    let forwarded: u64 = metrics.lines().find(|l| l.starts_with("onair_forwarded_packets_total ")).unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    assert!(forwarded > 5 * 80, "forwarded {forwarded}");
    // Every forwarded packet left as a datagram, in no more system calls.
    let (datagrams, calls) = (common::metric(&metrics, "onair_udp_datagrams_sent_total"), common::metric(&metrics, "onair_udp_send_calls_total"));
    assert!(datagrams >= forwarded && calls <= datagrams && calls > 0, "datagrams {datagrams}, calls {calls}, forwarded {forwarded}");
    assert_eq!(common::metric(&metrics, "onair_udp_send_drops_total"), 0);
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
    let key = server.host_key("switcher").await.unwrap();
    let publisher = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert!(common::wait_until(10, || publisher.connected()).await);
    common::wait_live(server.http_addr, "switcher").await;
    let viewer = peer::watch(server.http_addr, "switcher", WatchOpts::default()).await.expect("watch");
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
    let health = http::get_auth(server.http_addr, "/api/streams/switcher/health", &key).await.json();
    assert_eq!(health["viewers"][0]["layer_switches"], 3, "{health}");

    viewer.stop().await;
    publisher.stop().await;
    server.stop().await;
}

/// The layers a viewer was on, in order, each with the index of its first packet.
fn layer_runs(video: &[peer::Rx]) -> Vec<(u8, usize)> {
    let mut runs: Vec<(u8, usize)> = Vec::new();
    for (i, r) in video.iter().enumerate() {
        if let Some(l) = r.vp8_layer() {
            if runs.last().is_none_or(|(last, _)| *last != l) {
                runs.push((l, i));
            }
        }
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_the_publisher_stops_sending_is_left_for_one_it_sends_and_taken_back_when_it_returns() {
    let server = common::start_server(2).await;
    let key = server.host_key("dropper").await.unwrap();
    // No periodic keyframes: every switch below rests on the SFU asking for one.
    let publisher = peer::publish(server.http_addr, &key, PublishOpts { keyframe_every: 100_000, ..Default::default() }).await.expect("publish");
    assert!(common::wait_until(10, || publisher.connected()).await);
    common::wait_live(server.http_addr, "dropper").await;
    let viewer = peer::watch(server.http_addr, "dropper", WatchOpts::default()).await.expect("watch");
    assert!(common::wait_until(10, || viewer.video().iter().filter(|r| r.vp8_layer() == Some(2)).count() > 20).await, "the viewer never got the top layer");

    // The browser stops its top layer: the viewer moves to the middle one
    // (before, the top layer stayed "available" and the viewer froze on it).
    publisher.pause_top_layer(true);
    let paused_at = viewer.video().len();
    let moved = common::wait_until(10, || viewer.video()[paused_at..].iter().filter(|r| r.vp8_layer() == Some(1)).count() > 20).await;
    assert!(moved, "the viewer stayed on the stopped layer: {:?}", layer_runs(&viewer.video()));

    // It comes back: the viewer climbs back to it.
    publisher.pause_top_layer(false);
    let resumed_at = viewer.video().len();
    let back = common::wait_until(15, || viewer.video()[resumed_at..].iter().filter(|r| r.vp8_layer() == Some(2)).count() > 20).await;
    assert!(back, "the viewer never went back to the top layer: {:?}", layer_runs(&viewer.video()));

    let video = viewer.video();
    assert_continuous(&video);
    let runs = layer_runs(&video);
    assert_eq!(runs.iter().map(|(l, _)| *l).collect::<Vec<_>>(), vec![2, 1, 2], "f -> h -> f, nothing else");
    for (layer, at) in &runs {
        assert!(video[*at].is_vp8_keyframe(), "the switch to layer {layer} is not on a keyframe");
    }

    viewer.stop().await;
    publisher.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_packets_are_retransmitted_from_the_sfu_cache() {
    let server = common::start_server(1).await;
    let key = server.host_key("nack").await.unwrap();
    let publisher = peer::publish(server.http_addr, &key, PublishOpts { simulcast: false, ..Default::default() }).await.expect("publish");
    assert!(common::wait_until(10, || publisher.connected()).await);
    common::wait_live(server.http_addr, "nack").await;
    let viewer = peer::watch(server.http_addr, "nack", WatchOpts { drop_nth: Some(40), ..Default::default() }).await.expect("watch");
    assert!(common::wait_until(10, || viewer.seen.lock().unwrap().dropped.is_some()).await, "nothing dropped");
    let (ssrc, seq) = viewer.seen.lock().unwrap().dropped.unwrap();
    let healed = common::wait_until(5, || viewer.video().iter().any(|r| r.ssrc == ssrc && r.seq == seq)).await;
    assert!(healed, "packet {seq} was never retransmitted");
    // It came from the SFU's cache, on the RTX stream the viewer negotiated.
    assert!(viewer.answer.body.contains("rtx/90000") && viewer.answer.body.contains("a=ssrc-group:FID"), "{}", viewer.answer.body);
    let m = http::request(server.http_addr, "GET", "/metrics", &[], b"").await.body;
    assert!(common::metric(&m, "onair_nacks_received_total") >= 1, "{m}");
    assert!(common::metric(&m, "onair_retransmitted_packets_total") >= 1, "{m}");
    viewer.stop().await;
    publisher.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_leaving_ends_the_stream_and_frees_its_viewers() {
    // The viewers are held for the publisher through the reconnect grace (1 s
    // here), then let go.
    let server = common::start_server_with(common::temp_dir("bye"), |a| a.reconnect_grace = Some(1)).await;
    let key = server.host_key("bye").await.unwrap();
    let publisher = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    let stream_id = publisher.answer.header("x-onair-stream").unwrap().to_owned();
    assert!(common::wait_until(10, || publisher.connected()).await);
    let mut events = server.sfu.subscribe();
    common::wait_live(server.http_addr, "bye").await;
    let v1 = peer::watch(server.http_addr, "bye", WatchOpts::default()).await.unwrap();
    let v2 = peer::watch(server.http_addr, "bye", WatchOpts::default()).await.unwrap();
    assert!(common::wait_until(10, || v1.video().len() > 10 && v2.video().len() > 10).await);
    assert_eq!(server.sfu.session_count(), 3);

    // A second publisher on the same stream is refused while the first is live.
    let second = peer::publish(server.http_addr, &key, PublishOpts::default()).await.err().expect("must be refused");
    assert_eq!(second.status, 409, "{}", second.body);
    assert_eq!(second.error_code(), "stream_busy");

    // The session is ended only with the key that opened it (RFC 9725).
    let res = http::request(server.http_addr, "DELETE", &publisher.location, &[], b"").await;
    assert_eq!((res.status, res.error_code().as_str()), (401, "unauthorized"), "{}", res.body);
    let res = http::request(server.http_addr, "DELETE", &publisher.location, &[("Authorization", "Bearer sk_someone_else")], b"").await;
    assert_eq!((res.status, res.error_code().as_str()), (403, "forbidden"), "{}", res.body);
    assert_eq!(server.sfu.session_count(), 3, "still publishing");
    let res = http::delete_auth(server.http_addr, &publisher.location, &key).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let mut seen = Vec::new();
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
        match e {
            onair_media::SfuEvent::PublisherLeft { ref stream } | onair_media::SfuEvent::StreamEnded { ref stream } if *stream == stream_id => {
                let end = matches!(e, onair_media::SfuEvent::StreamEnded { .. });
                seen.push(e);
                if end {
                    break;
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        seen,
        [onair_media::SfuEvent::PublisherLeft { stream: stream_id.clone() }, onair_media::SfuEvent::StreamEnded { stream: stream_id.clone() }],
        "the publisher leaves, then (after the grace) the stream ends"
    );
    assert!(common::wait_until(5, || server.sfu.session_count() == 0).await, "sessions left: {}", server.sfu.session_count());
    // Viewers' connections are closed by the server.
    assert!(common::wait_until(10, || !v1.connected() && !v2.connected()).await, "viewers still connected: {:?} {:?}", v1.state(), v2.state());
    let res = http::get_auth(server.http_addr, "/api/streams/bye/health", &key).await;
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
async fn a_new_publish_takes_over_from_a_silent_publisher_and_keeps_its_viewers() {
    let server = common::start_server(2).await;
    let key = server.host_key("blip").await.unwrap();
    let first = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert!(common::wait_until(10, || first.connected()).await);
    common::wait_live(server.http_addr, "blip").await;
    let viewer = peer::watch(server.http_addr, "blip", WatchOpts::default()).await.unwrap();
    assert!(common::wait_until(10, || viewer.video().len() > 20).await);

    // The encoder's network drops: no DELETE, its session just goes quiet.
    let dropped = std::time::Instant::now();
    first.stop().await;
    let early = peer::publish(server.http_addr, &key, PublishOpts::default()).await;
    if dropped.elapsed() < Duration::from_secs(2) {
        let refused = early.err().expect("a publisher that was sending a moment ago keeps its stream");
        assert_eq!(refused.error_code(), "stream_busy");
    }
    // Once it has been silent for a few seconds, the encoder's reconnect takes over.
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(dropped.elapsed())).await;
    let before = viewer.video();
    let last = before.last().unwrap().clone();
    let second = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("the reconnect takes over");
    assert!(common::wait_until(10, || second.connected()).await);
    assert!(common::wait_until(10, || viewer.video().len() > before.len() + 20).await, "the viewer gets the new publisher's video");
    assert!(viewer.connected(), "the viewer kept its connection: {:?}", viewer.state());
    let resumed = &viewer.video()[before.len()];
    assert_eq!((resumed.ssrc, resumed.seq), (last.ssrc, last.seq.wrapping_add(1)), "one continuous track");
    assert!(resumed.is_vp8_keyframe());
    assert_eq!(server.sfu.session_count(), 2, "the silent session was closed, the new one and the viewer remain");
    second.stop().await;
    viewer.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_vanishes_is_timed_out() {
    let server = common::start_server_with(common::temp_dir("gone"), |a| {
        a.workers = Some(1);
        a.reconnect_grace = Some(1);
    })
    .await;
    let key = server.host_key("gone").await.unwrap();
    let publisher = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert!(common::wait_until(10, || publisher.connected()).await);
    common::wait_live(server.http_addr, "gone").await;
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
    let key = server.host_key("any").await.unwrap();
    let publisher = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert!(publisher.answer.body.contains("127.0.0.1"), "loopback candidate announced: {}", publisher.answer.body);
    assert!(common::wait_until(10, || publisher.connected()).await, "publisher never connected");
    common::wait_live(server.http_addr, "any").await;
    let viewer = peer::watch(server.http_addr, "any", WatchOpts::default()).await.expect("watch");
    assert!(common::wait_until(10, || viewer.video().len() > 30).await, "viewer got {}", viewer.video().len());
    viewer.stop().await;
    publisher.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_viewer_starts_from_the_cached_group_of_pictures() {
    // A keyframe every 15 frames (half a second): a whole GOP is at most 45
    // packets and fresh, so a joining viewer gets it from the cache and
    // needs nothing from the publisher.
    let server = common::start_server(2).await;
    let key = server.host_key("gop").await.unwrap();
    let opts = PublishOpts { simulcast: false, keyframe_every: 15, ..Default::default() };
    let publisher = peer::publish(server.http_addr, &key, opts).await.expect("publish");
    assert!(common::wait_until(10, || publisher.connected()).await);
    assert!(common::wait_until(10, || publisher.seen.lock().unwrap().sent > 150).await, "publisher not sending");
    let plis_before = publisher.seen.lock().unwrap().plis_total;
    common::wait_live(server.http_addr, "gop").await;
    let viewer = peer::watch(server.http_addr, "gop", WatchOpts::default()).await.expect("watch");
    assert!(common::wait_until(10, || viewer.video().len() > 60).await, "viewer got {}", viewer.video().len());

    let video = viewer.video();
    assert!(video[0].is_vp8_keyframe(), "starts on a keyframe");
    assert_continuous(&video);
    let first = video[0].frame().unwrap();
    assert_eq!(first % 15, 0, "the cached GOP starts at the last periodic keyframe (frame {first})");
    assert_eq!(publisher.seen.lock().unwrap().plis_total, plis_before, "the join asked the publisher for nothing");
    let m = http::request(server.http_addr, "GET", "/metrics", &[], b"").await.body;
    assert_eq!(common::metric(&m, "onair_first_frames_from_cache_total"), 1, "{m}");
    viewer.stop().await;
    publisher.stop().await;
    server.stop().await;
}

/// A publisher that sends keyframes only when asked (as browsers do),
/// once its group of pictures has outgrown a burst. Twelve packets a frame:
/// that takes under a second, while the keyframe is still fresh enough to show.
async fn long_gop_publisher(server: &onair::server::Server, key: &str) -> peer::TestPeer {
    let opts = PublishOpts { simulcast: false, keyframe_every: u32::MAX, top_packets: 12, ..Default::default() };
    let publisher = peer::publish(server.http_addr, key, opts).await.expect("publish");
    assert!(common::wait_until(10, || publisher.connected()).await);
    // Live on the platform too before anyone watches (see `common::wait_live`).
    let sid = publisher.answer.header("x-onair-stream").unwrap_or_default().to_owned();
    common::wait_for_json(server.http_addr, &format!("/api/streams/{sid}"), |s| s["media_state"] == "receiving").await;
    let over = onair_media::cache::MAX_GOP_BURST as u64 + 30;
    assert!(common::wait_until(20, || publisher.seen.lock().unwrap().sent > over).await, "publisher not sending");
    publisher
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_gop_gives_the_cached_keyframe_then_the_next_one() {
    // Browsers send keyframes only when asked: the GOP outgrows a burst, so
    // a joining viewer gets the cached keyframe alone (a picture at once),
    // then the live stream from the keyframe its join asked for.
    let server = common::start_server(2).await;
    let key = server.host_key("long").await.unwrap();
    let publisher = long_gop_publisher(&server, &key).await;
    let (plis_before, frame_at_join) = {
        let seen = publisher.seen.lock().unwrap();
        (seen.plis_total, seen.sent / 12)
    };
    let viewer = peer::watch(server.http_addr, "long", WatchOpts::default()).await.expect("watch");
    assert!(common::wait_until(10, || viewer.video().len() > 30).await, "viewer got {}", viewer.video().len());

    let video = viewer.video();
    assert!(video[0].is_vp8_keyframe());
    // The publisher's first keyframe, or one the SFU's refresh asked for
    // (every `KEYFRAME_REFRESH`), from the cache: older than the join.
    assert!(u64::from(video[0].frame().unwrap()) < frame_at_join, "a keyframe from the cache, frame {:?}", video[0].frame());
    // The keyframe's own packets, then straight on to the next keyframe.
    let next = video.iter().position(|r| r.frame().is_some_and(|f| f > 1)).unwrap();
    assert!(video[next].is_vp8_keyframe(), "after the cached keyframe, the viewer waits for a new one");
    assert!(u64::from(video[next].frame().unwrap()) >= frame_at_join, "a fresh keyframe, not the old GOP's continuation");
    assert_continuous(&video);
    assert!(publisher.seen.lock().unwrap().plis_total > plis_before, "the new keyframe was asked for");
    let pids: Vec<u16> = video.iter().filter_map(|r| r.frame().and(r.picture_id())).take(2).collect();
    assert_eq!(pids[1], (pids[0] + 1) & 0x7fff, "picture ids continue");
    viewer.stop().await;
    publisher.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_viewers_joining_at_once_cost_the_publisher_one_keyframe() {
    // Every joining viewer of a long-GOP stream needs a fresh keyframe; the
    // SFU asks for it once per layer and interval, not once per viewer.
    let server = common::start_server(2).await;
    let key = server.host_key("storm").await.unwrap();
    let publisher = long_gop_publisher(&server, &key).await;
    let plis_before = publisher.seen.lock().unwrap().plis_total;
    let joins = (0..20).map(|_| peer::watch(server.http_addr, "storm", WatchOpts::default()));
    let viewers: Vec<_> = futures_util::future::join_all(joins).await.into_iter().map(|v| v.expect("watch")).collect();
    let all_live = common::wait_until(15, || viewers.iter().all(|v| v.video().iter().any(|r| r.frame().is_some_and(|f| f > 1)))).await;
    assert!(all_live, "some viewers never got past the cached keyframe");
    let plis = publisher.seen.lock().unwrap().plis_total - plis_before;
    // 20 viewers over the connection setup time: one PLI per 500 ms at most.
    assert!((1..=4).contains(&plis), "publisher got {plis} PLIs for 20 joining viewers");
    for v in viewers {
        v.stop().await;
    }
    publisher.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaking_and_the_publisher_leaving_are_pushed_over_the_health_socket() {
    use futures_util::StreamExt;
    let server = common::start_server(2).await;
    let key = server.host_key("talk").await.unwrap();
    // The test publisher tags all its audio with RFC 6464 level 30 dBov: speech.
    let publisher = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    // Health is the host's: the stream key (or the host's access token) opens it.
    let url = format!("ws://{}/api/streams/talk/health/ws", server.http_addr);
    let denied = tokio_tungstenite::connect_async(&url).await;
    assert!(denied.is_err(), "no token, no health feed");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}?token={key}")).await.expect("websocket");
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.iter().any(|e: &serde_json::Value| e["type"] == "speaking") || !seen.iter().any(|e| e["type"] == "active_speaker") {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.expect("events in time").expect("open").expect("message");
        let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        if !v["event"].is_null() {
            seen.push(v["event"].clone());
        }
    }
    // Events name the session by its tag: its URL (a capability) never leaves its owner.
    let secret = publisher.location.rsplit('/').next().unwrap();
    let session = secret.parse::<onair_media::SessionId>().unwrap().tag().to_string();
    assert!(!seen.iter().any(|e| e.to_string().contains(secret)), "{seen:?}");
    let speaking = seen.iter().find(|e| e["type"] == "speaking").unwrap();
    assert_eq!(speaking["speaking"], true, "{seen:?}");
    assert_eq!(speaking["session"], session.as_str());
    assert_eq!(seen.iter().find(|e| e["type"] == "active_speaker").unwrap()["session"], session.as_str());
    assert!(seen.iter().any(|e| e["type"] == "stream_live"), "{seen:?}");
    let h = http::get_auth(server.http_addr, "/api/streams/talk/health", &key).await.json();
    let audio = h["publisher"]["tracks"].as_array().unwrap().iter().find(|t| t["kind"] == "audio").cloned().unwrap();
    assert_eq!(audio["speaking"], true, "{h}");

    // The publisher leaving reaches the socket at once, not at the next snapshot.
    let res = http::delete_auth(server.http_addr, &publisher.location, &key).await;
    assert_eq!(res.status, 200);
    let left = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(msg)) = ws.next().await {
            let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap_or("{}")).unwrap_or_default();
            if v["event"]["type"] == "publisher_left" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(left, Ok(true), "no publisher_left event");
    publisher.stop().await;
    server.stop().await;
}
