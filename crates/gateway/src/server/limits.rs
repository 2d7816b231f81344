//! Abuse limits (docs/threat-model.md, H11 and "Lockouts sidestepped"):
//! failed-auth lockouts per client address and the credential actually
//! checked, a global failure budget, and a cap on unauthenticated sockets
//! per address.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use clawgate_protocol::ConnectParams;

use crate::admission::{Decision, EdgeFacts, Locality, Refusal, RefusalKind};

use super::Gateway;

/// Failed attempts allowed within the window before the key is locked.
pub const MAX_ATTEMPTS: usize = 10;
pub const WINDOW_MS: u64 = 60_000;
pub const LOCKOUT_MS: u64 = 300_000;
/// Keys tracked at most; locked keys are never evicted to make room.
const MAX_KEYS: usize = 10_000;
/// Unauthenticated sockets allowed per client address.
pub const MAX_PREAUTH_PER_IP: usize = 32;
/// Failed attempts from everyone together within the window before every
/// further failure is slowed and answered one at a time.
pub const GLOBAL_MAX_FAILURES: usize = 100;
/// How long each failure waits, in turn, once the global budget is spent.
pub const GLOBAL_SLOW_MS: u64 = 1_000;

#[derive(Default)]
struct Entry {
    failures: VecDeque<u64>,
    locked_until: Option<u64>,
}

/// A sliding-window failure counter with lockout.
#[derive(Default)]
pub struct AuthLimiter {
    keys: Mutex<HashMap<String, Entry>>,
}

impl AuthLimiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Milliseconds until `key` may try again, if it is locked out.
    pub fn locked(&self, key: &str, now: u64) -> Option<u64> {
        let map = self.lock();
        let until = map.get(key)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Record a failed attempt; returns the failures now inside the window.
    /// With `may_lock`, the MAX_ATTEMPTS-th failure locks the key.
    pub fn record_failure(&self, key: &str, now: u64, may_lock: bool) -> usize {
        let mut map = self.lock();
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            // Make room by dropping keys that are not locked; a flood of new
            // keys must never free a locked one.
            map.retain(|_, e| e.locked_until.is_some_and(|u| u > now));
        }
        let entry = map.entry(key.to_owned()).or_default();
        while entry.failures.front().is_some_and(|t| now.saturating_sub(*t) > WINDOW_MS) {
            entry.failures.pop_front();
        }
        entry.failures.push_back(now);
        let n = entry.failures.len();
        if may_lock && n >= MAX_ATTEMPTS {
            entry.locked_until = Some(now + LOCKOUT_MS);
            entry.failures.clear();
        }
        n
    }

    /// How many keys are locked out now (`gateway status` shows it).
    pub fn locked_count(&self, now: u64) -> usize {
        self.lock().values().filter(|e| e.locked_until.is_some_and(|u| u > now)).count()
    }

    /// A success clears the key.
    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// The delay before answering the n-th failure of an exempt (local) caller:
/// never locked out, but slowed: 250 ms · 2^(n−1), at most 5 s.
pub fn exempt_delay_ms(failures: usize) -> u64 {
    let exp = failures.saturating_sub(1).min(8) as u32;
    (250u64 << exp).min(5_000)
}

/// The limiter key part for an address: IPv6 by /64 (one host owns a /64),
/// and all of loopback as one (any local process may use any 127.x).
pub fn address_key(ip: IpAddr) -> String {
    if crate::net::is_loopback(ip) {
        return "loopback".to_owned();
    }
    match crate::net::canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Whose cap an upgraded unauthenticated socket counts in: the owner's
/// own local clients (direct-local after the uid check, from 127.0.0.1 or
/// ::1, as at accept: server/conn_budget.rs), or the client's address
/// (IPv6 by /64; behind a trusted proxy, the forwarded one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PreauthKey {
    Owner,
    Address(IpAddr),
}

