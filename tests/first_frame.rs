//! A viewer who joins a browser's stream long after it started gets its
//! first frame from the SFU's keyframe cache (issue 11: the
//! `onair_first_frames_from_cache_total` counter stayed 0).
//!
//! Browsers send a keyframe only when asked; the cache gives a joining
//! viewer a keyframe only while it is at most `MAX_KEYFRAME_AGE` old. So
//! while a stream has no viewers the SFU asks its publisher for a keyframe
//! of every layer it sends once the newest is older than `KEYFRAME_REFRESH`:
//! the first viewer starts from the cache. (With viewers it does not: each
//! refresh would reach all of them; a join then asks, as before.)

mod common;

use std::time::Duration;

use common::http;
use common::peer::{self, PublishOpts, WatchOpts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_joining_a_running_browser_stream_starts_from_the_cache() {
    let server = common::start_server(2).await;
    let key = server.host_key("late").await.unwrap();
    // Like a browser: one keyframe at the start, then only when asked (a PLI).
    let opts = PublishOpts { simulcast: true, keyframe_every: u32::MAX, ..Default::default() };
    let publisher = peer::publish(server.http_addr, &key, opts).await.expect("publish");
    assert!(common::wait_until(10, || publisher.connected()).await);
    // Long after the first keyframe: it is far too old to show anyone.
    tokio::time::sleep(onair_media::cache::MAX_KEYFRAME_AGE + Duration::from_secs(3)).await;
    let asked = publisher.seen.lock().unwrap().plis_total;
    assert!(asked >= 2, "the SFU kept asking for keyframes while nobody watched ({asked} PLIs)");

    let metrics = || async { http::request(server.http_addr, "GET", "/metrics", &[], b"").await.body };
    assert_eq!(common::metric(&metrics().await, "onair_first_frames_from_cache_total"), 0);
    let viewer = peer::watch(server.http_addr, "late", WatchOpts::default()).await.expect("watch");
    assert!(common::wait_until(10, || viewer.video().len() > 30).await, "viewer got {}", viewer.video().len());
    let video = viewer.video();
    assert!(video[0].is_vp8_keyframe(), "starts on a keyframe");
    assert!(video[0].frame() > Some(1), "a refreshed keyframe, not the first one: frame {:?}", video[0].frame());
    let m = metrics().await;
    assert_eq!(common::metric(&m, "onair_first_frames_from_cache_total"), 1, "the join was served from the cache: {m}");
    viewer.stop().await;
    publisher.stop().await;
    server.stop().await;
}
