//! A flash sale under load, against an OnAir the harness starts: B buyers
//! (each a logged-in viewer with coins, on its own kept-alive HTTP
//! connection, connected beforehand) all order the moment a sale of Q
//! units with a limit of one per buyer opens; every order is paid in coins
//! in its request. Per round: the latency of every answer (request to
//! `201` with the order paid and on disk, or `409 sold_out`), the answers
//! per second and the orders per second over the burst, and the outcome
//! checked: exactly Q orders, B - Q `sold_out`, nothing left. Rounds
//! repeat with a new sale of the same product.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::http::KeepAlive;
use crate::measure::{Percentiles, ProcSample};
use crate::target::{OnairProcess, USER_AGENT};

/// One burst.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// Orders made (201).
    pub orders: u64,
    /// Answers by code.
    pub answers: HashMap<String, u64>,
    /// First request sent to last answer, ms.
    pub burst_ms: f64,
    /// The sale's remaining quantity after (0 in a correct run).
    pub remaining: i64,
}

/// What the flash-sale run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FlashSaleReport {
    pub buyers: usize,
    pub quantity: i64,
    pub rounds: Vec<Round>,
    /// Every answer's latency, all rounds, ms.
    pub latency_ms: Percentiles,
    /// The latency of the orders made (201), ms.
    pub order_latency_ms: Percentiles,
    /// Answers per second over the bursts.
    pub answers_per_s: f64,
    /// Orders made per second over the bursts.
    pub orders_per_s: f64,
    /// Server CPU seconds over the bursts.
    pub server_cpu_s: f64,
    /// Every round made exactly `quantity` orders and sold out.
    pub exact: bool,
    /// The ledger's invariant check passed.
    pub ledger_ok: bool,
}

