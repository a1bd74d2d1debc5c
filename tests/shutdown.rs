//! Stopping as systemd and Docker do: the `onair` binary, in a process of
//! its own, gets SIGTERM while a viewer watches (a watch page and its
//! WebRTC session). It closes the page's WebSocket politely (1001), exits
//! 0 within 10 s, and the viewer's stay is in the database with its watch
//! time up to the stop.

mod common;

use std::str::FromStr;
use std::time::{Duration, Instant};

use common::api::{Api, Ws};
use common::peer::{self, PublishOpts, WatchOpts};
use common::process::Process;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_0_with_watch_time_stored() {
    let dir = common::temp_dir("term");
    let mut server = Process::start(&dir, &[], &[]).await;
    let api = Api::new(server.addr);
    let ana = api.register("ana", "host").await;
    let key = api.stream_key(&ana).await;
    let publisher = peer::publish(server.addr, &key, PublishOpts::default()).await.expect("publish");
    let sid: i64 = publisher.answer.header("x-onair-stream").unwrap().parse().unwrap();
    common::wait_for_json(server.addr, &format!("/api/streams/{sid}"), |s| s["media_state"] == "receiving").await;

    // One viewer: the watch page and its WebRTC session, one viewer key.
    let viewer_key = "page_sigterm_1";
    let mut page = Ws::connect(server.addr, None).await;
    page.send(json!({ "type": "watch", "stream": sid, "viewer": viewer_key })).await;
    page.next_of("subscribed", 5).await;
    let video = peer::watch(server.addr, &sid.to_string(), WatchOpts { viewer: Some(viewer_key.into()), ..Default::default() }).await.expect("watch");
    assert!(common::wait_until(10, || video.connected()).await);
    common::wait_for_json(server.addr, &format!("/api/streams/{sid}"), |s| s["viewers"] == 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let stopped_at = onair::clock::now_ms();
    let t0 = Instant::now();
    server.signal(libc::SIGTERM);
    assert_eq!(page.until_closed(10).await, Some(1001), "the page's socket is closed politely (going away)");
    let status = server.wait(Duration::from_secs(10)).await.unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{}", server.logged()));
    assert!(status.success(), "exit status {status:?}:\n{}", server.logged());
    assert!(t0.elapsed() < Duration::from_secs(10));

    // The stay is closed at the stop, not at its last heartbeat.
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&format!("sqlite://{}", dir.join("onair.db").display())).unwrap();
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    let rows: Vec<(String, i64, Option<i64>, i64)> = sqlx::query_as("SELECT viewer_key, joined_at, left_at, webrtc FROM viewer_sessions WHERE stream_id = $1").bind(sid).fetch_all(&pool).await.unwrap();
    assert_eq!(rows.len(), 1, "one viewer: {rows:?}");
    let (key, joined, left, webrtc) = &rows[0];
    assert_eq!((key.as_str(), *webrtc), (format!("k:{viewer_key}").as_str(), 1));
    let left = left.expect("the stay was ended at the stop");
    assert!(left >= stopped_at && left - joined >= 1500, "watch time up to the stop: joined {joined}, left {left}, stopped {stopped_at}");
    pool.close().await;
    publisher.stop().await;
    video.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
