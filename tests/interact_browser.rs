//! Polls and Q&A through the pages in Chromium (issue 18):
//! `tests/browser/interact.mjs` plays a host in the studio, a viewer on a
//! desktop watch page and one on a phone (see there). Screenshots (desktop
//! 1280x800, phone 390x844) go to a temporary directory printed at the end.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), node, and `npm ci` in
//! tests/browser; skipped loudly without them, a failure under `CI=true`.

mod common;

use common::browser::{browser_path, missing_prerequisite, run_script, screenshot_dir, skip};
use serde_json::{json, Value};

fn rect(v: &Value) -> (f64, f64, f64, f64) {
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("no {k} in {v}"));
    (f("left"), f("top"), f("right"), f("bottom"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_vote_and_ask_while_the_host_runs_the_poll_and_queue() {
    let chromium = browser_path("CHROMIUM", "/usr/bin/chromium");
    let missing = missing_prerequisite(&[(&chromium, "apt-get install chromium")], &["playwright-core"]);
    if skip("polls and Q&A browser test", missing) {
        return;
    }
    let server = common::start_server_default_bind(2).await;
    let shots = screenshot_dir("interact");
    let out = run_script("interact.mjs", &["--base", &server.url(), "--timeout-ms", &std::env::var("INTERACT_TIMEOUT_MS").unwrap_or_else(|_| "150000".into()), "--screenshots", shots.to_str().unwrap()]).await;
    let r = &out.result;
    assert_eq!(r["ok"], true, "{r}\nstderr:\n{}", out.stderr);
    eprintln!("polls and Q&A browser test: {r}\nscreenshots in {}", shots.display());

    // Before voting no results are shown; after, the bars and percentages.
    let before: Vec<&str> = r["options_before_vote"].as_array().unwrap().iter().filter_map(|o| o.as_str()).collect();
    assert_eq!(before, ["Carbonara", "Risotto", "Tiramisu"], "no percentages before one votes: {r}");
    assert_eq!(r["votes_seen"]["votes"], json!([0, 0, 2]), "a changed vote moves, the phone's adds: {r}");
    assert_eq!(r["desktop_pct"], json!(["0%", "0%", "100%"]));
    // Q&A: one's own question cannot be upvoted; the chat's banned words apply.
    assert_eq!(r["own_upvote_disabled"], true);
    assert!(r["phone_refusal"].as_str().unwrap_or("").contains("not allowed"), "{r}");
    assert_eq!(r["answering_text"], "How long does the carbonara take?");
    assert_eq!(r["studio_hidden_state"], "hidden", "the team still sees the hidden question, marked");
    // Closed: final counts, nothing to click.
    assert_eq!((r["final"]["state"].as_str(), &r["final"]["votes"]), (Some("closed"), &json!([0, 0, 2])));
    assert_eq!(r["clickable_after_close"], 0);

    // The phone: poll under the host bar, Q&A button above the like button,
    // "answering now" above the chat, nothing off screen.
    let p = &r["phone_layout"];
    let (w, h) = (p["w"].as_f64().unwrap(), p["h"].as_f64().unwrap());
    assert_eq!((w, h), (390.0, 844.0));
    let (poll, toggle, like, answering) = (rect(&p["poll"]), rect(&p["toggle"]), rect(&p["like"]), rect(&p["answering"]));
    assert!(poll.0 >= 0.0 && poll.2 <= w && poll.1 >= 60.0 && poll.3 < h * 0.6, "the poll below the host bar, in the upper part: {p}");
    assert!(toggle.3 <= like.1 + 1.0 && toggle.0 >= w - 80.0, "the Q&A button right above the like button: {p}");
    assert!(answering.3 <= rect(&p["chat"]).1 + 1.0 && answering.1 >= poll.3 - 1.0 || answering.3 <= poll.1, "answering now does not cover the poll or the chat: {p}");

    for pic in ["watch-desktop-poll", "watch-desktop-qa", "watch-phone-poll", "watch-phone-qa", "studio-tools"] {
        let f = shots.join(format!("{pic}.png"));
        let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "screenshot {} is {size} bytes", f.display());
    }
    server.stop().await;
}
