//! Co-host rooms through the pages (issue 12), in Chromium and Firefox:
//! `tests/browser/rooms.mjs` runs five studios as five hosts (fake cameras,
//! VP8) and watch pages (see there). Proves, from the pages themselves:
//! four hosts in `auto` connect as a mesh (every pair's RTCPeerConnection
//! connected and decoding frames); the fifth switches every studio to the
//! SFU (its host WHEP decoding the four others); a Chromium and a Firefox
//! watch page decode every host in its own tile; a layout change and a mute
//! made in the primary's studio show on the watch page; a host not in the
//! room asks to join from the watch page and the primary approves it in the
//! studio. Screenshots (desktop
//! 1280x800, phone 390x844) go to `$ROOMS_SCREENSHOTS` or a temporary
//! directory printed at the end.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), `/usr/bin/firefox-esr` (or
//! `$FIREFOX`), node, and `npm ci` in tests/browser; skipped loudly without
//! them, a failure under `CI=true`.

mod common;

use std::path::PathBuf;

use common::browser::{browser_path, missing_prerequisite, run_script, screenshot_dir, skip};
use serde_json::Value;

/// The browser runs of this file one at a time: two at once (a room of
/// studios beside FFmpeg encoders) are more than two cores decode in time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn tiles(r: &Value, key: &str) -> Vec<Value> {
    r[key]["tiles"].as_array().cloned().unwrap_or_default()
}

/// Two hosts (a mesh of two, no switch to the SFU), then the watch pages:
/// the pages' room code end to end, short enough for every CI run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_studios_mesh_and_watch_pages_in_chromium_and_firefox_decode_both_hosts() {
    rooms(true).await;
}

// The whole proof (five studios, the switch to the SFU). The studios run a
// small camera (`/publish?camera=low`, 640x360 at 15 fps). Seen passing
// whole on this machine (2 cores, load average 15-18 from other builds and
// browsers, 4 December 2026, 16:01) in 205 s: the mesh of four, the switch
// of all five to the SFU, the Chromium desktop and phone watch pages, the
// Firefox one and ask to join. Earlier runs had stopped at a layout step
// (two layout changes sent at once landed out of order: the studio now
// sends them one at a time) and at a watch page whose load event did not
// come under load (the script now waits for DOMContentLoaded). Five
// Chromium encoders and up to twenty decoders on two cores make it a
// benchmark-sized scenario, not a test for every CI run: run it by hand
// with `cargo test --test rooms_browser -- --ignored` (budget
// `$ROOMS_TIMEOUT_MS`, 600 s by default).
#[ignore = "five studios on two cores take three to six minutes: run by hand, see the comment above"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_studios_mesh_the_fifth_switches_to_sfu_and_watch_pages_decode_every_host() {
    rooms(false).await;
}

/// Two FFmpeg processes as co-hosts (OBS-style H.264, constrained baseline,
/// yuv420p, publishing over WHIP with their own stream keys) and a studio
/// host (VP8) in one room: a Chromium watch page decodes all three, each in
/// its own tile, from the slot of its WHEP connection (frames decoded per
/// slot and the slot's codec, from getStats). Not in Firefox: its build on
/// this machine has no H.264 decoder. Screenshot `watch-ffmpeg-cohosts.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ffmpeg_cohosts_and_a_studio_host_play_on_the_chromium_watch_page() {
    let chromium = browser_path("CHROMIUM", "/usr/bin/chromium");
    let missing = missing_prerequisite(&[(&chromium, "apt-get install chromium")], &["playwright-core"]);
    if skip("FFmpeg co-hosts browser test", missing) {
        return;
    }
    let Some(exe) = common::ffmpeg::or_skip("FFmpeg co-hosts browser test") else { return };
    let _one = ONE_AT_A_TIME.lock().await;
    let server = common::start_server_default_bind(2).await;
    let shots = std::env::var("ROOMS_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|_| screenshot_dir("rooms-ffmpeg"));
    let args = ["--base", &server.url(), "--ffmpeg", &exe, "--screenshots", shots.to_str().unwrap()];
    let out = run_script("rooms-ffmpeg.mjs", &args).await;
    let r = &out.result;
    assert_eq!(r["ok"], true, "{r}\nstderr:\n{}", out.stderr);
    eprintln!("FFmpeg co-hosts browser test: {r}\nscreenshot in {}", shots.display());
    let hosts = r["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 3, "ann and the two FFmpeg co-hosts are live in the room: {r}");
    assert_eq!(r["watch"]["sessionSlots"].as_u64().map(|n| n >= 3), Some(true), "a slot per host: {r}");
    let tiles = tiles(r, "watch");
    let before = r["watch_before"].as_array().unwrap();
    for (name, codec) in [("ann", "video/VP8"), ("bob", "video/H264"), ("cat", "video/H264")] {
        let t = tiles.iter().find(|t| t["host"].as_str().is_some_and(|h| h.starts_with(&format!("{name}_")))).unwrap_or_else(|| panic!("{name} has a tile: {tiles:?}"));
        assert_eq!(t["codec"].as_str(), Some(codec), "{name}'s slot carries its codec: {t}");
        assert!(t["videoWidth"].as_u64().unwrap_or(0) > 0 && !t["name"].as_str().unwrap_or("").is_empty(), "{name}'s tile shows video and a name: {t}");
        let then = before.iter().find(|b| b["host"] == t["host"]).and_then(|b| b["framesBySlot"].as_u64()).unwrap_or(0);
        let now = t["framesBySlot"].as_u64().unwrap_or(0);
        assert!(then > 10 && now > then, "{name}'s slot decodes, and goes on decoding: {then} then {now}");
    }
    let keys: std::collections::BTreeSet<&str> = tiles.iter().filter_map(|t| t["key"].as_str()).collect();
    assert_eq!(keys.len(), 3, "three tiles, three slots: {tiles:?}");
    let f = shots.join("watch-ffmpeg-cohosts.png");
    assert!(std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0) > 10_000, "screenshot {}", f.display());
    server.stop().await;
}

