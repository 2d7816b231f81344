//! The pairing store: paired devices, pending pairing requests, device
//! tokens and rejection cooldowns (docs/architecture.md, store;
//! docs/threat-model.md, H7 and H13).
//!
//! - [`PairingStore`] is the interface the gateway and the CLI use; each
//!   backend implements it.
//! - [`SqliteStore`] is the embedded implementation: one SQLite file in the
//!   state directory, WAL, `synchronous=FULL`, a migration ladder on
//!   `user_version` ([`schema`]).
//! - [`PgStore`] keeps the same state in PostgreSQL, for several instances
//!   (`gateway.store.url`; docs/cluster.md).
//!
//! Rules every implementation keeps:
//! - No clock inside: every operation takes `now_ms` from the caller.
//! - Every state transition is one transaction that re-checks its own
//!   preconditions (a write lock is taken before the first read).
//! - Every state transition bumps [`PairingStore::generation`], so a caller
//!   that decided on a snapshot can tell whether anything changed since.
//!   Bookkeeping timestamps (`last_used_at_ms`, `last_seen_at_ms`) do not
//!   count as a change: nothing an admission decision reads depends on them.
//! - Expired pending requests are marked `expired` at the start of every
//!   mutation; reads report them as expired even before that happens.
//! - Tokens are stored only as SHA-256 digests and compared in constant time.
//! - A store that cannot be read is an error naming the file, never "empty".
//! - A file removed or replaced under a running process refuses writes
//!   ([`StoreError::Replaced`]); a full disk refuses them as
//!   [`StoreError::Full`] until space frees.

mod admission_write;
mod codec;
mod device_memory;
mod devices;
mod error;
mod file_guard;
pub mod json;
mod open;
mod pending;
mod pg;
pub mod relay_identities;
pub mod schema;
mod services;
mod sqlite;
mod tokens;
mod types;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod device_memory_tests;
#[cfg(test)]
mod pg_tests;
#[cfg(test)]
mod proxy_user_tests;
#[cfg(test)]
mod tests;

pub use admission_write::{AdmissionApplied, AdmissionWrite};
pub use error::{PendingCap, StoreError};
pub use open::open_configured;
pub use pg::{is_postgres_url, ChangeListener, PgStore, CHANGE_CHANNEL, PG_SCHEMA_VERSION};
pub use relay_identities::{browser_identity_key, node_identity_key, RelayDeviceToken, RelayIdentity};
pub use services::{
    check_service_name, is_service_token, parse_service_token, IssuedServiceToken, ServicePrincipal, ServiceTokenCheck,
    MAX_SERVICE_NAME_CHARS, SERVICE_TOKEN_PREFIX,
};
pub use sqlite::SqliteStore;
pub use tokens::MAX_LIVE_TOKENS;
pub use types::{
    Approval, ApprovedVia, DeviceView, LiveToken, NewRequest, PairedDevice, PendingRequest, Rejection,
    RejectionCooldown, RequestOutcome, RequestState, Role, TokenCheck, TokenInfo,
};

/// An open request expires this long after its last refresh.
pub const PENDING_TTL_MS: u64 = 5 * 60 * 1000;
/// A rejected (device, role) may not ask again for this long.
pub const REJECT_COOLDOWN_MS: u64 = 10 * 60 * 1000;
/// At most this many open requests from one client IP.
pub const MAX_OPEN_PER_IP: u32 = 10;
/// At most this many open requests in all.
pub const MAX_OPEN_TOTAL: u32 = 100;
/// The default window of [`PairingStore::approve_latest`] (`--latest`).
pub const LATEST_WINDOW_MS: u64 = 5 * 60 * 1000;
/// Resolved requests (superseded, approved, rejected, expired) are kept this
/// long so an old id can still answer "superseded by X", then deleted.
pub const RESOLVED_RETENTION_MS: u64 = 24 * 60 * 60 * 1000;
/// Longest operator label accepted by [`PairingStore::rename_device`].
pub const MAX_LABEL_CHARS: usize = 64;

/// The pairing store's operations. Implementations are shared between tasks
/// (`Send + Sync`); every call is short and blocking.
pub trait PairingStore: Send + Sync {
    /// The change counter: bumped by every state transition, by any process.
    fn generation(&self) -> Result<u64, StoreError>;

    /// SQLite's `PRAGMA data_version` for this connection (or an equivalent):
    /// it changes when *another* connection or process committed a write, so
    /// a gateway can notice what the offline CLI did. Fails with
    /// [`StoreError::Replaced`] once the store's file was removed or replaced
    /// under this process, so a poller notices that too.
    fn data_version(&self) -> Result<u64, StoreError>;

