//! Results: the JSON a run writes, the table it prints, the SVG plot of a sweep.

use serde::Serialize;

use crate::measure::Percentiles;

/// One run of the standard scenario against one server.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub server: String,
    pub media: String,
    /// Viewers asked for.
    pub viewers: usize,
    /// Viewers that connected and got a first frame.
    pub viewers_ok: usize,
    pub join_failures: usize,
    /// Length of the measurement window (all viewers in, after a warm-up).
    pub duration_s: f64,
    /// RTP packets the viewers received in the window (media and retransmissions).
    pub forwarded_packets: u64,
    /// Of those, retransmissions on an RTX payload type.
    pub retransmitted_packets: u64,
    /// Packets the publisher sent in the window, per layer (q, h, f) and audio.
    pub publisher_packets: PublisherPackets,
    /// Server CPU (user + system) in the window.
    pub server_cpu_s: Option<f64>,
    /// Server CPU as a share of one core.
    pub server_cpu_percent: Option<f64>,
    pub server_cpu_us_per_forwarded_packet: Option<f64>,
    /// The harness's own CPU in the window, to show it is not the bottleneck.
    pub harness_cpu_percent: Option<f64>,
    /// Publisher send to viewer receive, in ms.
    pub added_latency_ms: Option<Percentiles>,
    /// Viewer's request to its first complete keyframe, in ms.
    pub first_frame_ms: Option<Percentiles>,
    /// Where that time went, each from the viewer's request, in ms: the
    /// WHEP answer, the connection up (ICE and DTLS), the first media packet.
    pub answer_ms: Option<Percentiles>,
    pub connected_ms: Option<Percentiles>,
    pub first_packet_ms: Option<Percentiles>,
    /// Share of the packets the sequence numbers say were sent that never came (before any retransmission).
    pub loss_ratio: f64,
    /// Video frames per viewer per second.
    pub frames_per_viewer_per_s: f64,
    pub layer_switches: u64,
    /// How many viewers ended on each picture width (their layer; 0 = H.264, whose size is not read).
    pub viewers_by_width: std::collections::BTreeMap<String, usize>,
    /// Server memory with the publisher only, and the highest seen with every viewer in.
    pub server_rss_bytes_baseline: Option<u64>,
    pub server_rss_bytes_peak: Option<u64>,
    pub server_rss_bytes_per_viewer: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PublisherPackets {
    pub q: u64,
    pub h: u64,
    pub f: u64,
    pub audio: u64,
}

/// OnAir against Janus at one viewer count: Janus's figure over OnAir's
/// (above 1 means OnAir does better).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ratios {
    pub cpu_per_forwarded_packet: Option<f64>,
    pub p99_added_latency: Option<f64>,
    pub p50_first_frame: Option<f64>,
    pub memory_per_viewer: Option<f64>,
}

impl Ratios {
    pub fn of(onair: &RunReport, janus: &RunReport) -> Ratios {
        let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(j), Some(o)) if o > 0.0 => Some(j / o),
            _ => None,
        };
        Ratios {
            cpu_per_forwarded_packet: div(janus.server_cpu_us_per_forwarded_packet, onair.server_cpu_us_per_forwarded_packet),
            p99_added_latency: div(janus.added_latency_ms.map(|p| p.p99), onair.added_latency_ms.map(|p| p.p99)),
            p50_first_frame: div(janus.first_frame_ms.map(|p| p.p50), onair.first_frame_ms.map(|p| p.p50)),
            memory_per_viewer: div(janus.server_rss_bytes_per_viewer, onair.server_rss_bytes_per_viewer),
        }
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "-".into())
}

/// A Markdown table of runs, one row each.
pub fn table(runs: &[RunReport]) -> String {
    let mut s = String::from(
        "| server | viewers | ok | fwd pkts/s | CPU % | CPU us/pkt | latency p50/p95/p99 ms | first frame p50/p99 ms | loss % | fps | KB/viewer |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in runs {
        let lat = r.added_latency_ms.map(|p| format!("{:.2} / {:.2} / {:.2}", p.p50, p.p95, p.p99)).unwrap_or_else(|| "-".into());
        let ff = r.first_frame_ms.map(|p| format!("{:.0} / {:.0}", p.p50, p.p99)).unwrap_or_else(|| "-".into());
        s.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {:.2} | {:.1} | {} |\n",
            r.server,
            r.viewers,
            r.viewers_ok,
            r.forwarded_packets as f64 / r.duration_s.max(1e-9),
            opt(r.server_cpu_percent, 1),
            opt(r.server_cpu_us_per_forwarded_packet, 2),
            lat,
            ff,
            r.loss_ratio * 100.0,
            r.frames_per_viewer_per_s,
            opt(r.server_rss_bytes_per_viewer.map(|b| b / 1024.0), 1),
        ));
    }
    s
}

