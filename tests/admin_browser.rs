//! The admin console (`/admin`, issue 18) in Chromium:
//! `tests/browser/admin.mjs` plays an admin on a desktop and a phone, a
//! viewer refused, and a logged-out visitor (see there). Every action taken
//! through the page is checked here against the API and the audit log.
//! Screenshots (desktop 1280x800, phone 390x844) go to a temporary
//! directory printed at the end.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), node, and `npm ci` in
//! tests/browser; skipped loudly without them, a failure under `CI=true`.

mod common;

use common::api::Api;
use common::browser::{browser_path, missing_prerequisite, run_script, screenshot_dir, skip};
use serde_json::{json, Value};

fn figure(v: &Value) -> String {
    // The page writes numbers with the browser's grouping (en-US in the test).
    match v.as_i64() {
        Some(n) if n >= 1000 => format!("{},{:03}", n / 1000, n % 1000),
        Some(n) => n.to_string(),
        None => "—".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_runs_the_console_and_others_are_kept_out() {
    let chromium = browser_path("CHROMIUM", "/usr/bin/chromium");
    let missing = missing_prerequisite(&[(&chromium, "apt-get install chromium")], &["playwright-core"]);
    if skip("admin console browser test", missing) {
        return;
    }
    // New hosts wait for an admin's approval (`--host-approval`).
    let server = common::start_server_with(common::temp_dir("admin-browser"), |a| {
        a.host_approval = Some(true);
        a.workers = Some(1);
    })
    .await;
    let api = Api::new(server.http_addr);
    let root = api.register("root", "viewer").await;
    server.app.accounts.set_role(root.id, onair::accounts::Role::Admin).await.unwrap();
    // Logged in again: the page reads the role from the login's user.
    let login = api.post("/api/auth/login", None, json!({ "username": "root", "password": "correct horse" })).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let login = login.json();
    assert_eq!(login["user"]["role"], "admin", "{login}");

    let shots = screenshot_dir("admin");
    let out = run_script("admin.mjs", &["--base", &server.url(), "--admin-login", &login.to_string(), "--timeout-ms", "120000", "--screenshots", shots.to_str().unwrap()]).await;
    let r = &out.result;
    assert_eq!(r["ok"], true, "{r}\nstderr:\n{}", out.stderr);
    eprintln!("admin console browser test: {r}\nscreenshots in {}", shots.display());
    assert_eq!(r["csp_violations"], json!([]), "the page fits the Content-Security-Policy");

    // The overview shows the API's figures: first the host waiting for
    // approval, then (after the approval, the stream and the report) one
    // stream live, one report open, four new accounts (root and the script's three).
    for stage in ["overview_before", "overview"] {
        let (a, p) = (&r[stage]["api"], &r[stage]["page"]);
        for k in ["live_streams", "viewers_now", "peak_today", "new_users_today", "revenue_today", "open_reports", "pending_hosts"] {
            assert_eq!(p[k].as_str(), Some(figure(&a[k]).as_str()), "{stage} {k}: page {p}, API {a}");
        }
    }
    let (b, a) = (&r["overview_before"]["api"], &r["overview"]["api"]);
    assert_eq!((b["pending_hosts"].as_i64(), b["live_streams"].as_i64(), b["open_reports"].as_i64()), (Some(1), Some(0), Some(0)), "{b}");
    assert_eq!((a["pending_hosts"].as_i64(), a["live_streams"].as_i64(), a["open_reports"].as_i64(), a["new_users_today"].as_i64()), (Some(0), Some(1), Some(1), Some(4)), "{a}");
    assert_eq!((r["approval_api"]["state"].as_str(), r["approval_api"]["note"].as_str()), (Some("approved"), Some("Welcome aboard")), "the host is approved with the admin's note: {r}");
    assert_eq!(r["health"]["charts"], 6, "six charts of the day's samples: {r}");
    // The line: one point a sample, left to right, the highest value at the top.
    let pts: Vec<(f64, f64)> = r["chart_drawing"]["points"].as_array().unwrap().iter().map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap())).collect();
    assert_eq!(pts.len(), 5, "{r}");
    assert!(pts.windows(2).all(|w| w[1].0 > w[0].0), "x grows with time: {pts:?}");
    let top = pts.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    let bottom = pts.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    assert_eq!((pts[4].1, pts[3].1), (top, bottom), "9 viewers highest, 0 lowest: {pts:?}");
    assert_eq!((r["chart_drawing"]["headline"].as_str(), r["chart_drawing"]["one_sample_line"].as_bool()), (Some("4"), Some(false)), "{r}");
    assert!(r["health"]["workers"].as_str().unwrap().starts_with('1'), "one media worker: {r}");
    assert_eq!((r["admin_link"].as_bool(), r["live_listed"].as_bool(), r["report_listed"].as_bool()), (Some(true), Some(true), Some(true)), "{r}");

    // Disable then enable, seen by the API (and a disabled user cannot log in).
    assert_eq!(r["search_total"], "1 user");
    assert_eq!((r["disabled_api"].as_bool(), r["enabled_api"].as_bool()), (Some(true), Some(false)), "{r}");
    assert!(r["disabled_login"].as_u64().is_some_and(|s| s >= 400), "a disabled user is refused a login: {r}");
    // The stream ended; the report resolved with the note written in the dialog.
    assert_eq!(r["ended_state"], "archived", "ended and saved, so its figures stay: {r}");
    assert_eq!((r["report_after"]["state"].as_str(), r["report_after"]["resolution"].as_str()), (Some("resolved"), Some("Stream ended")), "{r}");
    // The replay taken down: no longer saved, gone from the public listing.
    assert_eq!(r["after_takedown"], "ended", "{r}");
    assert!(!r["public_recent"].as_array().unwrap().iter().any(|id| id.as_i64() == r["report_after"]["stream_id"].as_i64()), "{r}");
    assert_eq!((r["overview_after"]["live_streams"].as_str(), r["overview_after"]["open_reports"].as_str()), (Some("0"), Some("0")), "{r}");

    // The audit log, newest first, on the page as in the API.
    let actions: Vec<&str> = r["audit_api"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["delete_webhook", "create_webhook", "take_down", "resolve_report", "end_stream", "change_user", "change_user", "approve_host"], "{r}");
    let page_actions: Vec<&str> = r["audit_page"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(page_actions, actions);
    let row = |i: usize| r["audit_page"][i]["cells"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(row(4)[2], "Ended stream");
    assert_eq!(row(4)[4], "Flashing lights, reported by viewers", "the reason the admin gave: {r}");
    assert!(row(4)[3].contains("Late show"), "{r}");
    assert!(row(5)[3].contains("enabled") && row(6)[3].contains("disabled"), "{r}");
    assert_eq!(row(3)[2], "Resolved report");
    assert_eq!((row(2)[2].as_str(), row(2)[4].as_str()), ("Took replay down", "Copyrighted music throughout"), "{r}");
    assert_eq!((row(7)[2].as_str(), row(7)[4].as_str()), ("Approved host", "Welcome aboard"), "{r}");
    assert!(row(0)[1].contains("@root"), "the admin who acted: {r}");

    // The phone: nothing wider than the screen, sections stacked, wide tables scroll in their box.
    let p = &r["phone_layout"];
    assert_eq!((p["w"].as_i64(), p["scroll_width"].as_i64()), (Some(390), Some(390)), "no sideways scrolling of the page: {p}");
    let sections = p["sections"].as_array().unwrap();
    for w in sections.windows(2) {
        assert!(w[1]["top"].as_i64() > w[0]["top"].as_i64(), "sections stack: {p}");
    }
    assert!(sections.iter().all(|s| s["left"].as_i64() >= Some(0) && s["right"].as_i64() <= Some(390)), "{p}");
    let buttons = p["users_actions"].as_array().unwrap();
    assert!(buttons.len() >= 3 && buttons.iter().all(|b| b["left"].as_i64() >= Some(0) && b["right"].as_i64() <= Some(390)), "each user's actions on screen: {p}");
    assert_eq!((p["table_scrolls"].as_bool(), p["table_wrap_overflow"].as_str()), (Some(true), Some("auto")), "{p}");

    // Others: admins only for a viewer, the login page for nobody.
    assert_eq!((r["viewer"]["heading"].as_str(), r["viewer"]["console_hidden"].as_bool(), r["viewer"]["admin_link"].as_bool()), (Some("Admins only"), Some(true), Some(false)), "{r}");
    assert_eq!(r["anonymous_url"], "/login?next=%2Fadmin");

    for pic in ["admin-desktop", "admin-desktop-users", "admin-desktop-audit", "admin-phone", "admin-phone-users", "admin-phone-audit", "admin-viewer-refused"] {
        let f = shots.join(format!("{pic}.png"));
        let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "screenshot {} is {size} bytes", f.display());
    }
    server.stop().await;
}
