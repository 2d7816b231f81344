//! The store reads admission may need, behind a trait so the same pipeline
//! runs against the gateway's store, an explanation's described store, or a
//! test's in-memory one. A read that fails is an error, never a "not found".

use crate::store::{DeviceView, PairingStore, Role, ServiceTokenCheck, StoreError, TokenCheck};

pub trait Lookups {
    /// Is `presented` the current token of (device, role)?
    fn device_token(&mut self, device_id: &str, role: Role, presented: &str) -> Result<TokenCheck, StoreError>;
    /// Whose service token is `presented` (a `cgs_…` value)?
    fn service_token(&mut self, presented: &str) -> Result<ServiceTokenCheck, StoreError>;
    /// The store's record of a proven device (pairing and tokens).
    fn device_view(&mut self, device_id: &str) -> Result<DeviceView, StoreError>;
}

/// Lookups answered by the pairing store, as of `now_ms`.
pub struct StoreLookups<'a> {
    pub store: &'a dyn PairingStore,
    pub now_ms: u64,
}

impl Lookups for StoreLookups<'_> {
    fn device_token(&mut self, device_id: &str, role: Role, presented: &str) -> Result<TokenCheck, StoreError> {
        self.store.verify_token(device_id, role, presented, self.now_ms)
    }

    fn service_token(&mut self, presented: &str) -> Result<ServiceTokenCheck, StoreError> {
        self.store.verify_service_token(presented, self.now_ms)
    }

    fn device_view(&mut self, device_id: &str) -> Result<DeviceView, StoreError> {
        self.store.view(device_id)
    }
}
