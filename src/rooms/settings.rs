//! A stream's room settings: what kind of session it is, how its hosts
//! connect to each other, how many hosts it takes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::rooms::MAX_HOSTS;

/// What kind of session a stream is (how pages present it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionType {
    /// One host (others may still join).
    #[default]
    Solo,
    /// Hosts creating together.
    Collaboration,
    /// A host and a guest.
    Interview,
    /// A moderated discussion.
    Panel,
    /// Playing together.
    Gaming,
    /// Talking, mostly audio.
    Podcast,
    /// Teaching.
    Workshop,
}

impl SessionType {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::Solo => "solo",
            SessionType::Collaboration => "collaboration",
            SessionType::Interview => "interview",
            SessionType::Panel => "panel",
            SessionType::Gaming => "gaming",
            SessionType::Podcast => "podcast",
            SessionType::Workshop => "workshop",
        }
    }

    /// From its stored name (unknown: solo).
    pub fn parse(s: &str) -> SessionType {
        match s {
            "collaboration" => SessionType::Collaboration,
            "interview" => SessionType::Interview,
            "panel" => SessionType::Panel,
            "gaming" => SessionType::Gaming,
            "podcast" => SessionType::Podcast,
            "workshop" => SessionType::Workshop,
            _ => SessionType::Solo,
        }
    }
}

/// How a room's hosts see and hear each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Peer to peer between the studio pages up to four hosts, through the
    /// SFU beyond.
    #[default]
    Auto,
    /// Always through the SFU.
    Sfu,
}

impl Topology {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Topology::Auto => "auto",
            Topology::Sfu => "sfu",
        }
    }

    /// From its stored name (unknown: auto).
    pub fn parse(s: &str) -> Topology {
        if s == "sfu" {
            Topology::Sfu
        } else {
            Topology::Auto
        }
    }
}

/// Checks `max_hosts` (2-9, the primary host included).
pub fn check_max_hosts(n: i64, fields: &mut BTreeMap<String, String>) -> i64 {
    if !(2..=MAX_HOSTS as i64).contains(&n) {
        fields.insert("max_hosts".into(), format!("must be 2-{MAX_HOSTS}"));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bounds_hold() {
        for t in [SessionType::Solo, SessionType::Collaboration, SessionType::Interview, SessionType::Panel, SessionType::Gaming, SessionType::Podcast, SessionType::Workshop] {
            assert_eq!(SessionType::parse(t.as_str()), t);
        }
        assert_eq!(Topology::parse("sfu"), Topology::Sfu);
        let mut f = BTreeMap::new();
        check_max_hosts(9, &mut f);
        check_max_hosts(2, &mut f);
        assert!(f.is_empty());
        check_max_hosts(10, &mut f);
        assert_eq!(f["max_hosts"], "must be 2-9");
    }
}
