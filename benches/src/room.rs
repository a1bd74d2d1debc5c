//! The co-host room scenario: `hosts` hosts publish into one room (each
//! replaying the same clips, its payloads tagged so latency is taken from
//! its own send times); every host also watches the room as a host (host
//! WHEP: the others, its own media left out), and `viewers` viewers watch
//! with one slot per host. Figures are taken over a window that starts once
//! everyone is in and warm, as in the standard scenario.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::measure::{LatencyHistogram, Percentiles, ProcSample};
use crate::publisher::{self, PublishAs, PublishMedia, Publisher};
use crate::report::PublisherPackets;
use crate::scenario::{bar, publisher_packets, shared, totals};
use crate::target::Target;
use crate::viewer::{JoinOpts, Shared, Viewer};

const JOIN_CONCURRENCY: usize = 16;
const WARM_UP: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct RoomOptions {
    pub hosts: usize,
    pub viewers: usize,
    pub duration: Duration,
    pub media: PublishMedia,
    pub progress: bool,
}

/// One run of the room scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoomReport {
    pub server: String,
    pub media: String,
    pub hosts: usize,
    /// Slots each viewer offered (one per host).
    pub slots: usize,
    pub viewers: usize,
    /// Viewers that got a first frame from every host.
    pub viewers_ok: usize,
    /// Hosts whose host subscription got a first frame from every other host.
    pub hosts_ok: usize,
    pub join_failures: usize,
    pub duration_s: f64,
    /// RTP packets received in the window by viewers and host subscriptions (media and retransmissions).
    pub forwarded_packets: u64,
    pub retransmitted_packets: u64,
    /// Packets all hosts sent in the window, per layer (q, h, f) and audio.
    pub publisher_packets: PublisherPackets,
    pub server_cpu_s: Option<f64>,
    pub server_cpu_percent: Option<f64>,
    pub server_cpu_us_per_forwarded_packet: Option<f64>,
    pub harness_cpu_percent: Option<f64>,
    /// Host send to viewer receive, in ms.
    pub added_latency_ms: Option<Percentiles>,
    /// Host send to another host's receive (its host subscription), in ms.
    pub host_to_host_latency_ms: Option<Percentiles>,
    /// Viewer's WHEP request to its first complete keyframe (any slot), in ms.
    pub first_frame_ms: Option<Percentiles>,
    /// Viewer's WHEP request to a complete keyframe in every slot (all hosts on screen), in ms.
    pub all_hosts_first_frame_ms: Option<Percentiles>,
    /// Host's WHEP request to a complete keyframe from every other host, in ms.
    pub host_view_first_frame_ms: Option<Percentiles>,
    /// Share of the packets the sequence numbers say were sent that never came (before any retransmission).
    pub loss_ratio: f64,
    /// Video frames per viewer per second (all slots together).
    pub frames_per_viewer_per_s: f64,
    pub layer_switches: u64,
    /// Video streams (viewers' and hosts' slots) by the picture width they ended on: the layers the layout chose.
    pub slots_by_width: BTreeMap<String, usize>,
    pub server_rss_bytes_baseline: Option<u64>,
    pub server_rss_bytes_peak: Option<u64>,
    pub server_rss_bytes_per_viewer: Option<f64>,
}

fn ms(us: u64) -> Option<f64> {
    (us > 0).then(|| us as f64 / 1000.0)
}

/// The room's hosts as `serve --room-hosts` made them: (stream key, access token).
fn room_hosts(target: &Target) -> Result<Vec<(String, String)>, String> {
    let Target::Whip(s) = target else { return Err("the room scenario runs against an OnAir it starts".into()) };
    let room = &s.ready["room"];
    let strs = |k: &str| room[k].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect::<Vec<_>>()).unwrap_or_default();
    let (keys, tokens) = (strs("keys"), strs("tokens"));
    if keys.is_empty() || keys.len() != tokens.len() {
        return Err(format!("OnAir did not make the room: {room}"));
    }
    Ok(keys.into_iter().zip(tokens).collect())
}

