//! The clips the publisher replays, and what a viewer reads from a payload.
//!
//! The files in `benches/media/` were encoded once with FFmpeg (see its
//! `make.sh`): VP8 at three sizes (the simulcast layers), H.264 constrained
//! baseline, Opus, 4 s each with a keyframe every 2 s. A clip is read and
//! packetized into RTP payloads up front, so a run spends nothing on
//! encoding or packetizing. Containers are read with `rtc::media`'s IVF and
//! Ogg readers; H.264 access units are split at their AUDs and packetized
//! by `rtc`'s H.264 payloader (SPS and PPS go out as a STAP-A before each
//! IDR). VP8 is packetized here because every payload needs a fixed two-byte
//! picture id the publisher can renumber in place on every loop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rtc::media::io::ivf_reader::IVFReader;
use rtc::media::io::ogg_reader::OggReader;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::packetizer::Payloader;

/// Largest RTP payload produced (room for headers, extensions and SRTP under a 1280-byte path MTU).
pub const MTU_PAYLOAD: usize = 1200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Vp8,
    H264,
    Opus,
}

/// One encoded frame, packetized.
#[derive(Debug, Clone)]
pub struct Frame {
    /// RTP timestamp offset from the clip's start.
    pub ts: u32,
    /// A VP8 key frame, or an H.264 access unit with an IDR.
    pub keyframe: bool,
    /// Its RTP payloads in order (the marker bit goes on the last).
    pub payloads: Vec<Bytes>,
}

/// A clip: frames at a constant rate.
#[derive(Debug, Clone)]
pub struct Clip {
    pub codec: Codec,
    pub clock_rate: u32,
    pub frames: Vec<Frame>,
    /// Length in clock ticks.
    pub duration_ticks: u32,
    pub frame_interval: Duration,
}

const VIDEO_FPS: u32 = 30;

impl Clip {
    pub fn load(path: &Path, codec: Codec) -> Result<Clip, String> {
        let file = std::fs::read(path).map_err(|e| format!("{}: {e} (run benches/media/make.sh?)", path.display()))?;
        let what = |e: String| format!("{}: {e}", path.display());
        let (clock_rate, interval, frames) = match codec {
            Codec::Vp8 => (90_000, 90_000 / VIDEO_FPS, vp8_frames(&file).map_err(what)?),
            Codec::H264 => (90_000, 90_000 / VIDEO_FPS, h264_frames(&file).map_err(what)?),
            Codec::Opus => (48_000, 960, opus_frames(&file).map_err(what)?),
        };
        if frames.is_empty() {
            return Err(format!("{}: no frames", path.display()));
        }
        let frames: Vec<Frame> = frames.into_iter().enumerate().map(|(i, (keyframe, payloads))| Frame { ts: i as u32 * interval, keyframe, payloads }).collect();
        if codec != Codec::Opus && !frames[0].keyframe {
            return Err(format!("{}: does not start with a keyframe", path.display()));
        }
        Ok(Clip {
            codec,
            clock_rate,
            duration_ticks: frames.len() as u32 * interval,
            frame_interval: Duration::from_micros(interval as u64 * 1_000_000 / clock_rate as u64),
            frames,
        })
    }

    fn seconds(&self) -> f64 {
        self.duration_ticks as f64 / self.clock_rate as f64
    }

    /// Payload bits per second.
    /// The same clip with every payload ending in two more bytes, `0xFE`
    /// and `tag`: several publishers replaying one clip (a co-host room's
    /// hosts) then send payloads that [`crate::measure::SendTimes`] tells
    /// apart, so each packet's latency is taken from its own host's send
    /// time. Servers read a payload's front (descriptors, keyframe headers),
    /// never its end; the harness's viewers do not decode.
    pub fn tagged(&self, tag: u8) -> Clip {
        let mut c = self.clone();
        for f in &mut c.frames {
            for p in &mut f.payloads {
                let mut v = Vec::with_capacity(p.len() + 2);
                v.extend_from_slice(p);
                v.extend_from_slice(&[0xFE, tag]);
                *p = Bytes::from(v);
            }
        }
        c
    }

