//! Failed-credential counters shared by the instances (docs/cluster.md,
//! "Failed-credential counters across instances"): guesses from one address
//! spread over several instances meet one budget.
//!
//! Each limiter key (the credential kind checked and the client address:
//! server/limits.rs) has one entry in a JetStream key-value bucket whose
//! entries expire after the lockout. A failure updates the entry with a
//! compare-and-set on its revision; every instance mirrors the bucket from a
//! watch, so the lockout check on the connect path reads memory only. When
//! NATS is down each instance counts on its own, as a single instance does.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Cluster, ClusterError};
use crate::server::limits::{LOCKOUT_MS, MAX_ATTEMPTS, WINDOW_MS};
use crate::server::Gateway;

/// Compare-and-set rounds before a failure is left to the local count.
const MAX_CAS_ATTEMPTS: usize = 5;
/// Mirrored keys at most; locked ones are never dropped to make room.
const MAX_MIRRORED: usize = 10_000;
/// Wait between attempts to open and watch the bucket: doubling from the
/// first to the last (a NATS without JetStream is logged now and then, not
/// every second).
const RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// Wait between looks at whether NATS is connected yet.
const CONNECT_POLL: Duration = Duration::from_millis(100);

/// One key's shared count, as stored in the bucket (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedCount {
    /// Failure times (ms since the epoch) inside the window, oldest first.
    #[serde(default)]
    pub failures: Vec<u64>,
    /// Until when the key is locked out, if it is.
    #[serde(default)]
    pub locked_until: Option<u64>,
}

impl SharedCount {
    /// Count one failure at `now`, as the local limiter does: the
    /// [`MAX_ATTEMPTS`]-th inside the window locks (with `may_lock`).
    pub fn add_failure(&mut self, now: u64, may_lock: bool) {
        self.failures.retain(|t| now.saturating_sub(*t) <= WINDOW_MS);
        if self.locked(now).is_some() {
            // Already locked (another instance got there first): the lock
            // stands as it is, it is not prolonged.
            return;
        }
        self.failures.push(now);
        if may_lock && self.failures.len() >= MAX_ATTEMPTS {
            self.locked_until = Some(now + LOCKOUT_MS);
            self.failures.clear();
        }
        // Never more than a lock needs, whatever was stored.
        let excess = self.failures.len().saturating_sub(MAX_ATTEMPTS);
        self.failures.drain(..excess);
    }

    /// Milliseconds until the key may try again, if it is locked out.
    pub fn locked(&self, now: u64) -> Option<u64> {
        self.locked_until.filter(|u| *u > now).map(|u| u - now)
    }

    /// Nothing left to remember: not locked, no failure inside the window.
    fn is_spent(&self, now: u64) -> bool {
        self.locked(now).is_none() && self.failures.iter().all(|t| now.saturating_sub(*t) > WINDOW_MS)
    }
}

#[derive(Debug, Clone)]
struct Mirrored {
    revision: u64,
    count: SharedCount,
}

/// This instance's side of the shared counters: the bucket once opened and
/// the mirror the watch keeps.
#[derive(Default)]
pub struct SharedFailures {
    bucket: RwLock<Option<kv::Store>>,
    mirror: Mutex<HashMap<String, Mirrored>>,
}

