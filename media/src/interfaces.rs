//! The machine's own IPv4 addresses, announced as ICE host candidates when
//! the media socket is bound to 0.0.0.0 and no public IP is configured.

use std::net::Ipv4Addr;

/// Every up IPv4 interface address, loopback last (browsers on this machine
/// reach it; others use the non-loopback ones).
pub fn local_ipv4() -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    // SAFETY: getifaddrs fills a linked list that we only read and then free
    // with freeifaddrs; every pointer is checked for null before use.
    unsafe {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            let up = ifa.ifa_flags & (libc::IFF_UP as u32) != 0;
            if up && !ifa.ifa_addr.is_null() && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out.sort_by_key(|ip| ip.is_loopback());
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_loopback() {
        assert!(super::local_ipv4().contains(&std::net::Ipv4Addr::LOCALHOST));
    }
}
