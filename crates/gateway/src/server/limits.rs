//! Abuse limits (docs/threat-model.md, H11): failed-auth lockouts
//! per client address and credential kind, a separate bucket for browsers,
//! and a cap on unauthenticated sockets per address.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use clawgate_protocol::ConnectParams;

use crate::admission::{Decision, Locality, Refusal, RefusalKind};

use super::Gateway;

/// Failed attempts allowed within the window before the key is locked.
pub const MAX_ATTEMPTS: usize = 10;
pub const WINDOW_MS: u64 = 60_000;
pub const LOCKOUT_MS: u64 = 300_000;
/// Keys tracked at most; locked keys are never evicted to make room.
const MAX_KEYS: usize = 10_000;
/// Unauthenticated sockets allowed per client address.
pub const MAX_PREAUTH_PER_IP: usize = 32;

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

/// The limiter key part for an address: IPv6 by /64 (one host owns a /64).
pub fn address_key(ip: IpAddr) -> String {
    match crate::net::canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Counts unauthenticated sockets per address.
#[derive(Default)]
pub struct PreauthCounter {
    by_ip: Mutex<HashMap<IpAddr, usize>>,
}

pub struct PreauthSlot {
    counter: Arc<PreauthCounter>,
    ip: IpAddr,
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
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<PreauthSlot> {
        let mut map = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= MAX_PREAUTH_PER_IP {
            return None;
        }
        *n += 1;
        Some(PreauthSlot { counter: self.clone(), ip })
    }
}

/// Which limiter bucket a connection's failures count in, and whether it is
/// exempt from lockout (a direct-local program in token mode with no loopback
/// proxy: slowed, never locked out, so a typo cannot lock the owner out).
pub struct LimitKey {
    browser: bool,
    key: String,
    exempt: bool,
}

impl LimitKey {
    pub fn for_connection(
        gw: &Gateway,
        locality: &Locality,
        ip: IpAddr,
        origin: Option<&str>,
        params: &ConnectParams,
    ) -> LimitKey {
        let scope = if params.auth.as_ref().is_some_and(|a| a.device_token.is_some()) {
            "device-token"
        } else {
            "shared-secret"
        };
        Self::keyed(gw, locality, ip, origin, scope)
    }

    /// The key for a bearer credential on relayed HTTP (upstream mode): the
    /// same bucket as a connect's shared secret from that client, so guesses
    /// over HTTP and over WebSocket share one budget.
    pub fn for_request(gw: &Gateway, locality: &Locality, ip: IpAddr, origin: Option<&str>) -> LimitKey {
        Self::keyed(gw, locality, ip, origin, "shared-secret")
    }

    fn keyed(gw: &Gateway, locality: &Locality, ip: IpAddr, origin: Option<&str>, scope: &str) -> LimitKey {
        use crate::config::AuthMode;
        let loopback = crate::net::is_loopback(ip);
        let browser = origin.is_some();
        let key = match (browser, loopback) {
            // Browsers on this host share one bucket: their Origin is theirs to choose.
            (true, true) => "browser-loopback".to_owned(),
            _ => format!("{scope}:{}", address_key(ip)),
        };
        let proxy_on_loopback = gw.config().loopback_is_ambiguous();
        let exempt =
            !browser && locality.is_direct_local() && gw.config().auth_mode == AuthMode::Token && !proxy_on_loopback;
        LimitKey { browser, key, exempt }
    }

    fn limiter<'a>(&self, gw: &'a Gateway) -> &'a AuthLimiter {
        if self.browser {
            &gw.browser_limiter
        } else {
            &gw.auth_limiter
        }
    }

    pub fn locked(&self, gw: &Gateway, now: u64) -> Option<u64> {
        if self.exempt {
            return None;
        }
        self.limiter(gw).locked(&self.key, now)
    }

    /// Count one wrong credential outside a connect (no delay: an exempt
    /// caller is never locked out, and this runs where nothing may wait).
    pub fn record_failure(&self, gw: &Gateway, now: u64) {
        self.limiter(gw).record_failure(&self.key, now, !self.exempt);
    }

    /// Count a wrong credential (missing ones do not count); a success clears.
    pub async fn account(&self, gw: &Gateway, decision: &Decision, now: u64) {
        use crate::admission::AuthReason;
        match decision {
            Decision::Refuse(Refusal { kind: RefusalKind::Auth { reason, .. }, .. })
                if AuthReason::counts_as_failure(*reason) =>
            {
                let n = self.limiter(gw).record_failure(&self.key, now, !self.exempt);
                if self.exempt {
                    tokio::time::sleep(std::time::Duration::from_millis(exempt_delay_ms(n))).await;
                }
            }
            Decision::Admit(_) => self.limiter(gw).reset(&self.key),
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
    }

    #[test]
    fn preauth_cap() {
        let c = Arc::new(PreauthCounter::default());
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        let slots: Vec<_> = (0..MAX_PREAUTH_PER_IP).map(|_| c.acquire(ip).unwrap()).collect();
        assert!(c.acquire(ip).is_none());
        assert!(c.acquire("203.0.113.6".parse().unwrap()).is_some());
        drop(slots);
        assert!(c.acquire(ip).is_some());
    }
}