impl SharedFailures {
    fn bucket(&self) -> Option<kv::Store> {
        self.bucket.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_bucket(&self, store: kv::Store) {
        *self.bucket.write().unwrap_or_else(|p| p.into_inner()) = Some(store);
    }

    fn lock_mirror(&self) -> std::sync::MutexGuard<'_, HashMap<String, Mirrored>> {
        self.mirror.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take a value seen at `revision`, unless a newer one is already here.
    fn remember(&self, key: &str, revision: u64, count: SharedCount, now: u64) {
        let mut mirror = self.lock_mirror();
        if mirror.get(key).is_some_and(|m| m.revision >= revision) {
            return;
        }
        if mirror.len() >= MAX_MIRRORED && !mirror.contains_key(key) {
            mirror.retain(|_, m| !m.count.is_spent(now));
            if mirror.len() >= MAX_MIRRORED && count.locked(now).is_none() {
                return;
            }
        }
        mirror.insert(key.to_owned(), Mirrored { revision, count });
    }

    fn mirrored(&self, key: &str) -> Option<SharedCount> {
        self.lock_mirror().get(key).map(|m| m.count.clone())
    }
}

/// The bucket key for a limiter key: a digest, so any limiter key (an
/// IPv6 prefix has `:` and `/`) is a valid key. The limiter key holds the
/// credential kind and the address, never a credential; the cluster name
/// salts the digest so clusters sharing a NATS account never share counts.
pub fn bucket_key(cluster: &Cluster, limiter_key: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"clawgate-failures\0");
    digest.update(cluster.config.name.as_bytes());
    digest.update(b"\0");
    digest.update(limiter_key.as_bytes());
    digest.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether failures are shared now: NATS connected and the bucket open
/// (until then, and while NATS is down, each instance counts alone).
pub fn is_shared(cluster: &Cluster) -> bool {
    cluster.is_connected() && cluster.failures.bucket().is_some()
}

/// Milliseconds until `key` (a [`bucket_key`]) may try again, if another
/// instance (or this one) locked it. Reads the mirror only.
pub fn locked(cluster: &Cluster, key: &str, now: u64) -> Option<u64> {
    cluster.failures.mirrored(key)?.locked(now)
}

/// Count one failure of `key` in the shared entry (compare-and-set on its
/// revision, a few rounds at most). `Unavailable` when NATS or the bucket is
/// not there: the local count is then all there is.
pub async fn record_failure(cluster: &Cluster, key: &str, now: u64, may_lock: bool) -> Result<(), ClusterError> {
    let bucket = cluster.failures.bucket().filter(|_| cluster.is_connected()).ok_or(ClusterError::Unavailable)?;
    for _ in 0..MAX_CAS_ATTEMPTS {
        let current = bucket.entry(key).await.map_err(|_| ClusterError::Unavailable)?;
        let (mut count, revision) = match current {
            Some(e) if e.operation == kv::Operation::Put => (parse(&e.value), e.revision),
            Some(e) => (SharedCount::default(), e.revision),
            // Revision 0: the key must not exist yet.
            None => (SharedCount::default(), 0),
        };
        let before = count.clone();
        count.add_failure(now, may_lock);
        if count == before {
            // Locked already: nothing to add (and no write to keep the
            // entry alive longer).
            cluster.failures.remember(key, revision, count, now);
            return Ok(());
        }
        let body = serde_json::to_vec(&count).map_err(|e| ClusterError::Message(e.to_string()))?;
        match bucket.update(key, body.into(), revision).await {
            Ok(written) => {
                cluster.failures.remember(key, written, count, now);
                return Ok(());
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
            Err(_) => return Err(ClusterError::Unavailable),
        }
    }
    Err(ClusterError::Message(format!("the failure count kept changing ({MAX_CAS_ATTEMPTS} rounds)")))
}

/// A success clears the key everywhere, as it does locally. Only keys the
/// mirror knows are written: a success with no failures before costs no
/// NATS round trip.
pub async fn reset(cluster: &Cluster, key: &str) -> Result<(), ClusterError> {
    if cluster.failures.mirrored(key).is_none_or(|c| c == SharedCount::default()) {
        return Ok(());
    }
    let bucket = cluster.failures.bucket().filter(|_| cluster.is_connected()).ok_or(ClusterError::Unavailable)?;
    bucket.delete(key).await.map_err(|_| ClusterError::Unavailable)
}

/// A stored value; one that does not parse counts as no failures (it is
/// logged: only instances write the bucket).
fn parse(value: &[u8]) -> SharedCount {
    match serde_json::from_slice::<SharedCount>(value) {
        Ok(mut count) => {
            let excess = count.failures.len().saturating_sub(MAX_ATTEMPTS);
            count.failures.drain(..excess);
            count
        }
        Err(e) => {
            tracing::warn!(code = ClusterError::Message(String::new()).code(), error = %e, "unreadable failure count in the bucket; taken as none");
            SharedCount::default()
        }
    }
}

/// Open the bucket, creating it on first use: entries expire after the
/// lockout, one value per key. The stream is made as a key-value bucket's
/// (`KV_<bucket>` on `$KV.<bucket>.>`) rather than by `create_key_value`,
/// which first asks for account figures that nats-server 2.9 does not give
/// in the shape this client expects.
async fn open_bucket(cluster: &Cluster) -> Result<kv::Store, ClusterError> {
    use async_nats::jetstream::stream;
    let client = cluster.client().ok_or(ClusterError::Unavailable)?.clone();
    let jetstream = async_nats::jetstream::new(client);
    let name = cluster.subjects().failures_bucket();
    if let Ok(store) = jetstream.get_key_value(name.clone()).await {
        return Ok(store);
    }
    let config = stream::Config {
        name: format!("KV_{name}"),
        description: Some("clawgate failed-credential counters".into()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age: Duration::from_millis(LOCKOUT_MS),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    };
    jetstream
        .get_or_create_stream(config)
        .await
        .map_err(|e| ClusterError::Message(format!("cannot create the failure-count bucket: {e}")))?;
    jetstream
        .get_key_value(name)
        .await
        .map_err(|e| ClusterError::Message(format!("cannot open the failure-count bucket: {e}")))
}

/// Open the bucket and follow it into the mirror. Returns when the watch
/// ends (an error) or NATS went away (`Unavailable`): after a reconnect a
/// fresh watch catches up at once, where the old one would notice the gap
/// only once its heartbeats failed, seconds later.
async fn follow(cluster: &Cluster) -> Result<(), ClusterError> {
    let bucket = open_bucket(cluster).await?;
    let mut watch = bucket.watch_with_history(">").await.map_err(|e| ClusterError::Message(e.to_string()))?;
    cluster.failures.set_bucket(bucket);
    let mut check = tokio::time::interval(CONNECT_POLL);
    loop {
        tokio::select! {
            entry = watch.next() => {
                let Some(entry) = entry else {
                    return Err(ClusterError::Message("the failure-count watch ended".into()));
                };
                let entry = entry.map_err(|e| ClusterError::Message(e.to_string()))?;
                let count = match entry.operation {
                    kv::Operation::Put => parse(&entry.value),
                    kv::Operation::Delete | kv::Operation::Purge => SharedCount::default(),
                };
                cluster.failures.remember(&entry.key, entry.revision, count, crate::clock::now_ms());
            }
            _ = check.tick() => {
                if !cluster.is_connected() {
                    return Err(ClusterError::Unavailable);
                }
            }
        }
    }
}

/// The loop listed in the cluster's features: keep the mirror fed.
pub fn run(_gw: Arc<Gateway>, cluster: Arc<Cluster>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let mut delay = RETRY_DELAY;
        loop {
            if !cluster.is_connected() {
                tokio::time::sleep(CONNECT_POLL).await;
                continue;
            }
            match follow(&cluster).await {
                // Follow again as soon as NATS is back.
                Ok(()) | Err(ClusterError::Unavailable) => delay = RETRY_DELAY,
                Err(e) => {
                    tracing::warn!(
                        code = e.code(),
                        error = %e,
                        retry_ms = delay.as_millis() as u64,
                        "failure-count bucket not followed (failures count per instance meanwhile); trying again"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenth_failure_in_the_window_locks_and_a_lock_is_not_prolonged() {
        let mut c = SharedCount::default();
        for i in 0..MAX_ATTEMPTS as u64 - 1 {
            c.add_failure(1_000 + i, true);
            assert_eq!(c.locked(1_000 + i), None);
        }
        c.add_failure(2_000, true);
        assert_eq!(c.locked(2_000), Some(LOCKOUT_MS));
        c.add_failure(3_000, true);
        assert_eq!(c.locked(3_000), Some(LOCKOUT_MS - 1_000));
        assert_eq!(c.locked(2_000 + LOCKOUT_MS), None);
    }

    #[test]
    fn old_failures_leave_the_window_and_without_may_lock_nothing_locks() {
        let mut c = SharedCount::default();
        for i in 0..MAX_ATTEMPTS as u64 - 1 {
            c.add_failure(i, true);
        }
        c.add_failure(WINDOW_MS + 100, true);
        assert_eq!(c.failures.len(), 1);
        let mut exempt = SharedCount::default();
        for i in 0..30 {
            exempt.add_failure(i, false);
        }
        assert_eq!(exempt.locked(30), None);
        assert!(exempt.failures.len() <= MAX_ATTEMPTS);
    }

    #[test]
    fn unreadable_or_oversized_values_never_panic() {
        assert_eq!(parse(b"not json"), SharedCount::default());
        assert_eq!(parse(b"{}"), SharedCount::default());
        let many: Vec<u64> = (0..1_000).collect();
        let body = serde_json::to_vec(&serde_json::json!({ "failures": many })).unwrap();
        assert_eq!(parse(&body).failures.len(), MAX_ATTEMPTS);
    }

    #[test]
    fn bucket_keys_are_valid_digests_salted_by_the_cluster() {
        let of = |name: &str| {
            let config = crate::config::cluster::ClusterConfig::new("nats://127.0.0.1:4222", "a", name).unwrap();
            Cluster::new(config, "boot")
        };
        let (prod, test) = (of("prod"), of("test"));
        let key = bucket_key(&prod, "shared-secret:2001:db8:1:2::/64");
        assert_eq!(key.len(), 32);
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!key.contains("2001"));
        assert_eq!(key, bucket_key(&prod, "shared-secret:2001:db8:1:2::/64"));
        assert_ne!(key, bucket_key(&test, "shared-secret:2001:db8:1:2::/64"));
        assert_ne!(key, bucket_key(&prod, "device-token:2001:db8:1:2::/64"));
    }

    #[test]
    fn the_mirror_keeps_the_newest_revision() {
        let f = SharedFailures::default();
        let locked = SharedCount { failures: vec![], locked_until: Some(10_000) };
        f.remember("k", 5, locked.clone(), 1_000);
        f.remember("k", 4, SharedCount::default(), 1_000);
        assert_eq!(f.mirrored("k"), Some(locked));
        f.remember("k", 6, SharedCount::default(), 1_000);
        assert_eq!(f.mirrored("k"), Some(SharedCount::default()));
    }
}
