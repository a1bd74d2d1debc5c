//! Which peer a datagram is for.
//!
//! All peers of a worker share its socket. A datagram from a known remote
//! address goes to that address's peer. A new address is routed only by a
//! STUN binding request that names a session's ufrag *and* carries a
//! MESSAGE-INTEGRITY made with that session's ICE password: the ufrag
//! travels in the clear, so anyone on the path could otherwise claim a
//! session's address book. A check's transaction id opens an address once
//! (a replayed check from another address is refused), and when a peer has
//! as many addresses as it may keep, the one silent the longest goes, never
//! the one carrying its media.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use crate::metrics::Metrics;
use crate::registry::Shared;
use crate::session::SessionId;
use crate::stun;

/// A peer may use several addresses at once: browsers keep checking backup
/// candidate pairs (Chrome every 25 s) while media flows on the selected one.
pub(super) const MAX_REMOTES: usize = 8;
/// Transaction ids remembered per peer against replays.
const SEEN_CHECKS: usize = 16;

/// Where datagrams from one remote address go.
#[derive(Debug, Clone, Copy)]
pub(super) struct Route {
    pub peer: SessionId,
    /// The announced candidate this address reaches us at (what ICE matches on).
    pub local: SocketAddr,
    last_seen: Instant,
}

/// A session's ICE credentials as routing needs them.
struct Credential {
    peer: SessionId,
    pwd: Vec<u8>,
    remotes: Vec<SocketAddr>,
    /// Transaction ids of the checks that opened an address, newest last.
    checks: Vec<[u8; 12]>,
}

/// The worker's routing table.
#[derive(Default)]
pub(super) struct Routes {
    by_addr: HashMap<SocketAddr, Route>,
    by_ufrag: HashMap<String, Credential>,
}

impl Routes {
    /// A new session can be reached by checks naming `ufrag`.
    pub fn add_peer(&mut self, ufrag: &str, pwd: &str, peer: SessionId) {
        self.by_ufrag.insert(ufrag.to_owned(), Credential { peer, pwd: pwd.as_bytes().to_vec(), remotes: Vec::new(), checks: Vec::new() });
    }

    /// Forgets a session and every address routed to it.
    pub fn remove_peer(&mut self, ufrag: &str) {
        if let Some(c) = self.by_ufrag.remove(ufrag) {
            for addr in c.remotes {
                self.by_addr.remove(&addr);
            }
        }
    }

    /// The route for a datagram from `from`, opening one when the datagram
    /// is a check that proves a session's password; `None`: nobody's.
    pub fn route(&mut self, data: &[u8], from: SocketAddr, now: Instant, announce: &[SocketAddr], bound: SocketAddr, metrics: &Metrics) -> Option<Route> {
        if let Some(route) = self.by_addr.get_mut(&from) {
            route.last_seen = now;
            let route = *route;
            // A client that reconnects from the same address and port with a
            // new session: its first check names the new session's ufrag.
            if stun::is_stun(data) {
                if let Some(moved) = self.reroute(data, from, route, metrics) {
                    return Some(moved);
                }
            }
            return Some(route);
        }
        let Some(check) = stun::binding_check(data) else {
            Metrics::add(&metrics.unknown_datagrams, 1);
            return None;
        };
        let Some(cred) = self.by_ufrag.get_mut(check.ufrag) else {
            Metrics::add(&metrics.unknown_datagrams, 1);
            return None;
        };
        if cred.checks.contains(&check.transaction) || !stun::verify(data, &cred.pwd) {
            Metrics::add(&metrics.stun_checks_refused, 1);
            return None;
        }
        remember(&mut cred.checks, check.transaction);
        if cred.remotes.len() >= MAX_REMOTES {
            // The address silent the longest goes (the one carrying media is
            // never it), so a flood of proven checks cannot push it out.
            let by_addr = &self.by_addr;
            let stalest = cred.remotes.iter().enumerate().min_by_key(|(_, a)| by_addr.get(*a).map(|r| r.last_seen)).map(|(i, _)| i);
            if let Some(i) = stalest {
                let gone = cred.remotes.swap_remove(i);
                self.by_addr.remove(&gone);
            }
        }
        cred.remotes.push(from);
        let route = Route { peer: cred.peer, local: candidate_for(announce, bound, from), last_seen: now };
        self.by_addr.insert(from, route);
        Some(route)
    }