/// `buyers` buyers, `rounds` sales of `quantity` units each.
pub async fn flash_sale(buyers: usize, quantity: i64, rounds: usize, progress: bool) -> Result<FlashSaleReport, String> {
    let extra = ["--flash-buyers".to_owned(), buyers.to_string(), "--write-rate".into(), "1000000".into()];
    let p = OnairProcess::spawn(1, "127.0.0.1".parse().unwrap(), &extra).await?;
    let pid = p.child.id().ok_or("no server pid")?;
    let s = &p.ready["shop"];
    let stream = s["stream"].as_i64().ok_or("no shop stream")?;
    let product = s["product"].as_i64().ok_or("no product")?;
    let host_auth = format!("Bearer {}", s["host_token"].as_str().unwrap_or_default());
    let admin_auth = format!("Bearer {}", s["admin_token"].as_str().unwrap_or_default());
    let tokens: Vec<String> = s["tokens"].as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    let mut conns = Vec::with_capacity(buyers);
    for _ in 0..buyers {
        conns.push(KeepAlive::connect(p.http).await?);
    }
    let mut host = KeepAlive::connect(p.http).await?;
    let order_path = format!("/api/streams/{stream}/orders");
    let (mut all, mut made) = (Vec::new(), Vec::new());
    let (mut burst_total, mut cpu_total) = (0.0f64, 0.0f64);
    let mut out_rounds = Vec::new();
    for round in 0..rounds {
        let sale = json!({ "price": 10, "quantity": quantity, "per_buyer_limit": 1, "countdown_s": 10, "duration_s": 120 }).to_string();
        let r = host
            .send("POST", &format!("/api/streams/{stream}/products/{product}/flash-sales"), &[("Authorization", &host_auth), ("Content-Type", "application/json"), ("User-Agent", USER_AGENT)], sale.as_bytes())
            .await?;
        if r.status != 201 {
            return Err(format!("flash sale refused: {} {}", r.status, String::from_utf8_lossy(&r.body)));
        }
        let sale = r.json()?;
        let sale_id = sale["id"].as_i64().ok_or("no sale id")?;
        let at = |f: &str| onair::clock::parse_rfc3339(sale[f].as_str().unwrap_or_default()).unwrap_or(0);
        // The server's start, on our clock (the machine is the same; the offset is 0 here, but say it).
        let wait = Duration::from_millis((at("starts_at") - at("server_time")).max(0) as u64 + 20);
        if progress {
            eprintln!("round {}: sale {sale_id} of {quantity} opens in {:.1} s; {buyers} buyers waiting", round + 1, wait.as_secs_f64());
        }
        tokio::time::sleep(wait).await;
        let cpu0 = ProcSample::read(pid)?.cpu;
        let start = Instant::now();
        // The buyers name the sale, as the watch page's banner does.
        let body = json!({ "product": product, "flash_sale": sale_id, "shipping": { "name": "Bench Buyer", "address": "1 Load Street", "city": "Lisbon", "country": "PT" } }).to_string();
        let mut tasks = Vec::with_capacity(buyers);
        for (i, (mut c, token)) in conns.drain(..).zip(tokens.iter().cloned()).enumerate() {
            let (path, body) = (order_path.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let auth = format!("Bearer {token}");
                let key = format!("flash-{round}-{i}");
                let t0 = Instant::now();
                let r = c.send("POST", &path, &[("Authorization", &auth), ("Content-Type", "application/json"), ("Idempotency-Key", &key), ("User-Agent", USER_AGENT)], body.as_bytes()).await;
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                let code = match &r {
                    Ok(r) if r.status == 201 => "created".to_owned(),
                    Ok(r) => r.json().ok().and_then(|v| v["error"]["code"].as_str().map(str::to_owned)).unwrap_or_else(|| format!("http_{}", r.status)),
                    Err(e) => format!("transport: {e}"),
                };
                (c, code, ms)
            }));
        }
        let mut answers: HashMap<String, u64> = HashMap::new();
        for t in tasks {
            let (c, code, ms) = t.await.map_err(|e| e.to_string())?;
            conns.push(c);
            all.push(ms);
            if code == "created" {
                made.push(ms);
            }
            *answers.entry(code).or_default() += 1;
        }
        let burst = start.elapsed().as_secs_f64();
        cpu_total += ProcSample::read(pid)?.cpu.saturating_sub(cpu0).as_secs_f64();
        burst_total += burst;
        let list = host.send("GET", &format!("/api/streams/{stream}/flash-sales"), &[("User-Agent", USER_AGENT)], b"").await?.json()?;
        let remaining = list.as_array().and_then(|l| l.iter().find(|s| s["id"] == sale_id)).and_then(|s| s["remaining"].as_i64()).unwrap_or(-1);
        out_rounds.push(Round { orders: answers.get("created").copied().unwrap_or(0), answers, burst_ms: burst * 1000.0, remaining });
    }
    let check = host.send("GET", "/api/admin/ledger/check", &[("Authorization", &admin_auth), ("User-Agent", USER_AGENT)], b"").await?.json()?;
    let exact = out_rounds.iter().all(|r| r.orders == quantity as u64 && r.remaining == 0 && r.answers.get("sold_out").copied().unwrap_or(0) == (buyers as u64).saturating_sub(quantity as u64));
    let _ = std::fs::remove_dir_all(&p.data_dir);
    let answered = all.len() as f64;
    let ordered = made.len() as f64;
    Ok(FlashSaleReport {
        buyers,
        quantity,
        rounds: out_rounds,
        latency_ms: Percentiles::of(&mut all).unwrap_or_default(),
        order_latency_ms: Percentiles::of(&mut made).unwrap_or_default(),
        answers_per_s: if burst_total > 0.0 { answered / burst_total } else { 0.0 },
        orders_per_s: if burst_total > 0.0 { ordered / burst_total } else { 0.0 },
        server_cpu_s: cpu_total,
        exact,
        ledger_ok: check["ok"] == true,
    })
}
