//! Recording: each host of a live stream recorded without transcoding, from
//! its producer's fan-out (a [`onair_media::Sink`]), into the container
//! browsers play natively: VP8 + Opus into WebM, H.264 + Opus into
//! fragmented MP4.
//!
//! - [`assemble`]: RTP packets to whole frames on one timeline.
//! - [`webm`], [`fmp4`]: the two file writers (the MP4 track size from the SPS by `onair_media::codec::h264::sps_size`).
//! - [`recorder`]: the sink and its writer thread.
//!
//! Files go under `<data dir>/recordings/<stream id>/<host>-<start ms>.<ext>`.

pub mod assemble;
pub mod fmp4;
pub mod recorder;
pub mod webm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use onair_media::{Sfu, SinkId};

pub use recorder::{Recorded, Recorder};

struct Active {
    host: String,
    sink: SinkId,
    recorder: Arc<Recorder>,
}

/// The recordings running, per stream.
#[derive(Clone)]
pub struct Recordings {
    sfu: Sfu,
    root: PathBuf,
    active: Arc<Mutex<HashMap<String, Vec<Active>>>>,
}

impl Recordings {
    /// Recordings under `data_dir/recordings`.
    pub fn new(sfu: Sfu, data_dir: &Path) -> Recordings {
        Recordings { sfu, root: data_dir.join("recordings"), active: Arc::default() }
    }

    /// Where recordings are kept.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Active>>> {
        self.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether media room `stream` is being recorded.
    pub fn is_recording(&self, stream: &str) -> bool {
        self.lock().get(stream).is_some_and(|a| !a.is_empty())
    }

    /// Starts recording every host publishing in media room `stream` (those
    /// not recorded yet). Returns the hosts recorded.
    pub fn start(&self, stream: &str, now_ms: i64) -> Vec<String> {
        let hosts = self.sfu.room_hosts(stream).unwrap_or_default();
        let mut active = self.lock();
        let list = active.entry(stream.to_owned()).or_default();
        for h in hosts {
            if list.iter().any(|a| a.host == h.host) {
                continue;
            }
            let dir = recorder::stream_dir(&self.root, stream);
            let recorder = Recorder::start(dir, self.root.clone(), h.host.clone(), recorder::stem(&h.host, now_ms));
            match self.sfu.attach_sink(stream, &h.host, recorder.clone()) {
                Some(sink) => list.push(Active { host: h.host, sink, recorder }),
                None => {
                    let r = recorder.clone();
                    std::thread::spawn(move || r.finish());
                }
            }
        }
        list.iter().map(|a| a.host.clone()).collect()
    }

    /// Stops recording media room `stream`; returns what was written.
    pub async fn stop(&self, stream: &str) -> Vec<Recorded> {
        let list = self.lock().remove(stream).unwrap_or_default();
        let mut done = Vec::new();
        for a in list {
            self.sfu.detach_sink(stream, &a.host, a.sink);
            if let Ok(Some(r)) = tokio::task::spawn_blocking(move || a.recorder.finish()).await {
                done.push(r);
            }
        }
        done
    }

    /// Deletes every recording of media room `stream` (ended without saving).
    pub async fn delete(&self, stream: &str) {
        let dir = recorder::stream_dir(&self.root, stream);
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(stream, "deleting recordings: {e}");
            }
        }
    }
}
