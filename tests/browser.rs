//! Real browsers against the real server: headless Chromium publishes 3-layer
//! simulcast from the publish page, another browser context watches on the
//! watch page; frames must decode, and capping the layer must change the
//! decoded width. Driven by `tests/browser/e2e.mjs` (playwright-core).
//! The Firefox counterparts are in tests/firefox.rs.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), node, and `npm ci` in
//! tests/browser. Without them the test is skipped loudly; with `CI=true`
//! a missing piece is a failure.

mod common;

use common::browser::{browser_path, missing_prerequisite, run_script, screenshot_dir, skip};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_publishes_simulcast_and_a_viewer_switches_layers() {
    let chromium = browser_path("CHROMIUM", "/usr/bin/chromium");
    let missing = missing_prerequisite(&[(&chromium, "apt-get install chromium")], &["playwright-core"]);
    if skip("browser test", missing) {
        return;
    }
    // Default media bind (0.0.0.0), as `cargo run` starts it.
    let server = common::start_server_default_bind(2).await;
    let key = server.host_key("browser").await.unwrap();
    let shots = screenshot_dir("chromium");
    let url = server.url();
    let out = run_script(
        "e2e.mjs",
        &["--base", &url, "--key", &key, "--stream", "browser", "--timeout-ms", "150000", "--check-end", "--screenshots", shots.to_str().unwrap()],
    )
    .await;
    let r = &out.result;
    assert_eq!(r["ok"], true, "{r}\nstderr:\n{}", out.stderr);
    assert!(out.success);
    assert!(r["frames_decoded"].as_u64().unwrap() > 10, "{r}");
    let (auto, low, high) = (r["width_auto"].as_u64().unwrap(), r["width_low"].as_u64().unwrap(), r["width_high"].as_u64().unwrap());
    // Low was measured as a drop from auto, or (auto already at Low on a
    // congested machine) from High: either way it is at most auto.
    assert!(low <= auto, "capping to q must not raise the decoded width: {r}");
    assert_eq!(low, 320, "q is a quarter of 1280: {r}");
    assert!(high > low, "{r}");
    common::browser::assert_quality_labels(r);
    assert_eq!(r["watch_ended"], true, "the viewer must see the end: {r}");
    eprintln!("browser e2e: {r}; screenshots in {}", shots.display());
    server.stop().await;
}
