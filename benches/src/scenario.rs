//! The scenarios: the standard one (one publisher, N viewers, a measured
//! window), viewer churn, and a viewer on a constrained link.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::measure::{LatencyHistogram, Percentiles, ProcSample, SendTimes};
use crate::netns::Netns;
use crate::publisher::{self, PublishMedia, Publisher};
use crate::report::{PublisherPackets, RunReport};
use crate::target::Target;
use crate::viewer::{Shared, Viewer};

/// How many viewers sign in at once.
const JOIN_CONCURRENCY: usize = 16;
const WARM_UP: Duration = Duration::from_secs(2);

/// Options of the standard scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub viewers: usize,
    pub duration: Duration,
    pub media: PublishMedia,
    /// Show a progress bar.
    pub progress: bool,
}

pub(crate) fn shared() -> Arc<Shared> {
    let epoch = Instant::now();
    Arc::new(Shared { epoch, send_times: Arc::new(SendTimes::new(epoch)), latency: LatencyHistogram::default() })
}

/// Starts the publisher and waits until media flows.
pub(crate) async fn start_publisher(target: &Target, media: PublishMedia, shared: &Shared) -> Result<Publisher, String> {
    let publisher = publisher::start(target, media, shared.send_times.clone()).await?;
    let end = Instant::now() + Duration::from_secs(15);
    while publisher.stats.total() < 50 {
        if Instant::now() > end {
            publisher.stop().await;
            return Err("the publisher did not connect within 15 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(publisher)
}

/// Joins `n` viewers, `JOIN_CONCURRENCY` at a time; returns those that joined and the errors.
pub(crate) async fn join(target: &Arc<Target>, shared: &Arc<Shared>, n: usize) -> (Vec<Viewer>, Vec<String>) {
    let mut viewers = Vec::with_capacity(n);
    let mut errors = Vec::new();
    let mut left = n;
    while left > 0 {
        let batch = left.min(JOIN_CONCURRENCY);
        left -= batch;
        let tasks: Vec<_> = (0..batch)
            .map(|_| {
                let (t, s) = (target.clone(), shared.clone());
                tokio::spawn(async move { Viewer::join(&t, s, None).await })
            })
            .collect();
        for t in tasks {
            match t.await {
                Ok(Ok(v)) => viewers.push(v),
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    (viewers, errors)
}

pub(crate) async fn leave_all(target: &Arc<Target>, viewers: Vec<Viewer>) {
    let mut tasks = Vec::new();
    for v in viewers {
        let t = target.clone();
        tasks.push(tokio::spawn(async move { v.leave(&t).await }));
        if tasks.len() >= JOIN_CONCURRENCY {
            for t in tasks.drain(..) {
                let _ = t.await;
            }
        }
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// What every viewer counted, summed, at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    pub packets: u64,
    pub rtx: u64,
    pub expected: u64,
    pub frames: u64,
    pub switches: u64,
}

pub(crate) fn totals(viewers: &[Viewer]) -> Totals {
    let mut t = Totals::default();
    for v in viewers {
        let s = &v.stats;
        t.packets += s.packets.load(Ordering::Relaxed);
        t.rtx += s.rtx_packets.load(Ordering::Relaxed);
        t.expected += s.expected.load(Ordering::Relaxed);
        t.frames += s.frames.load(Ordering::Relaxed);
        t.switches += s.layer_switches.load(Ordering::Relaxed);
    }
    t
}

pub(crate) fn publisher_packets(p: &Publisher) -> PublisherPackets {
    let s = &p.stats;
    PublisherPackets {
        q: s.video_packets[0].load(Ordering::Relaxed),
        h: s.video_packets[1].load(Ordering::Relaxed),
        f: s.video_packets[2].load(Ordering::Relaxed),
        audio: s.audio_packets.load(Ordering::Relaxed),
    }
}

pub(crate) fn first_frames_ms(viewers: &[Viewer]) -> Vec<f64> {
    viewers.iter().map(|v| v.stats.first_frame_us.load(Ordering::Relaxed)).filter(|&us| us > 0).map(|us| us as f64 / 1000.0).collect()
}

/// Percentiles of one of the viewers' join times (those that got there), in ms.
fn times_ms(viewers: &[Viewer], f: fn(&crate::viewer::ViewerStats) -> &std::sync::atomic::AtomicU64) -> Option<Percentiles> {
    Percentiles::of(&mut viewers.iter().map(|v| f(&v.stats).load(Ordering::Relaxed)).filter(|&us| us > 0).map(|us| us as f64 / 1000.0).collect::<Vec<_>>())
}

pub(crate) fn bar(progress: bool, len: u64, what: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} s  {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "));
    b.set_prefix(what.to_owned());
    b
}

/// The standard scenario: one publisher, `viewers` viewers; every figure is
/// taken over a window that starts once all viewers are in and warm.
pub async fn standard(target: Arc<Target>, opts: &RunOptions) -> Result<RunReport, String> {
    let shared = shared();
    let publisher = start_publisher(&target, opts.media, &shared).await?;
    tokio::time::sleep(WARM_UP).await;
    let pid = target.pid();
    let baseline = pid.and_then(|p| ProcSample::read(p).ok());
    let (viewers, errors) = join(&target, &shared, opts.viewers).await;
    if let Some(e) = errors.first() {
        eprintln!("{}: {} of {} viewers could not join; first error: {e}", target.name(), errors.len(), opts.viewers);
    }
    // Wait for everyone's first frame (or 20 s), then warm up.
    let end = Instant::now() + Duration::from_secs(20);
    while first_frames_ms(&viewers).len() < viewers.len() && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(WARM_UP).await;

    // The window.
    let me = std::process::id();
    let (cpu0, own0) = (pid.and_then(|p| ProcSample::read(p).ok()), ProcSample::read(me).ok());
    let (t0, pub0, started) = (totals(&viewers), publisher_packets(&publisher), Instant::now());
    shared.latency.reset();
    let secs = opts.duration.as_secs().max(1);
    let progress = bar(opts.progress, secs, target.name());
    let mut peak_rss = 0u64;
    let mut last = (t0.packets, Instant::now(), cpu0.map(|c| c.cpu));
    while started.elapsed() < opts.duration {
        tokio::time::sleep(Duration::from_secs(1).min(opts.duration.saturating_sub(started.elapsed()))).await;
        let sample = pid.and_then(|p| ProcSample::read(p).ok());
        peak_rss = peak_rss.max(sample.map(|s| s.rss_bytes).unwrap_or(0));
        let now = totals(&viewers).packets;
        let dt = last.1.elapsed().as_secs_f64().max(1e-3);
        let cpu = match (sample, last.2) {
            (Some(s), Some(c)) => format!("server CPU {:.0}%", (s.cpu.saturating_sub(c)).as_secs_f64() / dt * 100.0),
            _ => String::new(),
        };
        progress.set_message(format!("{} viewers, {:.0} pkts/s forwarded  {cpu}", viewers.len(), (now - last.0) as f64 / dt));
        progress.set_position(started.elapsed().as_secs().min(secs));
        last = (now, Instant::now(), sample.map(|s| s.cpu));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu1, own1) = (pid.and_then(|p| ProcSample::read(p).ok()), ProcSample::read(me).ok());
    let (t1, pub1) = (totals(&viewers), publisher_packets(&publisher));
    progress.finish_and_clear();

    let forwarded = (t1.packets - t0.packets) + (t1.rtx - t0.rtx);
    let expected = t1.expected - t0.expected;
    let received = t1.packets - t0.packets;
    let server_cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.cpu.saturating_sub(a.cpu).as_secs_f64()),
        _ => None,
    };
    let mut widths = std::collections::BTreeMap::new();
    for v in &viewers {
        *widths.entry(v.stats.width.load(Ordering::Relaxed).to_string()).or_insert(0usize) += 1;
    }
    let ok = viewers.iter().filter(|v| v.stats.first_frame_us.load(Ordering::Relaxed) > 0 && !v.stats.failed.load(Ordering::Relaxed)).count();
    let report = RunReport {
        server: target.name().to_owned(),
        media: format!("{:?}", opts.media).to_lowercase(),
        viewers: opts.viewers,
        viewers_ok: ok,
        join_failures: errors.len(),
        duration_s: elapsed,
        forwarded_packets: forwarded,
        retransmitted_packets: t1.rtx - t0.rtx,
        publisher_packets: PublisherPackets { q: pub1.q - pub0.q, h: pub1.h - pub0.h, f: pub1.f - pub0.f, audio: pub1.audio - pub0.audio },
        server_cpu_s: server_cpu,
        server_cpu_percent: server_cpu.map(|c| c / elapsed * 100.0),
        server_cpu_us_per_forwarded_packet: server_cpu.filter(|_| forwarded > 0).map(|c| c * 1e6 / forwarded as f64),
        harness_cpu_percent: match (own0, own1) {
            (Some(a), Some(b)) => Some(b.cpu.saturating_sub(a.cpu).as_secs_f64() / elapsed * 100.0),
            _ => None,
        },
        added_latency_ms: shared.latency.percentiles_ms(),
        first_frame_ms: Percentiles::of(&mut first_frames_ms(&viewers)),
        answer_ms: times_ms(&viewers, |s| &s.answer_us),
        connected_ms: times_ms(&viewers, |s| &s.connected_us),
        first_packet_ms: times_ms(&viewers, |s| &s.first_packet_us),
        loss_ratio: if expected > 0 { expected.saturating_sub(received) as f64 / expected as f64 } else { 0.0 },
        frames_per_viewer_per_s: if viewers.is_empty() { 0.0 } else { (t1.frames - t0.frames) as f64 / viewers.len() as f64 / elapsed },
        layer_switches: t1.switches,
        viewers_by_width: widths,
        server_rss_bytes_baseline: baseline.map(|b| b.rss_bytes),
        server_rss_bytes_peak: pid.map(|_| peak_rss),
        server_rss_bytes_per_viewer: baseline.filter(|_| !viewers.is_empty()).map(|b| peak_rss.saturating_sub(b.rss_bytes) as f64 / viewers.len() as f64),
    };
    leave_all(&target, viewers).await;
    publisher.stop().await;
    Ok(report)
}

/// Viewer churn: every second `rate` viewers join and the `rate` oldest leave.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnReport {
    pub server: String,
    pub rate_per_s: usize,
    pub lifetime_s: u64,
    pub duration_s: f64,
    pub joins: usize,
    pub join_failures: usize,
    pub leaves: usize,
    pub leave_failures: usize,
    /// Viewers that left without a first frame.
    pub never_got_a_frame: usize,
    pub first_frame_ms: Option<Percentiles>,
    pub server_cpu_percent: Option<f64>,
    /// Server memory with the publisher only, at the end of the churn, and after everyone left.
    pub server_rss_bytes_baseline: Option<u64>,
    pub server_rss_bytes_during: Option<u64>,
    pub server_rss_bytes_after: Option<u64>,
}

pub async fn churn(target: Arc<Target>, rate: usize, lifetime: Duration, duration: Duration, progress: bool) -> Result<ChurnReport, String> {
    let shared = shared();
    let publisher = start_publisher(&target, PublishMedia::Vp8, &shared).await?;
    tokio::time::sleep(WARM_UP).await;
    let pid = target.pid();
    let baseline = pid.and_then(|p| ProcSample::read(p).ok());
    let cpu0 = baseline;
    let started = Instant::now();
    let bar = bar(progress, duration.as_secs(), "churn");
    let mut live: std::collections::VecDeque<(Instant, Viewer)> = Default::default();
    let (mut joins, mut join_failures, mut leaves, mut leave_failures, mut no_frame) = (0, 0, 0, 0, 0);
    let mut first_frames = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while started.elapsed() < duration {
        tick.tick().await;
        // The oldest leave...
        let mut leaving = Vec::new();
        while live.front().is_some_and(|(at, _)| at.elapsed() >= lifetime) && leaving.len() < rate {
            leaving.push(live.pop_front().unwrap().1);
        }
        // ...while the new join.
        let joining: Vec<_> = (0..rate)
            .map(|_| {
                let (t, s) = (target.clone(), shared.clone());
                tokio::spawn(async move { Viewer::join(&t, s, None).await })
            })
            .collect();
        let mut gone = Vec::new();
        for v in leaving {
            let us = v.stats.first_frame_us.load(Ordering::Relaxed);
            if us == 0 {
                no_frame += 1;
            } else {
                first_frames.push(us as f64 / 1000.0);
            }
            let t = target.clone();
            gone.push(tokio::spawn(async move { v.leave(&t).await }));
        }
        for j in joining {
            joins += 1;
            match j.await {
                Ok(Ok(v)) => live.push_back((Instant::now(), v)),
                _ => join_failures += 1,
            }
        }
        for g in gone {
            leaves += 1;
            if !matches!(g.await, Ok(Ok(()))) {
                leave_failures += 1;
            }
        }
        bar.set_message(format!("{} watching, {joins} joined, {join_failures} failed", live.len()));
        bar.set_position(started.elapsed().as_secs().min(duration.as_secs()));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu1 = pid.and_then(|p| ProcSample::read(p).ok());
    bar.finish_and_clear();
    for (_, v) in &live {
        let us = v.stats.first_frame_us.load(Ordering::Relaxed);
        if us > 0 {
            first_frames.push(us as f64 / 1000.0);
        }
    }
    let during = cpu1.map(|s| s.rss_bytes);
    let n = live.len();
    leave_all(&target, live.into_iter().map(|(_, v)| v).collect()).await;
    leaves += n;
    // Give the server a moment to tear the sessions down.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = pid.and_then(|p| ProcSample::read(p).ok()).map(|s| s.rss_bytes);
    publisher.stop().await;
    Ok(ChurnReport {
        server: target.name().to_owned(),
        rate_per_s: rate,
        lifetime_s: lifetime.as_secs(),
        duration_s: elapsed,
        joins,
        join_failures,
        leaves,
        leave_failures,
        never_got_a_frame: no_frame,
        first_frame_ms: Percentiles::of(&mut first_frames),
        server_cpu_percent: match (cpu0, cpu1) {
            (Some(a), Some(b)) => Some(b.cpu.saturating_sub(a.cpu).as_secs_f64() / elapsed * 100.0),
            _ => None,
        },
        server_rss_bytes_baseline: baseline.map(|b| b.rss_bytes),
        server_rss_bytes_during: during,
        server_rss_bytes_after: after,
    })
}

/// A viewer behind a constrained link: where it went and when.
#[derive(Debug, Clone, Serialize)]
pub struct ConstrainedReport {
    pub server: String,
    /// The qdisc on the viewer's downlink while constrained.
    pub shaping: String,
    /// Seconds since the viewer joined: constraint on, constraint off.
    pub constrained_from_s: f64,
    pub constrained_until_s: f64,
    /// (seconds since join, picture width) at every layer change.
    pub layers: Vec<(f64, u16)>,
    pub top_width: u16,
    /// Seconds from the constraint to the first lower layer.
    pub fell_back_after_s: Option<f64>,
    /// Seconds from lifting it to the top layer again.
    pub recovered_after_s: Option<f64>,
    pub loss_ratio: f64,
}

/// Addresses of the namespace the constrained viewer lives in.
pub const CONSTRAINED_HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
pub const CONSTRAINED_NS_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 2);

/// One viewer inside a network namespace whose downlink gets the qdisc `shaping` from
/// `on` to `off` seconds after it joins, then runs free until `total`. The
/// server's media must be reachable at [`CONSTRAINED_HOST_IP`].
pub async fn constrained(target: Arc<Target>, ns: &Netns, shaping: &str, on: Duration, off: Duration, total: Duration, progress: bool) -> Result<ConstrainedReport, String> {
    let shared = shared();
    let publisher = start_publisher(&target, PublishMedia::Vp8, &shared).await?;
    let socket = ns.bind_udp(std::net::SocketAddr::new(CONSTRAINED_NS_IP.into(), 0))?;
    let viewer = Viewer::join(&target, shared.clone(), Some(socket)).await?;
    let joined = Instant::now();
    let bar = bar(progress, total.as_secs(), "constrained");
    let mut constrained = false;
    let mut done = false;
    while joined.elapsed() < total {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let t = joined.elapsed();
        if !constrained && !done && t >= on {
            ns.shape(shaping)?;
            constrained = true;
        }
        if constrained && t >= off {
            ns.unshape()?;
            constrained = false;
            done = true;
        }
        bar.set_position(t.as_secs().min(total.as_secs()));
        bar.set_message(format!("width {}{}", viewer.stats.width.load(Ordering::Relaxed), if constrained { ", constrained" } else { "" }));
    }
    if constrained {
        ns.unshape()?;
    }
    bar.finish_and_clear();
    let since_join = joined.saturating_duration_since(shared.epoch).as_secs_f64();
    let layers: Vec<(f64, u16)> = viewer.stats.layers.lock().unwrap().iter().map(|(t, w)| ((t - since_join).max(0.0), *w)).collect();
    let top = layers.iter().map(|(_, w)| *w).max().unwrap_or(0);
    let (on_s, off_s) = (on.as_secs_f64(), off.as_secs_f64());
    let fell = layers.iter().find(|(t, w)| *t >= on_s && *w < top).map(|(t, _)| t - on_s);
    let recovered = fell.and_then(|_| layers.iter().find(|(t, w)| *t >= off_s && *w == top).map(|(t, _)| t - off_s));
    let (packets, expected) = (viewer.stats.packets.load(Ordering::Relaxed), viewer.stats.expected.load(Ordering::Relaxed));
    let report = ConstrainedReport {
        server: target.name().to_owned(),
        shaping: shaping.to_owned(),
        constrained_from_s: on_s,
        constrained_until_s: off_s,
        layers,
        top_width: top,
        fell_back_after_s: fell,
        recovered_after_s: recovered,
        loss_ratio: if expected > 0 { expected.saturating_sub(packets) as f64 / expected as f64 } else { 0.0 },
    };
    let _ = viewer.leave(&target).await;
    publisher.stop().await;
    Ok(report)
}
