//! The abuse scenarios: what legitimate viewers lose while one hostile
//! client floods the server.
//!
//! OnAir starts with its production limits (offers: 10 a second per
//! address, bursts of 100). A publisher and N viewers run a calm window,
//! then the same window again while the attacker runs; the report puts
//! both side by side: the viewers' loss, frames per second, added latency
//! (p50/p99) and the server's CPU, plus what the attacker achieved.
//!
//! - `offer-flood`: WHEP offers from one address as fast as RATE a second
//!   (each costs the server a peer connection if admitted);
//! - `pli-flood`: one viewer sending RATE keyframe requests (PLI) a second;
//! - `garbage`: RATE random datagrams a second at the media port(s), from
//!   four addresses the server never saw.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::measure::{Percentiles, ProcSample};
use crate::scenario::{self, totals};
use crate::target::{Target, USER_AGENT};
use crate::viewer::Viewer;

/// Which abuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    OfferFlood,
    PliFlood,
    Garbage,
}

impl Kind {
    /// The default rate of each (per second).
    pub fn default_rate(self) -> u32 {
        match self {
            Kind::OfferFlood => 300,
            Kind::PliFlood => 5_000,
            Kind::Garbage => 20_000,
        }
    }
}

/// What the legitimate viewers got in one window.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub duration_s: f64,
    /// Packets the sequence numbers say were sent and never arrived (after repair).
    pub loss_ratio: f64,
    pub frames_per_viewer_per_s: f64,
    pub retransmitted_packets: u64,
    pub added_latency_ms: Option<Percentiles>,
    pub server_cpu_percent: Option<f64>,
}

/// The report of one abuse scenario.
#[derive(Debug, Clone, Serialize)]
pub struct AbuseReport {
    pub kind: Kind,
    pub rate_per_s: u32,
    pub viewers: usize,
    pub calm: Window,
    pub abuse: Window,
    /// What the attacker sent and got (by kind).
    pub attacker: serde_json::Value,
}

/// Runs one scenario on a fresh OnAir.
pub async fn run(kind: Kind, rate: u32, viewers: usize, window: Duration, workers: usize) -> Result<AbuseReport, String> {
    let extra: Vec<String> = ["--media-rate", "10"].iter().map(|s| s.to_string()).collect();
    let target = Arc::new(Target::start_onair_with(workers, "127.0.0.1".parse().unwrap(), &extra).await?);
    let result = run_on(&target, kind, rate, viewers, window).await;
    if let Ok(t) = Arc::try_unwrap(target) {
        t.stop().await;
    }
    result
}

