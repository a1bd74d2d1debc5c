//! A battle's media: the two hosts' rooms linked in the SFU, so each room's
//! hosts appear in the other's multi-slot viewers and hosts' views, in
//! process (no re-publish, no transcoding). Rooms are named as the media
//! core names them ([`crate::streams::Stream::media_name`]: the stream id).
//!
//! Everything the battles module does to media goes through this pair, so
//! a later link across two OnAir nodes (over a node-to-node relay sink)
//! replaces these two functions and nothing else.

use onair_media::{Sfu, SfuError};

/// Links the rooms of streams `a` and `b`. Fails while either room is not
/// live in the media core (its publisher has not connected yet): the
/// battle's ticker tries again until it holds.
pub fn link(sfu: &Sfu, a: &str, b: &str) -> Result<(), SfuError> {
    sfu.link_rooms(a, b)
}

/// Unlinks them: each side's hosts leave the other's slots at a keyframe,
/// no connection touched. False if they were not linked.
pub fn unlink(sfu: &Sfu, a: &str, b: &str) -> bool {
    sfu.unlink_rooms(a, b)
}
