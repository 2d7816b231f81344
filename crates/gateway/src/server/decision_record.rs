//! What the gateway keeps of each admission decision besides its log line:
//! the metrics and the in-memory decision log. Called once, where the
//! handshake applies the decision, so neither can miss one or count twice.

use std::net::IpAddr;
use std::time::Instant;

use crate::admission::{ConnectFacts, Decision};

use super::auth_log::AuthLogEntry;
use super::{now_ms, Gateway};

pub fn record(
    gw: &Gateway,
    conn_id: &str,
    client_ip: IpAddr,
    facts: &ConnectFacts,
    decision: &Decision,
    opened: Instant,
) {
    gw.metrics.decision(decision, opened.elapsed());
    gw.auth_log.push(AuthLogEntry::new(conn_id, client_ip, facts, decision, now_ms()));
}
