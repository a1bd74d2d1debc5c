//! Test support: a server on a temporary data directory, a small HTTP client,
//! and real WebRTC peers (webrtc-rs `rtc`, the same stack browsers interop
//! with) that publish synthetic VP8 simulcast + Opus and watch.
#![allow(dead_code)]

pub mod api;
pub mod browser;
pub mod ffmpeg;
pub mod http;
pub mod money;
pub mod peer;
pub mod process;
pub mod shop;

use std::path::PathBuf;

use onair::config::{Settings, SettingsArgs};
use onair::server::Server;

/// A fresh temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("onair-test-{tag}-{}-{}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts a server on loopback with free ports.
pub async fn start_server(workers: usize) -> Server {
    start_server_in(temp_dir("srv"), workers).await
}

/// Starts a server whose media sockets use the default bind (0.0.0.0), as
/// `cargo run` does, announcing every local address.
pub async fn start_server_default_bind(workers: usize) -> Server {
    let args = SettingsArgs {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        media_port: Some(0),
        data_dir: Some(temp_dir("srv")),
        workers: Some(workers),
        static_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static")),
        ..Default::default()
    };
    Server::start(Settings::resolve(&args).unwrap()).await.unwrap()
}

/// Starts a server on loopback with free ports, this data directory and
/// settings changed by `tune` (e.g. a short reconnect grace).
pub async fn start_server_with(data_dir: PathBuf, tune: impl FnOnce(&mut SettingsArgs)) -> Server {
    let mut args = SettingsArgs {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        media_port: Some(0),
        media_bind: Some("127.0.0.1".parse().unwrap()),
        data_dir: Some(data_dir),
        workers: Some(2),
        static_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static")),
        ..Default::default()
    };
    tune(&mut args);
    Server::start(Settings::resolve(&args).unwrap()).await.unwrap()
}

/// Starts a server on loopback with free ports and this data directory.
pub async fn start_server_in(data_dir: PathBuf, workers: usize) -> Server {
    let args = SettingsArgs {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        media_port: Some(0),
        media_bind: Some("127.0.0.1".parse().unwrap()),
        data_dir: Some(data_dir),
        workers: Some(workers),
        static_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static")),
        ..Default::default()
    };
    Server::start(Settings::resolve(&args).unwrap()).await.unwrap()
}

/// Polls `f` every 20 ms until it is true or `secs` pass.
pub async fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    f()
}

/// The value of a Prometheus counter or gauge in `/metrics` text (0 if absent).
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// GETs `path` every 50 ms until `ok` holds for its JSON (or 10 s pass; then panics).
pub async fn wait_for_json(addr: std::net::SocketAddr, path: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = http::request(addr, "GET", path, &[], b"").await;
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        if ok(&v) {
            return v;
        }
        if std::time::Instant::now() > end {
            panic!("GET {path} never matched: {} {}", r.status, r.body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until the platform has marked `channel`'s stream live with media
/// arriving: a test peer sees its connection up a moment before the server
/// has recorded it, and a WHEP offer in between is refused (404
/// stream_not_live), most often on a loaded machine.
pub async fn wait_live(addr: std::net::SocketAddr, channel: &str) {
    wait_for_json(addr, &format!("/api/users/{channel}"), |u| u["live"]["media_state"] == "receiving").await;
}
