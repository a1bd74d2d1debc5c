//! Real browsers against the real server: headless Chromium publishes 3-layer
//! simulcast from the publish page, another browser context watches on the
//! watch page; frames must decode, and capping the layer must change the
//! decoded width. Driven by `tests/browser/e2e.mjs` (playwright-core).
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), node, and `npm ci` in
//! tests/browser. Without them the test is skipped loudly; with `CI=true`
//! a missing piece is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

fn missing_prerequisite() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} not found (apt-get install chromium)"));
    }
    if std::process::Command::new("node").arg("--version").output().is_err() {
        return Some("node not found".into());
    }
    if !browser_dir().join("node_modules/playwright-core").is_dir() {
        return Some("tests/browser/node_modules missing (cd tests/browser && npm ci)".into());
    }
    None
}

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_publishes_simulcast_and_a_viewer_switches_layers() {
    if let Some(why) = missing_prerequisite() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("browser test cannot run in CI: {why}");
        }
        eprintln!("\n!!!! SKIPPED browser test: {why} !!!!\n");
        return;
    }
    // Default media bind (0.0.0.0), as `cargo run` starts it.
    let server = common::start_server_default_bind(2).await;
    let key = server.keys.create("browser").await.unwrap();
    let shots = std::env::temp_dir().join(format!("onair-shots-{}", std::process::id()));
    let out = tokio::process::Command::new("node")
        .arg(browser_dir().join("e2e.mjs"))
        .args(["--base", &server.url(), "--key", &key, "--stream", "browser", "--timeout-ms", "90000", "--check-end"])
        .arg("--screenshots")
        .arg(&shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or_else(|| panic!("no JSON from e2e.mjs\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(r["ok"], true, "{r}\nstderr:\n{stderr}");
    assert!(out.status.success());
    assert!(r["frames_decoded"].as_u64().unwrap() > 10, "{r}");
    let (auto, low, high) = (r["width_auto"].as_u64().unwrap(), r["width_low"].as_u64().unwrap(), r["width_high"].as_u64().unwrap());
    assert!(low < auto, "capping to q must lower the decoded width: {r}");
    assert_eq!(low, 320, "q is a quarter of 1280: {r}");
    assert!(high > low, "{r}");
    assert_eq!(r["watch_ended"], true, "the viewer must see the end: {r}");
    eprintln!("browser e2e: {r}; screenshots in {}", shots.display());
    server.stop().await;
}