    /// Moves a known address to the session a proven check from it names,
    /// when that is another session than the address's.
    fn reroute(&mut self, data: &[u8], from: SocketAddr, route: Route, metrics: &Metrics) -> Option<Route> {
        let check = stun::binding_check(data)?;
        let cred = self.by_ufrag.get_mut(check.ufrag)?;
        if cred.peer == route.peer {
            return None;
        }
        if cred.checks.contains(&check.transaction) || !stun::verify(data, &cred.pwd) {
            Metrics::add(&metrics.stun_checks_refused, 1);
            return None;
        }
        remember(&mut cred.checks, check.transaction);
        cred.remotes.push(from);
        let new_peer = cred.peer;
        if let Some(old) = self.by_ufrag.values_mut().find(|c| c.peer == route.peer) {
            old.remotes.retain(|a| *a != from);
        }
        let moved = Route { peer: new_peer, ..route };
        self.by_addr.insert(from, moved);
        Some(moved)
    }

    /// Addresses routed to anyone (for tests).
    #[cfg(test)]
    pub fn addresses(&self) -> usize {
        self.by_addr.len()
    }
}

fn remember(checks: &mut Vec<[u8; 12]>, transaction: [u8; 12]) {
    if checks.len() >= SEEN_CHECKS {
        checks.remove(0);
    }
    checks.push(transaction);
}

/// The addresses put in our ICE candidates for a worker's socket.
pub(super) fn announce_addrs(shared: &Shared, local: SocketAddr) -> Vec<SocketAddr> {
    let port = local.port();
    if !shared.config.announce_ips.is_empty() {
        return shared.config.announce_ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
    }
    if !local.ip().is_unspecified() {
        return vec![local];
    }
    let mut ips = crate::interfaces::local_ipv4();
    if ips.is_empty() {
        ips.push(std::net::Ipv4Addr::LOCALHOST);
    }
    ips.into_iter().map(|ip| SocketAddr::new(ip.into(), port)).collect()
}

