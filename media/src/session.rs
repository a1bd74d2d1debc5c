//! Session ids and roles.
//!
//! A session id is a capability: whoever knows a WHEP session's URL may end
//! it, so it is 128 random bits. What the SFU shows about a session
//! elsewhere (events, health, logs) is its tag, a keyed hash of the id that
//! names the session without giving it away.

use std::hash::BuildHasher;
use std::sync::OnceLock;

use serde::Serialize;

use crate::error::SfuError;

/// A media session (one peer connection): 128 random bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u128);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> SessionId {
        SessionId(rand::random())
    }

    /// The full id, as it appears in session URLs (32 hex digits). Only the
    /// session's owner should ever see it.
    pub fn secret(&self) -> String {
        format!("{:032x}", self.0)
    }

    /// The public name of the session: stable for the process's life,
    /// unique in practice, and useless for guessing the id.
    pub fn tag(&self) -> SessionTag {
        static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
        SessionTag(KEY.get_or_init(std::collections::hash_map::RandomState::new).hash_one(self.0))
    }
}

/// Logs and debug output show the tag, never the id.
impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.tag().fmt(f)
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionId({})", self.tag())
    }
}

/// Serialized (events, health) as the tag.
impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.tag().serialize(s)
    }
}

impl std::str::FromStr for SessionId {
    type Err = SfuError;
    /// Parses the 32 hex digits of [`SessionId::secret`].
    fn from_str(s: &str) -> Result<Self, SfuError> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SfuError::SessionNotFound);
        }
        u128::from_str_radix(s, 16).map(SessionId).map_err(|_| SfuError::SessionNotFound)
    }
}

/// The public name of a session (see [`SessionId::tag`]): 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionTag(pub u64);

impl std::fmt::Display for SessionTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for SessionTag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Publisher or viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sends media in (WHIP).
    Publisher,
    /// Receives media (WHEP).
    Viewer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_secret_and_show_only_their_tag() {
        let id = SessionId::random();
        assert_eq!(id.secret().len(), 32);
        assert_eq!(id.secret().parse::<SessionId>().unwrap(), id);
        assert_eq!(id.to_string(), id.tag().to_string());
        assert!(!id.secret().contains(&id.tag().to_string()), "the tag is not a piece of the id");
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{}\"", id.tag()));
        assert_ne!(SessionId::random().tag(), id.tag());
        assert!("0123".parse::<SessionId>().is_err());
        assert!("g".repeat(32).parse::<SessionId>().is_err());
        assert!(format!("+{}", &id.secret()[1..]).parse::<SessionId>().is_err(), "no sign accepted");
    }
}
