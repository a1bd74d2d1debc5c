//! PK battles in a real browser against the real server (issue 15): two
//! studios (fake cameras) go live, one challenges the other from its
//! studio's Challenge form and the other accepts its invitation; each
//! studio shows the opponent (its host WHEP session decodes frames); a
//! watch page of each stream opens its split screen (WHEP with two slots:
//! its own host left, the opponent right, both decoding frames, from
//! getStats) and its score bar moves as a test viewer's gifts land (sent
//! over HTTP); at the end the winner banner shows and the opponent leaves
//! the watch pages. Driven by `tests/browser/battles.mjs`.
//!
//! The server's clock is the real one plus an offset the test moves: when
//! the script has seen the battle mid-way (it writes `end` into its
//! control directory), the clock jumps to the battle's end instead of the
//! page waiting out a minute.
//!
//! Screenshots (1280x800 and 390x844, a studio and a watch page, mid-battle
//! and at the end) go to `$BATTLES_SCREENSHOTS` (default: a temporary
//! directory named in the output). Needs `/usr/bin/chromium` (or
//! `$CHROMIUM`), node, and `npm ci` in tests/browser; without them the test
//! is skipped loudly (a failure with `CI=true`).

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::browser::{browser_path, missing_prerequisite, run_script, screenshot_dir, skip};
use common::shop::buyers;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_studios_battle_and_a_watch_page_of_each_shows_both_hosts_and_the_score() {
    let chromium = browser_path("CHROMIUM", "/usr/bin/chromium");
    let missing = missing_prerequisite(&[(&chromium, "apt-get install chromium")], &["playwright-core"]);
    if skip("battles browser test", missing) {
        return;
    }
    let offset = Arc::new(AtomicI64::new(0));
    let args = onair::config::SettingsArgs {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        media_port: Some(0),
        data_dir: Some(common::temp_dir("battles-browser")),
        workers: Some(2),
        static_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static")),
        battle_reward_coins: Some(100),
        ..Default::default()
    };
    let mut settings = onair::config::Settings::resolve(&args).unwrap();
    let skew = offset.clone();
    settings.platform.clock = onair::clock::Clock::from_fn(move || onair::clock::now_ms() + skew.load(Ordering::SeqCst));
    let server = onair::server::Server::start(settings).await.unwrap();
    let fan = buyers(&server, "fan", 1, 10_000).await.remove(0);

    // The script's "end now": the clock moves to the open battle's end.
    let control = common::temp_dir("battles-browser-control");
    let (pool, dir, skew) = (server.app.pool.clone(), control.clone(), offset.clone());
    let ender = tokio::spawn(async move {
        while !dir.join("end").exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (ends_at,): (Option<i64>,) = sqlx::query_as("SELECT MAX(ends_at) FROM battles WHERE state IN ('countdown', 'active')").fetch_one(&pool).await.unwrap();
        let ends_at = ends_at.expect("an open battle when the script asks for its end");
        skew.fetch_add((ends_at - (onair::clock::now_ms() + skew.load(Ordering::SeqCst))).max(0), Ordering::SeqCst);
    });

    let shots = std::env::var("BATTLES_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|_| screenshot_dir("battles"));
    let timeout = std::env::var("BATTLES_TIMEOUT_MS").unwrap_or_else(|_| "240000".into());
    let fan_token = fan.token.clone();
    let script_args = ["--base", &server.url(), "--fan-token", &fan_token, "--control", control.to_str().unwrap(), "--timeout-ms", &timeout, "--screenshots", shots.to_str().unwrap()];
    let out = run_script("battles.mjs", &script_args).await;
    ender.abort();
    let r = &out.result;
    assert_eq!(r["ok"], true, "{r}\nstderr:\n{}", out.stderr);
    eprintln!("battles browser test: {r}\nscreenshots in {}", shots.display());

    assert!(r["invitation_text"].as_str().is_some_and(|t| t.contains("challenges you to a 5 min PK battle")), "bob's studio shows the challenge: {r}");
    // Each studio decoded its opponent through its host WHEP session.
    for who in ["ann", "bob"] {
        assert!(r["studio"][who]["frames"].as_u64().unwrap_or(0) > 0, "{who}'s studio shows the opponent: {r}");
        assert!(r["heard"][who]["packets"].as_u64().unwrap_or(0) > 50, "{who}'s studio receives the opponent's audio: {r}");
        assert_eq!(r["heard"][who]["muted"], false, "{who}'s studio plays the opponent with sound: {r}");
    }
    // Each watch page: its own host in the left tile, the opponent in the right, both decoding.
    for (page, own, other) in [("watch_ann", "ann", "bob"), ("watch_bob", "bob", "ann")] {
        let w = &r[page];
        let (own, other) = (r["users"][own].as_str().unwrap(), r["users"][other].as_str().unwrap());
        let tile = |host: &str| w["tiles"].as_array().unwrap().iter().find(|t| t["host"] == host).cloned().unwrap_or_else(|| panic!("{page}: no tile of {host}: {r}"));
        let (left, right) = (tile(own), tile(other));
        assert!(left["framesDecoded"].as_u64().unwrap() > 0 && right["framesDecoded"].as_u64().unwrap() > 0, "{page}: both tiles decode: {r}");
        assert!(left["box"]["x"].as_i64().unwrap() < right["box"]["x"].as_i64().unwrap(), "{page}: its own host on the left: {r}");
        // Both named as people see them (display names, as in the score bar), not by username.
        for t in [&left, &right] {
            let name = t["name"].as_str().unwrap_or("");
            assert!(!name.is_empty() && name != t["host"].as_str().unwrap(), "{page}: a tile named by its display name: {t}");
        }
        assert!(w["session_slots"].as_u64().unwrap() >= 2, "{page}: WHEP with two slots or more: {r}");
        // The live score as the page showed it: its own host's on the left.
        assert_eq!(w["scores_seen"], serde_json::json!([r["gifts"][page]["own"], r["gifts"][page]["other"]]), "{page}: the score bar: {r}");
        assert_eq!(w["bar_on_stage"], true, "{page}: the timer and the score bar over the video: {r}");
        assert!(w["banner"].as_str().unwrap_or("").contains("wins"), "{page}: the winner banner: {r}");
        assert_eq!(w["tiles_after"].as_array().map(Vec::len), Some(1), "{page}: the opponent left at the end: {r}");
    }

    // The battle as the server kept it: bob's side got more, bob won and was paid.
    let id = r["battle"].as_i64().unwrap();
    let b = server.app.battles.get(id).await.unwrap();
    assert_eq!(b.state, "ended");
    assert_eq!(b.winner.as_deref(), r["users"]["bob"].as_str(), "{b:?}");
    let scores: Vec<i64> = b.sides.iter().map(|s| s.score).collect();
    assert_eq!(scores, vec![r["gifts"]["watch_ann"]["own"].as_i64().unwrap(), r["gifts"]["watch_bob"]["own"].as_i64().unwrap()], "{b:?}");
    server.stop().await;
}