    pub fn bitrate_bps(&self) -> u64 {
        let bytes: usize = self.frames.iter().flat_map(|f| &f.payloads).map(|p| p.len()).sum();
        (bytes as f64 * 8.0 / self.seconds()) as u64
    }

    pub fn packets_per_second(&self) -> f64 {
        self.frames.iter().map(|f| f.payloads.len()).sum::<usize>() as f64 / self.seconds()
    }
}

/// `benches/media`, or `$ONAIR_BENCH_MEDIA`.
pub fn media_dir() -> PathBuf {
    std::env::var_os("ONAIR_BENCH_MEDIA").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("media"))
}

/// The three VP8 simulcast layers, lowest first.
pub fn vp8_layers() -> Result<[Clip; 3], String> {
    let d = media_dir();
    Ok([Clip::load(&d.join("vp8-q.ivf"), Codec::Vp8)?, Clip::load(&d.join("vp8-h.ivf"), Codec::Vp8)?, Clip::load(&d.join("vp8-f.ivf"), Codec::Vp8)?])
}

pub fn h264() -> Result<Clip, String> {
    Clip::load(&media_dir().join("h264.h264"), Codec::H264)
}

pub fn opus() -> Result<Clip, String> {
    Clip::load(&media_dir().join("opus.ogg"), Codec::Opus)
}

/// RFC 7741 descriptor: X=1, S, PID=0; I=1; M=1 with a 15-bit picture id.
const VP8_DESCRIPTOR: usize = 4;

fn vp8_frames(file: &[u8]) -> Result<Vec<(bool, Vec<Bytes>)>, String> {
    let (mut reader, header) = IVFReader::new(file).map_err(|e| e.to_string())?;
    if &header.four_cc != b"VP80" {
        return Err(format!("not VP8 but {:?}", String::from_utf8_lossy(&header.four_cc)));
    }
    let mut frames = Vec::new();
    // The reader reports the end of the file as a read error.
    while let Ok((data, _)) = reader.parse_next_frame() {
        if data.is_empty() {
            continue;
        }
        // Frame tag bit 0 is 0 on a key frame.
        let keyframe = data[0] & 1 == 0;
        let payloads = data
            .chunks(MTU_PAYLOAD - VP8_DESCRIPTOR)
            .enumerate()
            .map(|(i, chunk)| {
                let mut p = BytesMut::with_capacity(VP8_DESCRIPTOR + chunk.len());
                p.extend_from_slice(&[if i == 0 { 0x90 } else { 0x80 }, 0x80, 0x80, 0x00]);
                p.extend_from_slice(chunk);
                p.freeze()
            })
            .collect();
        frames.push((keyframe, payloads));
    }
    Ok(frames)
}

/// Renumbers a VP8 payload made by this module.
pub fn set_vp8_picture_id(payload: &mut [u8], picture_id: u16) {
    if payload.len() >= VP8_DESCRIPTOR && payload[0] & 0x80 != 0 && payload[1] & 0x80 != 0 && payload[2] & 0x80 != 0 {
        payload[2] = 0x80 | ((picture_id >> 8) as u8 & 0x7f);
        payload[3] = picture_id as u8;
    }
}