async fn run_on(target: &Arc<Target>, kind: Kind, rate: u32, n: usize, window: Duration) -> Result<AbuseReport, String> {
    let shared = scenario::shared();
    let publisher = scenario::start_publisher(target, crate::publisher::PublishMedia::Vp8, &shared).await?;
    // As the standard scenario: the platform marks the stream live a moment after its media starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (viewers, errors) = scenario::join(target, &shared, n).await;
    if let Some(e) = errors.first() {
        return Err(format!("{} of {n} viewers could not join: {e}", errors.len()));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calm = measure(target, &shared, &viewers, window).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let mut attacker_viewer = None;
    let mut tasks = Vec::new();
    match kind {
        Kind::OfferFlood => {
            let Target::Whip(w) = &**target else { return Err("the offer flood needs a WHIP/WHEP server".into()) };
            let (addr, path) = (w.whep.addr, w.whep.path.clone());
            let offer = recvonly_offer();
            for lane in 0..8u32 {
                let (stop, counts, path, offer) = (stop.clone(), counts.clone(), path.clone(), offer.clone());
                let per_lane = Duration::from_secs_f64(8.0 / f64::from(rate.max(1)));
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(per_lane * lane / 8).await;
                    let mut tick = tokio::time::interval(per_lane);
                    while !stop.load(Ordering::Relaxed) {
                        tick.tick().await;
                        let headers = [("Content-Type", "application/sdp"), ("User-Agent", USER_AGENT)];
                        let r = crate::http::request(addr, "POST", &path, &headers, offer.as_bytes(), Duration::from_secs(10)).await;
                        let slot = match r.map(|r| r.status) {
                            Ok(201) => 0,
                            Ok(429) => 1,
                            Ok(503) => 2,
                            _ => 3,
                        };
                        counts[slot].fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
        }
        Kind::PliFlood => {
            let attacker_shared = scenario::shared();
            attacker_viewer = Some(Viewer::join_as(target, attacker_shared, None, rate).await?);
        }
        Kind::Garbage => {
            let Target::Whip(w) = &**target else { return Err("garbage needs OnAir's media address".into()) };
            let media = w.media.clone();
            if media.is_empty() {
                return Err("the server did not say its media addresses".into());
            }
            for k in 0..4u64 {
                let (stop, counts, media) = (stop.clone(), counts.clone(), media.clone());
                tasks.push(tokio::spawn(async move {
                    let Ok(s) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else { return };
                    let per_tick = (rate / 4 / 100).max(1);
                    let mut tick = tokio::time::interval(Duration::from_millis(10));
                    let mut n = k;
                    while !stop.load(Ordering::Relaxed) {
                        tick.tick().await;
                        for _ in 0..per_tick {
                            n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                            let len = 1 + (n >> 33) as usize % 1200;
                            let mut d: Vec<u8> = (0..len).map(|i| (n >> (i % 56)) as u8 ^ i as u8).collect();
                            // RTP, STUN, DTLS, anything: RFC 7983's first-byte ranges in turn.
                            d[0] = [0x80, 0x00, 0x16, 0xff][(n % 4) as usize];
                            let to = media[(n as usize) % media.len()];
                            if s.send_to(&d, to).await.is_ok() {
                                counts[0].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }));
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let abuse = measure(target, &shared, &viewers, window).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let get = |i: usize| counts[i].load(Ordering::Relaxed);
    let attacker = match kind {
        Kind::OfferFlood => serde_json::json!({ "created": get(0), "rate_limited": get(1), "capacity": get(2), "other": get(3) }),
        Kind::PliFlood => serde_json::json!({ "plis_offered_per_s": rate }),
        Kind::Garbage => serde_json::json!({ "datagrams_sent": get(0) }),
    };
    if let Some(v) = attacker_viewer {
        let _ = v.leave(target).await;
    }
    scenario::leave_all(target, viewers).await;
    publisher.stop().await;
    Ok(AbuseReport { kind, rate_per_s: rate, viewers: n, calm, abuse, attacker })
}

/// What the viewers got over one window.
async fn measure(target: &Target, shared: &crate::viewer::Shared, viewers: &[Viewer], window: Duration) -> Window {
    let pid = target.pid();
    let cpu0 = pid.and_then(|p| ProcSample::read(p).ok());
    let (t0, started) = (totals(viewers), Instant::now());
    shared.latency.reset();
    tokio::time::sleep(window).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu1 = pid.and_then(|p| ProcSample::read(p).ok());
    let t1 = totals(viewers);
    let expected = t1.expected - t0.expected;
    let received = t1.packets - t0.packets;
    Window {
        duration_s: elapsed,
        loss_ratio: if expected > 0 { expected.saturating_sub(received) as f64 / expected as f64 } else { 0.0 },
        frames_per_viewer_per_s: if viewers.is_empty() { 0.0 } else { (t1.frames - t0.frames) as f64 / viewers.len() as f64 / elapsed },
        retransmitted_packets: t1.rtx - t0.rtx,
        added_latency_ms: shared.latency.percentiles_ms(),
        server_cpu_percent: match (cpu0, cpu1) {
            (Some(a), Some(b)) => Some(b.cpu.saturating_sub(a.cpu).as_secs_f64() / elapsed * 100.0),
            _ => None,
        },
    }
}

/// A recvonly offer that never connects (ICE and DTLS attributes included).
fn recvonly_offer() -> String {
    let fp = (0..32).map(|i| format!("{:02X}", i * 7 % 256)).collect::<Vec<_>>().join(":");
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=fingerprint:sha-256 {fp}\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abus\r\na=ice-pwd:abusabusabusabusabusabus\r\n\
         a=setup:actpass\r\na=rtcp-mux\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n"
    )
}

/// A table row per window.
pub fn table(r: &AbuseReport) -> String {
    let row = |name: &str, w: &Window| {
        let lat = w.added_latency_ms.as_ref().map(|p| format!("{:.1} / {:.1}", p.p50, p.p99)).unwrap_or_else(|| "-".into());
        let cpu = w.server_cpu_percent.map(|c| format!("{c:.0}%")).unwrap_or_else(|| "-".into());
        format!("| {:?} {name} | {} viewers | loss {:.4}% | {:.1} fps | latency p50/p99 {lat} ms | rtx {} | server CPU {cpu} |\n", r.kind, r.viewers, w.loss_ratio * 100.0, w.frames_per_viewer_per_s, w.retransmitted_packets)
    };
    format!("{}{}| attacker | {} |\n", row("calm", &r.calm), row("under abuse", &r.abuse), r.attacker)
}
