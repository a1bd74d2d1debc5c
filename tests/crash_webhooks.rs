//! Webhooks survive a crash: the `onair` binary runs as a process of its own
//! on a data directory and is killed (SIGKILL) the moment a state change is
//! visible (a reminder pushed when the stream went live; an API answer);
//! started again on the same directory, it still delivers each change's
//! webhook, signed, to a real HTTP receiver, while a dead endpoint queued
//! ahead of it holds up nothing.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use common::api::{Api, Ws};
use common::peer::{self, PublishOpts};
use common::process::{self, Process};
use serde_json::{json, Value};

/// A webhook as the receiver got it.
#[derive(Debug, Clone)]
struct Got {
    event: String,
    delivery: String,
    signature: String,
    body: String,
}

/// A local HTTP endpoint that records every webhook posted to it.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let got: Arc<Mutex<Vec<Got>>> = Default::default();
        let g = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let g = g.clone();
                async move {
                    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    g.lock().unwrap().push(Got { event: h("onair-event"), delivery: h("onair-delivery"), signature: h("onair-signature"), body });
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, got }
    }

    /// (event, delivery id) of everything received so far.
    fn events(&self) -> Vec<(String, String)> {
        self.got.lock().unwrap().iter().map(|g| (g.event.clone(), g.delivery.clone())).collect()
    }

    /// The first webhook of `event` for which `f` holds, within `secs`.
    async fn wait_for(&self, event: &str, secs: u64, f: impl Fn(&Value) -> bool) -> Option<(Got, Value)> {
        let end = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < end {
            let found = self.got.lock().unwrap().iter().find_map(|g| {
                let v: Value = serde_json::from_str(&g.body).ok()?;
                (g.event == event && f(&v)).then(|| (g.clone(), v))
            });
            if found.is_some() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

/// Checks `t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>` independently.
fn signed(g: &Got, secret: &str) -> bool {
    let Some((t, v1)) = g.signature.strip_prefix("t=").and_then(|s| s.split_once(",v1=")) else { return false };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{t}.{}", g.body).as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let fresh = t.parse::<i64>().is_ok_and(|t| (t - onair::clock::now_ms() / 1000).abs() < 300);
    hex == v1 && fresh
}

/// An endpoint that accepts connections and never answers.
async fn black_hole() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_of_committed_changes_survive_a_kill() {
    let dir = common::temp_dir("crash");
    let receiver = Receiver::start().await;
    let hole = black_hole().await;

    let a = Process::start(&dir, &[], &[]).await;
    let api = Api::new(a.addr);
    let root = api.register("root", "viewer").await;
    process::cli(&dir, &["user", "role", "root", "admin"]).await;
    // The dead endpoint is registered first: its deliveries come first.
    let r = api.post("/api/admin/webhooks", Some(&root.token), json!({ "url": format!("http://{hole}/dead") })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api.post("/api/admin/webhooks", Some(&root.token), json!({ "url": format!("http://{}/hook", receiver.addr) })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.json()["secret"].as_str().unwrap().to_owned();

    let ana = api.register("ana", "host").await;
    let vic = api.register("vic", "viewer").await;
    let sid = api.create_stream(&ana, json!({ "title": "Crash test" })).await["id"].as_i64().unwrap();
    assert_eq!(api.post(&format!("/api/streams/{sid}/reminder"), Some(&vic.token), json!({})).await.status, 204);
    let key = api.stream_key(&ana).await;

    // Going live: the moment vic's reminder arrives, the server dies.
    let mut vic_ws = Ws::connect(a.addr, Some(&vic.token)).await;
    let publisher = peer::publish(a.addr, &key, PublishOpts::default()).await.expect("publish");
    vic_ws.next_of("reminder", 20).await;
    a.kill().await;
    publisher.stop().await;

    // Started again: the go-live webhooks arrive, signed, and well before
    // the dead endpoint's deliveries (queued first) could time out (10 s).
    let b = Process::start(&dir, &[], &[]).await;
    let (live, body) = receiver.wait_for("stream.live", 8, |v| v["data"]["stream"]["id"] == sid).await.unwrap_or_else(|| panic!("stream.live after the restart; got {:?}\n{}", receiver.events(), b.logged()));
    assert!(signed(&live, &secret), "signed with the endpoint's secret: {live:?}");
    assert_eq!(body["data"]["stream"]["state"], "live");
    let (rem, body) = receiver.wait_for("stream.reminders", 8, |v| v["data"]["stream"]["id"] == sid).await.unwrap_or_else(|| panic!("stream.reminders after the restart; got {:?}\n{}", receiver.events(), b.logged()));
    assert!(signed(&rem, &secret));
    assert_eq!(body["data"]["user_ids"], json!([vic.id]), "vic was reminded: {body}");

    // Ending one stream and cancelling another by API; killed right after the answers.
    let api = Api::new(b.addr);
    let other = api.create_stream(&ana, json!({ "title": "Called off" })).await["id"].as_i64().unwrap();
    let r = api.post(&format!("/api/streams/{sid}/end"), Some(&ana.token), json!({ "save": false })).await;
    assert_eq!((r.status, r.json()["state"].as_str()), (200, Some("ended")), "{}", r.body);
    let r = api.post(&format!("/api/streams/{other}/cancel"), Some(&ana.token), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    b.kill().await;

    let c = Process::start(&dir, &[], &[]).await;
    let (ended, body) = receiver.wait_for("stream.ended", 8, |v| v["data"]["stream"]["id"] == sid).await.unwrap_or_else(|| panic!("stream.ended after the restart; got {:?}\n{}", receiver.events(), c.logged()));
    assert!(signed(&ended, &secret));
    assert_eq!(body["data"]["stream"]["state"], "ended");
    assert!(body["data"]["summary"]["duration_seconds"].is_i64(), "with the summary: {body}");
    let (cancelled, _) = receiver.wait_for("stream.cancelled", 8, |v| v["data"]["stream"]["id"] == other).await.unwrap_or_else(|| panic!("stream.cancelled after the restart; got {:?}\n{}", receiver.events(), c.logged()));
    assert!(signed(&cancelled, &secret));
    // Retries of one delivery share its id (receivers drop duplicates by it).
    let got = receiver.got.lock().unwrap().clone();
    for g in &got {
        assert!(got.iter().filter(|o| o.delivery == g.delivery).all(|o| o.body == g.body), "one delivery id, one body");
    }
    c.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}
