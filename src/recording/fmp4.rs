//! H.264 with Opus into fragmented MP4 (CMAF style): `ftyp` + `moov` first,
//! then a `moof` + `mdat` per fragment of about a second, each starting at
//! a video keyframe and written whole, so a crash keeps every finished
//! fragment. Boxes are encoded by `mp4-atom`.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use mp4_atom::{
    Audio, Avc1, Avcc, Dinf, Dops, Dref, Encode, Ftyp, Hdlr, Mdat, Mdhd, Mdia, Mfhd, Minf, Moof, Moov, Mvex, Mvhd, Opus, Smhd, Stbl, Stco, Stsc, Stsd, Stsz, Stts, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun,
    TrunEntry, TrunSamples, Url, Visual, Vmhd,
};

use super::assemble::{annex_b_units, Frame};
use onair_media::packet::Kind;

const VIDEO_TIMESCALE: u64 = 90_000;
const AUDIO_TIMESCALE: u64 = 48_000;
/// A fragment is cut at the first keyframe after this long.
const FRAGMENT_US: i64 = 1_000_000;
/// Sample flags: a sync sample, and one that depends on others.
const SYNC: u32 = 0x0200_0000;
const NON_SYNC: u32 = 0x0101_0000;

struct Sample {
    pts_us: i64,
    data: Vec<u8>,
    keyframe: bool,
}

/// The fragmented MP4 being written.
pub struct Fmp4File {
    file: File,
    sequence: u32,
    size: (u16, u16),
    video: Vec<Sample>,
    audio: Vec<Sample>,
    fragment_start: Option<i64>,
    last_us: i64,
}

fn enc(atom: &impl Encode, out: &mut Vec<u8>) -> std::io::Result<()> {
    atom.encode(out).map_err(std::io::Error::other)
}