impl PreauthKey {
    pub fn of(locality: &Locality, edge: &EdgeFacts) -> PreauthKey {
        match locality {
            Locality::DirectLocal if super::conn_budget::is_owner_address(edge.peer.ip()) => PreauthKey::Owner,
            _ => {
                let ip = crate::admission::ingress::client_ip(locality, edge);
                PreauthKey::Address(super::conn_budget::budget_key(ip))
            }
        }
    }
}

/// Counts upgraded unauthenticated sockets per client.
#[derive(Default)]
pub struct PreauthCounter {
    by_ip: Mutex<HashMap<PreauthKey, usize>>,
}

pub struct PreauthSlot {
    counter: Arc<PreauthCounter>,
    ip: PreauthKey,
}

impl Drop for PreauthSlot {
    fn drop(&mut self) {
        let mut map = self.counter.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl PreauthCounter {
    /// A slot for one more handshaking socket from `ip`, or `None` at the cap.
    pub fn acquire(self: &Arc<Self>, ip: PreauthKey) -> Option<PreauthSlot> {
        let mut map = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= MAX_PREAUTH_PER_IP {
            return None;
        }
        *n += 1;
        Some(PreauthSlot { counter: self.clone(), ip })
    }
}

/// Failures from everyone: once more than [`GLOBAL_MAX_FAILURES`] fell
/// within the window, each further failure waits [`GLOBAL_SLOW_MS`] in turn
/// before it is answered, so spreading guesses over many addresses buys
/// nothing. Correct secrets never wait here.
#[derive(Default)]
pub struct GlobalFailures {
    /// The newest failure times, at most `GLOBAL_MAX_FAILURES + 1`.
    recent: Mutex<VecDeque<u64>>,
    turn: tokio::sync::Mutex<()>,
}

impl GlobalFailures {
    /// Count one failure; true when the budget is spent.
    fn record(&self, now: u64) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        while recent.front().is_some_and(|t| now.saturating_sub(*t) > WINDOW_MS) {
            recent.pop_front();
        }
        recent.push_back(now);
        while recent.len() > GLOBAL_MAX_FAILURES + 1 {
            recent.pop_front();
        }
        recent.len() > GLOBAL_MAX_FAILURES
    }

    /// Whether the budget is spent now (for `status`).
    pub fn exceeded(&self, now: u64) -> bool {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().filter(|t| now.saturating_sub(**t) <= WINDOW_MS).count() > GLOBAL_MAX_FAILURES
    }

    /// Wait in line, then [`GLOBAL_SLOW_MS`].
    async fn slow_down(&self) {
        let _turn = self.turn.lock().await;
        tokio::time::sleep(std::time::Duration::from_millis(GLOBAL_SLOW_MS)).await;
    }
}

/// Which bucket a connection's failures count in, and whether it is exempt
/// from lockout.
///
/// The bucket is the credential the gateway actually checks and the
/// address: whatever else comes with the credential (a bogus
/// `deviceToken`, an Origin) does not move it to another bucket. Exempt —
/// slowed, never locked out, in every auth mode — is the owner's own path:
/// a direct-local caller with no loopback proxy that could make a remote
/// client look local, sending no Origin or the gateway's own loopback
/// Origin (its Control UI). So failures from elsewhere never refuse the
/// owner's correct secret.
pub struct LimitKey {
    key: String,
    exempt: bool,
    /// The key's entry in the counters the cluster's instances share
    /// (cluster/failures.rs), for a lockable key of a non-loopback address
    /// (loopback is another host on each instance).
    shared: Option<String>,
}

/// How long a failure waits for the shared count before it is answered
/// anyway (it then counts locally only).
const SHARED_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What a connect's failures are counted against: the shared secret when
/// one is presented (it is checked first, whatever else comes with it),
/// else a device token.
fn checked_credential(params: &ConnectParams) -> &'static str {
    let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    match params.auth.as_ref() {
        Some(a) if !present(&a.token) && !present(&a.password) && present(&a.device_token) => "device-token",
        _ => "shared-secret",
    }
}

impl LimitKey {
    pub fn for_connection(
        gw: &Gateway,
        locality: &Locality,
        ip: IpAddr,
        edge: &EdgeFacts,
        params: &ConnectParams,
    ) -> LimitKey {
        Self::keyed(gw, locality, ip, edge, checked_credential(params))
    }

