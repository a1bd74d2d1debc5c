//! The harness against OnAir for a few seconds with five viewers: do its
//! counters add up? (A smoke test of the tool, not a benchmark: no figure
//! here is a speed target.)

use std::process::Command;

#[test]
fn five_viewers_get_what_the_publisher_sent() {
    let json = std::env::temp_dir().join(format!("onair-bench-smoke-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_onair-bench"))
        .args(["run", "--viewers", "5", "--duration", "4", "--quiet", "--json"])
        .arg(&json)
        .output()
        .expect("run onair-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "onair-bench failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("| onair | 5 | 5 |"), "the summary table names the run: {stdout}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).expect("JSON parses");
    let _ = std::fs::remove_file(&json);
    let num = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} missing or not a number in {r:#}"));

    assert_eq!(num("viewers"), 5.0);
    assert_eq!(num("viewers_ok"), 5.0, "every viewer got a first frame: {r:#}");
    assert_eq!(num("join_failures"), 0.0);

    // Each viewer watches the top layer and the audio: over the window, what
    // they received together is five times what the publisher sent of those
    // (give or take the packets in flight at either end of the window).
    let sent = r["publisher_packets"]["f"].as_f64().unwrap() + r["publisher_packets"]["audio"].as_f64().unwrap();
    assert!(sent > 4.0 * 50.0, "the publisher sent audio and video all along: {r:#}");
    let media = num("forwarded_packets") - num("retransmitted_packets");
    let ratio = media / (5.0 * sent);
    assert!((0.93..=1.07).contains(&ratio), "received {media} of 5 x {sent} ({ratio:.3}): {r:#}");
    let loss = num("loss_ratio");
    assert!((0.0..0.05).contains(&loss), "loss {loss}");
    assert!(num("frames_per_viewer_per_s") > 20.0, "about 30 fps: {r:#}");

    let cpu = num("server_cpu_us_per_forwarded_packet");
    assert!(cpu > 0.0 && cpu.is_finite(), "server CPU per packet {cpu}");
    assert!(num("server_cpu_s") > 0.0);
    assert!(num("server_rss_bytes_per_viewer") >= 0.0);
    assert!(num("server_rss_bytes_peak") >= num("server_rss_bytes_baseline"));

    let lat = &r["added_latency_ms"];
    let (p50, p95, p99) = (lat["p50"].as_f64().unwrap(), lat["p95"].as_f64().unwrap(), lat["p99"].as_f64().unwrap());
    assert!(0.0 < p50 && p50 <= p95 && p95 <= p99, "latency percentiles in order: {lat}");
    assert!(lat["count"].as_f64().unwrap() > 0.5 * media, "most packets were matched to a send time: {lat}");
    let ff = &r["first_frame_ms"];
    assert_eq!(ff["count"].as_f64(), Some(5.0));
    assert!(ff["p50"].as_f64().unwrap() > 0.0 && ff["p99"].as_f64().unwrap() < 5000.0, "first frames: {ff}");
}

/// The room scenario with three hosts and four viewers: every viewer sees
/// every host, every host sees the two others, and what they received adds
/// up to what the hosts sent of the layers they were given.
#[test]
fn a_room_of_three_hosts_reaches_every_slot() {
    let json = std::env::temp_dir().join(format!("onair-bench-room-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_onair-bench"))
        .args(["room", "--hosts", "3", "--viewers", "4", "--duration", "4", "--quiet", "--json"])
        .arg(&json)
        .output()
        .expect("run onair-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "onair-bench failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("| room | 3 hosts, 4 viewers x 3 slots |"), "{stdout}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).expect("JSON parses");
    let _ = std::fs::remove_file(&json);
    let num = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} missing or not a number in {r:#}"));
    assert_eq!((num("viewers_ok"), num("hosts_ok"), num("join_failures")), (4.0, 3.0, 0.0), "{r:#}");

    // 4 viewers x 3 slots + 3 hosts x 2 others = 18 video streams, each with its audio.
    let widths = r["slots_by_width"].as_object().expect("slots_by_width");
    assert_eq!(widths.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 18, "{r:#}");
    let sent = &r["publisher_packets"];
    let per_host = |layer: &str| sent[layer].as_f64().unwrap() / 3.0;
    let expected: f64 = widths
        .iter()
        .map(|(w, n)| {
            let layer = match w.as_str() {
                "320" => "q",
                "640" => "h",
                _ => "f",
            };
            n.as_f64().unwrap() * (per_host(layer) + per_host("audio"))
        })
        .sum();
    let media = num("forwarded_packets") - num("retransmitted_packets");
    let ratio = media / expected;
    assert!((0.9..=1.1).contains(&ratio), "received {media} of {expected} ({ratio:.3}): {r:#}");
    assert!(num("loss_ratio") < 0.05, "{r:#}");
    for k in ["added_latency_ms", "host_to_host_latency_ms"] {
        assert!(r[k]["count"].as_f64().unwrap_or(0.0) > 100.0, "{k} was measured: {r:#}");
    }
    assert_eq!(r["all_hosts_first_frame_ms"]["count"].as_f64(), Some(4.0), "{r:#}");
    assert_eq!(r["host_view_first_frame_ms"]["count"].as_f64(), Some(3.0), "{r:#}");
}

/// The chat harness with a few clients: every delivery arrives, every
/// acknowledged message is stored. (Its figures are benchmarks, not checked here.)
#[test]
fn chat_harness_counts_add_up() {
    let dir = std::env::temp_dir();
    let fan = dir.join(format!("onair-bench-fanout-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_onair-bench"))
        .args(["chat-fanout", "--clients", "40", "--messages", "3", "--quiet", "--json"])
        .arg(&fan)
        .output()
        .expect("run onair-bench");
    assert!(out.status.success(), "chat-fanout failed: {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&fan).unwrap()).unwrap();
    let _ = std::fs::remove_file(&fan);
    assert_eq!(r["expected_deliveries"], 120);
    assert_eq!(r["deliveries"], 120, "every client got every message: {r:#}");
    assert_eq!(r["delivery_ms"]["count"], 120);
    let p = &r["delivery_ms"];
    assert!(p["p50"].as_f64().unwrap() > 0.0 && p["p50"].as_f64() <= p["p99"].as_f64(), "{p}");
    assert_eq!(r["per_message_p99_ms"].as_array().unwrap().len(), 3);

    let ing = dir.join(format!("onair-bench-ingest-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_onair-bench"))
        .args(["chat-ingest", "--senders", "20", "--rate", "40", "--duration", "2", "--quiet", "--json"])
        .arg(&ing)
        .output()
        .expect("run onair-bench");
    assert!(out.status.success(), "chat-ingest failed: {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&ing).unwrap()).unwrap();
    let _ = std::fs::remove_file(&ing);
    let sent = r["sent"].as_i64().unwrap();
    assert!((70..=90).contains(&sent), "about 40 a second for 2 s: {r:#}");
    assert_eq!(r["acknowledged"].as_i64(), Some(sent), "nothing refused: {r:#}");
    assert_eq!(r["stored"].as_i64(), Some(sent), "every acknowledged message is stored: {r:#}");
    assert_eq!(r["refused"], serde_json::json!({}));
}