/// Publishes as host `i` and waits until its media flows.
async fn start_host(target: &Target, media: PublishMedia, shared: &Shared, i: usize, key: &str) -> Result<Publisher, String> {
    let who = PublishAs { key: Some(key.to_owned()), tag: Some(i as u8) };
    let p = publisher::start_as(target, media, shared.send_times.clone(), &who).await.map_err(|e| format!("host {i}: {e}"))?;
    let end = Instant::now() + Duration::from_secs(15);
    while p.stats.total() < 50 {
        if Instant::now() > end {
            p.stop().await;
            return Err(format!("host {i} did not connect within 15 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(p)
}

/// Joins `opts.len()` viewers, `JOIN_CONCURRENCY` at a time.
async fn join_all(target: &Arc<Target>, shared: &Arc<Shared>, opts: Vec<JoinOpts>) -> (Vec<Viewer>, Vec<String>) {
    let (mut joined, mut errors) = (Vec::new(), Vec::new());
    let mut opts = opts.into_iter().peekable();
    while opts.peek().is_some() {
        let tasks: Vec<_> = opts
            .by_ref()
            .take(JOIN_CONCURRENCY)
            .map(|o| {
                let (t, s) = (target.clone(), shared.clone());
                tokio::spawn(async move { Viewer::join_with(&t, s, o).await })
            })
            .collect();
        for t in tasks {
            match t.await {
                Ok(Ok(v)) => joined.push(v),
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    (joined, errors)
}

fn all_framed(vs: &[Viewer]) -> usize {
    vs.iter().filter(|v| v.stats.all_first_frames_us.load(Ordering::Relaxed) > 0 && !v.stats.failed.load(Ordering::Relaxed)).count()
}

pub async fn room(target: Arc<Target>, opts: &RoomOptions) -> Result<RoomReport, String> {
    let hosts = room_hosts(&target)?;
    if hosts.len() != opts.hosts {
        return Err(format!("OnAir made a room of {} hosts, not {}", hosts.len(), opts.hosts));
    }
    let shared = shared();
    // Host subscriptions measure into a histogram of their own.
    let host_shared = Arc::new(Shared { epoch: shared.epoch, send_times: shared.send_times.clone(), latency: LatencyHistogram::default() });
    let mut publishers = Vec::new();
    for (i, (key, _)) in hosts.iter().enumerate() {
        match start_host(&target, opts.media, &shared, i, key).await {
            Ok(p) => publishers.push(p),
            Err(e) => {
                for p in publishers {
                    p.stop().await;
                }
                return Err(e);
            }
        }
    }
    tokio::time::sleep(WARM_UP).await;
    let pid = target.pid();
    let baseline = pid.and_then(|p| ProcSample::read(p).ok());

    let others = opts.hosts.saturating_sub(1).max(1);
    let host_opts = hosts.iter().map(|(_, token)| JoinOpts { slots: others, expect_video: opts.hosts - 1, bearer: Some(token.clone()), ..Default::default() }).collect();
    let (host_views, mut errors) = join_all(&target, &host_shared, host_opts).await;
    let viewer_opts = (0..opts.viewers).map(|_| JoinOpts { slots: opts.hosts, ..Default::default() }).collect();
    let (viewers, e) = join_all(&target, &shared, viewer_opts).await;
    errors.extend(e);
    if let Some(e) = errors.first() {
        eprintln!("{}: {} of {} subscriptions could not join; first error: {e}", target.name(), errors.len(), opts.viewers + opts.hosts);
    }
    let end = Instant::now() + Duration::from_secs(30);
    while (all_framed(&viewers) < viewers.len() || all_framed(&host_views) < host_views.len()) && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(WARM_UP).await;

    // The window.
    let me = std::process::id();
    let everyone = || viewers.iter().chain(host_views.iter());
    let sum = |f: fn(&crate::scenario::Totals) -> u64| f(&totals(&viewers)) + f(&totals(&host_views));
    let (cpu0, own0) = (pid.and_then(|p| ProcSample::read(p).ok()), ProcSample::read(me).ok());
    let pubs = |ps: &[Publisher]| {
        ps.iter().map(publisher_packets).fold(PublisherPackets::default(), |a, b| PublisherPackets { q: a.q + b.q, h: a.h + b.h, f: a.f + b.f, audio: a.audio + b.audio })
    };
    let (packets0, rtx0, expected0, frames0, pub0, started) = (sum(|t| t.packets), sum(|t| t.rtx), sum(|t| t.expected), totals(&viewers).frames, pubs(&publishers), Instant::now());
    shared.latency.reset();
    host_shared.latency.reset();
    let secs = opts.duration.as_secs().max(1);
    let progress = bar(opts.progress, secs, "room");
    let mut peak_rss = 0u64;
    let mut last = (packets0, Instant::now(), cpu0.map(|c| c.cpu));
    while started.elapsed() < opts.duration {
        tokio::time::sleep(Duration::from_secs(1).min(opts.duration.saturating_sub(started.elapsed()))).await;
        let sample = pid.and_then(|p| ProcSample::read(p).ok());
        peak_rss = peak_rss.max(sample.map(|s| s.rss_bytes).unwrap_or(0));
        let now = sum(|t| t.packets);
        let dt = last.1.elapsed().as_secs_f64().max(1e-3);
        let cpu = match (sample, last.2) {
            (Some(s), Some(c)) => format!("server CPU {:.0}%", (s.cpu.saturating_sub(c)).as_secs_f64() / dt * 100.0),
            _ => String::new(),
        };
        progress.set_message(format!("{} hosts, {} viewers, {:.0} pkts/s forwarded  {cpu}", opts.hosts, viewers.len(), (now - last.0) as f64 / dt));
        progress.set_position(started.elapsed().as_secs().min(secs));
        last = (now, Instant::now(), sample.map(|s| s.cpu));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu1, own1) = (pid.and_then(|p| ProcSample::read(p).ok()), ProcSample::read(me).ok());
    let (packets1, rtx1, expected1, frames1, pub1) = (sum(|t| t.packets), sum(|t| t.rtx), sum(|t| t.expected), totals(&viewers).frames, pubs(&publishers));
    progress.finish_and_clear();

    let forwarded = (packets1 - packets0) + (rtx1 - rtx0);
    let (expected, received) = (expected1 - expected0, packets1 - packets0);
    let server_cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.cpu.saturating_sub(a.cpu).as_secs_f64()),
        _ => None,
    };
    let mut widths = BTreeMap::new();
    for v in everyone() {
        for w in v.stats.widths.lock().unwrap().values() {
            *widths.entry(w.to_string()).or_insert(0usize) += 1;
        }
    }
    let pct = |vs: &[Viewer], f: fn(&Viewer) -> u64| Percentiles::of(&mut vs.iter().filter_map(|v| ms(f(v))).collect::<Vec<_>>());
    let subscriptions = viewers.len() + host_views.len();
    let report = RoomReport {
        server: target.name().to_owned(),
        media: format!("{:?}", opts.media).to_lowercase(),
        hosts: opts.hosts,
        slots: opts.hosts,
        viewers: opts.viewers,
        viewers_ok: all_framed(&viewers),
        hosts_ok: all_framed(&host_views),
        join_failures: errors.len(),
        duration_s: elapsed,
        forwarded_packets: forwarded,
        retransmitted_packets: rtx1 - rtx0,
        publisher_packets: PublisherPackets { q: pub1.q - pub0.q, h: pub1.h - pub0.h, f: pub1.f - pub0.f, audio: pub1.audio - pub0.audio },
        server_cpu_s: server_cpu,
        server_cpu_percent: server_cpu.map(|c| c / elapsed * 100.0),
        server_cpu_us_per_forwarded_packet: server_cpu.filter(|_| forwarded > 0).map(|c| c * 1e6 / forwarded as f64),
        harness_cpu_percent: match (own0, own1) {
            (Some(a), Some(b)) => Some(b.cpu.saturating_sub(a.cpu).as_secs_f64() / elapsed * 100.0),
            _ => None,
        },
        added_latency_ms: shared.latency.percentiles_ms(),
        host_to_host_latency_ms: host_shared.latency.percentiles_ms(),
        first_frame_ms: pct(&viewers, |v| v.stats.first_frame_us.load(Ordering::Relaxed)),
        all_hosts_first_frame_ms: pct(&viewers, |v| v.stats.all_first_frames_us.load(Ordering::Relaxed)),
        host_view_first_frame_ms: pct(&host_views, |v| v.stats.all_first_frames_us.load(Ordering::Relaxed)),
        loss_ratio: if expected > 0 { expected.saturating_sub(received) as f64 / expected as f64 } else { 0.0 },
        frames_per_viewer_per_s: if viewers.is_empty() { 0.0 } else { (frames1 - frames0) as f64 / viewers.len() as f64 / elapsed },
        layer_switches: everyone().map(|v| v.stats.layer_switches.load(Ordering::Relaxed)).sum(),
        slots_by_width: widths,
        server_rss_bytes_baseline: baseline.map(|b| b.rss_bytes),
        server_rss_bytes_peak: pid.map(|_| peak_rss),
        server_rss_bytes_per_viewer: baseline.filter(|_| subscriptions > 0).map(|b| peak_rss.saturating_sub(b.rss_bytes) as f64 / subscriptions as f64),
    };
    crate::scenario::leave_all(&target, viewers).await;
    crate::scenario::leave_all(&target, host_views).await;
    for p in publishers {
        p.stop().await;
    }
    Ok(report)
}

/// The one-line summary `onair-bench room` prints.
pub fn line(r: &RoomReport) -> String {
    let p = |x: &Option<Percentiles>, f: fn(&Percentiles) -> f64| x.as_ref().map(|v| format!("{:.1}", f(v))).unwrap_or_else(|| "-".into());
    let o = |x: Option<f64>, d: usize| x.map(|v| format!("{v:.d$}")).unwrap_or_else(|| "-".into());
    format!(
        "| room | {} hosts, {} viewers x {} slots | {}/{} viewers, {}/{} hosts see all | {:.0} pkts/s forwarded | server CPU {}% , {} us/pkt | added p50 {} / p99 {} ms | host-to-host p50 {} / p99 {} ms | first frame p50 {} / all hosts p50 {} / p99 {} ms | loss {:.4} | widths {:?} |",
        r.hosts,
        r.viewers,
        r.slots,
        r.viewers_ok,
        r.viewers,
        r.hosts_ok,
        r.hosts,
        r.forwarded_packets as f64 / r.duration_s.max(1e-3),
        o(r.server_cpu_percent, 0),
        o(r.server_cpu_us_per_forwarded_packet, 2),
        p(&r.added_latency_ms, |v| v.p50),
        p(&r.added_latency_ms, |v| v.p99),
        p(&r.host_to_host_latency_ms, |v| v.p50),
        p(&r.host_to_host_latency_ms, |v| v.p99),
        p(&r.first_frame_ms, |v| v.p50),
        p(&r.all_hosts_first_frame_ms, |v| v.p50),
        p(&r.all_hosts_first_frame_ms, |v| v.p99),
        r.loss_ratio,
        r.slots_by_width
    )
}