    /// The key for a bearer credential on relayed HTTP (upstream mode): the
    /// same bucket as a connect's shared secret from that client, so guesses
    /// over HTTP and over WebSocket share one budget.
    pub fn for_request(gw: &Gateway, locality: &Locality, ip: IpAddr, edge: &EdgeFacts) -> LimitKey {
        Self::keyed(gw, locality, ip, edge, "shared-secret")
    }

    fn keyed(gw: &Gateway, locality: &Locality, ip: IpAddr, edge: &EdgeFacts, credential: &str) -> LimitKey {
        let key = format!("{credential}:{}", address_key(ip));
        let own_page_or_none =
            edge.origin().is_none_or(|o| crate::admission::origin::is_own_loopback_origin(o, edge.local_port));
        let exempt = locality.is_direct_local() && !gw.config().loopback_is_ambiguous() && own_page_or_none;
        let shared =
            gw.cluster.as_ref().filter(|_| !exempt && !crate::net::is_loopback(ip)).map(|c| c.failure_key(&key));
        LimitKey { key, exempt, shared }
    }

    /// Locked out here, or by the failures of all instances together (read
    /// from this instance's mirror: no NATS round trip).
    pub fn locked(&self, gw: &Gateway, now: u64) -> Option<u64> {
        if self.exempt {
            return None;
        }
        let shared = match (&gw.cluster, &self.shared) {
            (Some(c), Some(k)) => c.failures_locked(k, now),
            _ => None,
        };
        gw.auth_limiter.locked(&self.key, now).max(shared)
    }

    /// Count one wrong credential outside a connect (no delay: this runs
    /// where nothing may wait; the shared count is updated in the background).
    pub fn record_failure(&self, gw: &Gateway, now: u64) {
        gw.global_failures.record(now);
        gw.auth_limiter.record_failure(&self.key, now, !self.exempt);
        if let (Some(c), Some(k), Ok(rt)) =
            (gw.cluster.clone(), self.shared.clone(), tokio::runtime::Handle::try_current())
        {
            let may_lock = !self.exempt;
            rt.spawn(async move { Self::log_shared(c.record_failure(k, now, may_lock).await) });
        }
    }

    /// Count the failure in the cluster's shared count too; a NATS that is
    /// down or slow leaves it to the local count.
    async fn share_failure(&self, gw: &Gateway, now: u64) {
        let (Some(c), Some(k)) = (gw.cluster.clone(), self.shared.clone()) else { return };
        let shared = c.record_failure(k, now, !self.exempt);
        match tokio::time::timeout(SHARED_WAIT, shared).await {
            Ok(done) => Self::log_shared(done),
            Err(_) => tracing::debug!("the shared failure count did not answer in time; counted locally"),
        }
    }

    fn log_shared(done: Result<(), super::cluster_port::BusFailure>) {
        if let Err(e) = done {
            tracing::debug!(code = e.code, error = %e.message, "failure counted locally only");
        }
    }

    /// A success clears the key here and, in the background, in the
    /// shared count.
    fn reset(&self, gw: &Gateway) {
        gw.auth_limiter.reset(&self.key);
        if let (Some(c), Some(k)) = (gw.cluster.clone(), self.shared.clone()) {
            tokio::spawn(async move { Self::log_shared(c.reset_failures(k).await) });
        }
    }

