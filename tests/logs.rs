//! The `onair` binary's log output (issue 11 item 11), as a separate process
//! whose standard error is a pipe, as under systemd or a log collector:
//! - no ANSI colour codes when standard error is not a terminal;
//! - `ONAIR_LOG_FORMAT=json`: one JSON object a line;
//! - the DTLS library's "Unsupported Extension Type" warning (every
//!   browser's and OpenSSL's ClientHello has extensions it does not
//!   implement) is at debug, not at the default level. Chromium publishes
//!   from the studio page to make it happen (54 lines a publish before);
//!   without Chromium that part is skipped loudly (a failure under `CI=true`).
//!
//! The binary is `CARGO_BIN_EXE_onair`; another worktree may rebuild it
//! meanwhile: re-run before believing a strange failure.

mod common;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts `onair` on free ports with `env`; returns it, its URL, and the
/// lines it logged so far (a task keeps reading the rest into `lines`).
async fn start(env: &[(&str, &str)]) -> (Child, String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let dir = common::temp_dir("logs");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onair"));
    cmd.args(["--http-addr", "127.0.0.1:0", "--media-port", "0", "--media-bind", "127.0.0.1", "--workers", "1"])
        .arg("--data-dir")
        .arg(&dir)
        .env_remove("ONAIR_LOG")
        .env_remove("ONAIR_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn onair");
    let mut reader = BufReader::new(child.stderr.take().unwrap()).lines();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = reader.next_line().await {
            lines.lock().unwrap().push(line.clone());
            if let Some(at) = line.find("http://127.0.0.1:") {
                let url: String = line[at..].chars().take_while(|c| !c.is_whitespace() && *c != '"' && *c != ')').collect();
                return url;
            }
        }
        panic!("onair exited: {:?}", lines.lock().unwrap());
    })
    .await
    .expect("onair never said where it listens");
    let keep = lines.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = reader.next_line().await {
            keep.lock().unwrap().push(line);
        }
    });
    (child, url, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_have_no_colour_codes_off_a_terminal_and_can_be_json() {
    let (mut child, _, lines) = start(&[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = lines.lock().unwrap().join("\n");
    assert!(text.contains("OnAir listening on"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI escape codes in a piped log: {text:?}");
    let _ = child.kill().await;

    let (mut child, _, lines) = start(&[("ONAIR_LOG_FORMAT", "json")]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = lines.lock().unwrap().clone();
    assert!(all.len() >= 2, "{all:?}");
    for line in &all {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string() && v["target"].is_string(), "{line}");
    }
    assert!(all.iter().any(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["message"].as_str().unwrap_or("").contains("OnAir listening on")), "{all:?}");
    let _ = child.kill().await;

    // A bad format is refused at start, in words.
    let out = Command::new(env!("CARGO_BIN_EXE_onair")).env("ONAIR_LOG_FORMAT", "xml").arg("--help").output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ONAIR_LOG_FORMAT must be 'text' or 'json'"));
}

/// Publishes from Chromium's studio page until live; returns the log lines then.
async fn publish_from_chromium(env: &[(&str, &str)]) -> Vec<String> {
    let (mut child, url, lines) = start(env).await;
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let api = common::api::Api::new(addr);
    let host = api.register("studio", "host").await;
    let key = api.stream_key(&host).await;
    let out = common::browser::run_script("publish.mjs", &["--base", &url, "--key", &key, "--timeout-ms", "60000"]).await;
    assert_eq!(out.result["ok"], true, "{}\n{}", out.result, out.stderr);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = child.kill().await;
    let all = lines.lock().unwrap().clone();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dtls_extension_warning_is_debug_noise() {
    let chromium = common::browser::browser_path("CHROMIUM", "/usr/bin/chromium");
    let missing = common::browser::missing_prerequisite(&[(&chromium, "apt-get install chromium")], &["playwright-core"]);
    if common::browser::skip("DTLS log test", missing) {
        return;
    }
    let noise = |lines: &[String]| lines.iter().filter(|l| l.contains("Unsupported Extension Type")).count();
    let default = publish_from_chromium(&[]).await;
    assert!(default.iter().any(|l| l.contains("session") || l.contains("publisher")) || !default.is_empty());
    assert_eq!(noise(&default), 0, "at the default level: {default:#?}");
    // At debug the lines are there (so they were moved, not lost): Chromium's
    // ClientHello has several extensions the DTLS library does not implement.
    let debug = publish_from_chromium(&[("ONAIR_LOG", "info,rtc_dtls=debug")]).await;
    let demoted: Vec<&String> = debug.iter().filter(|l| l.contains("Unsupported Extension Type")).collect();
    assert!(!demoted.is_empty(), "no DTLS extension lines at debug either");
    assert!(demoted.iter().all(|l| l.contains("DEBUG")), "{demoted:?}");
}
