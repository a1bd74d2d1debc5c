//! The recorder of one host: a [`Sink`] on its producer that hands packets
//! to its own writer thread through a bounded queue (the producer's worker
//! never waits on a disk), and the thread that assembles frames and writes
//! the file.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use onair_media::codec::Codec;
use onair_media::packet::{Fanout, Kind};
use onair_media::Sink;
use serde::Serialize;

use super::assemble::{vp8_size, Assembler, Frame};
use super::fmp4::Fmp4File;
use super::webm::WebmFile;

/// Packets (and reports) waiting for the writer: about two seconds of a
/// 2.5 Mb/s stream. What does not fit is dropped and counted.
const QUEUE: usize = 2048;
/// Audio waits this long for a video keyframe before the recording starts
/// audio only (a host with the camera off).
const AUDIO_ONLY_AFTER_US: i64 = 5_000_000;

enum Msg {
    Packet(Fanout),
    Report(u32, u64, u32),
    End,
}

/// What a finished recording is.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Recorded {
    /// The host recorded.
    pub host: String,
    /// The file, relative to the recordings directory.
    pub file: String,
    /// `webm` or `mp4`.
    pub container: String,
    /// Video codec (`vp8`, `h264`), none for audio only.
    pub video_codec: Option<String>,
    /// Picture size, 0 when unknown.
    pub width: u16,
    /// Picture size, 0 when unknown.
    pub height: u16,
    /// Length.
    pub duration_ms: i64,
    /// Packets dropped because the writer fell behind.
    pub dropped_packets: u64,
    /// Video frames left out after a loss, until the next keyframe.
    pub dropped_frames: u64,
    /// Why it stopped early (a write failed: the disk is full), if it did.
    pub error: Option<String>,
}

/// A host's recorder, attached to its producer as a sink.
#[derive(Debug)]
pub struct Recorder {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
    thread: Mutex<Option<JoinHandle<Option<Recorded>>>>,
}

impl Recorder {
    /// Starts the writer thread for `host`; its file goes in `dir`, named from `stem`.
    pub fn start(dir: PathBuf, root: PathBuf, host: String, stem: String) -> Arc<Recorder> {
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        let thread = std::thread::Builder::new()
            .name(format!("rec-{host}"))
            .spawn(move || Writer::new(dir, root, host, stem).run(rx, &d))
            .expect("spawn a recorder thread");
        Arc::new(Recorder { tx, dropped, thread: Mutex::new(Some(thread)) })
    }

    fn offer(&self, m: Msg) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(m) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Ends the recording and waits for its file to be closed. Blocks: call
    /// off the async runtime's threads.
    pub fn finish(&self) -> Option<Recorded> {
        let _ = self.tx.send(Msg::End);
        let thread = self.thread.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()?;
        match thread.join() {
            Ok(r) => r,
            Err(e) => {
                let why = e.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| e.downcast_ref::<String>().cloned()).unwrap_or_default();
                tracing::error!("a recorder's thread panicked: {why}");
                None
            }
        }
    }
}

impl Sink for Recorder {
    fn packet(&self, packet: &Fanout) {
        self.offer(Msg::Packet(packet.clone()));
    }

    fn sender_report(&self, ssrc: u32, ntp_time: u64, rtp_time: u32) {
        self.offer(Msg::Report(ssrc, ntp_time, rtp_time));
    }

    fn ended(&self) {
        // Must not block: if the queue is full the writer still ends when
        // `finish` is called or the recorder is dropped.
        let _ = self.tx.try_send(Msg::End);
    }
}

enum Container {
    Webm(WebmFile),
    Mp4(Fmp4File),
}

struct Writer {
    dir: PathBuf,
    root: PathBuf,
    host: String,
    stem: String,
    asm: Assembler,
    out: Option<Container>,
    path: Option<PathBuf>,
    video_codec: Option<Codec>,
    size: (u16, u16),
    start_us: i64,
    last_us: i64,
    audio_wait: VecDeque<Frame>,
    error: Option<String>,
}

impl Writer {
    fn new(dir: PathBuf, root: PathBuf, host: String, stem: String) -> Writer {
        Writer {
            dir,
            root,
            host,
            stem,
            asm: Assembler::default(),
            out: None,
            path: None,
            video_codec: None,
            size: (0, 0),
            start_us: 0,
            last_us: 0,
            audio_wait: VecDeque::new(),
            error: None,
        }
    }