/// H.264 in Annex B to 4-byte length-prefixed NAL units (what `avc1` wants).
fn to_avcc(annex_b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(annex_b.len() + 8);
    for nal in annex_b_units(annex_b).filter(|n| !n.is_empty()) {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

impl Fmp4File {
    /// Creates `path` from the first keyframe (its SPS and PPS make the
    /// `avcC`). `None` if the keyframe carries no SPS/PPS.
    pub fn create(path: &Path, keyframe: &[u8]) -> std::io::Result<Option<Fmp4File>> {
        let sps = annex_b_units(keyframe).find(|n| n.first().is_some_and(|b| b & 0x1f == 7)).map(<[u8]>::to_vec);
        let pps = annex_b_units(keyframe).find(|n| n.first().is_some_and(|b| b & 0x1f == 8)).map(<[u8]>::to_vec);
        let (Some(sps), Some(pps)) = (sps, pps) else { return Ok(None) };
        if sps.len() < 4 {
            return Ok(None);
        }
        let (width, height) = onair_media::codec::h264::sps_size(&sps).and_then(|(w, h)| Some((u16::try_from(w).ok()?, u16::try_from(h).ok()?))).unwrap_or((0, 0));
        let mut head = Vec::new();
        enc(&Ftyp { major_brand: b"iso6".into(), minor_version: 0, compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()] }, &mut head)?;
        let empty_stbl = |stsd: Stsd| Stbl { stsd, stts: Stts::default(), stsc: Stsc::default(), stsz: Stsz::default(), stco: Some(Stco::default()), ..Default::default() };
        let dinf = || Dinf { dref: Dref { entries: vec![Url::default().into()] } };
        let video = Trak {
            tkhd: Tkhd { track_id: 1, enabled: true, in_movie: true, width: width.into(), height: height.into(), ..Default::default() },
            mdia: Mdia {
                mdhd: Mdhd { timescale: VIDEO_TIMESCALE as u32, language: "und".into(), ..Default::default() },
                hdlr: Hdlr { handler: b"vide".into(), name: "OnAir video".into() },
                minf: Minf {
                    vmhd: Some(Vmhd::default()),
                    dinf: dinf(),
                    stbl: empty_stbl(Stsd {
                        codecs: vec![Avc1 {
                            visual: Visual { data_reference_index: 1, width, height, horizresolution: 72.into(), vertresolution: 72.into(), frame_count: 1, compressor: "".into(), depth: 24 },
                            avcc: Avcc {
                                configuration_version: 1,
                                avc_profile_indication: sps[1],
                                profile_compatibility: sps[2],
                                avc_level_indication: sps[3],
                                length_size: 4,
                                sequence_parameter_sets: vec![sps.clone()],
                                picture_parameter_sets: vec![pps],
                                ext: None,
                            },
                            btrt: None,
                            colr: None,
                            pasp: None,
                            taic: None,
                            fiel: None,
                            spatial: Default::default(),
                        }
                        .into()],
                    }),
                    ..Default::default()
                },
            },
            ..Default::default()
        };
        let audio = Trak {
            tkhd: Tkhd { track_id: 2, enabled: true, in_movie: true, volume: 1.into(), alternate_group: 1, ..Default::default() },
            mdia: Mdia {
                mdhd: Mdhd { timescale: AUDIO_TIMESCALE as u32, language: "und".into(), ..Default::default() },
                hdlr: Hdlr { handler: b"soun".into(), name: "OnAir audio".into() },
                minf: Minf {
                    smhd: Some(Smhd::default()),
                    dinf: dinf(),
                    stbl: empty_stbl(Stsd {
                        codecs: vec![Opus {
                            audio: Audio { data_reference_index: 1, channel_count: 2, sample_size: 16, sample_rate: 48000.into() },
                            dops: Dops { output_channel_count: 2, pre_skip: 312, input_sample_rate: 48_000, output_gain: 0, channel_mapping: None },
                            btrt: None,
                        }
                        .into()],
                    }),
                    ..Default::default()
                },
            },
            ..Default::default()
        };
        let trex = |track_id| Trex { track_id, default_sample_description_index: 1, default_sample_duration: 0, default_sample_size: 0, default_sample_flags: 0 };
        let moov = Moov {
            mvhd: Mvhd { timescale: 1000, rate: 1.into(), volume: 1.into(), next_track_id: 3, ..Default::default() },
            mvex: Some(Mvex { mehd: None, trex: vec![trex(1), trex(2)] }),
            trak: vec![video, audio],
            ..Default::default()
        };
        enc(&moov, &mut head)?;
        let mut file = File::create(path)?;
        file.write_all(&head)?;
        file.sync_data()?;
        Ok(Some(Fmp4File { file, sequence: 0, size: (width, height), video: Vec::new(), audio: Vec::new(), fragment_start: None, last_us: 0 }))
    }

    /// The picture size its SPS declares ((0, 0) if unread).
    pub fn size(&self) -> (u16, u16) {
        self.size
    }

    /// Adds a frame, `us` from the recording's start.
    pub fn write(&mut self, frame: &Frame, us: i64) -> std::io::Result<()> {
        if frame.kind == Kind::Video {
            if frame.keyframe && self.fragment_start.is_some_and(|s| us - s >= FRAGMENT_US) {
                self.flush(Some(us))?;
            }
            if self.fragment_start.is_none() {
                self.fragment_start = Some(us);
            }
            self.video.push(Sample { pts_us: us, data: to_avcc(&frame.data), keyframe: frame.keyframe });
        } else {
            self.audio.push(Sample { pts_us: us, data: frame.data.to_vec(), keyframe: true });
        }
        self.last_us = self.last_us.max(us);
        Ok(())
    }

    /// Writes the fragment being filled; `next_video_us` ends its last video frame.
    fn flush(&mut self, next_video_us: Option<i64>) -> std::io::Result<()> {
        if self.video.is_empty() && self.audio.is_empty() {
            return Ok(());
        }
        self.sequence += 1;
        let video = std::mem::take(&mut self.video);
        let audio = std::mem::take(&mut self.audio);
        let ticks = |us: i64, scale: u64| (us.max(0) as u64 * scale / 1_000_000) as i64;
        // Per track: (track id, base time, entries, data).
        let mut runs: Vec<(u32, u64, Vec<TrunEntry>, Vec<u8>)> = Vec::new();
        for (id, samples, scale, last) in [(1u32, &video, VIDEO_TIMESCALE, 3000i64), (2, &audio, AUDIO_TIMESCALE, 960)] {
            if samples.is_empty() {
                continue;
            }
            let mut entries = Vec::with_capacity(samples.len());
            let mut data = Vec::new();
            for (i, s) in samples.iter().enumerate() {
                let start = ticks(s.pts_us, scale);
                let end = match samples.get(i + 1) {
                    Some(n) => ticks(n.pts_us, scale),
                    None if id == 1 => next_video_us.map_or(start + last, |u| ticks(u, scale)),
                    None => start + last,
                };
                entries.push(TrunEntry { duration: Some((end - start).max(1) as u32), size: Some(s.data.len() as u32), flags: Some(if s.keyframe { SYNC } else { NON_SYNC }), cts: None });
                data.extend_from_slice(&s.data);
            }
            runs.push((id, ticks(samples[0].pts_us, scale) as u64, entries, data));
        }
        let moof_of = |offsets: &[i32]| Moof {
            mfhd: Mfhd { sequence_number: self.sequence },
            traf: runs
                .iter()
                .zip(offsets)
                .map(|((id, base, entries, _), off)| Traf {
                    tfhd: Tfhd { track_id: *id, default_base_is_moof: true, ..Default::default() },
                    tfdt: Some(Tfdt { base_media_decode_time: *base }),
                    trun: vec![Trun { data_offset: Some(*off), samples: TrunSamples::Explicit(entries.clone()) }],
                    ..Default::default()
                })
                .collect(),
        };
        // The offsets point into the mdat that follows: measure the moof first.
        let mut probe = Vec::new();
        enc(&moof_of(&vec![0; runs.len()]), &mut probe)?;
        let mut off = probe.len() as i32 + 8;
        let mut offsets = Vec::new();
        for r in &runs {
            offsets.push(off);
            off += r.3.len() as i32;
        }
        let mut out = Vec::with_capacity(off as usize);
        enc(&moof_of(&offsets), &mut out)?;
        enc(&Mdat { data: runs.iter().flat_map(|r| r.3.iter().copied()).collect() }, &mut out)?;
        self.file.write_all(&out)?;
        self.fragment_start = next_video_us;
        Ok(())
    }

    /// Writes the last fragment. Returns the duration in ms.
    pub fn finish(mut self, end_us: i64) -> std::io::Result<i64> {
        let end = end_us.max(self.last_us);
        self.flush(Some(end))?;
        self.file.sync_all()?;
        Ok(end / 1000)
    }
}
