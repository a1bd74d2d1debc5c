//! Gifts under load, against an OnAir the harness starts: S senders (each a
//! logged-in viewer with coins, on its own kept-alive HTTP connection) send
//! gifts to one creator's live stream as fast as their answers come back
//! (one request in flight each: S concurrent requests). Measured over a
//! window after a warm-up: gifts acknowledged per second and the latency
//! of each (request to `201`: the coins have moved and are on disk).
//! Afterwards the creator's earnings must equal the sum of the creator's
//! shares of every acknowledged gift, and the ledger check must pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::http::KeepAlive;
use crate::measure::{Percentiles, ProcSample};
use crate::target::{OnairProcess, USER_AGENT};

/// The gift sent: 5 coins, 3 of them to the creator.
pub const GIFT: &str = "heart";

/// What the gifts run measured.
#[derive(Debug, Clone, Serialize)]
pub struct GiftReport {
    pub senders: usize,
    pub warmup_s: f64,
    pub window_s: f64,
    /// Gifts acknowledged in the window, per second.
    pub gifts_per_s: f64,
    /// Request to acknowledgement, ms (the window's gifts).
    pub latency_ms: Percentiles,
    /// All acknowledged gifts (warm-up included).
    pub acknowledged: u64,
    /// Refusals by code (a correct run has none).
    pub refused: HashMap<String, u64>,
    /// Transactions the money writer committed, and gifts per transaction.
    pub transactions: u64,
    pub jobs_per_transaction: f64,
    /// Server CPU seconds in the window, and per gift.
    pub server_cpu_s: f64,
    pub server_cpu_us_per_gift: f64,
    /// The creator's earnings equal the acknowledged gifts' shares.
    pub earnings_match: bool,
    /// The ledger's invariant check passed.
    pub ledger_ok: bool,
}

async fn metrics(c: &mut KeepAlive) -> Result<String, String> {
    c.send("GET", "/metrics", &[("User-Agent", USER_AGENT)], b"").await.map(|r| String::from_utf8_lossy(&r.body).into_owned())
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' '))).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(0.0) as u64
}

/// `senders` senders, `warmup` then `window` of gifts.
pub async fn gifts(senders: usize, warmup: Duration, window: Duration, progress: bool) -> Result<GiftReport, String> {
    let extra = ["--gift-senders".to_owned(), senders.to_string(), "--write-rate".into(), "1000000".into()];
    let p = OnairProcess::spawn(1, "127.0.0.1".parse().unwrap(), &extra).await?;
    let pid = p.child.id().ok_or("no server pid")?;
    let g = &p.ready["gifts"];
    let stream = g["stream"].as_i64().ok_or("no gift stream")?;
    let host_token = g["host_token"].as_str().unwrap_or_default().to_owned();
    let admin_token = g["admin_token"].as_str().unwrap_or_default().to_owned();
    let tokens: Vec<String> = g["tokens"].as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    let mut conns = Vec::with_capacity(senders);
    for _ in 0..senders {
        conns.push(KeepAlive::connect(p.http).await?);
    }
    if progress {
        eprintln!("{senders} senders connected; {:.0} s warm-up, {:.0} s measured", warmup.as_secs_f64(), window.as_secs_f64());
    }
    let start = Instant::now();
    let (measure_from, measure_to) = (start + warmup, start + warmup + window);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let in_window = Arc::new(AtomicU64::new(0));
    let creator_coins = Arc::new(AtomicU64::new(0));
    let refused: Arc<Mutex<HashMap<String, u64>>> = Default::default();
    let lat: Arc<Mutex<Vec<f64>>> = Default::default();
    let path = format!("/api/streams/{stream}/gifts");
    let body = json!({ "gift": GIFT }).to_string();
    let mut tasks = Vec::new();
    for (i, (mut c, token)) in conns.into_iter().zip(tokens).enumerate() {
        let (stop, acked, in_window, creator_coins, refused, lat, path, body) = (stop.clone(), acked.clone(), in_window.clone(), creator_coins.clone(), refused.clone(), lat.clone(), path.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let auth = format!("Bearer {token}");
            let mut local = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("bench-{i}-{n}");
                n += 1;
                let t0 = Instant::now();
                let r = c.send("POST", &path, &[("Authorization", &auth), ("Content-Type", "application/json"), ("Idempotency-Key", &key), ("User-Agent", USER_AGENT)], body.as_bytes()).await;
                let done = Instant::now();
                match r {
                    Ok(r) if r.status == 201 => {
                        acked.fetch_add(1, Ordering::Relaxed);
                        let v = r.json().unwrap_or_default();
                        creator_coins.fetch_add(v["creator_coins"].as_u64().unwrap_or(0), Ordering::Relaxed);
                        if t0 >= measure_from && done <= measure_to {
                            in_window.fetch_add(1, Ordering::Relaxed);
                            local.push((done - t0).as_secs_f64() * 1000.0);
                        }
                    }
                    Ok(r) => {
                        let code = r.json().ok().and_then(|v| v["error"]["code"].as_str().map(str::to_owned)).unwrap_or_else(|| format!("http_{}", r.status));
                        *refused.lock().unwrap().entry(code).or_default() += 1;
                    }
                    Err(e) => {
                        *refused.lock().unwrap().entry(format!("transport: {e}")).or_default() += 1;
                        break;
                    }
                }
            }
            lat.lock().unwrap().extend(local);
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu0 = ProcSample::read(pid)?.cpu;
    let mut probe = KeepAlive::connect(p.http).await?;
    let m0 = metrics(&mut probe).await?;
    tokio::time::sleep_until(measure_to.into()).await;
    let cpu = ProcSample::read(pid)?.cpu.saturating_sub(cpu0).as_secs_f64();
    let m1 = metrics(&mut probe).await?;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let transactions = metric(&m1, "onair_money_batches").saturating_sub(metric(&m0, "onair_money_batches"));
    let jobs = metric(&m1, "onair_money_jobs").saturating_sub(metric(&m0, "onair_money_jobs"));
    // Every acknowledged gift is in the creator's earnings, exactly.
    let w = probe.send("GET", "/api/wallet", &[("Authorization", &format!("Bearer {host_token}")), ("User-Agent", USER_AGENT)], b"").await?.json()?;
    let earnings_match = w["earnings"].as_u64() == Some(creator_coins.load(Ordering::Relaxed));
    let check = probe.send("GET", "/api/admin/ledger/check", &[("Authorization", &format!("Bearer {admin_token}")), ("User-Agent", USER_AGENT)], b"").await?.json()?;
    let ledger_ok = check["ok"] == true;
    let mut l = std::mem::take(&mut *lat.lock().unwrap());
    let n = in_window.load(Ordering::Relaxed);
    let refused = std::mem::take(&mut *refused.lock().unwrap());
    let _ = std::fs::remove_dir_all(&p.data_dir);
    Ok(GiftReport {
        senders,
        warmup_s: warmup.as_secs_f64(),
        window_s: window.as_secs_f64(),
        gifts_per_s: n as f64 / window.as_secs_f64(),
        latency_ms: Percentiles::of(&mut l).unwrap_or_default(),
        acknowledged: acked.load(Ordering::Relaxed),
        refused,
        transactions,
        jobs_per_transaction: if transactions > 0 { jobs as f64 / transactions as f64 } else { 0.0 },
        server_cpu_s: cpu,
        server_cpu_us_per_gift: if n > 0 { cpu * 1e6 / n as f64 } else { 0.0 },
        earnings_match,
        ledger_ok,
    })
}
