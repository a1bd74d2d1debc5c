//! Firefox against the real server, through the real pages:
//! - Firefox (Debian's firefox-esr) publishes 3-layer simulcast from
//!   /publish and another Firefox context watches /watch/{stream}; frames
//!   must decode, and capping the layer to Low in the page's picker must
//!   bring the decoded width down to the publisher's low layer, a quarter of
//!   its top layer.
//! - Chromium publishes and Firefox watches.
//!
//! Driven by `tests/browser/e2e-firefox.mjs` (puppeteer-core over WebDriver
//! BiDi for Firefox, playwright-core for Chromium). Needs
//! `/usr/bin/firefox-esr` (or `$FIREFOX`), `/usr/bin/chromium` (or
//! `$CHROMIUM`) for the cross-browser test, node, and `npm ci` in
//! tests/browser. Without them the tests are skipped loudly; with `CI=true`
//! a missing piece is a failure.

mod common;

use common::browser::{browser_path, missing_prerequisite, run_script, screenshot_dir, skip, ScriptRun};
use serde_json::Value;

/// Two browsers at a time on a 2-core machine is already a lot: the tests in
/// this file run one after the other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn firefox() -> std::path::PathBuf {
    browser_path("FIREFOX", "/usr/bin/firefox-esr")
}

fn chromium() -> std::path::PathBuf {
    browser_path("CHROMIUM", "/usr/bin/chromium")
}

const FIREFOX_INSTALL: &str = "apt-get install firefox-esr";
const CHROMIUM_INSTALL: &str = "apt-get install chromium";

/// Starts a server as the Chromium test does (default media bind), publishes
/// from `publisher` and watches in Firefox.
async fn run(publisher: &str, stream: &str) -> ScriptRun {
    let server = common::start_server_default_bind(2).await;
    let key = server.host_key(stream).await.unwrap();
    let shots = screenshot_dir(&format!("{publisher}-firefox"));
    let url = server.url();
    let out = run_script(
        "e2e-firefox.mjs",
        &[
            "--base", &url, "--key", &key, "--stream", stream, "--publisher", publisher,
            "--timeout-ms", "150000", "--check-end", "--screenshots", shots.to_str().unwrap(),
        ],
    )
    .await;
    eprintln!("{publisher} -> firefox: {}; screenshots in {}", out.result, shots.display());
    server.stop().await;
    out
}

fn uint(r: &Value, field: &str) -> u64 {
    r[field].as_u64().unwrap_or_else(|| panic!("{field} missing: {r}"))
}

/// The checks both scenarios share: it ran, frames decoded, Low lowers the
/// width to the publisher's low layer, High raises it again, the end is seen.
fn assert_watched_and_switched(out: &ScriptRun) {
    let r = &out.result;
    assert_eq!(r["ok"], true, "{r}\nstderr:\n{}", out.stderr);
    assert!(out.success, "{r}");
    assert_eq!(r["viewer"], "firefox", "{r}");
    assert!(r["viewer_user_agent"].as_str().unwrap_or("").contains("Firefox/"), "{r}");
    assert!(uint(r, "frames_decoded") > 10, "{r}");
    let (auto, low, high) = (uint(r, "width_auto"), uint(r, "width_low"), uint(r, "width_high"));
    assert!(low > 0 && low < auto, "capping to Low must lower the decoded width: {r}");
    assert!(high > low, "High must raise it again: {r}");
    // The low layer is sent at a quarter of the top layer's width (the
    // page's scaleResolutionDownBy: 4); the fake cameras differ between
    // browsers, so compare with what this publisher sends.
    let top = uint(r, "top_width");
    let q = r["publisher_layers"]["q"]["width"].as_u64().unwrap_or_else(|| panic!("publisher sends no q layer: {r}"));
    assert!(q.abs_diff(top / 4) <= 1, "q should be 1/4 of the top layer: {r}");
    assert_eq!(low, q, "Low must decode the publisher's q layer: {r}");
    common::browser::assert_quality_labels(r);
    let p = &r["phone"];
    let (w, h) = (p["w"].as_f64().unwrap_or(0.0), p["h"].as_f64().unwrap_or(0.0));
    assert!(p["stage"]["top"].as_f64() <= Some(0.5) && p["stage"]["bottom"].as_f64() >= Some(h - 0.5) && p["stage"]["right"].as_f64() >= Some(w - 0.5), "full-screen video on a phone: {p}");
    assert!(p["chat"]["top"].as_f64() > Some(h * 0.4) && p["like"]["bottom"].as_f64() > Some(h - 80.0), "chat over the video, like at the bottom: {p}");
    assert_eq!(r["watch_ended"], true, "the viewer must see the end: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_publishes_simulcast_and_a_firefox_viewer_switches_layers() {
    let missing = missing_prerequisite(&[(&firefox(), FIREFOX_INSTALL)], &["puppeteer-core"]);
    if skip("Firefox publish/watch test", missing) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let out = run("firefox", "firefox").await;
    assert_watched_and_switched(&out);
    let r = &out.result;
    assert_eq!(r["publisher"], "firefox", "{r}");
    assert_eq!(r["simulcast"], true, "the page must publish simulcast from Firefox: {r}");
    let layers = r["publisher_layers"].as_object().unwrap();
    assert_eq!(layers.len(), 3, "three simulcast layers: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_publishes_and_a_firefox_viewer_switches_layers() {
    let missing = missing_prerequisite(
        &[(&firefox(), FIREFOX_INSTALL), (&chromium(), CHROMIUM_INSTALL)],
        &["puppeteer-core", "playwright-core"],
    );
    if skip("Chromium-to-Firefox test", missing) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let out = run("chromium", "cross").await;
    assert_watched_and_switched(&out);
    assert_eq!(out.result["publisher"], "chromium", "{}", out.result);
}
