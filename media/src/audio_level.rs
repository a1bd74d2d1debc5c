//! Client-to-mixer audio level (RFC 6464) and dominant speaker detection.
//!
//! Senders put the level of each audio packet in an RTP header extension
//! (`urn:ietf:params:rtp-hdrext:ssrc-audio-level`), so an SFU can tell who is
//! talking without decoding Opus. The element is one byte:
//!
//! ```text
//!  0 1 2 3 4 5 6 7
//! +-+-+-+-+-+-+-+-+
//! |V|   level     |
//! +-+-+-+-+-+-+-+-+
//! ```
//!
//! V is the sender's voice activity flag (meaningful only when `vad=on` was
//! negotiated), level is the audio level in -dBov: 0 is the loudest possible
//! signal, 127 is silence (RFC 6464 section 3).
//!
//! [`ActiveSpeakerDetector`] turns a room's levels into "dominant speaker
//! changed" events with hysteresis, so the UI highlight and the "last-N"
//! video selection do not flicker: a participant takes over only after
//! being louder than the current dominant speaker, averaged over the last
//! second, for at least 300 ms. Levels quieter than a threshold count as
//! silence. Each participant's history is a fixed ring of ten 100 ms
//! buckets: observing a level never allocates.

/// The audio level of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioLevel {
    /// The sender's voice activity flag (V).
    pub voice: bool,
    /// Level in -dBov: 0 is the loudest, 127 silence.
    pub level_dbov: u8,
}

impl AudioLevel {
    /// Decodes the extension byte.
    pub fn from_byte(b: u8) -> Self {
        AudioLevel {
            voice: b & 0x80 != 0,
            level_dbov: b & 0x7F,
        }
    }

    /// Encodes the extension byte (`level_dbov` above 127 is clamped).
    pub fn to_byte(self) -> u8 {
        (u8::from(self.voice) << 7) | self.level_dbov.min(127)
    }
}

/// Parses the payload of an audio level header extension element (the bytes
/// after the element's ID/length header). The element holds one byte; any
/// bytes after it are ignored. `None` when the element is empty.
pub fn parse(ext: &[u8]) -> Option<AudioLevel> {
    ext.first().map(|&b| AudioLevel::from_byte(b))
}

/// Width of one history bucket.
const BUCKET_MS: u64 = 100;
/// 100 ms slices with sound, within the last second, that make a participant "speaking".
pub const SPEAKING_BUCKETS: usize = 3;
/// Buckets per participant: together they span the averaging window (1 s).
const BUCKETS: usize = 10;

/// Tuning of an [`ActiveSpeakerDetector`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// Levels at or above this many -dBov count as silence. Typical speech
    /// is 20..40 dBov; background noise after noise suppression is 60+.
    pub silence_dbov: u8,
    /// How long a challenger must stay louder than the dominant speaker
    /// before taking over.
    pub takeover_ms: u64,
    /// When true, packets whose V flag is clear count as silence (only
    /// useful when the senders run VAD, i.e. `vad=on`).
    pub use_voice_flag: bool,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        SpeakerConfig {
            silence_dbov: 50,
            takeover_ms: 300,
            use_voice_flag: false,
        }
    }
}

/// Sum of the loudness values seen in one `BUCKET_MS` slice of time.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// `now_ms / BUCKET_MS` of the observations in it.
    number: u64,
    sum: u32,
    count: u32,
}

#[derive(Clone, Debug)]
struct Speaker {
    id: u64,
    buckets: [Bucket; BUCKETS],
}

impl Speaker {
    /// Loudness over the window ending at `now_ms`: the sum over the last
    /// `BUCKETS` buckets of their mean loudness (times 16 for precision),
    /// a bucket without observations counting as silence.
    fn score(&self, now_ms: u64) -> u32 {
        let current = now_ms / BUCKET_MS;
        let oldest = current.saturating_sub(BUCKETS as u64 - 1);
        self.buckets
            .iter()
            .filter(|b| b.count > 0 && (oldest..=current).contains(&b.number))
            .map(|b| b.sum.saturating_mul(16) / b.count)
            .sum()
    }
}

