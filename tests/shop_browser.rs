//! Live shopping through the pages in Chromium (issue 16):
//! `tests/browser/shop.mjs` plays a seller in the studio, a viewer on a
//! desktop watch page who buys in a flash sale, and one on a phone who
//! sees it sell out (see there). Screenshots (desktop 1280x800, phone
//! 390x844) go to a temporary directory printed at the end.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), node, and `npm ci` in
//! tests/browser; skipped loudly without them, a failure under `CI=true`.

mod common;

use common::browser::{browser_path, missing_prerequisite, run_script, screenshot_dir, skip};
use serde_json::Value;

fn rect(v: &Value) -> (f64, f64, f64, f64) {
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("no {k} in {v}"));
    (f("left"), f("top"), f("right"), f("bottom"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_runs_a_flash_sale_and_viewers_buy_until_it_sells_out() {
    let chromium = browser_path("CHROMIUM", "/usr/bin/chromium");
    let missing = missing_prerequisite(&[(&chromium, "apt-get install chromium")], &["playwright-core"]);
    if skip("live shopping browser test", missing) {
        return;
    }
    let server = common::start_server_default_bind(2).await;
    let shots = screenshot_dir("shop");
    let out = run_script("shop.mjs", &["--base", &server.url(), "--timeout-ms", &std::env::var("SHOP_TIMEOUT_MS").unwrap_or_else(|_| "150000".into()), "--screenshots", shots.to_str().unwrap()]).await;
    let r = &out.result;
    assert_eq!(r["ok"], true, "{r}\nstderr:\n{}", out.stderr);
    eprintln!("live shopping browser test: {r}\nscreenshots in {}", shots.display());

    assert!(r["pin_text"].as_str().unwrap_or("").contains("Linen scarf") && r["pin_text"].as_str().unwrap_or("").contains("800"), "the pinned card at the live price: {r}");
    assert_eq!(r["countdown_buy_disabled"], true, "no buying during the countdown: {r}");
    assert!(r["active_label"].as_str().unwrap_or("").contains("1 left"), "{r}");
    assert!(r["pay_label"].as_str().unwrap_or("").contains("500"), "two taps: the second pays the sale price: {r}");
    assert_eq!(r["order"]["status"], "paid");
    assert_eq!(r["order"]["total"], 500);
    assert_eq!(r["phone_banner"]["buy_hidden"], true, "{r}");
    assert_eq!(r["phone_banner"]["pin_disabled"], true, "sold out on the pinned card too: {r}");
    assert_eq!(r["seller_figures"]["orders"], 1);
    assert_eq!(r["seller_figures"]["revenue"], 500);

    // The phone: the card and banner under the host bar, on screen, above the chat.
    let p = &r["phone_layout"];
    let (w, h) = (p["w"].as_f64().unwrap(), p["h"].as_f64().unwrap());
    assert_eq!((w, h), (390.0, 844.0));
    let (pin, banner) = (rect(&p["pin"]), rect(&p["banner"]));
    for b in [pin, banner] {
        assert!(b.0 >= 0.0 && b.2 <= w && b.1 >= 60.0 && b.3 < h * 0.55, "on screen, in the upper part: {p}");
    }
    assert!(pin.3 <= banner.1 + 1.0, "the banner under the card: {p}");

    for pic in ["watch-desktop-countdown", "watch-phone-countdown", "watch-desktop-sheet", "watch-desktop-sold-out", "watch-phone-sold-out", "studio-console", "studio-console-sold"] {
        let f = shots.join(format!("{pic}.png"));
        let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "screenshot {} is {size} bytes", f.display());
    }
    server.stop().await;
}
