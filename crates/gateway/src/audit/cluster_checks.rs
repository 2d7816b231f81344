//! Checks of `gateway.cluster`: whether the bus to the other instances
//! crosses a network in the clear.

use std::net::IpAddr;

use super::{Finding, Severity};
use crate::config::Config;

pub(super) fn check(c: &Config, out: &mut Vec<Finding>) {
    let Some(cluster) = &c.cluster else { return };
    // async-nats takes a comma-separated list of servers.
    let clear: Vec<&str> = cluster
        .nats
        .expose()
        .split(',')
        .map(str::trim)
        .filter(|server| server.starts_with("nats://") && !is_loopback_host(server))
        .collect();
    if clear.is_empty() {
        return;
    }
    let with_password = clear.iter().any(|s| s.split_once("://").is_some_and(|(_, rest)| rest.contains('@')));
    let mut message = format!(
        "the cluster bus ({}) goes to another host without TLS: anyone on the path can read the instances' \
         messages and forge them (lockouts, store changes, node.invoke)",
        cluster.nats.redacted()
    );
    if with_password {
        message.push_str(", and the NATS user and password in the URL cross in the clear");
    }
    out.push(Finding::new(
        "cluster.nats_plaintext",
        Severity::Warn,
        "gateway.cluster.nats",
        message,
        "use a tls:// URL to a NATS server with TLS, or keep NATS on loopback",
    ));
}

/// Is the server of a `scheme://[user[:pass]@]host[:port]` URL this host?
fn is_loopback_host(server: &str) -> bool {
    let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(crate::net::is_loopback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for s in ["nats://127.0.0.1:4222", "nats://localhost", "nats://u:p@[::1]:4222", "nats://127.0.0.2"] {
            assert!(is_loopback_host(s), "{s}");
        }
        for s in ["nats://10.0.0.5:4222", "nats://nats.internal", "nats://u:p@[2001:db8::1]:4222", "nats://"] {
            assert!(!is_loopback_host(s), "{s}");
        }
    }
}