/// Picks the dominant speaker of a room from audio levels. See the module
/// docs. Feed it every level with [`observe`](Self::observe) and call
/// [`tick`](Self::tick) regularly (every 100 ms or so, or after every
/// observation); `tick` reports when the dominant speaker changes.
#[derive(Clone, Debug, Default)]
pub struct ActiveSpeakerDetector {
    config: SpeakerConfig,
    speakers: Vec<Speaker>,
    dominant: Option<u64>,
    /// The participant currently louder than the dominant one, and since when.
    challenger: Option<(u64, u64)>,
}

impl ActiveSpeakerDetector {
    /// A detector with the default tuning (silence from 50 dBov, 300 ms hold).
    pub fn new() -> Self {
        Self::default()
    }

    /// A detector with the given tuning.
    pub fn with_config(config: SpeakerConfig) -> Self {
        ActiveSpeakerDetector {
            config,
            ..Self::default()
        }
    }

    /// The current dominant speaker, if anyone has spoken yet.
    pub fn dominant(&self) -> Option<u64> {
        self.dominant
    }

    /// Records the level of one audio packet of `participant_id`.
    /// The first observation of a participant adds it (the only allocation);
    /// observations older than what a bucket already holds are ignored.
    pub fn observe(&mut self, participant_id: u64, level: AudioLevel, now_ms: u64) {
        let loudness = if self.config.use_voice_flag && !level.voice {
            0
        } else {
            u32::from(self.config.silence_dbov.saturating_sub(level.level_dbov))
        };
        let speaker = match self.speakers.iter().position(|s| s.id == participant_id) {
            Some(i) => &mut self.speakers[i],
            None => {
                self.speakers.push(Speaker {
                    id: participant_id,
                    buckets: [Bucket::default(); BUCKETS],
                });
                let last = self.speakers.len() - 1;
                &mut self.speakers[last]
            }
        };
        let number = now_ms / BUCKET_MS;
        let bucket = &mut speaker.buckets[(number % BUCKETS as u64) as usize];
        if bucket.number != number {
            if bucket.count > 0 && bucket.number > number {
                return; // a late observation whose slot was already reused
            }
            *bucket = Bucket {
                number,
                sum: 0,
                count: 0,
            };
        }
        bucket.sum = bucket.sum.saturating_add(loudness);
        bucket.count = bucket.count.saturating_add(1);
    }

    /// Whether `participant_id` is speaking: at least [`SPEAKING_BUCKETS`]
    /// of the last second's 100 ms slices carried sound above the silence
    /// threshold. Short enough to light a "speaking" badge promptly, long
    /// enough that a click or a cough does not.
    pub fn speaking(&self, participant_id: u64, now_ms: u64) -> bool {
        let Some(s) = self.speakers.iter().find(|s| s.id == participant_id) else { return false };
        let current = now_ms / BUCKET_MS;
        let oldest = current.saturating_sub(BUCKETS as u64 - 1);
        let loud = s.buckets.iter().filter(|b| b.count > 0 && b.sum >= b.count && (oldest..=current).contains(&b.number)).count();
        loud >= SPEAKING_BUCKETS
    }

    /// Forgets a participant (e.g. when it leaves the room). If it was the
    /// dominant speaker, there is none until someone else takes over.
    pub fn remove(&mut self, participant_id: u64) {
        self.speakers.retain(|s| s.id != participant_id);
        if self.dominant == Some(participant_id) {
            self.dominant = None;
        }
        if self.challenger.is_some_and(|(id, _)| id == participant_id) {
            self.challenger = None;
        }
    }

