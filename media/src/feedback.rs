//! Lets a viewer's RTCP feedback through to the SFU.
//!
//! In `rtc` 0.21 inbound RTCP is for the interceptors: the end of every
//! interceptor chain drops it unless some interceptor has marked the packet
//! `Attribute::DeliverToApplication`. The SFU itself acts on what viewers
//! report (PLI and FIR become aggregated keyframe requests, NACKs are
//! answered from the stream's cache, receiver reports and REMB drive layer
//! selection), so viewer connections get this interceptor at the
//! application-most end of their chain: every other interceptor has seen the
//! packet by then, and it marks all RTCP for delivery.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Position in the chain: above every built-in slot (the highest is the
/// sender report's 11 000), so it is the last to see inbound packets.
const SLOT: usize = 20_000;

/// Marks inbound RTCP for delivery to the application; passes everything.
#[derive(Default)]
pub struct DeliverFeedback {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

/// Adds [`DeliverFeedback`] to a registry.
pub fn deliver_feedback(registry: Registry) -> Registry {
    registry.with(Slot::Custom(SLOT), DeliverFeedback::default())
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for DeliverFeedback {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Error> {
        if matches!(msg.message.packet, Packet::Rtcp(_)) && !msg.message.has(&Attribute::DeliverToApplication) {
            msg.message.attributes.push(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for DeliverFeedback {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
