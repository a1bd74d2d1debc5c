//! A single-layer stream on the watch page (issue 11 item 3): FFmpeg
//! publishes one H.264 layer over WHIP, as OBS does; Chromium watches it
//! (and Firefox, which cannot take x264's profile, is told so clearly). The page offers no quality picker (there is nothing to pick),
//! shows the stream's one resolution, which the server reads from the
//! H.264 sequence parameter set, and labels what is decoded.
//!
//! Needs FFmpeg 9 (PyPI imageio-ffmpeg), Chromium, Firefox, node and the
//! npm packages of tests/browser; skipped loudly without them, a failure
//! under `CI=true`.

mod common;


use common::browser::{browser_path, missing_prerequisite, run_script, screenshot_dir, skip};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_layer_stream_shows_its_resolution_and_no_picker() {
    let chromium = browser_path("CHROMIUM", "/usr/bin/chromium");
    let firefox = browser_path("FIREFOX", "/usr/bin/firefox-esr");
    let mut missing = missing_prerequisite(&[(&chromium, "apt-get install chromium"), (&firefox, "apt-get install firefox-esr")], &["playwright-core", "puppeteer-core"]);
    let exe = match common::ffmpeg::exe() {
        Ok(e) => Some(e),
        Err(why) => {
            missing = missing.or(Some(why));
            None
        }
    };
    if skip("single-layer watch test", missing) {
        return;
    }
    let server = common::start_server_default_bind(2).await;
    let key = server.host_key("obs").await.unwrap();
    let url = format!("{}/whip", server.url());
    let mut ff = common::ffmpeg::obs(&exe.unwrap(), &url, &key, "640x360", 30, 30, 120).spawn().expect("spawn ffmpeg");
    common::wait_for_json(server.http_addr, "/api/users/obs", |p| p["live"]["media_state"] == "receiving").await;
    let base = server.url();
    // Firefox offers H.264 only as 42e0 (constrained baseline with
    // constraint_set2), and the media engine matches profile bytes exactly,
    // so it cannot take x264's 42c0: it must be told so, once, clearly.
    let shots = screenshot_dir("single-firefox");
    let out = run_script("single-layer.mjs", &["--base", &base, "--stream", "obs", "--browser", "firefox", "--expect-unsupported", "--timeout-ms", "60000", "--screenshots", shots.to_str().unwrap()]).await;
    let r = &out.result;
    assert_eq!(r["ok"], true, "firefox: {r}\nstderr:\n{}", out.stderr);
    assert_eq!((r["unsupported"]["error"]["status"].as_u64(), r["unsupported"]["error"]["code"].as_str()), (Some(422), Some("unsupported_codec")), "a 422, never a 500: {r}");
    assert_eq!(r["attempts_after_3s"], r["unsupported"]["attempts"], "no retry loop: {r}");
    assert_eq!(r["picker"]["visible"], false, "{r}");
    for browser in ["chromium"] {
        let shots = screenshot_dir(&format!("single-{browser}"));
        let out = run_script("single-layer.mjs", &["--base", &base, "--stream", "obs", "--browser", browser, "--timeout-ms", "60000", "--screenshots", shots.to_str().unwrap()]).await;
        let r = &out.result;
        assert_eq!(r["ok"], true, "{browser}: {r}\nstderr:\n{}", out.stderr);
        assert_eq!(r["picker"]["visible"], false, "{browser}: one layer, nothing to pick: {r}");
        assert_eq!(r["picker"]["single"], "640×360", "{browser}: the stream's resolution, from the server: {r}");
        let layers = r["picker"]["layers"].as_array().unwrap();
        assert_eq!((layers.len(), layers[0]["width"].as_u64(), layers[0]["height"].as_u64()), (1, Some(640), Some(360)), "{r}");
        assert_eq!(r["labels"]["badge"], "360p", "{browser}: the decoded height: {r}");
        assert!(r["labels"]["stat_layer"].as_str().unwrap_or_default().contains("640×360"), "{r}");
        eprintln!("{browser} on a single-layer stream: {r}; screenshots in {}", shots.display());
    }
    let _ = ff.kill().await;
    server.stop().await;
}
