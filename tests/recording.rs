//! Recording a live stream without transcoding, checked with FFmpeg (from
//! PyPI's imageio-ffmpeg, as in tests/ffmpeg_whip.rs): a synthetic VP8 +
//! Opus publish (the Rust test peer) into WebM, and an FFmpeg WHIP H.264 +
//! Opus publish into fragmented MP4. Recordings are kept short (about six
//! seconds, not the twenty) so the suite stays fast.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::api::Api;
use common::peer::{self, PublishOpts};
use serde_json::{json, Value};

/// What FFmpeg reads in a file: its streams' codecs, its duration, and
/// each stream's first timestamp and packet count (demuxed, not decoded).
#[derive(Debug)]
struct Probe {
    header: String,
    duration_s: Option<f64>,
    /// Per stream index: (time base denominator, first pts, packets).
    streams: Vec<(f64, Option<i64>, usize)>,
}

fn probe(exe: &str, file: &Path) -> Probe {
    let out = std::process::Command::new(exe).args(["-hide_banner", "-i"]).arg(file).args(["-c", "copy", "-f", "framecrc", "-"]).output().expect("run ffmpeg");
    let header = String::from_utf8_lossy(&out.stderr).into_owned();
    let duration_s = header.split("Duration: ").nth(1).and_then(|d| {
        let hms = d.split(',').next()?;
        let mut p = hms.split(':').map(|x| x.trim().parse::<f64>().ok());
        Some(p.next()?? * 3600.0 + p.next()?? * 60.0 + p.next()??)
    });
    let mut streams: Vec<(f64, Option<i64>, usize)> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(tb) = line.strip_prefix("#tb ") {
            // "#tb 0: 1/1000"
            let den = tb.rsplit('/').next().and_then(|d| d.trim().parse().ok()).unwrap_or(1.0);
            streams.push((den, None, 0));
        } else if !line.starts_with('#') {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            if f.len() >= 3 {
                let (Ok(i), Ok(pts)) = (f[0].parse::<usize>(), f[2].parse::<i64>()) else { continue };
                if let Some(s) = streams.get_mut(i) {
                    s.1 = Some(s.1.map_or(pts, |p: i64| p.min(pts)));
                    s.2 += 1;
                }
            }
        }
    }
    Probe { header, duration_s, streams }
}

impl Probe {
    fn start_s(&self, i: usize) -> f64 {
        let (den, first, _) = self.streams[i];
        first.expect("a first packet") as f64 / den
    }
}

