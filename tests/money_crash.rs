//! Crash safety: the `onair` binary runs as a child process under a money
//! workload (tips, gifts, top-ups credited by signed webhooks, from 16
//! clients at once) and is killed with SIGKILL in the middle of it, then
//! started again on the same data directory. Every answer a client had
//! received must still be there (a retry with the same Idempotency-Key is
//! a replay of exactly that answer; an acknowledged webhook's coins are
//! credited), nothing is applied twice (requests whose answer was lost are
//! retried: they run once, or replay the run that committed before the
//! crash; events are delivered again), and every balance equals the sum of
//! what was acknowledged, with the ledger's invariants intact.

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::money::{event, intent_object, stripe_signature};

const SECRET: &str = "whsec_crash";
const VIEWERS: usize = 16;

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_onair")
}

/// Whether `target/.../onair` is this source's build. Worktrees that share
/// a target directory overwrite that one file; when it is another's, the
/// server runs in a child process of this test binary instead (the same
/// library code, started the way `main` starts it).
fn binary_is_ours() -> bool {
    static OURS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OURS.get_or_init(|| {
        let help = Command::new(binary()).arg("--help").output().map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default();
        let ours = help.contains("--payment-webhook-secret");
        if !ours {
            eprintln!("crash test: {} is another build (a shared target directory); running the server from this test binary instead", binary());
        }
        ours
    })
}

fn start(dir: &Path, port: u16) -> Child {
    let log = std::fs::File::create(dir.join(format!("server-{}.log", rand::random::<u32>()))).unwrap();
    let args: Vec<String> = [
        "--http-addr", &format!("127.0.0.1:{port}"), "--media-port", "0", "--media-bind", "127.0.0.1", "--workers", "1",
        "--data-dir", dir.to_str().unwrap(), "--static-dir", concat!(env!("CARGO_MANIFEST_DIR"), "/static"),
        "--write-rate", "1000000", "--auth-rate", "1000000", "--payment-webhook-secret", SECRET,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut cmd = if binary_is_ours() {
        let mut c = Command::new(binary());
        c.args(&args);
        c
    } else {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["crash_child_server", "--exact", "--nocapture"]).env("ONAIR_CRASH_CHILD", serde_json::to_string(&args).unwrap());
        c
    };
    cmd.env("ONAIR_LOG", "warn").stdout(Stdio::null()).stderr(log).spawn().expect("start onair")
}

#[derive(clap::Parser)]
struct ChildCli {
    #[command(flatten)]
    settings: onair::config::SettingsArgs,
}

/// The server, when this test binary is the crash test's child process.
#[test]
fn crash_child_server() {
    let Ok(args) = std::env::var("ONAIR_CRASH_CHILD") else { return };
    use clap::Parser;
    let args: Vec<String> = serde_json::from_str(&args).unwrap();
    let cli = ChildCli::parse_from(std::iter::once("onair".to_owned()).chain(args));
    let settings = onair::config::Settings::resolve(&cli.settings).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let _server = onair::server::Server::start(settings).await.unwrap();
        std::future::pending::<()>().await
    });
}

async fn wait_up(c: &reqwest::Client, base: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = c.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < end, "onair did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = c.get(format!("{base}/api/wallet/packages")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "the server has no money API");
}

#[derive(Clone, Debug)]
struct Sent {
    viewer: usize,
    path: String,
    key: String,
    body: Value,
    /// The answer, if one arrived before the crash.
    answer: Option<(u16, Value)>,
}

#[derive(Clone, Debug)]
struct Paid {
    viewer: usize,
    intent: String,
    coins: i64,
    event: String,
    acknowledged: bool,
}

