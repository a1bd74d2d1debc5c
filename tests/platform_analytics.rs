//! Viewer analytics against real viewers: WebRTC sessions and open watch
//! pages counted once per viewer, load-test clients recorded but never
//! counted, peak, unique viewers, watch time, devices, the end-of-stream
//! summary.

mod common;

use std::time::Duration;

use common::api::{Api, Ws};
use common::peer::{self, PublishOpts, WatchOpts};
use serde_json::json;

const DESKTOP: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36";
const PHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148";
const BENCH: &str = "onair-bench/0.1.0 (load test)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_viewers_are_counted_once_and_load_tests_never() {
    let server = common::start_server(2).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let bea = api.register("bea", "viewer").await;
    let key = api.stream_key(&ana).await;
    let publisher = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    let sid: i64 = publisher.answer.header("x-onair-stream").unwrap().parse().unwrap();
    assert!(common::wait_until(10, || publisher.connected()).await);
    common::wait_for_json(server.http_addr, &format!("/api/streams/{sid}"), |s| s["media_state"] == "receiving").await;

    // The host's dashboard listens to the stream (not as a viewer).
    let mut host_ws = Ws::connect(server.http_addr, Some(&ana.token)).await;
    host_ws.send(json!({ "type": "subscribe", "stream": sid })).await;
    host_ws.next_of("subscribed", 5).await;

    // Viewer A: a desktop watch page and its WebRTC session, one viewer key.
    let key_a = "page_aaaaaaaa";
    let mut page_a = Ws::connect_as(server.http_addr, None, Some(DESKTOP)).await;
    page_a.send(json!({ "type": "watch", "stream": sid, "viewer": key_a })).await;
    page_a.next_of("subscribed", 5).await;
    let rtc_a = peer::watch(server.http_addr, &sid.to_string(), WatchOpts { viewer: Some(key_a.into()), user_agent: Some(DESKTOP.into()), ..Default::default() }).await.unwrap();
    // Viewer B: logged in, two phone tabs open, no WebRTC.
    let mut tab_b1 = Ws::connect_as(server.http_addr, Some(&bea.token), Some(PHONE)).await;
    let mut tab_b2 = Ws::connect_as(server.http_addr, Some(&bea.token), Some(PHONE)).await;
    for t in [&mut tab_b1, &mut tab_b2] {
        t.send(json!({ "type": "watch", "stream": sid, "viewer": "tab_bbbbbbbb" })).await;
        t.next_of("subscribed", 5).await;
    }
    // Viewer C: a player that only speaks WHEP.
    let rtc_c = peer::watch(server.http_addr, "ana", WatchOpts { user_agent: Some("Lavf/62.3.100".into()), ..Default::default() }).await.unwrap();
    // Load tests, over both paths.
    let bench_rtc = peer::watch(server.http_addr, "ana", WatchOpts { user_agent: Some(BENCH.into()), ..Default::default() }).await.unwrap();
    let mut bench_page = Ws::connect_as(server.http_addr, None, Some(BENCH)).await;
    bench_page.send(json!({ "type": "watch", "stream": sid, "viewer": "bench_cccccccc" })).await;
    assert!(common::wait_until(10, || rtc_a.connected() && rtc_c.connected() && bench_rtc.connected()).await);

    let count = host_ws.next_where(10, |v| v["type"] == "viewer_count" && v["viewers"] == 3).await;
    assert!(count.is_some(), "three real viewers: {:?}", host_ws.seen.iter().filter(|v| v["type"] == "viewer_count").collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let s = api.get(&format!("/api/streams/{sid}"), None).await.json();
    assert_eq!(s["viewers"], 3, "A (page + WebRTC), B (two tabs), C; never the load tests: {s}");
    assert_eq!(server.sfu.metrics().prometheus().lines().find(|l| l.starts_with("onair_viewers ")), Some("onair_viewers 3"), "the SFU itself has 3 WebRTC sessions (A, C and the load test)");

    let r = api.get(&format!("/api/streams/{sid}/analytics"), Some(&bea.token)).await;
    assert_eq!(r.status, 403, "a viewer does not see the host's analytics");
    let a = api.get(&format!("/api/streams/{sid}/analytics"), Some(&ana.token)).await.json();
    assert_eq!(a["viewers_now"], 3, "{a}");
    assert_eq!(a["webrtc_viewers"], 2, "A and C watched over WebRTC: {a}");
    assert_eq!(a["summary"]["unique_viewers"], 3);
    assert_eq!(a["load_test_sessions"], 2, "both load-test clients were seen and set aside");
    assert_eq!(a["devices"], json!({ "desktop": 1, "mobile": 1, "app": 1 }), "{a}");

    // Leaving: A's WebRTC ends but its page stays (still a viewer); then the page goes.
    let loc = rtc_a.location.clone();
    assert_eq!(common::http::request(server.http_addr, "DELETE", &loc, &[], b"").await.status, 200);
    rtc_a.stop().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(api.get(&format!("/api/streams/{sid}"), None).await.json()["viewers"], 3);
    page_a.close().await;
    tab_b1.close().await;
    host_ws.next_where(10, |v| v["type"] == "viewer_count" && v["viewers"] == 2).await.expect("A left; one of B's tabs is still open");
    let sessions = api.get(&format!("/api/streams/{sid}/analytics/sessions"), Some(&ana.token)).await.json();
    let rows = sessions.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{sessions}");
    let a_row = rows.iter().find(|r| r["viewer"] == format!("k:{key_a}")).expect("A's stay");
    assert!(a_row["left_at"].is_string() && a_row["webrtc"] == true && a_row["device"] == "desktop", "{a_row}");
    assert_eq!(rows.iter().find(|r| r["user_id"] == bea.id).unwrap()["left_at"], serde_json::Value::Null, "B is still here");
    let with_tests = api.get(&format!("/api/streams/{sid}/analytics/sessions?load_tests=true"), Some(&ana.token)).await.json();
    assert_eq!(with_tests.as_array().unwrap().len(), 5);
    assert!(with_tests.as_array().unwrap().iter().filter(|r| r["load_test"] == true).all(|r| r["device"] == "load_test"));

    // Some engagement, then the end: the summary is final.
    api.post(&format!("/api/streams/{sid}/chat"), Some(&bea.token), json!({ "text": "great show" })).await;
    api.post(&format!("/api/streams/{sid}/like"), Some(&bea.token), json!({})).await;
    let r = api.post(&format!("/api/streams/{sid}/end"), Some(&ana.token), json!({ "save": true })).await;
    assert_eq!(r.json()["state"], "archived");
    let a = api.get(&format!("/api/streams/{sid}/analytics"), Some(&ana.token)).await.json();
    let sum = &a["summary"];
    assert_eq!(a["over"], true);
    assert_eq!(a["viewers_now"], 0, "everyone's stay ended with the stream");
    assert_eq!((sum["unique_viewers"].as_i64(), sum["peak_viewers"].as_i64()), (Some(3), Some(3)), "{a}");
    assert_eq!((sum["likes"].as_i64(), sum["chat_messages"].as_i64()), (Some(1), Some(1)), "a like and a comment (the went-live system line is not one): {a}");
    assert!(sum["total_watch_seconds"].as_i64().unwrap() >= 2 && sum["average_watch_seconds"].as_i64().unwrap() >= 1, "{a}");
    assert!(sum["duration_seconds"].as_i64().unwrap() >= 2);
    assert_eq!(a["retention"][0]["after_seconds"], 30);
    let open = api.get(&format!("/api/streams/{sid}/analytics/sessions"), Some(&ana.token)).await.json();
    assert!(open.as_array().unwrap().iter().all(|r| r["left_at"].is_string()), "{open}");
    assert_eq!(api.get(&format!("/api/streams/{sid}"), None).await.json()["peak_viewers"], 3);

    for t in [tab_b2, bench_page] {
        t.close().await;
    }
    rtc_c.stop().await;
    bench_rtc.stop().await;
    publisher.stop().await;
    host_ws.close().await;
    server.stop().await;
}
