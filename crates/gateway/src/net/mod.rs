//! IP address facts: canonical forms, loopback, CIDR membership, and the
//! client address behind trusted proxies.

mod forwarded;
mod ipnet;
pub mod peer_uid;

pub use forwarded::{client_ip_through_proxies, ForwardedError};
pub use ipnet::IpNet;

use std::net::IpAddr;

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes the IPv4 address; nothing else
/// changes. Never uses `to_ipv4()`, which would also map `::7f00:1`.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Loopback is exactly 127/8, ::1, and ::ffff:127.0.0.0/104.
pub fn is_loopback(ip: IpAddr) -> bool {
    canonical(ip).is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_forms() {
        for s in ["127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(s.parse().unwrap()), "{s}");
        }
        for s in ["0.0.0.0", "::", "::7f00:1", "64:ff9b::7f00:1", "10.0.0.1", "::ffff:10.0.0.1"] {
            assert!(!is_loopback(s.parse().unwrap()), "{s}");
        }
    }
}
