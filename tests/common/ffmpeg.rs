//! FFmpeg 9 from PyPI's `imageio-ffmpeg` 0.8.1 (`.ci/run` installs it), the
//! OBS stand-in: found once here, and started as OBS would publish.

use std::process::Stdio;

/// The FFmpeg executable, if installed and built with the WHIP muxer.
pub fn exe() -> Result<String, String> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"])
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err("pip package imageio-ffmpeg==0.8.1 not installed".into());
    }
    let exe = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let muxers = std::process::Command::new(&exe).args(["-hide_banner", "-muxers"]).output().map_err(|e| e.to_string())?;
    if !String::from_utf8_lossy(&muxers.stdout).contains("whip") {
        return Err(format!("{exe} has no WHIP muxer"));
    }
    Ok(exe)
}

/// [`exe`], or `None` when it is missing: `test` is skipped loudly, and
/// with `CI=true` it fails.
pub fn or_skip(test: &str) -> Option<String> {
    match exe() {
        Ok(e) => Some(e),
        Err(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test} cannot run in CI: {why}");
            }
            eprintln!("\n!!!! SKIPPED {test}: {why} !!!!\n");
            None
        }
    }
}

/// OBS-style publishing over WHIP with `key`: a `size` test picture at
/// `fps` (H.264 constrained baseline, a keyframe every `gop` frames, no
/// B-frames) and a 440 Hz Opus tone, for `secs` seconds. Its output is
/// discarded (set `stderr` again before spawning to read it), and it is
/// killed when dropped.
pub fn obs(exe: &str, url: &str, key: &str, size: &str, fps: u32, gop: u32, secs: u32) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(exe);
    c.args(["-hide_banner", "-loglevel", "warning", "-re"])
        .args(["-f", "lavfi", "-i", &format!("testsrc=size={size}:rate={fps}"), "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string(), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast", "-tune", "zerolatency"])
        .args(["-bf", "0", "-g", &gop.to_string(), "-c:a", "libopus", "-ar", "48000", "-ac", "2"])
        .args(["-authorization", key, "-f", "whip", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    c
}