    /// Re-evaluates the room at `now_ms`. Returns the new dominant speaker
    /// when it changed, `None` otherwise.
    pub fn tick(&mut self, now_ms: u64) -> Option<u64> {
        let dominant_score = self
            .dominant
            .and_then(|d| self.speakers.iter().find(|s| s.id == d))
            .map_or(0, |s| s.score(now_ms));

        // The loudest participant other than the dominant one; on a tie the
        // one that joined first.
        let mut best: Option<(u64, u32)> = None;
        for s in self.speakers.iter().filter(|s| Some(s.id) != self.dominant) {
            let score = s.score(now_ms);
            if best.is_none_or(|(_, b)| score > b) {
                best = Some((s.id, score));
            }
        }

        let Some((id, _)) = best.filter(|&(_, score)| score > 0 && score > dominant_score) else {
            self.challenger = None;
            return None;
        };
        match self.challenger {
            Some((challenger, since)) if challenger == id => {
                if now_ms.saturating_sub(since) >= self.config.takeover_ms {
                    self.dominant = Some(id);
                    self.challenger = None;
                    return Some(id);
                }
            }
            _ => self.challenger = Some((id, now_ms)),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lvl(level_dbov: u8) -> AudioLevel {
        AudioLevel {
            voice: level_dbov < 127,
            level_dbov,
        }
    }

    const SILENT: u8 = 127;

    /// Runs a room for `from..to` ms: every participant sends a packet every
    /// 20 ms with the level `levels(id, t)` (None = no packet), and the room
    /// ticks every 20 ms. Returns the dominant speaker changes.
    fn run(
        det: &mut ActiveSpeakerDetector,
        from: u64,
        to: u64,
        ids: &[u64],
        levels: impl Fn(u64, u64) -> Option<u8>,
    ) -> Vec<(u64, u64)> {
        let mut changes = Vec::new();
        let mut t = from;
        while t < to {
            for &id in ids {
                if let Some(l) = levels(id, t) {
                    det.observe(id, lvl(l), t);
                }
            }
            if let Some(d) = det.tick(t) {
                changes.push((t, d));
            }
            t += 20;
        }
        changes
    }

    #[test]
    fn speaking_needs_some_sound_in_the_last_second() {
        let mut det = ActiveSpeakerDetector::new();
        assert!(!det.speaking(1, 0), "unknown participant");
        // One loud packet (a click) is not speech.
        det.observe(1, lvl(20), 0);
        assert!(!det.speaking(1, 10));
        // 400 ms of speech at 30 dBov is.
        for t in (100..500).step_by(20) {
            det.observe(1, lvl(30), t);
        }
        assert!(det.speaking(1, 500));
        // Background noise below the threshold is silence.
        for t in (500..1600).step_by(20) {
            det.observe(1, lvl(70), t);
        }
        assert!(!det.speaking(1, 1600), "a second of silence ends it");
    }

    #[test]
    fn parse_rfc6464_bytes() {
        assert_eq!(
            parse(&[0x9E]),
            Some(AudioLevel {
                voice: true,
                level_dbov: 30
            })
        );
        assert_eq!(
            parse(&[0x7F]),
            Some(AudioLevel {
                voice: false,
                level_dbov: 127
            })
        );
        assert_eq!(
            parse(&[0x80]),
            Some(AudioLevel {
                voice: true,
                level_dbov: 0
            })
        );
        assert_eq!(
            parse(&[0x00]),
            Some(AudioLevel {
                voice: false,
                level_dbov: 0
            })
        );
        // Two-byte-header form with padding: only the first byte is the level.
        assert_eq!(
            parse(&[0x9E, 0x00]),
            Some(AudioLevel {
                voice: true,
                level_dbov: 30
            })
        );
        assert_eq!(parse(&[]), None);
        for b in 0..=255u8 {
            assert_eq!(parse(&[b]).unwrap().to_byte(), b);
        }
        assert_eq!(
            AudioLevel {
                voice: false,
                level_dbov: 200
            }
            .to_byte(),
            0x7F
        );
    }

    #[test]
    fn first_speaker_takes_over_after_hold() {
        let mut det = ActiveSpeakerDetector::new();
        let changes = run(&mut det, 0, 1_000, &[1, 2], |id, _| {
            Some(if id == 1 { 30 } else { SILENT })
        });
        assert_eq!(
            changes,
            vec![(300, 1)],
            "first tick at 0 starts the hold, 300 ms later it wins"
        );
        assert_eq!(det.dominant(), Some(1));
    }

    #[test]
    fn silence_never_becomes_dominant() {
        let mut det = ActiveSpeakerDetector::new();
        // Quieter than the 50 dBov threshold counts as nothing.
        let changes = run(&mut det, 0, 3_000, &[1, 2], |id, _| {
            Some(if id == 1 { SILENT } else { 55 })
        });
        assert!(changes.is_empty());
        assert_eq!(det.dominant(), None);
    }

    #[test]
    fn louder_challenger_takes_over_with_hold() {
        let mut det = ActiveSpeakerDetector::new();
        run(&mut det, 0, 2_000, &[1, 2], |id, _| {
            Some(if id == 1 { 30 } else { SILENT })
        });
        assert_eq!(det.dominant(), Some(1));
        // 1 stops, 2 starts at t = 2000.
        let changes = run(&mut det, 2_000, 5_000, &[1, 2], |id, _| {
            Some(if id == 2 { 30 } else { SILENT })
        });
        assert_eq!(changes.len(), 1);
        let (at, who) = changes[0];
        assert_eq!(who, 2);
        // 2 must first overtake 1's decaying 1 s average (~0.5 s when equally
        // loud), then hold for 300 ms.
        assert!(at >= 2_300, "took over at {at}");
        assert!(at <= 3_200, "took over at {at}");
    }

    #[test]
    fn short_burst_does_not_take_over() {
        let mut det = ActiveSpeakerDetector::new();
        run(&mut det, 0, 2_000, &[1, 2], |id, _| {
            Some(if id == 1 { 40 } else { SILENT })
        });
        assert_eq!(det.dominant(), Some(1));
        // 2 shouts (10 dBov) for 200 ms while 1 keeps talking.
        let changes = run(&mut det, 2_000, 6_000, &[1, 2], |id, t| {
            Some(match id {
                1 => 40,
                _ if (2_000..2_200).contains(&t) => 10,
                _ => SILENT,
            })
        });
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(det.dominant(), Some(1));
    }

    #[test]
    fn sustained_louder_speaker_takes_over_while_other_talks() {
        let mut det = ActiveSpeakerDetector::new();
        run(&mut det, 0, 2_000, &[1, 2], |id, _| {
            Some(if id == 1 { 40 } else { SILENT })
        });
        let changes = run(&mut det, 2_000, 4_000, &[1, 2], |id, _| {
            Some(if id == 1 { 40 } else { 20 })
        });
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1, 2);
        assert!(changes[0].0 >= 2_300);
    }

    #[test]
    fn dominant_stays_when_everyone_is_silent() {
        let mut det = ActiveSpeakerDetector::new();
        run(&mut det, 0, 1_000, &[1, 2], |id, _| {
            Some(if id == 1 { 30 } else { SILENT })
        });
        let changes = run(&mut det, 1_000, 10_000, &[1, 2], |_, _| Some(SILENT));
        assert!(changes.is_empty());
        assert_eq!(det.dominant(), Some(1));
    }

    #[test]
    fn challenger_timer_restarts_when_the_challenger_changes() {
        let mut det = ActiveSpeakerDetector::new();
        det.observe(2, lvl(30), 0);
        det.observe(2, lvl(30), 50);
        assert_eq!(det.tick(0), None); // 2 challenges the empty seat from t=0
                                       // 3 gets louder than 2 at t=150..200: 2's 300 ms never complete and
                                       // 3's hold starts at 200.
        det.observe(3, lvl(0), 150);
        det.observe(3, lvl(0), 200);
        assert_eq!(det.tick(200), None);
        assert_eq!(det.tick(300), None);
        assert_eq!(det.tick(499), None);
        assert_eq!(det.tick(500), Some(3));
        assert_eq!(det.dominant(), Some(3));
        assert_eq!(det.tick(520), None, "reported once");
    }

    #[test]
    fn bursts_never_beat_a_steady_speaker() {
        let mut det = ActiveSpeakerDetector::new();
        run(&mut det, 0, 1_000, &[1], |_, _| Some(40));
        assert_eq!(det.dominant(), Some(1));
        // 2 is much louder, but only for 250 ms every 2 s: its 1 s average
        // stays below 1's.
        let changes = run(&mut det, 1_000, 9_000, &[1, 2], |id, t| {
            Some(match id {
                1 => 40,
                _ if t % 2_000 < 250 => 20,
                _ => SILENT,
            })
        });
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn old_observations_expire() {
        let mut det = ActiveSpeakerDetector::new();
        for t in (0..500).step_by(20) {
            det.observe(7, lvl(10), t);
        }
        let s = &det.speakers[0];
        assert!(s.score(400) > 0);
        assert!(s.score(1_050) > 0, "buckets 1..=4 are still in the window");
        assert_eq!(s.score(1_500), 0, "all buckets older than 1 s");
        assert_eq!(s.score(100_000), 0);
        // A new observation in a reused slot replaces the stale one.
        det.observe(7, lvl(SILENT), 10_000);
        assert_eq!(det.speakers[0].score(10_000), 0);
    }

    #[test]
    fn late_observations_are_ignored() {
        let mut det = ActiveSpeakerDetector::new();
        det.observe(1, lvl(SILENT), 5_000);
        // Same slot (bucket 50 and 40 share slot 0), older: ignored.
        det.observe(1, lvl(0), 4_000);
        assert_eq!(det.speakers[0].score(5_000), 0);
        // Time going backwards in tick: no panic, no change.
        assert_eq!(det.tick(5_000), None);
        assert_eq!(det.tick(0), None);
    }

    #[test]
    fn voice_flag_option() {
        let cfg = SpeakerConfig {
            use_voice_flag: true,
            ..SpeakerConfig::default()
        };
        let mut det = ActiveSpeakerDetector::with_config(cfg);
        for t in (0..1_000).step_by(20) {
            det.observe(
                1,
                AudioLevel {
                    voice: false,
                    level_dbov: 10,
                },
                t,
            );
            det.observe(
                2,
                AudioLevel {
                    voice: true,
                    level_dbov: 40,
                },
                t,
            );
            if let Some(d) = det.tick(t) {
                assert_eq!(d, 2);
            }
        }
        assert_eq!(det.dominant(), Some(2));
    }

    #[test]
    fn removing_participants() {
        let mut det = ActiveSpeakerDetector::new();
        run(&mut det, 0, 1_000, &[1, 2], |id, _| {
            Some(if id == 1 { 30 } else { 45 })
        });
        assert_eq!(det.dominant(), Some(1));
        det.remove(1);
        assert_eq!(det.dominant(), None);
        // 2 keeps talking quietly and now takes over after the hold.
        let changes = run(&mut det, 1_000, 2_000, &[2], |_, _| Some(45));
        assert_eq!(changes, vec![(1_300, 2)]);
        det.remove(2);
        det.remove(99);
        assert_eq!(det.tick(3_000), None);
        assert!(det.speakers.is_empty());
    }

    #[test]
    fn three_way_conversation() {
        let mut det = ActiveSpeakerDetector::new();
        // Each talks for 3 s in turn.
        let changes = run(&mut det, 0, 9_000, &[10, 20, 30], |id, t| {
            let turn = [10, 20, 30][(t / 3_000) as usize];
            Some(if id == turn { 30 } else { SILENT })
        });
        let who: Vec<u64> = changes.iter().map(|c| c.1).collect();
        assert_eq!(who, vec![10, 20, 30]);
    }

    #[test]
    fn garbage_never_panics_and_no_growth() {
        let mut det = ActiveSpeakerDetector::with_config(SpeakerConfig {
            silence_dbov: 127,
            takeover_ms: 0,
            use_voice_flag: false,
        });
        let mut state: u32 = 0x1357_9BDF;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for _ in 0..100_000 {
            let id = u64::from(rnd() % 8);
            let level = AudioLevel::from_byte(rnd() as u8);
            let now = if rnd() % 100 == 0 {
                u64::MAX - u64::from(rnd() % 1000)
            } else {
                u64::from(rnd() % 100_000)
            };
            det.observe(id, level, now);
            if let Some(d) = det.tick(now) {
                assert!(d < 8);
            }
        }
        assert!(det.speakers.len() <= 8);
    }
}