async fn rooms(quick: bool) {
    let chromium = browser_path("CHROMIUM", "/usr/bin/chromium");
    let firefox = browser_path("FIREFOX", "/usr/bin/firefox-esr");
    let missing = missing_prerequisite(&[(&chromium, "apt-get install chromium"), (&firefox, "apt-get install firefox-esr")], &["playwright-core", "puppeteer-core"]);
    if skip("co-host rooms browser test", missing) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let server = common::start_server_default_bind(2).await;
    let shots = std::env::var("ROOMS_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|_| screenshot_dir("rooms"));
    let timeout = std::env::var("ROOMS_TIMEOUT_MS").unwrap_or_else(|_| if quick { "300000" } else { "600000" }.into());
    let mut args = vec!["--base".to_owned(), server.url(), "--timeout-ms".into(), timeout, "--screenshots".into(), shots.to_str().unwrap().to_owned()];
    if quick {
        args.push("--quick".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_script("rooms.mjs", &args).await;
    let r = &out.result;
    assert_eq!(r["ok"], true, "{r}\nstderr:\n{}", out.stderr);
    eprintln!("co-host rooms browser test: {r}\nscreenshots in {}", shots.display());
    let hosts: Vec<String> = r["hosts"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_owned()).collect();
    let n = if quick { 2 } else { 5 };
    let mesh_n = n.min(4);
    assert_eq!(hosts.len(), n);

    // The co-host's studio went live into the primary's room.
    assert_eq!(r["bob_stream"], r["stream"], "bob publishes into ann's room: {r}");
    assert!(r["invitation_text"].as_str().unwrap_or("").contains(&hosts[0]), "the invitation names who invites: {r}");

    // Four hosts: a mesh, each pair connected directly and decoding, no host WHEP.
    for (i, name) in ["ann", "bob", "cat", "dee"].into_iter().take(mesh_n).enumerate() {
        let m = &r["mesh"][name];
        assert_eq!(m["topology"], "mesh", "{name}: {m}");
        assert!(m["whep"].is_null(), "{name} needs no SFU view in a mesh: {m}");
        let pairs = m["pairs"].as_object().unwrap();
        let others: Vec<&String> = hosts[..mesh_n].iter().enumerate().filter(|(j, _)| *j != i).map(|(_, h)| h).collect();
        assert_eq!(pairs.len(), mesh_n - 1, "{name}: {m}");
        for o in others {
            let p = &pairs[o.as_str()];
            assert_eq!((p["state"].as_str(), p["fallback"].as_bool()), (Some("connected"), Some(false)), "{name} - {o}: {p}");
            assert!(p["framesReceived"].as_u64().unwrap_or(0) > 0, "{name} decodes {o} directly: {p}");
            assert_eq!(p["offerer"].as_bool(), Some(hosts[i].as_str() < o.as_str()), "the smaller username offers");
        }
        assert_eq!(m["signalErrors"], 0, "no signal refused between hosts of the room: {m}");
    }
    // Five: every studio through the SFU, its host WHEP decoding the four others.
    for name in ["ann", "bob", "cat", "dee", "eve"].into_iter().filter(|_| !quick) {
        let s = &r["sfu"][name];
        assert_eq!((s["topology"].as_str(), s["pairs"].as_u64()), (Some("sfu"), Some(0)), "{name}: {s}");
        let decoding = s["whep"]["framesBySlot"].as_array().unwrap().iter().filter(|f| f.as_u64().unwrap_or(0) > 0).count();
        assert!(decoding >= 4, "{name}'s host WHEP decodes the four others: {s}");
        assert!(s["via"].as_object().unwrap().values().all(|v| v == "sfu"), "{name}: {s}");
    }

    // Watch pages: every host decoded in its own tile, with its name.
    for key in ["watch_five", "phone", "firefox"] {
        let t = tiles(r, key);
        let decoded: Vec<&str> = t.iter().filter(|t| t["framesDecoded"].as_u64().unwrap_or(0) > 0 && t["videoWidth"].as_u64().unwrap_or(0) > 0).filter_map(|t| t["host"].as_str()).collect();
        for h in &hosts[..n] {
            assert!(decoded.contains(&h.as_str()), "{key}: {h} decoded: {t:?}");
        }
        assert!(r[key]["sessionSlots"].as_u64().unwrap_or(0) >= n as u64, "{key}: a slot per host");
        assert!(t.iter().all(|t| t["name"].as_str().is_some_and(|s| !s.is_empty())), "{key}: every tile named: {t:?}");
    }
    // A grid of five is 3x3 (tiles on three columns); of two, 2x2.
    let five = tiles(r, "watch_five");
    let xs: std::collections::BTreeSet<i64> = five.iter().map(|t| t["box"]["x"].as_i64().unwrap()).collect();
    assert_eq!(xs.len(), if quick { 2 } else { 3 }, "columns of the grid: {five:?}");
    // Spotlight on cat (bob of two): one tile, theirs, filling the stage.
    let spot = tiles(r, "watch_spotlight");
    let shown: Vec<&Value> = spot.iter().filter(|t| t["box"]["w"].as_i64().unwrap_or(0) > 0).collect();
    assert_eq!(shown.len(), 1, "{spot:?}");
    assert_eq!(shown[0]["host"].as_str(), Some(hosts[if quick { 1 } else { 2 }].as_str()));
    let widest = five.iter().map(|t| t["box"]["w"].as_i64().unwrap()).max().unwrap();
    // A 3x3 tile is a third of the stage, a 2x2 tile half of it.
    let (times, over) = if quick { (3, 2) } else { (2, 1) };
    assert!(shown[0]["box"]["w"].as_i64().unwrap() * over > times * widest, "the spotlight is larger than a grid tile: {spot:?}");
    // Bob muted from ann's studio: his tile says so, the others' do not.
    let muted = tiles(r, "watch_muted");
    for t in &muted {
        assert_eq!(t["mutedBadge"].as_bool(), Some(t["host"] == hosts[1].as_str()), "{t}");
    }
    // The phone: every tile inside the 390 px wide screen.
    for t in tiles(r, "phone") {
        let (x, w) = (t["box"]["x"].as_i64().unwrap(), t["box"]["w"].as_i64().unwrap());
        assert!(x >= 0 && x + w <= 390, "on the phone's screen: {t}");
    }

    // Fay (a host, not in the room) asked from the watch page; ann approved
    // in her studio; fay's page said so and offers to go live.
    assert_eq!(r["ask_before"], "Ask to join", "{r}");
    assert_eq!((r["ask_pending"]["text"].as_str(), r["ask_pending"]["disabled"].as_bool()), (Some("Request sent"), Some(true)), "{r}");
    assert_eq!(r["ask_after"]["state"], "approved", "{r}");
    let fay = r["ask_hosts"].as_array().unwrap().iter().filter(|h| h.as_str().is_some_and(|h| h.starts_with("fay_"))).count();
    assert_eq!(fay, 1, "approved, fay is a host of the room: {r}");

    for pic in ["studio-desktop-mesh", "studio-desktop", "studio-phone", "watch-desktop-grid", "watch-desktop-spotlight", "watch-phone-grid", "watch-firefox"] {
        let f = shots.join(format!("{pic}.png"));
        let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "screenshot {} is {size} bytes", f.display());
    }
    server.stop().await;
}
