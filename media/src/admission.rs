//! Admission: how many sessions the SFU, each worker and each client
//! network may hold, and which worker takes a new one.
//!
//! Every offer costs a peer connection whether or not it ever connects, so
//! a new session is counted from its offer until it closes: a [`Ticket`] is
//! taken before the connection is built and travels with the peer; dropping
//! it (the peer closed, the offer failed, a panic unwound it) gives the
//! place back. A client network is an IPv4 address or an IPv6 /64 (what one
//! household or one cloud machine holds).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::SfuError;
use crate::producer::lock;

/// A client network: an IPv4 address, or the first 64 bits of an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// An IPv4 address (/32).
    V4(u32),
    /// An IPv6 /64 prefix.
    V6(u64),
}

impl Network {
    /// The network `ip` belongs to (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn of(ip: IpAddr) -> Network {
        match ip {
            IpAddr::V4(v4) => Network::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Network::V4(v4.into()),
                None => Network::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// The caps and what holds them now.
#[derive(Debug)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_worker: usize,
    max_per_network: usize,
    total: AtomicUsize,
    per_worker: Vec<AtomicUsize>,
    per_network: Mutex<HashMap<Network, usize>>,
}

/// One admitted session's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    /// The worker the session was placed on.
    pub worker: usize,
    network: Option<Network>,
}

impl Admission {
    pub fn new(workers: usize, max_total: usize, max_per_worker: usize, max_per_network: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_total,
            max_per_worker,
            max_per_network,
            total: AtomicUsize::new(0),
            per_worker: (0..workers.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            per_network: Mutex::new(HashMap::new()),
        })
    }

    /// Admits a session from `client`: places it on the least loaded worker
    /// with room (or on `worker`, when the caller must have that one), or
    /// says which cap refused it.
    pub fn admit(self: &Arc<Self>, client: Option<IpAddr>, worker: Option<usize>) -> Result<Ticket, SfuError> {
        let network = client.map(Network::of);
        if let Some(net) = network {
            let mut nets = lock(&self.per_network);
            let held = nets.entry(net).or_insert(0);
            if *held >= self.max_per_network {
                return Err(SfuError::TooManySessions(format!("at most {} media sessions per client network", self.max_per_network)));
            }
            *held += 1;
        }
        // From here on a failure must give the network's place back: the
        // ticket does it when dropped.
        let mut ticket = Ticket { admission: self.clone(), worker: usize::MAX, network };
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(SfuError::Capacity(format!("this server holds at most {} media sessions", self.max_total)));
        }
        let candidates: Vec<usize> = match worker {
            Some(w) => vec![w.min(self.per_worker.len() - 1)],
            None => {
                let mut all: Vec<usize> = (0..self.per_worker.len()).collect();
                all.sort_by_key(|&w| self.per_worker[w].load(Ordering::Relaxed));
                all
            }
        };
        for w in candidates {
            let slot = &self.per_worker[w];
            if slot.fetch_add(1, Ordering::AcqRel) < self.max_per_worker {
                ticket.worker = w;
                return Ok(ticket);
            }
            slot.fetch_sub(1, Ordering::AcqRel);
        }
        self.total.fetch_sub(1, Ordering::AcqRel);
        Err(SfuError::Capacity(format!("every media worker holds its {} sessions", self.max_per_worker)))
    }

    /// Sessions held now (in total).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let a = &self.admission;
        if let Some(net) = self.network {
            let mut nets = lock(&a.per_network);
            if let Some(n) = nets.get_mut(&net) {
                *n -= 1;
                if *n == 0 {
                    nets.remove(&net);
                }
            }
        }
        if self.worker != usize::MAX {
            a.per_worker[self.worker].fetch_sub(1, Ordering::AcqRel);
            a.total.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn networks_are_addresses_and_v6_prefixes() {
        assert_eq!(Network::of("2001:db8::1".parse().unwrap()), Network::of("2001:db8::ffff:1".parse().unwrap()));
        assert_ne!(Network::of("2001:db8:0:1::1".parse().unwrap()), Network::of("2001:db8::1".parse().unwrap()));
        assert_eq!(Network::of("::ffff:10.0.0.1".parse().unwrap()), Network::of("10.0.0.1".parse().unwrap()));
        assert_ne!(Network::of("10.0.0.1".parse().unwrap()), Network::of("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn each_cap_refuses_with_its_own_error_and_tickets_give_places_back() {
        let a = Admission::new(2, 5, 3, 2);
        let t1 = a.admit(ip("10.0.0.1"), None).unwrap();
        let t2 = a.admit(ip("10.0.0.1"), None).unwrap();
        assert_ne!(t1.worker, t2.worker, "the least loaded worker takes the next session");
        assert!(matches!(a.admit(ip("10.0.0.1"), None), Err(SfuError::TooManySessions(_))));
        assert!(a.admit(ip("2001:db8::1"), Some(0)).is_ok(), "another network still gets in");
        assert_eq!(a.held(), 2, "the refused one and the dropped ticket are not counted");
        drop(t1);
        let t3 = a.admit(ip("10.0.0.1"), None).unwrap();
        let _t4 = a.admit(None, None).unwrap();
        let _t5 = a.admit(None, None).unwrap();
        let _t6 = a.admit(None, None).unwrap();
        assert!(matches!(a.admit(None, None), Err(SfuError::Capacity(_))), "total cap");
        drop(t3);
        drop(t2);
        assert_eq!(a.held(), 3);
        assert!(a.admit(ip("10.0.0.1"), None).is_ok(), "the network's places came back with its tickets");
        let per_worker = Admission::new(1, 10, 1, 10);
        let _w = per_worker.admit(None, None).unwrap();
        assert!(matches!(per_worker.admit(None, None), Err(SfuError::Capacity(_))), "worker cap");
        assert_eq!(per_worker.held(), 1);
    }
}
