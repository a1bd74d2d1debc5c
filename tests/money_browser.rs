//! Money in a real browser against the real server: a viewer buys coins at
//! the development checkout (the provider's webhook really posted back and
//! verified), buys a ticket from the player's overlay and plays the
//! ticketed stream (the host publishes from the studio), and sends gifts that
//! the host sees animated on their own watch page (a big Rocket, a Hearts
//! combo to ×10, the supporters strip). Driven through the UI by
//! `tests/browser/money.mjs` (playwright-core); the balances are then
//! checked through the API and the ledger.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), node, and `npm ci` in
//! tests/browser. Without them the test is skipped loudly; with `CI=true`
//! a missing piece is a failure.

mod common;

use common::api::Api;
use common::browser::{browser_path, missing_prerequisite, run_script, screenshot_dir, skip};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_buys_coins_a_ticket_and_gifts_the_host_sees() {
    let chromium = browser_path("CHROMIUM", "/usr/bin/chromium");
    let missing = missing_prerequisite(&[(&chromium, "apt-get install chromium")], &["playwright-core"]);
    if skip("money browser test", missing) {
        return;
    }
    // Default media bind (0.0.0.0), as `cargo run` starts it.
    let server = common::start_server_default_bind(2).await;
    let api = Api::new(server.http_addr);

    // The host, their ticketed stream and a key (the script goes live with it).
    let r = api.post("/api/auth/register", None, json!({ "username": "ana", "email": "ana@example.org", "password": "correct horse", "role": "host", "display_name": "Ana" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let login = r.json();
    let ana = common::api::user_of(&login);
    let s = api.create_stream(&ana, json!({ "title": "Ticketed premiere", "visibility": "ticketed", "ticket_price": 300 })).await;
    let sid = s["id"].as_i64().unwrap();
    let key = api.stream_key(&ana).await;

    let shots = screenshot_dir("money");
    let host_login = json!({ "access_token": login["access_token"], "refresh_token": login["refresh_token"], "user": login["user"] }).to_string();
    let out = run_script("money.mjs", &["--base", &server.url(), "--stream", &sid.to_string(), "--key", &key, "--host-login", &host_login, "--timeout-ms", "150000", "--screenshots", shots.to_str().unwrap()]).await;
    let r = &out.result;
    assert_eq!(r["ok"], true, "{r}\nstderr:\n{}", out.stderr);
    assert!(out.success);
    assert_eq!(r["coins_after_top_up"], 1000, "{r}");
    assert!(r["frames_decoded"].as_u64().unwrap() > 0, "the ticket holder decodes video: {r}");
    assert_eq!(r["combo_seen"], 10, "{r}");
    // On a phone the tray is a bottom sheet opened by the gift button, with Send on screen.
    assert_eq!(r["gift_sheet"]["send_visible"], true, "the phone's gift sheet: {r}");
    assert!(r["chat_line"].as_str().is_some_and(|l| l.contains("sent Rocket")), "the gift's line in chat: {r}");
    assert_eq!(r["earnings"]["available"], 594, "the earnings page: {r}");

    // Through the API: 1,000 - 300 (ticket) - 500 (rocket) - 50 (hearts).
    let viewer = server.app.accounts.by_username(r["viewer"].as_str().unwrap()).await.unwrap().unwrap();
    let w = server.app.money.wallet(viewer.id).await.unwrap();
    assert_eq!((w.coins, w.held), (150, 0), "{w:?}");
    assert!(server.app.membership.has_ticket(viewer.id, sid).await.unwrap());
    let e = server.app.money.wallet(ana.id).await.unwrap();
    // 70% of each spend, rounded down: the ticket (210), the Rocket (350), two sends of five Hearts (17 + 17).
    assert_eq!(e.earnings, 210 + 350 + 17 + 17, "{e:?}");
    let report = onair::money::check::check(&server.app.pool).await.unwrap();
    assert!(report.ok, "{report:?}");
    eprintln!("money browser test: {r}; screenshots in {}", shots.display());
    server.stop().await;
}