    fn run(mut self, rx: Receiver<Msg>, dropped: &AtomicU64) -> Option<Recorded> {
        let mut frames = Vec::new();
        while let Ok(m) = rx.recv() {
            match m {
                Msg::Packet(p) => {
                    if self.error.is_some() {
                        continue;
                    }
                    self.asm.packet(&p, &mut frames);
                    for f in frames.drain(..) {
                        if let Err(e) = self.frame(f) {
                            tracing::warn!(host = %self.host, "recording stopped: {e}");
                            self.error = Some(e.to_string());
                        }
                    }
                }
                Msg::Report(ssrc, ntp, rtp) => self.asm.sender_report(ssrc, ntp, rtp),
                Msg::End => break,
            }
        }
        let duration_ms = match self.out.take() {
            Some(Container::Webm(w)) => w.finish((self.last_us - self.start_us) / 1000),
            Some(Container::Mp4(m)) => m.finish(self.last_us - self.start_us),
            None => return None,
        };
        let duration_ms = match duration_ms {
            Ok(d) => d,
            Err(e) => {
                self.error.get_or_insert(e.to_string());
                (self.last_us - self.start_us) / 1000
            }
        };
        let path = self.path?;
        Some(Recorded {
            host: self.host,
            file: path.strip_prefix(&self.root).unwrap_or(&path).to_string_lossy().into_owned(),
            container: if path.extension().is_some_and(|e| e == "mp4") { "mp4" } else { "webm" }.into(),
            video_codec: self.video_codec.map(|c| if c == Codec::H264 { "h264" } else { "vp8" }.into()),
            width: self.size.0,
            height: self.size.1,
            duration_ms,
            dropped_packets: dropped.load(Ordering::Relaxed),
            dropped_frames: self.asm.dropped_frames,
            error: self.error,
        })
    }

    fn file(&mut self, ext: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("{}.{ext}", self.stem));
        self.path = Some(path.clone());
        Ok(path)
    }

    /// Opens the file at the first video keyframe (or audio only after a
    /// while without video), then writes each frame on its timeline.
    fn frame(&mut self, f: Frame) -> std::io::Result<()> {
        if self.out.is_none() {
            match f.kind {
                Kind::Video if f.keyframe => {
                    if !self.open_video(&f)? {
                        return Ok(());
                    }
                    self.start_us = f.pts_us;
                    let waiting: Vec<Frame> = self.audio_wait.drain(..).filter(|a| a.pts_us >= f.pts_us).collect();
                    self.put(&f)?;
                    for a in waiting {
                        self.put(&a)?;
                    }
                    return Ok(());
                }
                Kind::Video => return Ok(()),
                Kind::Audio => {
                    self.audio_wait.push_back(f);
                    let first = self.audio_wait.front().map_or(0, |a| a.pts_us);
                    let last = self.audio_wait.back().map_or(0, |a| a.pts_us);
                    if last - first >= AUDIO_ONLY_AFTER_US {
                        let path = self.file("webm")?;
                        self.out = Some(Container::Webm(WebmFile::create(&path, None)?));
                        self.start_us = first;
                        for a in std::mem::take(&mut self.audio_wait) {
                            self.put(&a)?;
                        }
                    }
                    return Ok(());
                }
            }
        }
        self.put(&f)
    }

    fn open_video(&mut self, f: &Frame) -> std::io::Result<bool> {
        match f.codec {
            Codec::Vp8 => {
                let size = vp8_size(&f.data);
                let path = self.file("webm")?;
                self.size = size.unwrap_or((0, 0));
                self.out = Some(Container::Webm(WebmFile::create(&path, Some(self.size))?));
            }
            Codec::H264 => {
                let path = self.dir.join(format!("{}.mp4", self.stem));
                std::fs::create_dir_all(&self.dir)?;
                let Some(mp4) = Fmp4File::create(&path, &f.data)? else { return Ok(false) };
                self.path = Some(path);
                self.size = mp4.size();
                self.out = Some(Container::Mp4(mp4));
            }
            _ => return Ok(false),
        }
        self.video_codec = Some(f.codec);
        Ok(true)
    }

    fn put(&mut self, f: &Frame) -> std::io::Result<()> {
        let rel = f.pts_us - self.start_us;
        if rel < 0 {
            return Ok(());
        }
        self.last_us = self.last_us.max(f.pts_us);
        match self.out.as_mut() {
            Some(Container::Webm(w)) => w.write(f, rel / 1000),
            Some(Container::Mp4(m)) => m.write(f, rel),
            None => Ok(()),
        }
    }
}

/// Where a host's recording goes: `root/<stream>/<host>-<start ms>`.
pub fn stem(host: &str, now_ms: i64) -> String {
    let safe: String = host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    format!("{}-{now_ms}", if safe.is_empty() { "host".into() } else { safe })
}

/// The directory of a stream's recordings.
pub fn stream_dir(root: &Path, stream: &str) -> PathBuf {
    root.join(stream)
}
