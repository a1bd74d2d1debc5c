//! What the SFU tells the platform around it.

use serde::Serialize;

use crate::layer::Layer;
use crate::session::SessionId;

/// Something that happened, for the platform around the SFU. Sessions
/// serialize as their tags (see [`crate::session`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SfuEvent {
    /// A publisher's connection is up: the stream is live.
    StreamLive { stream: String },
    /// The publisher's connection went away. With a publisher hold the
    /// stream waits for it (its viewers stay); without one `StreamEnded` follows.
    PublisherLeft { stream: String },
    /// The stream ended (its publisher left and did not come back within the
    /// hold, or the platform ended it): its viewers were closed.
    StreamEnded { stream: String },
    /// A viewer's connection is up.
    ViewerJoined { stream: String, session: SessionId },
    /// A viewer left.
    ViewerLeft { stream: String, session: SessionId },
    /// A session of either role closed, whether or not it ever connected
    /// (bookkeeping keyed by session can let go of it).
    SessionClosed { stream: String, session: SessionId },
    /// A publisher started or stopped speaking (from its RFC 6464 audio levels).
    Speaking { stream: String, session: SessionId, host: String, speaking: bool },
    /// The loudest publisher of the room changed (co-host rooms highlight it).
    ActiveSpeaker { stream: String, session: SessionId, host: String },
    /// A named host's producer connected in the room.
    HostJoined { stream: String, host: String, session: SessionId },
    /// A named host's producer left the room for good (left, removed, or did
    /// not come back within the hold); the room goes on unless it was the primary.
    HostLeft { stream: String, host: String },
    /// A viewer now receives another simulcast layer (at the keyframe it
    /// switched on): what its player decodes from here on.
    LayerChanged { stream: String, session: SessionId, layer: Layer },
}

impl SfuEvent {
    /// The stream the event is about.
    pub fn stream(&self) -> &str {
        match self {
            SfuEvent::StreamLive { stream }
            | SfuEvent::PublisherLeft { stream }
            | SfuEvent::StreamEnded { stream }
            | SfuEvent::ViewerJoined { stream, .. }
            | SfuEvent::ViewerLeft { stream, .. }
            | SfuEvent::SessionClosed { stream, .. }
            | SfuEvent::Speaking { stream, .. }
            | SfuEvent::ActiveSpeaker { stream, .. }
            | SfuEvent::HostJoined { stream, .. }
            | SfuEvent::HostLeft { stream, .. }
            | SfuEvent::LayerChanged { stream, .. } => stream,
        }
    }
}
