//! Running the node scripts in tests/browser against a server started by the
//! test: prerequisite checks (skip loudly locally, fail with `CI=true`) and
//! the one-JSON-line result protocol of the scripts.

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// tests/browser, where the scripts and their node_modules live.
pub fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// `$var` if set, else `default`: the path of a browser binary.
pub fn browser_path(var: &str, default: &str) -> PathBuf {
    PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.into()))
}

/// What is missing to run a script: the browser binaries (with how to
/// install them), node, or the node packages (`npm ci` in tests/browser).
pub fn missing_prerequisite(binaries: &[(&Path, &str)], node_packages: &[&str]) -> Option<String> {
    for (path, install) in binaries {
        if !path.exists() {
            return Some(format!("{} not found ({install})", path.display()));
        }
    }
    if std::process::Command::new("node").arg("--version").output().is_err() {
        return Some("node not found".into());
    }
    for package in node_packages {
        if !browser_dir().join("node_modules").join(package).is_dir() {
            return Some(format!("tests/browser/node_modules/{package} missing (cd tests/browser && npm ci)"));
        }
    }
    None
}

/// True when the test must be skipped (prints a loud message); panics
/// instead under `CI=true`, where every prerequisite must be installed.
pub fn skip(test: &str, missing: Option<String>) -> bool {
    let Some(why) = missing else { return false };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} cannot run in CI: {why}");
    }
    eprintln!("\n!!!! SKIPPED {test}: {why} !!!!\n");
    true
}

/// What a script printed and returned.
pub struct ScriptRun {
    /// The JSON result line.
    pub result: serde_json::Value,
    pub stderr: String,
    pub success: bool,
}

/// Runs `node tests/browser/<script> <args>` and parses its JSON result line.
pub async fn run_script(script: &str, args: &[&str]) -> ScriptRun {
    let out = tokio::process::Command::new("node")
        .arg(browser_dir().join(script))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON from {script}\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    let result = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON from {script} ({e}): {line}"));
    ScriptRun { result, stderr, success: out.status.success() }
}

/// A fresh directory for a test's screenshots.
pub fn screenshot_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("onair-shots-{tag}-{}", std::process::id()))
}

/// Issue 11 items 2 and 3, as `switchLayers` in harness.mjs measured them:
/// the picker offers the stream's three layers with their sizes, and after
/// each switch the labels say what is decoded (the server's layer event and
/// the `<video>`'s height), not what was asked before it.
pub fn assert_quality_labels(r: &serde_json::Value) {
    let options: Vec<&str> = r["picker"]["options"].as_array().map(|o| o.iter().filter_map(|o| o["value"].as_str()).collect()).unwrap_or_default();
    assert_eq!(options, ["auto", "f", "h", "q"], "the picker offers the layers the stream has: {r}");
    let low_text = r["picker"]["options"][3]["text"].as_str().unwrap_or_default();
    assert!(low_text.starts_with("Low · ") && low_text.contains('×'), "Low with its size: {r}");
    fn name(l: &str) -> &'static str {
        match l {
            "f" => "High",
            "h" => "Medium",
            _ => "Low",
        }
    }
    // Low is exactly q; High is a cap the allocator fills as far as the
    // link allows (f, or h on a congested one), never q.
    for (which, allowed) in [("low", &["q"][..]), ("high", &["f", "h"][..])] {
        let l = &r["labels"][which];
        let history: Vec<&str> = l["history"].as_array().map(|h| h.iter().filter_map(|x| x.as_str()).collect()).unwrap_or_default();
        let seen = l["seen"].as_str().unwrap_or_default();
        assert!(allowed.contains(&seen) && history.contains(&seen), "the server's layer event after choosing {which}: {r}");
        let height = l["video_height"].as_u64().unwrap_or(0);
        assert!(height > 0, "{r}");
        assert_eq!(l["badge"], format!("{height}p"), "the badge is the decoded height: {r}");
        let current = l["current_layer"].as_str().unwrap_or_default();
        assert!(l["stat_layer"].as_str().unwrap_or_default().starts_with(name(current)), "Playback details names the layer received: {r}");
    }
}