/// Start positions (after the start code) of the Annex B NAL units in `b`.
fn nal_starts(b: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= b.len() {
        if b[i] == 0 && b[i + 1] == 0 && b[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
}

fn h264_frames(file: &[u8]) -> Result<Vec<(bool, Vec<Bytes>)>, String> {
    let starts = nal_starts(file);
    // Access units begin at access unit delimiters (type 9).
    let aud: Vec<usize> = starts.iter().copied().filter(|&s| s < file.len() && file[s] & 0x1f == 9).collect();
    if aud.is_empty() {
        return Err("no access unit delimiters (encode with aud=1)".into());
    }
    let mut payloader = H264Payloader::default();
    let mut frames = Vec::new();
    for (k, &s) in aud.iter().enumerate() {
        // Back up over the start code so the payloader sees Annex B.
        let begin = s - 3;
        let end = aud.get(k + 1).map(|&n| n - 3).unwrap_or(file.len());
        let au = Bytes::copy_from_slice(&file[begin..end]);
        let keyframe = starts.iter().any(|&n| n >= s && n < end && file[n] & 0x1f == 5);
        let payloads = payloader.payload(MTU_PAYLOAD, &au).map_err(|e| e.to_string())?;
        if !payloads.is_empty() {
            frames.push((keyframe, payloads));
        }
    }
    Ok(frames)
}

fn opus_frames(file: &[u8]) -> Result<Vec<(bool, Vec<Bytes>)>, String> {
    let (mut reader, head) = OggReader::new(file, true).map_err(|e| e.to_string())?;
    if head.sample_rate == 0 {
        return Err("not Opus".into());
    }
    let mut frames = Vec::new();
    while let Ok((page, header)) = reader.parse_next_page() {
        // Skip the OpusTags page; every audio page holds one 20 ms packet (make.sh: -page_duration 20000).
        if header.opus_header_type(&page).is_some() || page.is_empty() {
            continue;
        }
        frames.push((false, vec![page.freeze()]));
    }
    Ok(frames)
}

/// What the start of a keyframe tells a viewer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyframeInfo {
    /// Picture size (0 x 0 for H.264, whose size is in the SPS, not read here).
    pub width: u16,
    pub height: u16,
}

/// `Some` if this payload starts a keyframe.
pub fn keyframe_start(codec: Codec, payload: &[u8]) -> Option<KeyframeInfo> {
    match codec {
        Codec::Vp8 => {
            let d = onair_media::codec::vp8::parse(payload)?;
            if !d.is_keyframe || !d.start_of_partition || d.partition_id != 0 {
                return None;
            }
            // Key frame header: 3-byte tag, start code 9d 01 2a, 14-bit width and height.
            let b = payload.get(d.header_len..d.header_len + 10)?;
            if b[3..6] != [0x9d, 0x01, 0x2a] {
                return None;
            }
            Some(KeyframeInfo { width: u16::from_le_bytes([b[6], b[7]]) & 0x3fff, height: u16::from_le_bytes([b[8], b[9]]) & 0x3fff })
        }
        Codec::H264 => {
            let idr = KeyframeInfo { width: 0, height: 0 };
            match payload.first()? & 0x1f {
                5 | 7 => Some(idr),
                // STAP-A: 2-byte sizes, then NAL units.
                24 => {
                    let mut i = 1;
                    while i + 2 < payload.len() {
                        let len = u16::from_be_bytes([payload[i], payload[i + 1]]) as usize;
                        if matches!(payload[i + 2] & 0x1f, 5 | 7) {
                            return Some(idr);
                        }
                        i += 2 + len;
                    }
                    None
                }
                // FU-A start of an IDR.
                28 => {
                    let fu = *payload.get(1)?;
                    (fu & 0x80 != 0 && fu & 0x1f == 5).then_some(idr)
                }
                _ => None,
            }
        }
        Codec::Opus => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::codec::vp8::Vp8Packet;
    use rtc::rtp::packetizer::Depacketizer;

    #[test]
    fn tagged_clips_of_two_hosts_are_told_apart() {
        use crate::measure::SendTimes;
        let clip = opus().unwrap();
        let (a, b) = (clip.tagged(0), clip.tagged(1));
        let (p, pa, pb) = (&clip.frames[5].payloads[0], &a.frames[5].payloads[0], &b.frames[5].payloads[0]);
        assert_eq!((&pa[..p.len()], &pa[p.len()..]), (&p[..], &[0xFE, 0][..]), "the payload, then the tag");
        assert_ne!(SendTimes::key(pa), SendTimes::key(pb));
        assert_eq!(a.frames.len(), clip.frames.len());
    }

    #[test]
    fn every_clip_loads_with_the_expected_shape() {
        let layers = vp8_layers().unwrap();
        let h264 = h264().unwrap();
        for clip in layers.iter().chain(std::iter::once(&h264)) {
            assert_eq!(clip.frames.len(), 120, "4 s at 30 fps");
            let keys: Vec<usize> = clip.frames.iter().enumerate().filter(|(_, f)| f.keyframe).map(|(i, _)| i).collect();
            assert_eq!(keys, vec![0, 60], "a keyframe every 2 s and no other");
            assert_eq!(clip.frame_interval, Duration::from_micros(33_333));
            assert!(clip.frames.iter().flat_map(|f| &f.payloads).all(|p| p.len() <= MTU_PAYLOAD));
        }
        let opus = opus().unwrap();
        // 4 s of 20 ms packets, plus one for the encoder's pre-skip.
        assert!((200..=201).contains(&opus.frames.len()), "{} packets", opus.frames.len());
        assert_eq!(opus.frame_interval, Duration::from_millis(20));
        for (clip, kbps) in [(&layers[0], 150), (&layers[1], 400), (&layers[2], 1000), (&h264, 700), (&opus, 64)] {
            let got = clip.bitrate_bps() as f64 / 1000.0;
            assert!((0.6 * kbps as f64..1.4 * kbps as f64).contains(&got), "{:?} at {got} kbps, made at {kbps}", clip.codec);
        }
    }

    #[test]
    fn vp8_payloads_depacketize_to_the_file_frames() {
        let file = std::fs::read(media_dir().join("vp8-f.ivf")).unwrap();
        let (mut reader, _) = IVFReader::new(&file[..]).unwrap();
        let clip = &vp8_layers().unwrap()[2];
        for frame in clip.frames.iter().take(65) {
            let (original, _) = reader.parse_next_frame().unwrap();
            let mut joined = Vec::new();
            for p in &frame.payloads {
                joined.extend_from_slice(&Vp8Packet::default().depacketize(p).unwrap());
            }
            assert_eq!(joined, &original[..]);
        }
    }

    #[test]
    fn keyframes_tell_their_size_and_delta_frames_are_not_keyframes() {
        let layers = vp8_layers().unwrap();
        for (clip, size) in layers.iter().zip([(320, 180), (640, 360), (1280, 720)]) {
            assert_eq!(keyframe_start(Codec::Vp8, &clip.frames[0].payloads[0]), Some(KeyframeInfo { width: size.0, height: size.1 }));
            assert_eq!(keyframe_start(Codec::Vp8, &clip.frames[1].payloads[0]), None);
            assert_eq!(keyframe_start(Codec::Vp8, &clip.frames[60].payloads[0]).map(|k| k.width), Some(size.0));
            if clip.frames[0].payloads.len() > 1 {
                assert_eq!(keyframe_start(Codec::Vp8, &clip.frames[0].payloads[1]), None, "not the start of the frame");
            }
        }
        let h = h264().unwrap();
        let first = &h.frames[0].payloads;
        assert_eq!(first[0][0] & 0x1f, 24, "SPS and PPS in a STAP-A before the IDR");
        assert!(keyframe_start(Codec::H264, &first[0]).is_some());
        assert!(h.frames[1].payloads.iter().all(|p| keyframe_start(Codec::H264, p).is_none()));
    }

    #[test]
    fn picture_ids_are_renumbered_in_place() {
        let clip = &vp8_layers().unwrap()[1];
        let mut p = BytesMut::from(&clip.frames[3].payloads[0][..]);
        for pid in [0u16, 127, 128, 0x7fff] {
            set_vp8_picture_id(&mut p, pid);
            let d = onair_media::codec::vp8::parse(&p).unwrap();
            assert_eq!(d.picture_id, Some(pid));
            assert_eq!(&p[4..], &clip.frames[3].payloads[0][4..], "the frame itself is untouched");
        }
    }
}