    /// Serve paired devices and token digests from memory from now on (the
    /// gateway asks at start): `view`, `verify_token` and a device-token
    /// reconnect's `apply_admission` then read no file, `verify_service_token`
    /// only reads, and last-seen and last-used times (devices' and service
    /// tokens') are written in batches ([`PairingStore::flush_bookkeeping`]),
    /// so a connect admitted by a credential writes nothing.
    /// The copy follows this store's own writes, and is reloaded when
    /// `data_version` or `generation` shows a change made elsewhere. A store
    /// without such a copy answers `false` and goes on as it did.
    fn keep_devices_in_memory(&self) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// The generation each of this store's own state changes committed, as
    /// they commit (a watch channel: a slow reader sees the latest). A
    /// gateway tells the other instances sharing the store (docs/cluster.md).
    /// `None`: a store no other instance shares (SQLite).
    fn own_commits(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// A listener that hears every change committed to the store by anyone
    /// (PostgreSQL's LISTEN/NOTIFY), so a gateway re-checks its sessions at
    /// once instead of at its next poll. `None`: polled only (SQLite).
    fn change_listener(&self) -> Option<ChangeListener> {
        None
    }

    /// Write the batched last-seen and last-used times now (the gateway does
    /// every few seconds and at shutdown).
    fn flush_bookkeeping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The paired record of a device, if any.
    fn device(&self, device_id: &str) -> Result<Option<PairedDevice>, StoreError>;

    /// Every paired device, oldest first.
    fn list_devices(&self) -> Result<Vec<PairedDevice>, StoreError>;

    /// Token metadata (never the token or its digest) of one device.
    fn tokens(&self, device_id: &str) -> Result<Vec<TokenInfo>, StoreError>;

    /// A device, its tokens and the generation, read in one snapshot: what
    /// an admission decision relies on.
    fn view(&self, device_id: &str) -> Result<DeviceView, StoreError>;

    /// Open, unexpired requests, oldest first.
    fn open_requests(&self, now_ms: u64) -> Result<Vec<PendingRequest>, StoreError>;

    /// A request in any state (an open one past its expiry reads as
    /// `Expired`), so an old id can answer "superseded by X". Resolved
    /// requests are forgotten after [`RESOLVED_RETENTION_MS`].
    fn request(&self, request_id: &str, now_ms: u64) -> Result<Option<PendingRequest>, StoreError>;

    /// Open or refresh the pending request of `(device, role)`. Call only
    /// after the device proved its key. Same or narrower scopes refresh the
    /// open request and keep its id; broader ones supersede it.
    fn request_pairing(&self, new: &NewRequest, now_ms: u64) -> Result<RequestOutcome, StoreError>;

    /// Approve one open, unexpired request. The request's scopes never
    /// change under its id, so an approver may check them with
    /// [`PairingStore::request`] first without a race.
    fn approve(&self, request_id: &str, via: ApprovedVia, now_ms: u64) -> Result<Approval, StoreError>;

    /// Approve the single open request created or refreshed within the last
    /// `window_ms`; refuses when there are several, listing them.
    fn approve_latest(&self, via: ApprovedVia, now_ms: u64, window_ms: u64) -> Result<Approval, StoreError>;

    /// Approve the open request of a device; refuses when it has open
    /// requests for more than one role, listing them.
    fn approve_device(&self, device_id: &str, via: ApprovedVia, now_ms: u64) -> Result<Approval, StoreError>;

    /// Pair or extend directly (`approved_via = silent`). The open request
    /// for the same (device, role), if what is now approved covers it, is
    /// closed as approved; a broader one stays open for the owner.
    fn pair_silently(&self, new: &NewRequest, now_ms: u64) -> Result<PairedDevice, StoreError>;

    /// Pair or extend directly for the proxy user in `new.proxy_user`
    /// (`approved_via = proxy-auto`, rule `proxy-device-auto-approve`); as
    /// [`PairingStore::pair_silently`] otherwise.
    fn pair_proxy_auto(&self, new: &NewRequest, now_ms: u64) -> Result<PairedDevice, StoreError>;
    /// Apply an admission decision in one transaction, if what the decision
    /// read (`read`, the device's view) still holds: the store is at its
    /// generation, or the device's record and tokens are unchanged but for
    /// bookkeeping. Otherwise [`StoreError::Stale`], and nothing is written.
    fn apply_admission(
        &self,
        read: &DeviceView,
        write: &AdmissionWrite,
        now_ms: u64,
    ) -> Result<AdmissionApplied, StoreError>;

    /// Reject an open request and start the (device, role) cooldown.
    fn reject(&self, request_id: &str, now_ms: u64) -> Result<Rejection, StoreError>;

    /// The rejection cool-downs in force at `now_ms`, oldest first.
    fn rejections(&self, now_ms: u64) -> Result<Vec<RejectionCooldown>, StoreError>;

    /// End the cool-downs of a device (of `role` only, if given) so it may
    /// ask again at once. Returns the roles lifted; none is not an error.
    fn lift_rejection(&self, device_id: &str, role: Option<Role>, now_ms: u64) -> Result<Vec<Role>, StoreError>;

    /// Delete a paired device and its tokens; returns the removed record.
    fn remove_device(&self, device_id: &str, now_ms: u64) -> Result<PairedDevice, StoreError>;

    /// Set the operator's label (at most [`MAX_LABEL_CHARS`]; empty clears it).
    fn rename_device(&self, device_id: &str, label: &str, now_ms: u64) -> Result<PairedDevice, StoreError>;

    /// Mint one more token of `(device, role)`. Other live tokens stay live
    /// (at most [`MAX_LIVE_TOKENS`]; past that the one unused longest is
    /// dropped). Returns the plaintext, the only time it exists.
    fn issue_token(&self, device_id: &str, role: Role, scopes: &[String], now_ms: u64) -> Result<String, StoreError>;

    /// End every live token of `(device, role)` and mint one, in one
    /// transaction: the old ones stop verifying at once.
    fn rotate_token(&self, device_id: &str, role: Role, scopes: &[String], now_ms: u64) -> Result<String, StoreError>;

    /// Check a presented device token; on `Valid`, records `last_used_at_ms`.
    fn verify_token(&self, device_id: &str, role: Role, presented: &str, now_ms: u64)
        -> Result<TokenCheck, StoreError>;

    /// Revoke every token of `(device, role)`. `Ok(false)`: none was live.
    fn revoke_token(&self, device_id: &str, role: Role, now_ms: u64) -> Result<bool, StoreError>;

    /// The live device token with this value, whichever device holds it
    /// (upstream mode: a bearer on relayed HTTP names no device). Revoked
    /// tokens and tokens of removed devices or roles are `None`.
    fn device_token_by_value(&self, presented: &str, now_ms: u64) -> Result<Option<LiveToken>, StoreError>;

    /// Record that a paired device connected. `Ok(false)`: not paired.
    fn touch_last_seen(&self, device_id: &str, remote_ip: Option<&str>, now_ms: u64) -> Result<bool, StoreError>;

    // ---- service principals (docs/admission.md, service tokens) ----

    /// Create a service principal with a fixed role and scopes (none for
    /// role node). Returns its token, the only time the token exists.
    fn add_service(
        &self,
        name: &str,
        role: Role,
        scopes: &[String],
        now_ms: u64,
    ) -> Result<IssuedServiceToken, StoreError>;

    /// Every principal (revoked ones too), live ones first.
    fn list_services(&self) -> Result<Vec<ServicePrincipal>, StoreError>;

    /// A principal by id, in any state.
    fn service_by_id(&self, principal_id: &str) -> Result<Option<ServicePrincipal>, StoreError>;

    /// Give the live principal `name` a new secret; the old token stops
    /// verifying at once (no grace period).
    fn rotate_service(&self, name: &str, now_ms: u64) -> Result<IssuedServiceToken, StoreError>;

    /// Revoke the live principal `name`. Its name is free again afterwards.
    fn revoke_service(&self, name: &str, now_ms: u64) -> Result<ServicePrincipal, StoreError>;

    /// Check a presented `cgs_<id>_<secret>` token; on `Valid`, records last use
    /// (in the next batch once [`PairingStore::keep_devices_in_memory`] was asked).
    fn verify_service_token(&self, token: &str, now_ms: u64) -> Result<ServiceTokenCheck, StoreError>;

    // ---- relay identities (upstream mode) ----
    // Not admission state: changing them does not bump the generation.

    /// The relay identity of a downstream identity key (see
    /// [`browser_identity_key`], [`node_identity_key`]), created with a
    /// fresh key on first use.
    fn relay_identity(&self, identity_key: &str, now_ms: u64) -> Result<RelayIdentity, StoreError>;

    /// Keep the device token the upstream issued to a relay identity, or
    /// forget it (`None`). `Ok(false)`: no such identity.
    fn set_relay_device_token(
        &self,
        identity_key: &str,
        token: Option<&RelayDeviceToken>,
        now_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Forget a relay identity. `Ok(false)`: there was none.
    fn remove_relay_identity(&self, identity_key: &str, now_ms: u64) -> Result<bool, StoreError>;
}
