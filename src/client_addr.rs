//! Who the client is: its address, behind reverse proxies we trust, and its
//! network (what per-client caps count by).
//!
//! Without `--trusted-proxies`, the client is the TCP peer and
//! `X-Forwarded-For` is ignored (anyone can send it). With it, a request
//! whose peer is a trusted proxy is from the address that proxy names: the
//! rightmost `X-Forwarded-For` entry that is not itself a trusted proxy
//! (entries further left were written by the client and prove nothing).
//!
//! [`resolve`] runs first on every request and puts that address into
//! axum's `ConnectInfo<SocketAddr>`, so everything after it (rate limits,
//! analytics, WHIP/WHEP through `onair_signaling::Client`) sees the real
//! client without knowing about proxies. The TCP peer stays available as
//! [`Peer`].

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

/// An address range, e.g. `10.0.0.0/8` or `fd00::/8` (a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr[/prefix]`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| format!("'{s}' is not an address or CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("'{s}': the prefix must be 0-{max}"))?,
            None => max,
        };
        Ok(Cidr { net: canonical(net), prefix })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => masked(u32::from(n) as u128, u32::from(a) as u128, self.prefix, 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => masked(u128::from(n), u128::from(a), self.prefix, 128),
            _ => false,
        }
    }
}

fn masked(net: u128, addr: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (net >> shift) == (addr >> shift)
}

/// `::ffff:1.2.3.4` is `1.2.3.4`.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// From a list of ranges (`--trusted-proxies 10.0.0.0/8,::1`).
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<TrustedProxies, String> {
        list.iter().map(|s| s.as_ref()).filter(|s| !s.trim().is_empty()).map(Cidr::parse).collect::<Result<Vec<_>, _>>().map(TrustedProxies)
    }

    /// None configured: `X-Forwarded-For` is ignored.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client of a request that came from `peer` with these headers.
    pub fn client_ip(&self, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        // Every X-Forwarded-For header, in order, as one list; read from the right.
        let hops: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim).collect();
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                // Garbage: the last proxy we trust is as far as we can see.
                None => break,
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, maybe with a port or in brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    hop.parse::<SocketAddr>().ok().map(|a| canonical(a.ip()))
}

/// The TCP peer of a request (the proxy, when there is one).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Middleware: replaces `ConnectInfo<SocketAddr>` with the client's address
/// (see the module docs). The proxies come from the request's state.
pub async fn resolve(axum::extract::State(trusted): axum::extract::State<std::sync::Arc<TrustedProxies>>, mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        req.extensions_mut().insert(Peer(peer));
        if !trusted.is_empty() {
            let ip = trusted.client_ip(req.headers(), peer.ip());
            req.extensions_mut().insert(ConnectInfo(SocketAddr::new(ip, peer.port())));
        }
    }
    next.run(req).await
}

/// A client's network, what per-client caps count by: an IPv4 address, or
/// an IPv6 /64 (one subscriber line or host usually has a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Network(IpAddr);

impl Network {
    /// The network `ip` is in.
    pub fn of(ip: IpAddr) -> Network {
        match canonical(ip) {
            IpAddr::V4(v4) => Network(IpAddr::V4(v4)),
            IpAddr::V6(v6) => Network(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1)))),
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")) && !c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped IPv6 is the IPv4 address");
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(!Cidr::parse("fd00::/8").unwrap().contains(ip("10.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        assert!(Cidr::parse("10.0.0.0/33").is_err() && Cidr::parse("nope").is_err());
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.9"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        let none = TrustedProxies::default();
        assert_eq!(none.client_ip(&h, ip("10.0.0.1")), ip("10.0.0.1"), "no trusted proxies: the header is ignored");
        let lan = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(lan.client_ip(&h, ip("10.0.0.1")), ip("203.0.113.9"), "the rightmost untrusted hop; what the client wrote is ignored");
        assert_eq!(lan.client_ip(&h, ip("198.51.100.1")), ip("198.51.100.1"), "a peer that is not a proxy is the client");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("garbage, 10.0.0.7"));
        assert_eq!(lan.client_ip(&h, ip("10.0.0.1")), ip("10.0.0.7"), "garbage stops the walk at the last trusted hop");
        h.insert("x-forwarded-for", HeaderValue::from_static("[2001:db8::5]:4711"));
        assert_eq!(lan.client_ip(&h, ip("10.0.0.1")), ip("2001:db8::5"));
        assert_eq!(lan.client_ip(&HeaderMap::new(), ip("10.0.0.1")), ip("10.0.0.1"), "no header: the proxy itself");
    }

    #[test]
    fn networks() {
        assert_eq!(Network::of(ip("2001:db8:1:2:3:4:5:6")), Network::of(ip("2001:db8:1:2::9")));
        assert_ne!(Network::of(ip("2001:db8:1:2::1")), Network::of(ip("2001:db8:1:3::1")));
        assert_ne!(Network::of(ip("192.0.2.1")), Network::of(ip("192.0.2.2")));
        assert_eq!(Network::of(ip("::ffff:192.0.2.1")), Network::of(ip("192.0.2.1")));
        assert_eq!(Network::of(ip("2001:db8:1:2::1")).to_string(), "2001:db8:1:2::/64");
    }
}
