//! The platform pages in a real browser against the real server: a host
//! registers, schedules a stream on the dashboard, makes a stream key, goes
//! live and publishes the fake camera from the studio; a viewer (another
//! browser context) finds it on the directory, watches, chats, and likes;
//! the host sees the chat, deletes the message, reloads the studio mid-stream
//! and goes live again (the viewer plays on, on the same connection), the
//! server loses the studio's session and the studio gets back on air by
//! itself (the viewer plays on again), and the host ends the stream. Driven
//! through the UI by `tests/browser/platform.mjs` (playwright-core).
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), node, and `npm ci` in
//! tests/browser. Without them the test is skipped loudly; with `CI=true`
//! a missing piece is a failure.

mod common;

use common::browser::{browser_path, missing_prerequisite, run_script, screenshot_dir, skip};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_goes_live_from_the_dashboard_and_a_viewer_watches_chats_and_likes() {
    let chromium = browser_path("CHROMIUM", "/usr/bin/chromium");
    let missing = missing_prerequisite(&[(&chromium, "apt-get install chromium")], &["playwright-core"]);
    if skip("platform browser test", missing) {
        return;
    }
    // Default media bind (0.0.0.0), as `cargo run` starts it.
    let server = common::start_server_default_bind(2).await;
    let shots = screenshot_dir("platform");
    let url = server.url();
    let out = run_script("platform.mjs", &["--base", &url, "--timeout-ms", "150000", "--screenshots", shots.to_str().unwrap()]).await;
    let r = &out.result;
    assert_eq!(r["ok"], true, "{r}\nstderr:\n{}", out.stderr);
    assert!(out.success);
    assert!(r["frames_decoded"].as_u64().unwrap() > 0, "the viewer must decode video: {r}");
    // Real counts from the server: the watch page and its WebRTC session are
    // one viewer, and the host's dashboard and studio are none.
    assert_eq!(r["viewer_count"], 1, "{r}");
    assert_eq!(r["viewer_count_source"], "viewer_count", "the count must come from the server's viewer_count event: {r}");
    assert_eq!(r["dashboard_viewer_count"], 1, "{r}");
    assert_eq!(r["studio_viewer_count"], 1, "the studio's health socket counts one WebRTC viewer: {r}");
    assert_eq!(r["chat_seen_by_host"], true, "{r}");
    assert_eq!(r["chat_deleted_seen"], true, "{r}");
    assert_eq!(r["likes"], 1, "{r}");
    // The studio reloaded mid-stream and went live again: the viewer saw
    // "Reconnecting" and then played on, on the same WHEP session.
    let rc = &r["reconnect"];
    eprintln!("through the studio's reconnect: {rc}");
    assert_eq!(rc["session_after"], rc["session_before"], "the viewer keeps its session through the host's reconnect: {r}");
    assert_eq!(rc["whep_joins_after"], rc["whep_joins_before"], "no second WHEP join: {r}");
    assert_eq!(rc["overlay_hidden"], true, "the Reconnecting overlay is gone: {r}");
    assert!(rc["frames_after"].as_u64() > rc["frames_before"].as_u64(), "frames decode again: {r}");
    // Then the server lost the studio's session: the studio published again
    // by itself (same broadcast clock) and the viewer played on.
    let d = &r["studio_drop"];
    eprintln!("through the studio's dropped connection: {d}");
    assert_eq!(d["studio_reconnects"], 1, "{r}");
    assert_eq!(d["new_session"], true, "{r}");
    assert_eq!(d["started_at_kept"], true, "the studio's live clock goes on: {r}");
    assert_eq!(d["viewer_session"], rc["session_before"], "still the viewer's first session: {r}");
    assert_eq!(d["viewer_whep_joins"], 1, "{r}");
    assert_eq!(d["viewer_phase"], "live", "{r}");
    assert!(d["frames_after"].as_u64() > d["frames_before"].as_u64(), "{r}");
    assert_eq!(r["dashboard_likes"], 1, "{r}");
    assert_eq!(r["ended_seen_by_viewer"], true, "{r}");
    let summary = &r["summary"];
    assert_eq!(summary["unique_viewers"], 1, "{r}");
    assert_eq!(summary["peak_viewers"], 1, "{r}");
    assert_eq!(summary["likes"], 1, "{r}");
    assert_eq!(summary["chat_messages"], 1, "the deleted message still counts as sent: {r}");
    eprintln!("platform browser test: {r}; screenshots in {}", shots.display());
    server.stop().await;
}
