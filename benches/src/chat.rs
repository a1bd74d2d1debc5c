//! Chat under load, against an OnAir the harness starts:
//!
//! - **fan-out**: N WebSocket clients watch one stream; the host sends one
//!   message a second; every client notes how long after the send it
//!   arrived (sender and clients share this process's clock). The path
//!   measured is the whole one: the host's socket, every chat rule, the
//!   write to disk (acknowledged messages are on disk), the hub, N sockets.
//! - **ingest**: U logged-in users each send a message a second over their
//!   own socket; counts what was acknowledged and how fast, then checks
//!   that the stream's stored message count is exactly what was
//!   acknowledged.
//!
//! Every client says it is a load test (User-Agent), as the rest of the
//! harness does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::measure::{Percentiles, ProcSample};
use crate::target::{OnairProcess, USER_AGENT};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(http: SocketAddr, token: Option<&str>) -> Result<Socket, String> {
    let url = match token {
        Some(t) => format!("ws://{http}/api/ws?token={t}"),
        None => format!("ws://{http}/api/ws"),
    };
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert("user-agent", USER_AGENT.parse().map_err(|_| "user agent")?);
    // A small read buffer: tungstenite zero-fills it before every read, and
    // at the 128 KiB default the harness, not the server, would be measured.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4 * 1024);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true).await.map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Reads until a message of `kind` (or an error) arrives.
async fn until(ws: &mut Socket, kind: &str) -> Result<Value, String> {
    while let Some(m) = ws.next().await {
        if let Message::Text(t) = m.map_err(|e| e.to_string())? {
            let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
            if v["type"] == kind {
                return Ok(v);
            }
            if v["type"] == "error" {
                return Err(v.to_string());
            }
        }
    }
    Err(format!("socket closed before '{kind}'"))
}

async fn server(users: usize) -> Result<(OnairProcess, i64, String, Vec<String>), String> {
    // No limit but the chat rules themselves: auth is not exercised here,
    // and thousands of sockets come from this one address.
    let extra = ["--chat-users".to_owned(), users.to_string(), "--write-rate".into(), "100000".into(), "--ws-per-ip".into(), "1000000".into()];
    let p = OnairProcess::spawn(1, "127.0.0.1".parse().unwrap(), &extra).await?;
    let chat = &p.ready["chat"];
    let stream = chat["stream"].as_i64().ok_or("no chat stream")?;
    let host = chat["host_token"].as_str().unwrap_or_default().to_owned();
    let tokens = chat["tokens"].as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    Ok((p, stream, host, tokens))
}

/// What the fan-out run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    pub clients: usize,
    pub messages: usize,
    /// Deliveries expected (clients x messages) and seen.
    pub expected_deliveries: u64,
    pub deliveries: u64,
    /// Send to arrival, per delivery, in ms.
    pub delivery_ms: Percentiles,
    /// The p99 of each message on its own (the first is the coldest).
    pub per_message_p99_ms: Vec<f64>,
    /// The server's CPU over the send window, and per delivery.
    pub server_cpu_s: f64,
    pub server_cpu_us_per_delivery: f64,
    /// Server memory with the clients connected, minus before, per client.
    pub server_rss_bytes_per_client: f64,
    /// Seconds to connect and subscribe every client.
    pub connect_s: f64,
}

