//! A network namespace joined to this one by a veth pair: where the harness
//! runs Janus (libnice will not use loopback-only addresses) and where it
//! puts a viewer behind a constrained link (a `tc` qdisc on the veth).
//!
//! Needs root and `ip`/`tc` (iproute2). Everything is removed on drop.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

pub struct Netns {
    name: String,
    host_veth: String,
    host_ip: Ipv4Addr,
    ns_ip: Ipv4Addr,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e} (is iproute2 installed?)", args[0]))?;
    if !out.status.success() {
        return Err(format!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

impl Netns {
    /// Creates namespace `name` with a veth pair: `host_ip/prefix` on this
    /// side, `ns_ip/prefix` inside. A leftover namespace of that name (from a
    /// run that was killed) is removed first.
    pub fn create(name: &str, host_ip: Ipv4Addr, ns_ip: Ipv4Addr, prefix: u8) -> Result<Netns, String> {
        // Interface names are at most 15 bytes.
        let tag: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).rev().take(8).collect::<String>().chars().rev().collect();
        let (host_veth, ns_veth) = (format!("vh{tag}"), format!("vn{tag}"));
        let _ = run(&["ip", "netns", "del", name]);
        let _ = run(&["ip", "link", "del", &host_veth]);
        let ns = Netns { name: name.to_owned(), host_veth: host_veth.clone(), host_ip, ns_ip };
        run(&["ip", "netns", "add", name])?;
        run(&["ip", "link", "add", &host_veth, "type", "veth", "peer", "name", &ns_veth])?;
        run(&["ip", "link", "set", &ns_veth, "netns", name])?;
        run(&["ip", "addr", "add", &format!("{host_ip}/{prefix}"), "dev", &host_veth])?;
        run(&["ip", "link", "set", &host_veth, "up"])?;
        run(&["ip", "-n", name, "addr", "add", &format!("{ns_ip}/{prefix}"), "dev", &ns_veth])?;
        run(&["ip", "-n", name, "link", "set", &ns_veth, "up"])?;
        run(&["ip", "-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    pub fn ns_ip(&self) -> Ipv4Addr {
        self.ns_ip
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Shapes traffic into the namespace: `qdisc` is a root qdisc for the
    /// host side of the veth, e.g. `tbf rate 300kbit burst 16kb latency 100ms`
    /// or `netem rate 300kbit delay 20ms` where the kernel has netem.
    pub fn shape(&self, qdisc: &str) -> Result<(), String> {
        let mut args = vec!["tc", "qdisc", "replace", "dev", &self.host_veth, "root"];
        args.extend(qdisc.split_whitespace());
        run(&args)
    }

    pub fn unshape(&self) -> Result<(), String> {
        run(&["tc", "qdisc", "del", "dev", &self.host_veth, "root"])
    }

    /// A UDP socket bound inside the namespace. A socket belongs to the
    /// namespace it was made in, so a short-lived thread enters the namespace,
    /// binds, and hands the socket back; the harness then uses it as any other.
    pub fn bind_udp(&self, addr: SocketAddr) -> Result<std::net::UdpSocket, String> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
            // SAFETY: setns on a namespace fd we own; it only changes this thread's network namespace.
            if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
            }
            std::net::UdpSocket::bind(addr).map_err(|e| format!("bind {addr} in {path}: {e}"))
        })
        .join()
        .map_err(|_| "the namespace thread panicked".to_string())?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
        let _ = run(&["ip", "link", "del", &self.host_veth]);
    }
}
