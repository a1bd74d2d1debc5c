//! A battle's media: the two hosts' rooms linked in the SFU, so each room's
//! hosts appear in the other's multi-slot viewers and hosts' views, in
//! process (no re-publish, no transcoding). Rooms are named as the media
//! core names them ([`crate::streams::Stream::media_name`]: the stream id).
//!
//! Everything the battles module does to media goes through this pair, so
//! a later link across two OnAir nodes (over a node-to-node relay sink)
//! replaces these two functions and nothing else.
//!
//! Both tell each stream's pages `room_slots` (now with, or again without,
//! the opponent), as a host joining or leaving does: a watch page opens its
//! split screen (a WHEP session with two slots) on it.

use onair_media::{Sfu, SfuError};

use crate::realtime::{Event, Hub, Topic};
use crate::rooms::layout::slots_in;

/// Links the rooms of streams `a` and `b`. Fails while either room is not
/// live in the media core (its publisher has not connected yet): the
/// battle's ticker tries again until it holds. Linked already: nothing to do.
pub fn link(sfu: &Sfu, hub: &Hub, a: i64, b: i64) -> Result<(), SfuError> {
    if linked(sfu, a, b) {
        return Ok(());
    }
    sfu.link_rooms(&a.to_string(), &b.to_string())?;
    announce_slots(sfu, hub, [a, b]);
    Ok(())
}

/// Unlinks them: each side's hosts leave the other's slots at a keyframe,
/// no connection touched. False if they were not linked (an ended room's
/// link lapses with it); the slots are told either way, so the other
/// stream's pages drop the opponent of a battle whose host's stream ended.
pub fn unlink(sfu: &Sfu, hub: &Hub, a: i64, b: i64) -> bool {
    let done = sfu.unlink_rooms(&a.to_string(), &b.to_string());
    announce_slots(sfu, hub, [a, b]);
    done
}

/// Whether the two rooms are linked with each other in the media core.
pub fn linked(sfu: &Sfu, a: i64, b: i64) -> bool {
    sfu.linked_room(&a.to_string()).is_some_and(|r| r == b.to_string())
}

fn announce_slots(sfu: &Sfu, hub: &Hub, streams: [i64; 2]) {
    for stream_id in streams {
        let (slots, program) = slots_in(sfu, stream_id);
        hub.publish(Topic::Stream(stream_id), &Event::RoomSlots { stream_id, slots, program });
    }
}
