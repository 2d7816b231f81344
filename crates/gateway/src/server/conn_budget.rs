//! Every socket is counted from `accept()`, before a byte is read
//! (docs/operations.md, "Resource limits"; docs/threat-model.md, H11).
//!
//! - All sockets together: at most `maxConnections`.
//! - Unauthenticated sockets (from accept until hello-ok) from everyone but
//!   the owner: at most half of that, so the other half stays for sessions.
//! - The owner's own local clients have a budget of their own, kept free of
//!   everyone else's sockets: the last `owner_reserve` places of the total
//!   are theirs.
//! - Per address (IPv6: per /64), at most [`MAX_UNAUTHENTICATED_PER_ADDRESS`]
//!   unauthenticated sockets.
//!
//! A socket over any of these is closed at once by the accept loop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Unauthenticated sockets one address may hold from accept on (the head
/// being read, plain HTTP, the handshake). Twice the per-address cap on
/// upgraded sockets ([`super::limits::MAX_PREAUTH_PER_IP`]), so that cap
/// still answers with its HTTP 503.
pub const MAX_UNAUTHENTICATED_PER_ADDRESS: usize = 64;
/// The owner's own unauthenticated sockets, at most (and the places of the
/// total kept for them).
pub const MAX_OWNER_RESERVE: usize = 64;
/// File descriptors kept out of the default `maxConnections`: the store
/// and its journal, standard streams, listeners, the admin listener, the
/// runtime, uid lookups, the spare descriptor of the accept loop.
pub const FD_HEADROOM: u64 = 64;
/// The smallest default, whatever the file limit says.
const MIN_DEFAULT_CONNECTIONS: u64 = 16;

/// The default `gateway.limits.maxConnections` for an open-file limit:
/// `(nofile − 64) / 2` in upstream mode (each session holds a link to the
/// upstream too), else `nofile − 64`; at least 16.
pub fn default_max_connections(nofile: u64, upstream: bool) -> usize {
    let usable = nofile.saturating_sub(FD_HEADROOM);
    let per_connection = if upstream { 2 } else { 1 };
    (usable / per_connection).max(MIN_DEFAULT_CONNECTIONS).min(usize::MAX as u64) as usize
}

/// The process's soft open-file limit now (`u64::MAX` when unlimited or
/// unknown: the default is then bounded by nothing but the config).
pub fn current_nofile() -> u64 {
    crate::fd_limit::current().map(|l| l.soft).unwrap_or(u64::MAX)
}

/// The budget key of an address: IPv6 by /64 (one host owns a /64), IPv4
/// and loopback by the exact address (127.0.0.2 is another source than
/// 127.0.0.1; the owner's own clients are keyed apart, see [`Class`]).
pub fn budget_key(ip: IpAddr) -> IpAddr {
    match crate::net::canonical(ip) {
        IpAddr::V6(v6) if !v6.is_loopback() => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        other => other,
    }
}

/// Where the owner's local clients connect from: a loopback connect's
/// source is 127.0.0.1 (or ::1) unless a program binds another on purpose.
pub fn is_owner_address(ip: IpAddr) -> bool {
    let ip = crate::net::canonical(ip);
    ip == IpAddr::V4(std::net::Ipv4Addr::LOCALHOST) || ip == IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
}

/// Whose budget a new socket is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A local client of the owner: from 127.0.0.1 or ::1 (where a loopback
    /// connect comes from), of a uid in `gateway.auth.localOwnerUids`
    /// where the uid can be looked up.
    Owner,
    /// A trusted proxy (`gateway.trustedProxies`): in the unauthenticated
    /// share, but with no per-address cap; the clients behind it are
    /// capped once its forwarding headers are read.
    TrustedProxy,
    /// Everyone else, by [`budget_key`].
    Address(IpAddr),
}

/// Why a socket was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBudget {
    /// Its address holds its share of unauthenticated sockets.
    Address,
    /// Unauthenticated sockets hold their share of the total.
    Unauthenticated,
    /// The owner's local budget is full.
    Owner,
    /// `maxConnections` is reached.
    Total,
}

