//! The client address behind trusted proxies, from `X-Forwarded-For`.
//!
//! All header lines are joined (a proxy that appends a new line must not leave
//! an attacker's first line in charge), hops are walked right to left, trusted
//! hops skipped; the first untrusted hop is the client. A hop that does not
//! parse as a canonical IP makes the request unattributable: it is never skipped.

use std::net::{IpAddr, SocketAddr};

use super::{canonical, IpNet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardedError {
    /// No X-Forwarded-For from a trusted proxy.
    Missing,
    /// A hop is not an IP address (`unknown`, obfuscated, a hostname, `127.1`).
    UnparsableHop(String),
    /// Every hop is a trusted proxy: nobody to attribute the request to.
    OnlyTrustedHops,
}

/// Parse one hop: an IP, optionally with a port, IPv6 optionally in brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = hop.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    let inner = hop.strip_prefix('[').and_then(|h| h.strip_suffix(']'))?;
    inner.parse::<IpAddr>().ok().map(canonical)
}

/// The client address for a request whose socket peer is a trusted proxy.
pub fn client_ip_through_proxies<S: AsRef<str>>(xff_lines: &[S], trusted: &[IpNet]) -> Result<IpAddr, ForwardedError> {
    let hops: Vec<&str> = xff_lines.iter().flat_map(|l| l.as_ref().split(',')).map(str::trim).collect();
    if hops.iter().all(|h| h.is_empty()) {
        return Err(ForwardedError::Missing);
    }
    for hop in hops.iter().rev() {
        let ip = parse_hop(hop).ok_or_else(|| ForwardedError::UnparsableHop((*hop).to_owned()))?;
        if !trusted.iter().any(|net| net.contains(ip)) {
            return Ok(ip);
        }
    }
    Err(ForwardedError::OnlyTrustedHops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn walks_right_to_left_skipping_trusted_hops() {
        let t = nets(&["10.0.0.0/8"]);
        let ip = client_ip_through_proxies(&["1.1.1.1, 203.0.113.5, 10.0.0.3"], &t).unwrap();
        assert_eq!(ip, "203.0.113.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn all_lines_count_and_equal_comma_joined() {
        let t = nets(&["10.0.0.0/8"]);
        let split = client_ip_through_proxies(&["6.6.6.6", "203.0.113.5"], &t).unwrap();
        let joined = client_ip_through_proxies(&["6.6.6.6, 203.0.113.5"], &t).unwrap();
        assert_eq!(split, joined);
        assert_eq!(split, "203.0.113.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn unparsable_hops_are_never_skipped() {
        let t = nets(&["10.0.0.0/8"]);
        for bad in ["unknown", "_obf", "127.1", "2130706433", "host.example", "0x7f.0.0.1"] {
            let line = format!("203.0.113.5, {bad}");
            assert_eq!(
                client_ip_through_proxies(&[line.as_str()], &t),
                Err(ForwardedError::UnparsableHop(bad.to_owned()))
            );
        }
        assert_eq!(client_ip_through_proxies::<&str>(&[], &t), Err(ForwardedError::Missing));
        assert_eq!(client_ip_through_proxies(&["10.0.0.1"], &t), Err(ForwardedError::OnlyTrustedHops));
    }

    #[test]
    fn ports_and_brackets() {
        let t = nets(&[]);
        assert_eq!(
            client_ip_through_proxies(&["203.0.113.5:443"], &t).unwrap(),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip_through_proxies(&["[2001:db8::1]:443"], &t).unwrap(),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip_through_proxies(&["[2001:db8::1]"], &t).unwrap(),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }
}
