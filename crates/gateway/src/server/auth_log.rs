//! The recent admission decisions, kept in memory for `clawgate auth log`:
//! a bounded ring (the oldest entry goes when it is full), filled by the
//! handshake's one record of each decision and read by the
//! `clawgate.auth.log` method. Entries carry what an operator needs to see
//! why a client keeps failing; never a secret (no token, password,
//! signature or nonce). Client strings are kept as sent: whoever prints
//! them escapes them.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Serialize;

use crate::admission::{ConnectFacts, Decision};

/// How many decisions the ring keeps.
pub const CAPACITY: usize = 1000;

/// One admission decision as the log shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthLogEntry {
    /// Increases by one per decision since the gateway started: a follower
    /// asks for the entries after the last one it saw.
    pub seq: u64,
    pub ts_ms: u64,
    pub conn_id: String,
    pub client_ip: String,
    /// A direct loopback connection (no proxy in between).
    pub local: bool,
    pub client_id: String,
    pub client_mode: String,
    /// The role asked for (or granted, when admitted).
    pub role: String,
    /// The proven device, if there was one.
    pub device_id: Option<String>,
    /// The user a trusted proxy vouched for.
    pub proxy_user: Option<String>,
    pub rule: String,
    /// `admit`, `refuse` or `pairing-required`.
    pub outcome: String,
    /// The refusal's `details.code`; `PAIRING_REQUIRED` when a device must be approved.
    pub code: Option<String>,
    /// The refusal's (or pairing's) short machine-readable reason.
    pub reason: Option<String>,
    /// The credential that verified, when admitted.
    pub credential: Option<String>,
}

impl AuthLogEntry {
    pub fn new(conn_id: &str, client_ip: IpAddr, facts: &ConnectFacts, decision: &Decision, ts_ms: u64) -> Self {
        let p = &facts.params;
        let (role, code, reason, credential, device_id) = match decision {
            Decision::Admit(a) => (
                a.role.as_str().to_owned(),
                None,
                None,
                Some(a.credential.kind_name().to_owned()),
                a.device.as_ref().map(|d| d.device.device_id.clone()),
            ),
            Decision::PairingRequired(n) => (
                n.role.as_str().to_owned(),
                Some("PAIRING_REQUIRED".to_owned()),
                Some(n.reason.as_str().to_owned()),
                None,
                Some(n.device.device_id.clone()),
            ),
            Decision::Refuse(r) => (
                p.role().to_owned(),
                Some(r.kind.details_code().to_owned()),
                Some(r.kind.reason().to_owned()),
                None,
                facts.device.proven().map(|d| d.device_id.clone()),
            ),
        };
        AuthLogEntry {
            seq: 0,
            ts_ms,
            conn_id: conn_id.to_owned(),
            client_ip: client_ip.to_string(),
            local: facts.locality.is_direct_local(),
            client_id: p.client.id.clone(),
            client_mode: p.client.mode.clone(),
            role,
            device_id,
            proxy_user: facts.proxy_user.clone(),
            rule: decision.rule().as_str().to_owned(),
            outcome: decision.outcome_name().to_owned(),
            code,
            reason,
            credential,
        }
    }
}

#[derive(Default)]
pub struct AuthLog {
    inner: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    entries: VecDeque<AuthLogEntry>,
    last_seq: u64,
}

impl AuthLog {
    pub fn push(&self, mut entry: AuthLogEntry) {
        let mut ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ring.last_seq += 1;
        entry.seq = ring.last_seq;
        if ring.entries.len() == CAPACITY {
            ring.entries.pop_front();
        }
        ring.entries.push_back(entry);
    }

    /// The newest `limit` entries with a sequence number above `after`,
    /// oldest first, and the last sequence number given out so far.
    pub fn read(&self, after: u64, limit: usize) -> (Vec<AuthLogEntry>, u64) {
        let ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let newer: Vec<&AuthLogEntry> = ring.entries.iter().filter(|e| e.seq > after).collect();
        let skip = newer.len().saturating_sub(limit);
        (newer.into_iter().skip(skip).cloned().collect(), ring.last_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(client_id: &str) -> AuthLogEntry {
        AuthLogEntry {
            seq: 0,
            ts_ms: 1,
            conn_id: "c".into(),
            client_ip: "127.0.0.1".into(),
            local: true,
            client_id: client_id.into(),
            client_mode: "cli".into(),
            role: "operator".into(),
            device_id: None,
            proxy_user: None,
            rule: "shared-secret".into(),
            outcome: "admit".into(),
            code: None,
            reason: None,
            credential: Some("shared-token".into()),
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_entries_and_numbers_them() {
        let log = AuthLog::default();
        for i in 0..CAPACITY + 5 {
            log.push(entry(&format!("c{i}")));
        }
        let (all, last) = log.read(0, usize::MAX);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(last, (CAPACITY + 5) as u64);
        assert_eq!(all[0].seq, 6);
        assert_eq!(all.last().map(|e| e.client_id.as_str()), Some(format!("c{}", CAPACITY + 4).as_str()));
        let (tail, _) = log.read(0, 2);
        assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![last - 1, last]);
        let (after, _) = log.read(last - 1, 100);
        assert_eq!(after.len(), 1);
        assert!(log.read(last, 100).0.is_empty());
    }
}