impl OverBudget {
    pub fn as_str(self) -> &'static str {
        match self {
            OverBudget::Address => "address",
            OverBudget::Unauthenticated => "unauthenticated",
            OverBudget::Owner => "owner",
            OverBudget::Total => "total",
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    unauthenticated: usize,
    owner: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// The counts of one gateway. Cheap to check: one mutex, a few integers
/// and one map entry per address that holds unauthenticated sockets.
pub struct ConnectionBudget {
    max: AtomicUsize,
    counts: Mutex<Counts>,
}

/// The figures `/metrics` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetFigures {
    pub max: usize,
    pub total: usize,
    pub unauthenticated: usize,
    pub owner: usize,
}

impl ConnectionBudget {
    pub fn new(max: usize) -> Arc<ConnectionBudget> {
        Arc::new(ConnectionBudget { max: AtomicUsize::new(max.max(1)), counts: Mutex::default() })
    }

    /// A reload may change `maxConnections`; sockets already counted stay.
    pub fn set_max(&self, max: usize) {
        self.max.store(max.max(1), Ordering::Relaxed);
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    /// The owner's reserve for a total of `max`: a quarter, at most 64.
    fn owner_reserve(max: usize) -> usize {
        (max / 4).clamp(1, MAX_OWNER_RESERVE)
    }

    /// Unauthenticated sockets of everyone but the owner: half of the rest.
    fn unauthenticated_share(max: usize) -> usize {
        (max.saturating_sub(Self::owner_reserve(max)) / 2).max(1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count one new socket of `class`, or say why it may not stay.
    pub fn admit(self: &Arc<Self>, class: Class) -> Result<ConnectionSlot, OverBudget> {
        let max = self.max();
        let mut c = self.lock();
        match class {
            Class::Owner => {
                if c.total >= max {
                    return Err(OverBudget::Total);
                }
                if c.owner >= Self::owner_reserve(max) {
                    return Err(OverBudget::Owner);
                }
                c.owner += 1;
            }
            Class::TrustedProxy | Class::Address(_) => {
                if c.total >= max.saturating_sub(Self::owner_reserve(max)) {
                    return Err(OverBudget::Total);
                }
                if c.unauthenticated >= Self::unauthenticated_share(max) {
                    return Err(OverBudget::Unauthenticated);
                }
                if let Class::Address(key) = class {
                    let n = c.by_address.entry(key).or_insert(0);
                    if *n >= MAX_UNAUTHENTICATED_PER_ADDRESS {
                        return Err(OverBudget::Address);
                    }
                    *n += 1;
                }
                c.unauthenticated += 1;
            }
        }
        c.total += 1;
        Ok(ConnectionSlot { budget: self.clone(), class: Some(class) })
    }

    pub fn figures(&self) -> BudgetFigures {
        let c = self.lock();
        BudgetFigures { max: self.max(), total: c.total, unauthenticated: c.unauthenticated, owner: c.owner }
    }

    fn release_unauthenticated(&self, c: &mut Counts, class: Class) {
        match class {
            Class::Owner => c.owner -= 1,
            Class::TrustedProxy => c.unauthenticated -= 1,
            Class::Address(key) => {
                c.unauthenticated -= 1;
                if let Some(n) = c.by_address.get_mut(&key) {
                    *n -= 1;
                    if *n == 0 {
                        c.by_address.remove(&key);
                    }
                }
            }
        }
    }
}

/// One counted socket; dropping it gives its place back.
pub struct ConnectionSlot {
    budget: Arc<ConnectionBudget>,
    /// `Some` while the socket is unauthenticated.
    class: Option<Class>,
}

impl ConnectionSlot {
    /// The socket is admitted (or handed to the upstream): it counts in the
    /// total only from now on.
    pub fn established(&mut self) {
        if let Some(class) = self.class.take() {
            let mut c = self.budget.lock();
            self.budget.release_unauthenticated(&mut c, class);
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = self.budget.lock();
        if let Some(class) = self.class.take() {
            self.budget.release_unauthenticated(&mut c, class);
        }
        c.total -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_neighbours_in_one_slash_64_share_one_budget() {
        let key = budget_key(ip("2001:db8:1:1::1"));
        assert_eq!(budget_key(ip("2001:db8:1:1::2")), key);
        assert_eq!(budget_key(ip("2001:db8:1:1:ffff:1:2:3")), key);
        assert_ne!(budget_key(ip("2001:db8:1:2::1")), key);
        let b = ConnectionBudget::new(100_000);
        let held: Vec<_> = (0..MAX_UNAUTHENTICATED_PER_ADDRESS)
            .map(|i| b.admit(Class::Address(budget_key(ip(&format!("2001:db8:1:1::{:x}", i + 1))))).unwrap())
            .collect();
        let next = b.admit(Class::Address(budget_key(ip("2001:db8:1:1::beef"))));
        assert_eq!(next.err(), Some(OverBudget::Address));
        assert!(b.admit(Class::Address(budget_key(ip("2001:db8:1:2::1")))).is_ok());
        drop(held);
        assert!(b.admit(Class::Address(budget_key(ip("2001:db8:1:1::1")))).is_ok());
    }

    #[test]
    fn loopback_and_mapped_addresses_are_keyed_exactly() {
        assert_ne!(budget_key(ip("127.0.0.2")), budget_key(ip("127.0.0.3")));
        assert_eq!(budget_key(ip("::ffff:127.0.0.2")), ip("127.0.0.2"));
        assert_eq!(budget_key(ip("::1")), ip("::1"));
    }

    #[test]
    fn unauthenticated_sockets_cannot_take_the_reserve() {
        let b = ConnectionBudget::new(200);
        let share = ConnectionBudget::unauthenticated_share(200);
        let mut held = Vec::new();
        let mut refused = 0;
        for a in 0..20u8 {
            for _ in 0..20 {
                match b.admit(Class::Address(ip(&format!("127.0.0.{}", a + 2)))) {
                    Ok(s) => held.push(s),
                    Err(e) => {
                        assert_eq!(e, OverBudget::Unauthenticated);
                        refused += 1;
                    }
                }
            }
        }
        assert_eq!(held.len(), share);
        assert_eq!(refused, 400 - share);
        // The owner still gets in, and so do sessions made of its sockets.
        let mut owner = b.admit(Class::Owner).unwrap();
        owner.established();
        assert_eq!(b.figures().owner, 0);
        assert_eq!(b.figures().total, share + 1);
    }

    #[test]
    fn the_owner_reserve_is_kept_from_everyone_else() {
        let b = ConnectionBudget::new(100);
        let reserve = ConnectionBudget::owner_reserve(100);
        // Authenticated sessions of others fill everything but the reserve.
        let mut held = Vec::new();
        for i in 0..200u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            match b.admit(Class::Address(a)) {
                Ok(mut s) => {
                    s.established();
                    held.push(s);
                }
                Err(e) => assert_eq!(e, OverBudget::Total),
            }
        }
        assert_eq!(held.len(), 100 - reserve);
        let owners: Vec<_> = (0..reserve).map(|_| b.admit(Class::Owner).unwrap()).collect();
        assert!(b.admit(Class::Owner).is_err());
        drop(owners);
        drop(held);
        assert_eq!(b.figures(), BudgetFigures { max: 100, total: 0, unauthenticated: 0, owner: 0 });
    }

    #[test]
    fn defaults_leave_headroom() {
        assert_eq!(default_max_connections(1024, false), 960);
        assert_eq!(default_max_connections(1024, true), 480);
        assert_eq!(default_max_connections(32, false), MIN_DEFAULT_CONNECTIONS as usize);
        assert!(default_max_connections(u64::MAX, true) > 1_000_000);
    }
}
