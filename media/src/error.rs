//! Errors the SFU reports to its callers (signaling turns them into HTTP).

use std::fmt;

/// What went wrong with a media request, typed so that signaling can map it
/// to an HTTP status without guessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuError {
    /// The offer could not be parsed or is not acceptable; the message says why.
    BadOffer(String),
    /// The offer has no codec the SFU forwards.
    UnsupportedCodec(String),
    /// No live stream of that name.
    StreamNotFound(String),
    /// The stream already has a publisher.
    StreamBusy(String),
    /// The room has as many hosts as it may hold.
    RoomFull(String),
    /// The host was removed from the room and may not publish into it again.
    HostRemoved(String),
    /// Two rooms could not be linked (one is linked already, or they are
    /// the same room).
    LinkRefused(String),
    /// No session with that id.
    SessionNotFound,
    /// The SFU is shutting down or a worker is gone.
    Unavailable,
    /// The server holds as many sessions as it is configured for (in total
    /// or on every worker), or a worker's command queue is full: try again
    /// in a few seconds.
    Capacity(String),
    /// This client network holds as many sessions as one network may.
    TooManySessions(String),
    /// An error inside the WebRTC stack.
    Internal(String),
}

impl fmt::Display for SfuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SfuError::BadOffer(m) => write!(f, "bad SDP offer: {m}"),
            SfuError::UnsupportedCodec(m) => write!(f, "unsupported codecs: {m}"),
            SfuError::StreamNotFound(s) => write!(f, "stream '{s}' is not live"),
            SfuError::StreamBusy(s) => write!(f, "stream '{s}' already has a publisher"),
            SfuError::RoomFull(s) => write!(f, "room '{s}' is full"),
            SfuError::HostRemoved(h) => write!(f, "host '{h}' was removed from this room"),
            SfuError::LinkRefused(m) => write!(f, "rooms cannot be linked: {m}"),
            SfuError::SessionNotFound => write!(f, "no such session"),
            SfuError::Unavailable => write!(f, "media engine unavailable"),
            SfuError::Capacity(m) => write!(f, "server at capacity: {m}"),
            SfuError::TooManySessions(m) => write!(f, "too many media sessions: {m}"),
            SfuError::Internal(m) => write!(f, "internal media error: {m}"),
        }
    }
}

impl std::error::Error for SfuError {}
