//! Janus 1.1.2 (Debian's `janus`) as the reference server, through its
//! VideoRoom plugin and HTTP API.
//!
//! Janus runs in a network namespace of its own ([`Netns`]): libnice will
//! not use a loopback-only address, so the harness reaches it over a veth
//! pair. Its configuration is written fresh for each run: only the
//! VideoRoom plugin and the HTTP transport are loaded (the demo config's
//! streaming plugin would bind public UDP ports), and room 1234 takes VP8 or
//! H.264 with Opus at up to 8 Mbit/s (the demo's 128 kbit/s cap would make
//! Janus throttle the publisher through REMB).
//!
//! Janus reads simulcast layers by their order in the offer, highest first
//! (as janus.js sends them), and gives subscribers the highest by default;
//! the publisher orders its rids that way for Janus
//! ([`crate::target::Target::rids_high_first`]).
//!
//! One Janus session holds every handle, the publisher's and each viewer's.
//! Janus answers a plugin message with an "ack" and sends the real reply
//! as an event on the session's long poll; one loop reads the long poll (it
//! also keeps the session alive) and hands each event to the request with
//! its transaction id.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::http;
use crate::netns::Netns;

const HTTP_PORT: u16 = 8088;
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct JanusOptions {
    pub ns_name: String,
    pub host_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
    pub room: u64,
    pub work_dir: PathBuf,
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

pub struct Janus {
    child: std::process::Child,
    ns: Netns,
    http: SocketAddr,
    session: u64,
    room: u64,
    waiters: Waiters,
    poller: tokio::task::JoinHandle<()>,
    next_transaction: AtomicU64,
    work_dir: PathBuf,
}

/// A viewer's handle and the offer Janus made it.
pub struct Subscriber {
    pub handle: u64,
    pub offer_sdp: String,
}

fn config(dir: &std::path::Path, room: u64) -> Result<(), String> {
    let lib = "/usr/lib/x86_64-linux-gnu/janus";
    let plugins_off = ["audiobridge", "duktape", "echotest", "lua", "nosip", "recordplay", "sip", "streaming", "textroom", "videocall", "voicemail"]
        .map(|p| format!("libjanus_{p}.so"))
        .join(",");
    let transports_off = ["mqtt", "nanomsg", "pfunix", "rabbitmq", "websockets"].map(|p| format!("libjanus_{p}.so")).join(",");
    let files = [
        (
            "janus.jcfg",
            format!(
                r#"general: {{
    configs_folder = "{dir}"
    plugins_folder = "{lib}/plugins"
    transports_folder = "{lib}/transports"
    events_folder = "{lib}/events"
    loggers_folder = "{lib}/loggers"
    debug_level = 3
    log_to_file = "{dir}/janus.log"
    log_to_stdout = false
    admin_secret = "{secret}"
}}
media: {{
    rtp_port_range = "20000-40000"
}}
nat: {{
    nice_debug = false
}}
plugins: {{
    disable = "{plugins_off}"
}}
transports: {{
    disable = "{transports_off}"
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
events: {{
    broadcast = false
}}
"#,
                dir = dir.display(),
                secret = rand::random::<u64>(),
            ),
        ),
        (
            "janus.plugin.videoroom.jcfg",
            format!(
                r#"general: {{
}}
room-{room}: {{
    description = "onair-bench"
    publishers = 6
    bitrate = 8000000
    fir_freq = 10
    audiocodec = "opus"
    videocodec = "vp8,h264"
    record = false
}}
"#
            ),
        ),
        (
            "janus.transport.http.jcfg",
            format!(
                r#"general: {{
    base_path = "/janus"
    http = true
    port = {HTTP_PORT}
    https = false
}}
admin: {{
    admin_http = false
}}
"#
            ),
        ),
    ];
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, text) in files {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

impl Janus {
    /// Starts Janus in its namespace and opens a session.
    pub async fn start(opts: JanusOptions) -> Result<Janus, String> {
        if !std::path::Path::new("/usr/bin/janus").exists() {
            return Err("Janus is not installed (apt-get install janus)".into());
        }
        config(&opts.work_dir, opts.room)?;
        let ns = Netns::create(&opts.ns_name, opts.host_ip, opts.ns_ip, 24)?;
        // `ip netns exec` execs Janus, so the child's pid is Janus's own.
        let child = ns
            .command("janus")
            .arg("-F")
            .arg(&opts.work_dir)
            .arg("-C")
            .arg(opts.work_dir.join("janus.jcfg"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start Janus: {e}"))?;
        let http = SocketAddr::new(opts.ns_ip.into(), HTTP_PORT);
        let mut janus = Janus {
            child,
            ns,
            http,
            session: 0,
            room: opts.room,
            waiters: Arc::default(),
            poller: tokio::spawn(async {}),
            next_transaction: AtomicU64::new(1),
            work_dir: opts.work_dir,
        };
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http::request(http, "GET", "/janus/info", &[], b"", Duration::from_secs(1)).await {
                if r.status == 200 {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !ready {
            let log = std::fs::read_to_string(janus.work_dir.join("janus.log")).unwrap_or_default();
            janus.stop().await;
            return Err(format!("Janus did not answer on {http} within 10 s; its log:\n{log}"));
        }
        let created = janus.post("/janus", json!({ "janus": "create" })).await?;
        janus.session = created["data"]["id"].as_u64().ok_or_else(|| format!("no session id in {created}"))?;
        janus.poller = tokio::spawn(long_poll(http, janus.session, janus.waiters.clone()));
        Ok(janus)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn host_ip(&self) -> Ipv4Addr {
        self.ns.host_ip()
    }

    fn transaction(&self) -> String {
        format!("t{}", self.next_transaction.fetch_add(1, Ordering::Relaxed))
    }

    /// A request with a synchronous reply.
    async fn post(&self, path: &str, mut body: Value) -> Result<Value, String> {
        body["transaction"] = json!(self.transaction());
        let r = http::request(self.http, "POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes(), REPLY_TIMEOUT).await?;
        let v = r.json()?;
        if v["janus"] == "error" {
            return Err(format!("Janus: {}", v["error"]));
        }
        Ok(v)
    }

    /// A plugin message: acknowledged at once, answered on the long poll.
    async fn message(&self, handle: u64, body: Value, jsep: Option<Value>) -> Result<Value, String> {
        let transaction = self.transaction();
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap().insert(transaction.clone(), tx);
        let mut msg = json!({ "janus": "message", "transaction": transaction, "body": body });
        if let Some(j) = jsep {
            msg["jsep"] = j;
        }
        let path = format!("/janus/{}/{handle}", self.session);
        let sent = http::request(self.http, "POST", &path, &[("Content-Type", "application/json")], msg.to_string().as_bytes(), REPLY_TIMEOUT).await.and_then(|r| r.json());
        let ack = match sent {
            Ok(v) => v,
            Err(e) => {
                self.waiters.lock().unwrap().remove(&transaction);
                return Err(e);
            }
        };
        if ack["janus"] == "error" {
            self.waiters.lock().unwrap().remove(&transaction);
            return Err(format!("Janus: {}", ack["error"]));
        }
        let event = match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
            Ok(Ok(e)) => e,
            _ => {
                self.waiters.lock().unwrap().remove(&transaction);
                return Err(format!("no reply from Janus to {body}"));
            }
        };
        let data = &event["plugindata"]["data"];
        if data["error"].is_string() {
            return Err(format!("VideoRoom: {} ({})", data["error"], data["error_code"]));
        }
        Ok(event)
    }

    async fn attach(&self) -> Result<u64, String> {
        let r = self.post(&format!("/janus/{}", self.session), json!({ "janus": "attach", "plugin": "janus.plugin.videoroom" })).await?;
        r["data"]["id"].as_u64().ok_or_else(|| format!("no handle id in {r}"))
    }

    /// Joins the room as its publisher with `offer`; returns the answer and the feed id.
    pub async fn publish(&self, offer_sdp: &str) -> Result<(String, u64), String> {
        let handle = self.attach().await?;
        let body = json!({ "request": "joinandconfigure", "room": self.room, "ptype": "publisher", "display": "onair-bench", "audio": true, "video": true });
        let event = self.message(handle, body, Some(json!({ "type": "offer", "sdp": offer_sdp }))).await?;
        let feed = event["plugindata"]["data"]["id"].as_u64().ok_or_else(|| format!("no publisher id in {event}"))?;
        let answer = event["jsep"]["sdp"].as_str().ok_or_else(|| format!("no answer in {event}"))?;
        Ok((answer.to_owned(), feed))
    }

    /// Subscribes a new handle to `feed`; Janus makes the offer.
    pub async fn subscribe(&self, feed: u64) -> Result<Subscriber, String> {
        let handle = self.attach().await?;
        let body = json!({ "request": "join", "room": self.room, "ptype": "subscriber", "streams": [{ "feed": feed }] });
        let event = self.message(handle, body, None).await?;
        let offer = event["jsep"]["sdp"].as_str().ok_or_else(|| format!("no offer in {event}"))?;
        Ok(Subscriber { handle, offer_sdp: offer.to_owned() })
    }

    /// Starts a subscription with the viewer's answer.
    pub async fn start_subscriber(&self, sub: &Subscriber, answer_sdp: &str) -> Result<(), String> {
        self.message(sub.handle, json!({ "request": "start" }), Some(json!({ "type": "answer", "sdp": answer_sdp }))).await.map(|_| ())
    }

    /// Ends a handle (a viewer leaving).
    pub async fn leave(&self, handle: u64) -> Result<(), String> {
        self.post(&format!("/janus/{}/{handle}", self.session), json!({ "janus": "detach" })).await.map(|_| ())
    }

    /// Stops Janus and removes its namespace.
    pub async fn stop(mut self) {
        self.poller.abort();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.work_dir);
        // `ns` is removed on drop.
    }
}

/// Reads the session's events and hands each to the request waiting for it.
async fn long_poll(http: SocketAddr, session: u64, waiters: Waiters) {
    let path = format!("/janus/{session}?maxev=50");
    loop {
        let Ok(r) = http::request(http, "GET", &path, &[], b"", Duration::from_secs(40)).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let Ok(v) = r.json() else { continue };
        let events = match v {
            Value::Array(a) => a,
            one => vec![one],
        };
        for e in events {
            let Some(t) = e["transaction"].as_str() else { continue };
            // The "event" that carries the plugin's reply, not an intermediate ack.
            if e["janus"] != "event" {
                continue;
            }
            if let Some(tx) = waiters.lock().unwrap().remove(t) {
                let _ = tx.send(e);
            }
        }
    }
}
