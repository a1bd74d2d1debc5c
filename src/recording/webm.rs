//! VP8 (or audio only) with Opus into WebM, written as it comes: clusters
//! of about a second, each written whole, so a crash loses at most the one
//! being filled; on close the Cues, the Duration, the SeekHead and the
//! Segment's size are written in, so that the file seeks.
//!
//! Elements are encoded by `webm-iterable`; this module only lays them out
//! and patches the few bytes that are known only at the end.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use webm_iterable::matroska_spec::{Master, MatroskaSpec as M};
use webm_iterable::{WebmWriter, WriteOptions};

use super::assemble::Frame;
use onair_media::packet::Kind;

/// A cluster is cut at the first video keyframe after this long (or this
/// long of audio only).
const CLUSTER_MS: i64 = 1000;
/// Block timestamps are 16-bit offsets from the cluster's.
const CLUSTER_MAX_MS: i64 = 30_000;
/// Bytes kept free after the Segment's start for the SeekHead.
const SEEKHEAD_ROOM: usize = 100;
const SEGMENT_ID: [u8; 4] = [0x18, 0x53, 0x80, 0x67];

/// The WebM being written.
pub struct WebmFile {
    file: File,
    /// File offset of the Segment's data (positions inside are relative to it).
    segment_data: u64,
    /// File offsets of the Info's Duration float, the Info and the Tracks.
    duration_at: Option<u64>,
    info_at: u64,
    tracks_at: u64,
    /// File length so far.
    len: u64,
    cluster: Vec<M>,
    cluster_ms: Option<i64>,
    cluster_has_key: bool,
    cues: Vec<(u64, u64)>,
    video: bool,
    last_ms: i64,
}

fn encode(tags: &[M]) -> std::io::Result<Vec<u8>> {
    let mut w = WebmWriter::new(Vec::new());
    for t in tags {
        w.write(t).map_err(std::io::Error::other)?;
    }
    w.into_inner().map_err(std::io::Error::other)
}

/// Encodes children of the Segment: the writer checks each element's
/// parent, so they are written inside an (unknown-sized) Segment whose
/// 12-byte header is then cut off.
fn encode_in_segment(tags: &[M]) -> std::io::Result<Vec<u8>> {
    let mut w = WebmWriter::new(Vec::new());
    w.write_advanced(&M::Segment(Master::Start), WriteOptions::is_unknown_sized_element()).map_err(std::io::Error::other)?;
    for t in tags {
        w.write(t).map_err(std::io::Error::other)?;
    }
    let bytes = w.get_ref();
    if bytes.len() < 12 || bytes[..4] != SEGMENT_ID {
        return Err(std::io::Error::other("unexpected Segment header from the WebM writer"));
    }
    Ok(bytes[12..].to_vec())
}

/// The Opus identification header, as Matroska's CodecPrivate for A_OPUS.
fn opus_head() -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1); // version
    h.push(2); // channels
    h.extend_from_slice(&312u16.to_le_bytes()); // pre-skip, libopus' usual
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0); // mapping family
    h
}

impl WebmFile {
    /// Creates `path` with a VP8 track of `size` (if any) and an Opus track.
    pub fn create(path: &Path, video_size: Option<(u16, u16)>) -> std::io::Result<WebmFile> {
        let mut file = File::create(path)?;
        let header = encode(&[M::Ebml(Master::Full(vec![
            M::EbmlVersion(1),
            M::EbmlReadVersion(1),
            M::EbmlMaxIdLength(4),
            M::EbmlMaxSizeLength(8),
            M::DocType("webm".into()),
            M::DocTypeVersion(4),
            M::DocTypeReadVersion(2),
        ]))])?;
        let mut head = header;
        head.extend_from_slice(&SEGMENT_ID);
        head.extend_from_slice(&[0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]); // unknown size until closed
        let segment_data = head.len() as u64;
        head.extend_from_slice(&void(SEEKHEAD_ROOM));
        let info_at = head.len() as u64;
        let info = encode_in_segment(&[M::Info(Master::Full(vec![
            M::TimestampScale(1_000_000),
            M::MuxingApp("OnAir".into()),
            M::WritingApp("OnAir".into()),
            M::Duration(0.0),
        ]))])?;
        // The Duration is the Info's last element: its 8 bytes end the Info.
        let duration_at = (info.len() >= 8 && info[info.len() - 8..] == 0f64.to_be_bytes()).then(|| info_at + info.len() as u64 - 8);
        head.extend_from_slice(&info);
        let tracks_at = head.len() as u64;
        let mut entries = Vec::new();
        if let Some((w, h)) = video_size {
            entries.push(M::TrackEntry(Master::Full(vec![
                M::TrackNumber(1),
                M::TrackUID(1),
                M::TrackType(1),
                M::CodecID("V_VP8".into()),
                M::Video(Master::Full(vec![M::PixelWidth(u64::from(w)), M::PixelHeight(u64::from(h))])),
            ])));
        }
        entries.push(M::TrackEntry(Master::Full(vec![
            M::TrackNumber(2),
            M::TrackUID(2),
            M::TrackType(2),
            M::CodecID("A_OPUS".into()),
            M::CodecPrivate(opus_head()),
            M::CodecDelay(6_500_000),
            M::SeekPreRoll(80_000_000),
            M::Audio(Master::Full(vec![M::SamplingFrequency(48_000.0), M::Channels(2)])),
        ])));
        head.extend_from_slice(&encode_in_segment(&[M::Tracks(Master::Full(entries))])?);
        file.write_all(&head)?;
        file.sync_data()?;
        Ok(WebmFile {
            file,
            segment_data,
            duration_at,
            info_at,
            tracks_at,
            len: head.len() as u64,
            cluster: Vec::new(),
            cluster_ms: None,
            cluster_has_key: false,
            cues: Vec::new(),
            video: video_size.is_some(),
            last_ms: 0,
        })
    }