async fn call(c: &reqwest::Client, base: &str, path: &str, token: &str, key: &str, body: &Value) -> Result<(u16, Value, bool), reqwest::Error> {
    let r = c
        .post(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = r.status().as_u16();
    let replayed = r.headers().get("idempotent-replayed").is_some();
    let body = serde_json::from_slice(&r.bytes().await?).unwrap_or(Value::Null);
    Ok((status, body, replayed))
}

async fn deliver(c: &reqwest::Client, base: &str, body: &str) -> Result<u16, reqwest::Error> {
    let sig = stripe_signature(&[SECRET], common::money::now_s(), body);
    Ok(c.post(format!("{base}/api/payments/webhook")).header("content-type", "application/json").header("stripe-signature", sig).body(body.to_owned()).send().await?.status().as_u16())
}

async fn register(c: &reqwest::Client, base: &str, name: &str, role: &str) -> (i64, String) {
    let r = c
        .post(format!("{base}/api/auth/register"))
        .header("content-type", "application/json")
        .body(json!({ "username": name, "email": format!("{name}@example.org"), "password": "correct horse", "role": role }).to_string())
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    (v["user"]["id"].as_i64().unwrap(), v["access_token"].as_str().unwrap().to_owned())
}

/// Buys 1,000 coins: an intent, then its succeeded event.
async fn top_up(c: &reqwest::Client, base: &str, token: &str, n: usize) -> Result<(String, String, bool), reqwest::Error> {
    let (status, body, _) = call(c, base, "/api/wallet/top-ups", token, &format!("topup-{n}-{}", rand::random::<u64>()), &json!({ "package": "coins_1000" })).await?;
    assert_eq!(status, 201, "{body}");
    let intent = body["intent_id"].as_str().unwrap().to_owned();
    let ev = event(&format!("evt_{intent}"), "payment_intent.succeeded", common::money::now_s(), intent_object(&intent, 949, "succeeded", None)).to_string();
    let ok = deliver(c, base, &ev).await.map(|s| s == 200).unwrap_or(false);
    Ok((intent, ev, ok))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_and_nothing_applied_twice() {
    let dir = common::temp_dir("crash");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut child = start(&dir, port);
    wait_up(&c, &base).await;

    // Setup: a live host, viewers with 1,000 coins each.
    let (_, host_token) = register(&c, &base, "ana", "host").await;
    let r = c.post(format!("{base}/api/streams")).header("authorization", format!("Bearer {host_token}")).header("content-type", "application/json").body(r#"{"title":"Live"}"#).send().await.unwrap();
    let sid = serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap()["id"].as_i64().unwrap();
    let r = c.post(format!("{base}/api/streams/{sid}/start")).header("authorization", format!("Bearer {host_token}")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut viewers = Vec::new();
    let paid = Arc::new(Mutex::new(Vec::<Paid>::new()));
    for i in 0..VIEWERS {
        let (_, token) = register(&c, &base, &format!("viewer{i}"), "viewer").await;
        let (intent, ev, ok) = top_up(&c, &base, &token, i).await.unwrap();
        assert!(ok);
        paid.lock().unwrap().push(Paid { viewer: i, intent, coins: 1000, event: ev, acknowledged: true });
        viewers.push(token);
    }

    // The workload: each viewer tips, gifts and buys coins until the server dies under it.
    let sent = Arc::new(Mutex::new(Vec::<Sent>::new()));
    let mut tasks = Vec::new();
    for (i, token) in viewers.iter().cloned().enumerate() {
        let (c, base, sent, paid) = (c.clone(), base.clone(), sent.clone(), paid.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                if n % 15 == 14 {
                    match top_up(&c, &base, &token, n).await {
                        Ok((intent, event, acknowledged)) => paid.lock().unwrap().push(Paid { viewer: i, intent, coins: 1000, event, acknowledged }),
                        Err(_) => return,
                    }
                    continue;
                }
                let (path, body) = if n % 3 == 0 { (format!("/api/streams/{sid}/gifts"), json!({ "gift": "heart", "count": 1 + n % 4 })) } else { (format!("/api/streams/{sid}/tips"), json!({ "coins": 1 + n % 17 })) };
                let key = format!("v{i}-op{n}");
                let answer = call(&c, &base, &path, &token, &key, &body).await.ok().map(|(s, b, _)| (s, b));
                let dead = answer.is_none();
                sent.lock().unwrap().push(Sent { viewer: i, path, key, body, answer });
                if dead {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let acknowledged = sent.iter().filter(|s| s.answer.is_some()).count();
    assert!(acknowledged >= 50, "the crash came too early to prove anything ({acknowledged} answers)");

    // Up again on the same data.
    let mut child = start(&dir, port);
    wait_up(&c, &base).await;

    // Every acknowledged webhook's coins are there before anything is resent.
    let paid = std::mem::take(&mut *paid.lock().unwrap());
    for p in paid.iter().filter(|p| p.acknowledged) {
        let r = c.get(format!("{base}/api/wallet/top-ups/{}", p.intent)).header("authorization", format!("Bearer {}", viewers[p.viewer])).send().await.unwrap();
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(v["coins_credited"], p.coins, "acknowledged webhook for {} lost: {v}", p.intent);
    }
    // The provider delivers every event again (it never knows which got through).
    for p in &paid {
        assert_eq!(deliver(&c, &base, &p.event).await.unwrap(), 200);
    }

    // Every request again under its key: acknowledged ones replay their
    // answer exactly; the others run now, or replay what committed before
    // the crash.
    let mut spent: HashMap<usize, i64> = HashMap::new();
    let (mut replayed_lost, mut ran_now) = (0, 0);
    for s in &sent {
        let (status, body, replayed) = call(&c, &base, &s.path, &viewers[s.viewer], &s.key, &s.body).await.unwrap();
        match &s.answer {
            Some((st, b)) => {
                assert!(replayed, "{} {}: acknowledged {st} but not stored: now {status} {body}", s.path, s.key);
                assert_eq!((&status, &body), (st, b), "{}: the stored answer changed", s.key);
            }
            None if replayed => replayed_lost += 1,
            None => ran_now += 1,
        }
        if status == 201 {
            *spent.entry(s.viewer).or_default() += body["coins"].as_i64().unwrap();
        } else {
            assert_eq!(status, 402, "{body}");
        }
    }

    // Balances: credited once per payment, spent once per key.
    for (i, token) in viewers.iter().enumerate() {
        let w: Value = serde_json::from_slice(&c.get(format!("{base}/api/wallet")).header("authorization", format!("Bearer {token}")).send().await.unwrap().bytes().await.unwrap()).unwrap();
        let credited: i64 = paid.iter().filter(|p| p.viewer == i).map(|p| p.coins).sum();
        assert_eq!(w["coins"].as_i64(), Some(credited - spent.get(&i).copied().unwrap_or(0)), "viewer{i}: {w}");
    }
    let (root, root_token) = register(&c, &base, "root", "viewer").await;
    {
        let db = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(&format!("sqlite://{}", dir.join("onair.db").display())).await.unwrap();
        sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1").bind(root).execute(&db).await.unwrap();
        db.close().await;
    }
    let report: Value = serde_json::from_slice(&c.get(format!("{base}/api/admin/ledger/check")).header("authorization", format!("Bearer {root_token}")).send().await.unwrap().bytes().await.unwrap()).unwrap();
    assert_eq!(report["ok"], true, "{report:#}");
    eprintln!(
        "crash test: {} requests before SIGKILL ({acknowledged} answered, {} lost in flight: {replayed_lost} had committed, {ran_now} ran after the restart); {} payments; {} transfers checked",
        sent.len(),
        sent.len() - acknowledged,
        paid.len(),
        report["transfers"]
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