/// No errors decoding the whole file.
fn decode_errors(exe: &str, file: &Path) -> String {
    let out = std::process::Command::new(exe).args(["-v", "error", "-i"]).arg(file).args(["-f", "null", "-"]).output().expect("run ffmpeg");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The live stream id of `user`, once media flows.
async fn live_stream(addr: std::net::SocketAddr, user: &str) -> i64 {
    let p = common::wait_for_json(addr, &format!("/api/users/{user}"), |p| p["live"]["media_state"] == "receiving").await;
    p["live"]["id"].as_i64().expect("live stream id")
}

fn file_of(data: &Path, rec: &Value) -> PathBuf {
    data.join("recordings").join(rec["file"].as_str().expect("file"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vp8_opus_publish_is_recorded_into_a_webm_that_reads_whole_and_seeks() {
    let Some(exe) = common::ffmpeg::or_skip("VP8 recording test") else { return };
    let data = common::temp_dir("rec-vp8");
    let server = common::start_server_in(data.clone(), 2).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let key = api.stream_key(&ana).await;
    let opts = PublishOpts { keyframe_every: 60, ..Default::default() };
    let publisher = peer::publish(server.http_addr, &key, opts).await.expect("publish");
    let id = live_stream(server.http_addr, "ana").await;

    let viewer = api.register("vic", "viewer").await;
    let r = api.post(&format!("/api/streams/{id}/recording/start"), Some(&viewer.token), json!({})).await;
    assert_eq!(r.status, 403, "only the host records: {}", r.body);
    let r = api.post(&format!("/api/streams/{id}/recording/start"), Some(&ana.token), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["hosts"], json!(["ana"]));

    // Mid-recording the file already reads: every finished cluster is on disk
    // (what a crash would leave).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dir = data.join("recordings").join(id.to_string());
    let partial = std::fs::read_dir(&dir).expect("the stream's recording dir").next().expect("a file").unwrap().path();
    let mid = probe(&exe, &partial);
    assert!(mid.streams.len() == 2 && mid.streams.iter().all(|s| s.2 > 20), "the unfinished file reads: {mid:?}");

    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = api.post(&format!("/api/streams/{id}/recording/stop"), Some(&ana.token), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let files = r.json()["files"].as_array().cloned().unwrap_or_default();
    assert_eq!(files.len(), 1, "{}", r.body);
    let rec = &files[0];
    assert_eq!((rec["container"].as_str(), rec["video_codec"].as_str()), (Some("webm"), Some("vp8")), "{rec}");
    assert_eq!((rec["width"].as_u64(), rec["height"].as_u64()), (Some(320), Some(180)));
    assert_eq!(rec["error"], Value::Null);
    let ms = rec["duration_ms"].as_i64().unwrap();
    assert!((5000..=6600).contains(&ms), "about six seconds recorded: {ms} ms");

    let p = probe(&exe, &file_of(&data, rec));
    assert!(p.header.contains("Video: vp8") && p.header.contains("Audio: opus"), "{}", p.header);
    let d = p.duration_s.expect("a Duration (written on close)");
    assert!((d - ms as f64 / 1000.0).abs() < 0.5, "container says {d} s, recorder {ms} ms");
    let (video, audio) = (&p.streams[0], &p.streams[1]);
    // 30 frames and 50 Opus packets a second were sent.
    assert!(video.2 as f64 > d * 30.0 * 0.9 && audio.2 as f64 > d * 50.0 * 0.9, "{p:?}");
    assert!((p.start_s(0) - p.start_s(1)).abs() < 0.1, "audio and video start together: {p:?}");
    let bytes = std::fs::read(file_of(&data, rec)).unwrap();
    assert!(bytes.windows(4).any(|w| w == [0x1C, 0x53, 0xBB, 0x6B]), "Cues written on close");
    // Seeking to 3 s lands on a cue (a keyframe cluster) at or before it.
    let out = std::process::Command::new(&exe).args(["-hide_banner", "-ss", "3", "-i"]).arg(file_of(&data, rec)).args(["-map", "0:v", "-c", "copy", "-copyts", "-f", "framecrc", "-"]).output().unwrap();
    let first = String::from_utf8_lossy(&out.stdout).lines().find(|l| !l.starts_with('#')).and_then(|l| l.split(',').nth(2).and_then(|v| v.trim().parse::<i64>().ok()));
    assert!(first.is_some_and(|t| (1000..=3100).contains(&t)), "a seek to 3 s starts at a keyframe before it: {first:?}");

    // Ending without saving deletes the stream's media, a recording still running included.
    let r = api.post(&format!("/api/streams/{id}/recording/start"), Some(&ana.token), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2, "a second file");
    let r = api.post(&format!("/api/streams/{id}/end"), Some(&ana.token), json!({ "save": false })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!dir.exists(), "the media of a stream ended without saving is deleted");
    publisher.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ffmpeg_h264_publish_is_recorded_into_fragmented_mp4_that_decodes_cleanly() {
    let Some(exe) = common::ffmpeg::or_skip("H.264 recording test") else { return };
    let data = common::temp_dir("rec-h264");
    let server = common::start_server_in(data.clone(), 2).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let key = api.stream_key(&ana).await;
    let url = format!("{}/whip", server.url());
    let mut ff = common::ffmpeg::obs(&exe, &url, &key, "640x360", 30, 30, 14).spawn().expect("spawn ffmpeg");
    let id = live_stream(server.http_addr, "ana").await;
    let r = api.post(&format!("/api/streams/{id}/recording/start"), Some(&ana.token), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dir = data.join("recordings").join(id.to_string());
    let partial = std::fs::read_dir(&dir).expect("the stream's recording dir").next().expect("a file").unwrap().path();
    let mid = probe(&exe, &partial);
    assert!(mid.streams.len() == 2 && mid.streams.iter().all(|s| s.2 > 10), "the unfinished file reads (finished fragments): {mid:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = api.post(&format!("/api/streams/{id}/recording/stop"), Some(&ana.token), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rec = r.json()["files"][0].clone();
    assert_eq!((rec["container"].as_str(), rec["video_codec"].as_str()), (Some("mp4"), Some("h264")), "{rec}");
    assert_eq!((rec["width"].as_u64(), rec["height"].as_u64()), (Some(640), Some(360)));
    let ms = rec["duration_ms"].as_i64().unwrap();
    assert!((5000..=6600).contains(&ms), "about six seconds recorded: {ms} ms");
    let file = file_of(&data, &rec);
    let errors = decode_errors(&exe, &file);
    assert!(errors.trim().is_empty(), "FFmpeg decodes the recording without errors:\n{errors}");
    let p = probe(&exe, &file);
    assert!(p.header.contains("Video: h264") && p.header.contains("Audio: opus"), "{}", p.header);
    let d = p.duration_s.expect("a duration");
    assert!((d - ms as f64 / 1000.0).abs() < 0.5, "container says {d} s, recorder {ms} ms");
    assert!((p.start_s(0) - p.start_s(1)).abs() < 0.1, "audio and video start together: {p:?}");
    assert!(p.streams[0].2 as f64 > d * 30.0 * 0.9, "about 30 frames a second: {p:?}");
    let _ = ff.kill().await;
    let _ = std::fs::remove_dir_all(&data);
}