/// `clients` watchers, `messages` messages one a second.
pub async fn fanout(clients: usize, messages: usize, progress: bool) -> Result<FanoutReport, String> {
    let (p, stream, host_token, _) = server(0).await?;
    let pid = p.child.id().ok_or("no server pid")?;
    let base = ProcSample::read(pid)?;
    // Send times (µs after `epoch`, +1 so that 0 means "not sent yet"), one per message.
    let epoch = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..messages).map(|_| AtomicU64::new(0)).collect());
    let samples: Arc<Mutex<Vec<(usize, f64)>>> = Default::default();
    let deliveries = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<(), String>>(clients.max(1));
    // Connect in waves so the accept queue is not the thing measured.
    for wave in (0..clients).collect::<Vec<_>>().chunks(200) {
        for _ in wave {
            let (sent, samples, deliveries, ready) = (sent.clone(), samples.clone(), deliveries.clone(), ready_tx.clone());
            let http = p.http;
            tasks.push(tokio::spawn(async move {
                let mut ws = match connect(http, None).await {
                    Ok(ws) => ws,
                    Err(e) => return ready.send(Err(e)).await.unwrap_or(()),
                };
                let sub = json!({ "type": "subscribe", "stream": stream }).to_string();
                if ws.send(Message::Text(sub.into())).await.is_err() {
                    return;
                }
                let r = until(&mut ws, "subscribed").await.map(|_| ());
                let _ = ready.send(r).await;
                let mut local = Vec::new();
                while let Some(Ok(m)) = ws.next().await {
                    let Message::Text(t) = m else { continue };
                    let at = epoch.elapsed().as_micros() as u64;
                    // The harness's own cost per delivery stays small: find the
                    // marker instead of parsing the whole event.
                    let t = t.as_str();
                    if !t.starts_with(r#"{"type":"chat_message""#) {
                        continue;
                    }
                    let Some(seq) = t.split("fan-out #").nth(1).and_then(|rest| rest.split('"').next()).and_then(|n| n.parse::<usize>().ok()) else { continue };
                    let t0 = sent.get(seq).map(|s| s.load(Ordering::Relaxed)).unwrap_or(0);
                    if t0 > 0 {
                        local.push((seq, at.saturating_sub(t0 - 1) as f64 / 1000.0));
                        deliveries.fetch_add(1, Ordering::Relaxed);
                    }
                    if seq + 1 == messages {
                        break;
                    }
                }
                samples.lock().unwrap().extend(local);
                // Stay connected: clients hanging up would disturb the
                // deliveries still on their way to the others.
                std::future::pending::<()>().await;
                drop(ws);
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(ready_tx);
    let mut ok = 0;
    while let Some(r) = ready_rx.recv().await {
        r.map_err(|e| format!("a client could not subscribe: {e}"))?;
        ok += 1;
        if progress && ok % 1000 == 0 {
            eprintln!("{ok} clients subscribed");
        }
        if ok == clients {
            break;
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    let with_clients = ProcSample::read(pid)?;
    let mut sender = connect(p.http, Some(&host_token)).await?;
    let cpu0 = ProcSample::read(pid)?.cpu;
    for seq in 0..messages {
        let body = json!({ "type": "chat", "stream": stream, "text": format!("fan-out #{seq}"), "id": seq }).to_string();
        sent[seq].store(epoch.elapsed().as_micros() as u64 + 1, Ordering::Relaxed);
        sender.send(Message::Text(body.into())).await.map_err(|e| e.to_string())?;
        until(&mut sender, "ack").await.map_err(|e| format!("message {seq} refused: {e}"))?;
        if progress {
            eprintln!("message {seq}: {} deliveries so far", deliveries.load(Ordering::Relaxed));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Let the last one land everywhere.
    let deadline = Instant::now() + Duration::from_secs(10);
    while deliveries.load(Ordering::Relaxed) < (clients * messages) as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = ProcSample::read(pid)?.cpu.saturating_sub(cpu0).as_secs_f64();
    for t in tasks {
        t.abort();
    }
    let all = std::mem::take(&mut *samples.lock().unwrap());
    let per_message_p99_ms = (0..messages)
        .map(|m| Percentiles::of(&mut all.iter().filter(|(s, _)| *s == m).map(|(_, v)| *v).collect::<Vec<_>>()).map(|p| p.p99).unwrap_or(0.0))
        .collect();
    let mut s: Vec<f64> = all.into_iter().map(|(_, v)| v).collect();
    let delivered = deliveries.load(Ordering::Relaxed);
    let _ = std::fs::remove_dir_all(&p.data_dir);
    Ok(FanoutReport {
        clients,
        messages,
        expected_deliveries: (clients * messages) as u64,
        deliveries: delivered,
        delivery_ms: Percentiles::of(&mut s).unwrap_or_default(),
        per_message_p99_ms,
        server_cpu_s: cpu,
        server_cpu_us_per_delivery: if delivered > 0 { cpu * 1e6 / delivered as f64 } else { 0.0 },
        server_rss_bytes_per_client: with_clients.rss_bytes.saturating_sub(base.rss_bytes) as f64 / clients.max(1) as f64,
        connect_s,
    })
}

/// What the ingest run measured.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub senders: usize,
    pub offered_per_s: f64,
    pub duration_s: f64,
    pub sent: u64,
    pub acknowledged: u64,
    /// Refusals by code (a correct run has none).
    pub refused: HashMap<String, u64>,
    /// Acknowledged messages per second, first send to last acknowledgement.
    pub accepted_per_s: f64,
    /// Send to acknowledgement, ms.
    pub ack_ms: Percentiles,
    /// The stream's stored message count afterwards.
    pub stored: i64,
    pub server_cpu_s: f64,
}

/// `senders` users, each sending one message every `senders / rate` seconds, for `duration`.
pub async fn ingest(senders: usize, rate: f64, duration: Duration, progress: bool) -> Result<IngestReport, String> {
    let (p, stream, _, tokens) = server(senders).await?;
    let pid = p.child.id().ok_or("no server pid")?;
    let interval = Duration::from_secs_f64(senders as f64 / rate);
    let acked = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let refused: Arc<Mutex<HashMap<String, u64>>> = Default::default();
    let lat: Arc<Mutex<Vec<f64>>> = Default::default();
    let mut sockets = Vec::with_capacity(senders);
    for t in &tokens {
        let mut ws = connect(p.http, Some(t)).await?;
        until(&mut ws, "hello").await?;
        sockets.push(ws);
    }
    if progress {
        eprintln!("{senders} senders connected; sending {rate} messages/s for {} s", duration.as_secs());
    }
    let cpu0 = ProcSample::read(pid)?.cpu;
    let start = Instant::now() + Duration::from_millis(200);
    let last_ack = Arc::new(Mutex::new(start));
    let mut tasks = Vec::new();
    for (i, mut ws) in sockets.into_iter().enumerate() {
        let (acked, sent, refused, lat, last_ack) = (acked.clone(), sent.clone(), refused.clone(), lat.clone(), last_ack.clone());
        // Spread the senders evenly over one interval.
        let first = start + interval.mul_f64(i as f64 / senders as f64);
        tasks.push(tokio::spawn(async move {
            let mut at = first;
            let mut seq = 0u64;
            let mut local = Vec::new();
            while at < start + duration {
                tokio::time::sleep_until(at.into()).await;
                let body = json!({ "type": "chat", "stream": stream, "text": format!("user {i} says {seq}"), "id": seq }).to_string();
                let t0 = Instant::now();
                if ws.send(Message::Text(body.into())).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                let answer = loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) => {
                            let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                            if v["type"] == "ack" || v["type"] == "error" {
                                break Some(v);
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break None,
                    }
                };
                match answer {
                    Some(v) if v["type"] == "ack" => {
                        acked.fetch_add(1, Ordering::Relaxed);
                        local.push(t0.elapsed().as_secs_f64() * 1000.0);
                        let mut l = last_ack.lock().unwrap();
                        *l = (*l).max(Instant::now());
                    }
                    Some(v) => *refused.lock().unwrap().entry(v["error"]["code"].as_str().unwrap_or("?").to_owned()).or_default() += 1,
                    None => break,
                }
                seq += 1;
                at += interval;
            }
            lat.lock().unwrap().extend(local);
            let _ = ws.close(None).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let cpu = ProcSample::read(pid)?.cpu.saturating_sub(cpu0).as_secs_f64();
    let elapsed = last_ack.lock().unwrap().saturating_duration_since(start).as_secs_f64().max(1e-3);
    let stream_now = crate::http::request(p.http, "GET", &format!("/api/streams/{stream}"), &[("User-Agent", USER_AGENT)], b"", Duration::from_secs(10)).await?.json()?;
    let stored = stream_now["chat_messages"].as_i64().unwrap_or(-1);
    let mut l = std::mem::take(&mut *lat.lock().unwrap());
    let a = acked.load(Ordering::Relaxed);
    let refused = std::mem::take(&mut *refused.lock().unwrap());
    let _ = std::fs::remove_dir_all(&p.data_dir);
    Ok(IngestReport {
        senders,
        offered_per_s: rate,
        duration_s: duration.as_secs_f64(),
        sent: sent.load(Ordering::Relaxed),
        acknowledged: a,
        refused,
        accepted_per_s: a as f64 / elapsed,
        ack_ms: Percentiles::of(&mut l).unwrap_or_default(),
        stored,
        server_cpu_s: cpu,
    })
}
