//! What the gateway knows about an admitted session: who it is, what it
//! was granted and by which rule, and what a node declared. Shared by the
//! registry, presence, methods and the re-checks.

use std::net::IpAddr;

use clawgate_protocol::ClientInfo;

use crate::admission::decision::Role;
use crate::admission::RuleId;

/// What the gateway knows about an admitted session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub conn_id: String,
    pub role: Role,
    pub scopes: Vec<String>,
    pub client: ClientInfo,
    pub client_ip: IpAddr,
    pub rule: RuleId,
    pub connected_at_ms: u64,
    /// The proven device behind this session, if any.
    pub device_id: Option<String>,
    /// Set when the session authenticated with a device token: that token's
    /// issue time, so a rotation or revocation can find the sessions using it.
    pub token_issued_at_ms: Option<u64>,
    /// For role node: the node's id and declared surface.
    pub node: Option<NodeInfo>,
    /// Set when the session authenticated with a service token: which
    /// principal, and the issue time of the secret it presented, so a
    /// revocation or rotation (by any process) closes it.
    pub service: Option<ServiceSession>,
}

/// The service principal behind a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSession {
    pub principal_id: String,
    pub name: String,
    pub issued_at_ms: u64,
}

/// What a node session declared on connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The device id for a proven device; `local:<clientId>:<instance>` for a
    /// device-less local node. Never a 64-hex id without a proven key.
    pub node_id: String,
    pub deviceless: bool,
    pub caps: Vec<String>,
    pub commands: Vec<String>,
    pub permissions: std::collections::BTreeMap<String, bool>,
}