/// Which of our announced candidates a datagram from `from` arrived at.
///
/// A socket bound to 0.0.0.0 does not say which address a datagram was sent
/// to, but ICE only accepts checks on a known local candidate. Loopback
/// clients reach the loopback candidate; everyone else reaches the first
/// other one (a LAN address, or the public IP of a 1:1 NAT). Hosts with
/// several non-loopback addresses should set ONAIR_PUBLIC_IP or bind one.
fn candidate_for(announce: &[SocketAddr], bound: SocketAddr, from: SocketAddr) -> SocketAddr {
    if !bound.ip().is_unspecified() && announce.contains(&bound) {
        return bound;
    }
    let same_family = |a: &&SocketAddr| a.is_ipv4() == from.is_ipv4();
    let loopback = from.ip().is_loopback();
    announce
        .iter()
        .filter(same_family)
        .find(|a| a.ip().is_loopback() == loopback)
        .or_else(|| announce.iter().find(same_family))
        .copied()
        .unwrap_or(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn picks_the_candidate_a_client_reaches() {
        let announce = [a("192.168.1.20:8189"), a("127.0.0.1:8189")];
        let any = a("0.0.0.0:8189");
        assert_eq!(candidate_for(&announce, any, a("127.0.0.1:5000")), a("127.0.0.1:8189"));
        assert_eq!(candidate_for(&announce, any, a("192.168.1.7:5000")), a("192.168.1.20:8189"));
        // 1:1 NAT: only the public IP is announced; everyone reaches it.
        let nat = [a("203.0.113.7:8189")];
        assert_eq!(candidate_for(&nat, any, a("198.51.100.2:5000")), a("203.0.113.7:8189"));
        assert_eq!(candidate_for(&nat, any, a("127.0.0.1:5000")), a("203.0.113.7:8189"));
        // Bound to one address: that is the candidate.
        assert_eq!(candidate_for(&[a("127.0.0.1:9")], a("127.0.0.1:9"), a("127.0.0.1:5000")), a("127.0.0.1:9"));
    }

    const PWD: &str = "passwordpasswordpassword";

    fn check(ufrag: &str, pwd: Option<&str>, tx: u8) -> Vec<u8> {
        stun::binding_request(&format!("{ufrag}:client"), pwd.map(str::as_bytes), [tx; 12])
    }

    fn table() -> (Routes, SessionId, Metrics, Instant) {
        let mut r = Routes::default();
        let id = SessionId::random();
        r.add_peer("ufragA", PWD, id);
        (r, id, Metrics::default(), Instant::now())
    }

    const LOCAL: &str = "127.0.0.1:9";

    #[test]
    fn only_a_check_that_proves_the_password_opens_an_address() {
        let (mut r, id, m, now) = table();
        let local = a(LOCAL);
        assert!(r.route(&check("ufragA", None, 1), a("10.0.0.5:4000"), now, &[local], local, &m).is_none(), "no integrity");
        assert!(r.route(&check("ufragA", Some("wrongwrongwrongwrongwrong"), 2), a("10.0.0.5:4000"), now, &[local], local, &m).is_none(), "wrong password");
        assert_eq!(m.stun_checks_refused.load(Relaxed), 2);
        assert_eq!(r.addresses(), 0);
        let good = check("ufragA", Some(PWD), 3);
        assert_eq!(r.route(&good, a("10.0.0.5:4000"), now, &[local], local, &m).map(|x| x.peer), Some(id));
        assert_eq!(r.route(&[0x80, 0x60, 0, 1], a("10.0.0.5:4000"), now, &[local], local, &m).map(|x| x.peer), Some(id), "then media by address");
        assert!(r.route(&good, a("10.9.9.9:4000"), now, &[local], local, &m).is_none(), "the same check replayed from elsewhere");
        assert!(r.route(&[0x80, 0x60, 0, 1], a("10.0.0.6:4000"), now, &[local], local, &m).is_none(), "never proven");
        assert_eq!(m.unknown_datagrams.load(Relaxed), 1);
    }

    #[test]
    fn a_flood_of_proven_checks_never_pushes_out_the_address_carrying_media() {
        let (mut r, id, m, t0) = table();
        let local = a(LOCAL);
        let media_addr = a("10.0.0.1:5000");
        r.route(&check("ufragA", Some(PWD), 0), media_addr, t0, &[local], local, &m).unwrap();
        for i in 1..50u8 {
            let now = t0 + Duration::from_millis(u64::from(i) * 10);
            // Media keeps flowing on the selected pair...
            assert_eq!(r.route(&[0x80, 0x60, 0, i], media_addr, now, &[local], local, &m).map(|x| x.peer), Some(id), "round {i}");
            // ...while checks from ever new addresses arrive.
            r.route(&check("ufragA", Some(PWD), i), a(&format!("10.1.0.{i}:6000")), now, &[local], local, &m);
        }
        assert_eq!(r.addresses(), MAX_REMOTES);
        assert!(r.route(&[0x80], media_addr, t0 + Duration::from_secs(1), &[local], local, &m).is_some());
    }

    #[test]
    fn a_client_back_from_the_same_address_with_a_new_session_reaches_it() {
        let (mut r, old, m, now) = table();
        let local = a(LOCAL);
        let addr = a("10.0.0.1:5000");
        r.route(&check("ufragA", Some(PWD), 1), addr, now, &[local], local, &m).unwrap();
        let new = SessionId::random();
        r.add_peer("ufragB", "anotherpasswordanotherpw", new);
        assert_eq!(r.route(&check("ufragB", Some(PWD), 2), addr, now, &[local], local, &m).map(|x| x.peer), Some(old), "not proven: stays");
        assert_eq!(r.route(&check("ufragB", Some("anotherpasswordanotherpw"), 3), addr, now, &[local], local, &m).map(|x| x.peer), Some(new));
        assert_eq!(r.route(&[0x80], addr, now, &[local], local, &m).map(|x| x.peer), Some(new));
        r.remove_peer("ufragA");
        assert_eq!(r.route(&[0x80], addr, now, &[local], local, &m).map(|x| x.peer), Some(new), "the old session's end leaves the moved address alone");
        r.remove_peer("ufragB");
        assert_eq!(r.addresses(), 0);
    }
}
