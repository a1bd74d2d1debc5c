//! Sinks: consumers of a producer other than a WebRTC viewer (a recorder,
//! a relay to another node), attached at the fan-out point.
//!
//! A sink sees every packet its producer forwards (every simulcast layer,
//! and audio), as the refcounted [`Fanout`] the viewers share: no copy. It
//! is called on the producer's worker thread, so it must not block: a sink
//! that writes files or sockets hands the packet to its own thread through
//! a bounded queue and drops (counting) what does not fit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::packet::Fanout;

/// Something fed with a producer's packets.
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// A packet the producer forwards. Called on the producer's worker: must not block.
    fn packet(&self, packet: &Fanout);

    /// An RTCP sender report of the publisher's `ssrc`: its RTP timestamp
    /// `rtp_time` was sampled at wallclock `ntp_time` (64-bit NTP). Lets a
    /// recorder line audio up with video. Called on the producer's worker.
    fn sender_report(&self, _ssrc: u32, _ntp_time: u64, _rtp_time: u32) {}

    /// The producer ended (its host left the room for good, or the room
    /// ended): no packet follows.
    fn ended(&self) {}
}

/// A sink's handle, to detach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SinkId(pub u64);

/// A producer's sinks. Checking for none costs one relaxed load per packet.
#[derive(Debug, Default)]
pub struct Sinks {
    any: AtomicBool,
    list: RwLock<Vec<(SinkId, Arc<dyn Sink>)>>,
}

impl Sinks {
    /// Attaches `sink`.
    pub fn attach(&self, sink: Arc<dyn Sink>) -> SinkId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = SinkId(NEXT.fetch_add(1, Ordering::Relaxed));
        let mut list = self.list.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        list.push((id, sink));
        self.any.store(true, Ordering::Release);
        id
    }

    /// Detaches a sink; true if it was attached.
    pub fn detach(&self, id: SinkId) -> bool {
        let mut list = self.list.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = list.len();
        list.retain(|(i, _)| *i != id);
        self.any.store(!list.is_empty(), Ordering::Release);
        list.len() != before
    }

    /// Feeds `packet` to every sink.
    #[inline]
    pub fn feed(&self, packet: &Fanout) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        for (_, sink) in self.list.read().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            sink.packet(packet);
        }
    }

    /// Passes a sender report of the producer's `ssrc` to every sink.
    pub fn sender_report(&self, ssrc: u32, ntp_time: u64, rtp_time: u32) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        for (_, sink) in self.list.read().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            sink.sender_report(ssrc, ntp_time, rtp_time);
        }
    }

    /// Tells every sink the producer ended, and lets them go.
    pub fn end(&self) {
        let list = std::mem::take(&mut *self.list.write().unwrap_or_else(std::sync::PoisonError::into_inner));
        self.any.store(false, Ordering::Release);
        for (_, sink) in list {
            sink.ended();
        }
    }

    /// Moves every sink to `other` (a returning publisher's new producer
    /// takes over the held one's recorders and relays).
    pub fn move_to(&self, other: &Sinks) {
        let list = std::mem::take(&mut *self.list.write().unwrap_or_else(std::sync::PoisonError::into_inner));
        self.any.store(false, Ordering::Release);
        if list.is_empty() {
            return;
        }
        let mut to = other.list.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        to.extend(list);
        other.any.store(true, Ordering::Release);
    }

    /// How many are attached.
    pub fn len(&self) -> usize {
        self.list.read().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Whether none is attached.
    pub fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Layer;
    use crate::packet::ForwardPacket;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Collect(Mutex<Vec<u16>>, AtomicBool);

    impl Sink for Collect {
        fn packet(&self, p: &Fanout) {
            self.0.lock().unwrap().push(p.seq);
        }
        fn ended(&self) {
            self.1.store(true, Ordering::Relaxed);
        }
    }

    #[test]
    fn attached_sinks_are_fed_until_detached_and_told_of_the_end() {
        let sinks = Sinks::default();
        let p = |seq| Arc::new(ForwardPacket::test_video(Layer::F, 1, seq, 0, false, bytes::Bytes::new()));
        sinks.feed(&p(1));
        let (a, b) = (Arc::new(Collect::default()), Arc::new(Collect::default()));
        let ida = sinks.attach(a.clone());
        sinks.attach(b.clone());
        sinks.feed(&p(2));
        assert!(sinks.detach(ida));
        assert!(!sinks.detach(ida));
        sinks.feed(&p(3));
        sinks.end();
        sinks.feed(&p(4));
        assert_eq!(*a.0.lock().unwrap(), vec![2]);
        assert_eq!(*b.0.lock().unwrap(), vec![2, 3]);
        assert!(!a.1.load(Ordering::Relaxed) && b.1.load(Ordering::Relaxed), "only an attached sink hears the end");
        assert!(sinks.is_empty());
    }
}