/// The SVG plot of a sweep: server CPU per forwarded packet (left) and p99
/// added latency (right) against viewers, one line per server.
pub fn svg(runs: &[RunReport]) -> String {
    let mut servers: Vec<&str> = runs.iter().map(|r| r.server.as_str()).collect();
    servers.dedup();
    servers.sort();
    servers.dedup();
    let mut counts: Vec<usize> = runs.iter().map(|r| r.viewers).collect();
    counts.sort();
    counts.dedup();
    let colors = ["#d9480f", "#1864ab", "#2b8a3e", "#862e9c"];
    let (w, h, pad) = (420.0, 300.0, 50.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        2.0 * w + 20.0,
        h + 40.0
    );
    type Metric = fn(&RunReport) -> Option<f64>;
    let panels: [(&str, Metric); 2] = [
        ("server CPU us per forwarded packet", |r| r.server_cpu_us_per_forwarded_packet),
        ("p99 added latency, ms", |r| r.added_latency_ms.map(|p| p.p99)),
    ];
    for (pi, (title, metric)) in panels.iter().enumerate() {
        let x0 = pi as f64 * (w + 20.0);
        let max = runs.iter().filter_map(metric).fold(0.0f64, f64::max).max(1e-9) * 1.15;
        let px = |i: usize| x0 + pad + (w - 1.5 * pad) * if counts.len() > 1 { i as f64 / (counts.len() - 1) as f64 } else { 0.5 };
        let py = |v: f64| pad / 2.0 + (h - pad) * (1.0 - v / max);
        out.push_str(&format!("<text x=\"{}\" y=\"16\" font-weight=\"bold\">{title}</text>\n", x0 + pad));
        out.push_str(&format!(
            "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#444\"/><line x1=\"{0}\" y1=\"{2}\" x2=\"{3}\" y2=\"{2}\" stroke=\"#444\"/>\n",
            x0 + pad,
            pad / 2.0,
            py(0.0),
            x0 + w - pad / 2.0
        ));
        for k in 0..=4 {
            let v = max / 1.15 * k as f64 / 4.0;
            out.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#444\">{v:.1}</text><line x1=\"{}\" y1=\"{2}\" x2=\"{}\" y2=\"{2}\" stroke=\"#eee\"/>\n",
                x0 + pad - 4.0,
                py(v) + 4.0,
                x0 + pad,
                x0 + w - pad / 2.0
            ));
        }
        for (i, n) in counts.iter().enumerate() {
            out.push_str(&format!("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{n}</text>\n", px(i), py(0.0) + 16.0));
        }
        out.push_str(&format!("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">viewers</text>\n", x0 + w / 2.0, h + 34.0));
        for (si, server) in servers.iter().enumerate() {
            let color = colors[si % colors.len()];
            let pts: Vec<(f64, f64)> = counts
                .iter()
                .enumerate()
                .filter_map(|(i, n)| runs.iter().find(|r| r.server == *server && r.viewers == *n).and_then(metric).map(|v| (px(i), py(v))))
                .collect();
            let line: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            out.push_str(&format!("<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n", line.join(" ")));
            for (x, y) in &pts {
                out.push_str(&format!("<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{color}\"/>\n"));
            }
            out.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{server}</text>\n",
                x0 + w - pad * 1.5,
                pad / 2.0 + 14.0 * (si as f64 + 1.0)
            ));
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(server: &str, viewers: usize, cpu: f64, p99: f64) -> RunReport {
        RunReport {
            server: server.into(),
            viewers,
            viewers_ok: viewers,
            duration_s: 10.0,
            forwarded_packets: 1000,
            server_cpu_us_per_forwarded_packet: Some(cpu),
            added_latency_ms: Some(Percentiles { p50: 1.0, p95: 2.0, p99, max: p99, count: 10 }),
            ..Default::default()
        }
    }

    #[test]
    fn ratios_are_janus_over_onair() {
        let r = Ratios::of(&run("onair", 10, 2.0, 1.0), &run("janus", 10, 8.0, 4.0));
        assert_eq!(r.cpu_per_forwarded_packet, Some(4.0));
        assert_eq!(r.p99_added_latency, Some(4.0));
        assert_eq!(r.p50_first_frame, None, "no first frames measured");
    }

    #[test]
    fn the_plot_has_a_line_per_server_and_a_point_per_run() {
        let runs = [run("onair", 10, 2.0, 1.0), run("onair", 50, 2.5, 1.5), run("janus", 10, 8.0, 4.0), run("janus", 50, 9.0, 5.0)];
        let s = svg(&runs);
        assert_eq!(s.matches("<polyline").count(), 4, "two servers in two panels");
        assert_eq!(s.matches("<circle").count(), 8);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        let t = table(&runs);
        assert_eq!(t.lines().count(), 2 + 4);
        assert!(t.contains("| onair | 50 | 50 | 100 |"));
    }
}
