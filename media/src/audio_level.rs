//! RFC 6464 audio levels and the active speaker they point to.
//!
//! Browsers tag each Opus packet with a one-byte header extension: a voice
//! activity flag and the level in -dBov (0 loudest, 127 silence). The SFU
//! never decodes audio; this is how it knows who is talking.

/// One packet's audio level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLevel {
    /// Voice activity flag.
    pub voice: bool,
    /// Level in -dBov: 0 is the loudest, 127 silence.
    pub level_dbov: u8,
}

/// Parses the extension element's payload.
pub fn parse(ext: &[u8]) -> Option<AudioLevel> {
    let b = *ext.first()?;
    Some(AudioLevel { voice: b & 0x80 != 0, level_dbov: b & 0x7f })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flag_and_level() {
        assert_eq!(parse(&[0x80 | 30]), Some(AudioLevel { voice: true, level_dbov: 30 }));
        assert_eq!(parse(&[127]), Some(AudioLevel { voice: false, level_dbov: 127 }));
        assert_eq!(parse(&[]), None);
    }
}