    /// Adds a frame, `ms` from the recording's start.
    pub fn write(&mut self, frame: &Frame, ms: i64) -> std::io::Result<()> {
        let is_video = frame.kind == Kind::Video;
        if is_video && !self.video {
            return Ok(());
        }
        let cut = match self.cluster_ms {
            None => true,
            Some(start) => {
                let age = ms - start;
                age >= CLUSTER_MAX_MS || (age >= CLUSTER_MS && ((is_video && frame.keyframe) || !self.video)) || ms < start
            }
        };
        if cut {
            self.flush_cluster()?;
            self.cluster_ms = Some(ms);
            self.cluster_has_key = is_video && frame.keyframe;
            self.cluster.push(M::Timestamp(ms as u64));
        }
        let rel = (ms - self.cluster_ms.unwrap_or(ms)) as i16;
        let mut block = Vec::with_capacity(frame.data.len() + 4);
        block.push(if is_video { 0x81 } else { 0x82 }); // track number as a 1-byte vint
        block.extend_from_slice(&rel.to_be_bytes());
        block.push(if !is_video || frame.keyframe { 0x80 } else { 0x00 });
        block.extend_from_slice(&frame.data);
        self.cluster.push(M::SimpleBlock(block));
        self.last_ms = self.last_ms.max(ms);
        Ok(())
    }

    /// Writes the cluster being filled (whole: a crash keeps everything before it).
    fn flush_cluster(&mut self) -> std::io::Result<()> {
        if self.cluster.is_empty() {
            return Ok(());
        }
        let at = self.len - self.segment_data;
        if self.cluster_has_key || !self.video {
            self.cues.push((self.cluster_ms.unwrap_or(0) as u64, at));
        }
        let bytes = encode_in_segment(&[M::Cluster(Master::Full(std::mem::take(&mut self.cluster)))])?;
        self.file.write_all(&bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Writes the last cluster, the Cues, and patches the Duration, the
    /// SeekHead and the Segment's size in. Returns the duration in ms.
    pub fn finish(mut self, end_ms: i64) -> std::io::Result<i64> {
        self.flush_cluster()?;
        let cues_at = self.len - self.segment_data;
        let track = if self.video { 1 } else { 2 };
        let points = self
            .cues
            .iter()
            .map(|&(t, pos)| M::CuePoint(Master::Full(vec![M::CueTime(t), M::CueTrackPositions(Master::Full(vec![M::CueTrack(track), M::CueClusterPosition(pos)]))])))
            .collect::<Vec<_>>();
        if !points.is_empty() {
            let cues = encode_in_segment(&[M::Cues(Master::Full(points))])?;
            self.file.write_all(&cues)?;
            self.len += cues.len() as u64;
        }
        let duration = end_ms.max(self.last_ms);
        if let Some(at) = self.duration_at {
            self.file.seek(SeekFrom::Start(at))?;
            self.file.write_all(&(duration as f64).to_be_bytes())?;
        }
        let seek = |id: &[u8], pos: u64| M::Seek(Master::Full(vec![M::SeekID(id.to_vec()), M::SeekPosition(pos)]));
        let mut seeks = vec![seek(&[0x15, 0x49, 0xA9, 0x66], self.info_at - self.segment_data), seek(&[0x16, 0x54, 0xAE, 0x6B], self.tracks_at - self.segment_data)];
        if !self.cues.is_empty() {
            seeks.push(seek(&[0x1C, 0x53, 0xBB, 0x6B], cues_at));
        }
        let mut head = encode_in_segment(&[M::SeekHead(Master::Full(seeks))])?;
        if head.len() + 2 <= SEEKHEAD_ROOM {
            head.extend_from_slice(&void(SEEKHEAD_ROOM - head.len()));
            self.file.seek(SeekFrom::Start(self.segment_data))?;
            self.file.write_all(&head)?;
        }
        let size = self.len - self.segment_data;
        let mut size_vint = size.to_be_bytes();
        size_vint[0] = 0x01;
        self.file.seek(SeekFrom::Start(self.segment_data - 8))?;
        self.file.write_all(&size_vint)?;
        self.file.sync_all()?;
        Ok(duration)
    }
}

/// An EBML Void element of `total` bytes (2 to 127).
fn void(total: usize) -> Vec<u8> {
    let mut v = vec![0u8; total];
    v[0] = 0xEC;
    v[1] = 0x80 | (total - 2) as u8;
    v
}