    /// Count a wrong credential (missing ones do not count); a success clears.
    pub async fn account(&self, gw: &Gateway, decision: &Decision, now: u64) {
        use crate::admission::AuthReason;
        match decision {
            Decision::Refuse(Refusal { kind: RefusalKind::Auth { reason, .. }, .. })
                if AuthReason::counts_as_failure(*reason) =>
            {
                let over_budget = gw.global_failures.record(now);
                let n = gw.auth_limiter.record_failure(&self.key, now, !self.exempt);
                self.share_failure(gw, now).await;
                if over_budget {
                    gw.global_failures.slow_down().await;
                }
                if self.exempt {
                    tokio::time::sleep(std::time::Duration::from_millis(exempt_delay_ms(n))).await;
                }
            }
            Decision::Admit(_) => self.reset(gw),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenth_failure_in_the_window_locks() {
        let l = AuthLimiter::default();
        for i in 0..9 {
            l.record_failure("k", 1_000 + i, true);
            assert_eq!(l.locked("k", 1_000 + i), None);
        }
        l.record_failure("k", 2_000, true);
        assert_eq!(l.locked("k", 2_000), Some(LOCKOUT_MS));
        assert_eq!(l.locked("k", 2_000 + LOCKOUT_MS), None);
    }

    #[test]
    fn old_failures_leave_the_window_and_success_resets() {
        let l = AuthLimiter::default();
        for i in 0..9 {
            l.record_failure("k", i, true);
        }
        assert_eq!(l.record_failure("k", WINDOW_MS + 100, true), 1);
        l.reset("k");
        assert_eq!(l.record_failure("k", WINDOW_MS + 200, true), 1);
    }

    #[test]
    fn exempt_callers_are_slowed_not_locked() {
        let l = AuthLimiter::default();
        for i in 0..20 {
            l.record_failure("local", i, false);
        }
        assert_eq!(l.locked("local", 30), None);
        assert_eq!(exempt_delay_ms(1), 250);
        assert_eq!(exempt_delay_ms(3), 1_000);
        assert_eq!(exempt_delay_ms(30), 5_000);
    }

    #[test]
    fn ipv6_is_keyed_by_prefix() {
        assert_eq!(
            address_key("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            address_key("2001:db8:1:2::9".parse().unwrap())
        );
        assert_eq!(address_key("::ffff:203.0.113.5".parse().unwrap()), "203.0.113.5");
        assert_eq!(address_key("127.0.1.7".parse().unwrap()), address_key("::1".parse().unwrap()));
    }

    #[test]
    fn the_checked_credential_decides_the_bucket() {
        let p = |auth: serde_json::Value| {
            let v = serde_json::json!({"minProtocol": 4, "maxProtocol": 4, "auth": auth,
                "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"}});
            ConnectParams::parse(Some(&v)).unwrap()
        };
        assert_eq!(checked_credential(&p(serde_json::json!({"token": "t"}))), "shared-secret");
        assert_eq!(checked_credential(&p(serde_json::json!({"token": "t", "deviceToken": "x"}))), "shared-secret");
        assert_eq!(checked_credential(&p(serde_json::json!({"password": "p", "deviceToken": "x"}))), "shared-secret");
        assert_eq!(checked_credential(&p(serde_json::json!({"deviceToken": "x"}))), "device-token");
    }

    #[test]
    fn the_global_budget_is_spent_after_many_failures_from_anywhere() {
        let g = GlobalFailures::default();
        for i in 0..GLOBAL_MAX_FAILURES as u64 {
            assert!(!g.record(1_000 + i));
        }
        assert!(g.record(2_000));
        assert!(g.exceeded(2_000));
        assert!(!g.exceeded(2_000 + WINDOW_MS + 2_000));
    }

    #[test]
    fn preauth_cap() {
        let c = Arc::new(PreauthCounter::default());
        let ip = PreauthKey::Address("203.0.113.5".parse().unwrap());
        let slots: Vec<_> = (0..MAX_PREAUTH_PER_IP).map(|_| c.acquire(ip).unwrap()).collect();
        assert!(c.acquire(ip).is_none());
        assert!(c.acquire(PreauthKey::Address("203.0.113.6".parse().unwrap())).is_some());
        // The owner's own clients are counted apart from other local programs.
        let local = PreauthKey::Address("127.0.0.1".parse().unwrap());
        let others: Vec<_> = (0..MAX_PREAUTH_PER_IP).map(|_| c.acquire(local).unwrap()).collect();
        assert!(c.acquire(PreauthKey::Owner).is_some());
        drop(others);
        drop(slots);
        assert!(c.acquire(ip).is_some());
    }
}
