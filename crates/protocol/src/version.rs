//! Protocol version negotiation.

pub const PROTOCOL_VERSION: u32 = 4;
pub const MIN_CLIENT_PROTOCOL_VERSION: u32 = 4;
pub const MIN_NODE_PROTOCOL_VERSION: u32 = 3;
pub const MIN_PROBE_PROTOCOL_VERSION: u32 = 3;

/// How a connection's protocol range was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiated {
    /// The range includes the current version.
    Current,
    /// A probe (mode `probe`) speaking v3.
    Probe,
    /// A node-role node-mode client that only speaks v3.
    LegacyNode,
}

/// The client's range does not include any version this server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionMismatch {
    pub client_min: u64,
    pub client_max: u64,
}

/// Accept iff the range includes 4, or 3 for probes and node-role node-mode clients.
/// `role` is the raw requested role (absent means operator).
pub fn negotiate(min: u64, max: u64, role: &str, mode: &str) -> Result<Negotiated, VersionMismatch> {
    let current = u64::from(PROTOCOL_VERSION);
    if max >= current && min <= current {
        return Ok(Negotiated::Current);
    }
    if mode == "probe" && max >= u64::from(MIN_PROBE_PROTOCOL_VERSION) && min <= current {
        return Ok(Negotiated::Probe);
    }
    let node_min = u64::from(MIN_NODE_PROTOCOL_VERSION);
    if role == "node" && mode == "node" && max >= node_min && min <= node_min {
        return Ok(Negotiated::LegacyNode);
    }
    Err(VersionMismatch { client_min: min, client_max: max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_range_is_accepted() {
        assert_eq!(negotiate(4, 4, "operator", "cli"), Ok(Negotiated::Current));
        assert_eq!(negotiate(3, 5, "operator", "cli"), Ok(Negotiated::Current));
    }

    #[test]
    fn v3_only_for_probes_and_nodes() {
        assert!(negotiate(3, 3, "operator", "cli").is_err());
        assert_eq!(negotiate(3, 3, "operator", "probe"), Ok(Negotiated::Probe));
        assert_eq!(negotiate(3, 3, "node", "node"), Ok(Negotiated::LegacyNode));
        assert!(negotiate(3, 3, "node", "cli").is_err());
        assert!(negotiate(3, 3, "operator", "node").is_err());
        assert!(negotiate(5, 6, "operator", "cli").is_err());
        assert!(negotiate(1, 2, "operator", "probe").is_err());
    }
}
