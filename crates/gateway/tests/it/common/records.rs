//! Builders for the records admission reads: a paired device and its device
//! tokens as the store returns them, and typed connect params. Each starts
//! from plain defaults (approved by the owner at t=1, nothing self-reported)
//! so a test spells out only what it is about.

use clawgate::store::{ApprovedVia, PairedDevice, Role, TokenInfo};
use clawgate_protocol::{ClientInfo, ConnectParams};

/// A [`PairedDevice`] under construction: see [`paired_device`].
pub struct PairedDeviceBuilder(PairedDevice);

/// A device paired by the owner at t=1 with no roles, no scopes and nothing
/// self-reported.
pub fn paired_device(device_id: impl Into<String>, public_key: impl Into<String>) -> PairedDeviceBuilder {
    PairedDeviceBuilder(PairedDevice {
        device_id: device_id.into(),
        public_key: public_key.into(),
        display_name: None,
        label: None,
        platform: None,
        device_family: None,
        client_id: None,
        client_mode: None,
        roles: Vec::new(),
        approved_scopes: Vec::new(),
        approved_via: ApprovedVia::Owner,
        created_at_ms: 1,
        approved_at_ms: 1,
        last_seen_at_ms: None,
        remote_ip: None,
        proxy_user: None,
    })
}

impl PairedDeviceBuilder {
    pub fn roles(mut self, roles: &[Role]) -> Self {
        self.0.roles = roles.to_vec();
        self
    }

    /// The approved scopes, as given (not normalized).
    pub fn scopes<S: AsRef<str>>(mut self, scopes: &[S]) -> Self {
        self.0.approved_scopes = scopes.iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }

    pub fn platform<'a>(mut self, platform: impl Into<Option<&'a str>>) -> Self {
        self.0.platform = platform.into().map(str::to_owned);
        self
    }

    pub fn device_family<'a>(mut self, family: impl Into<Option<&'a str>>) -> Self {
        self.0.device_family = family.into().map(str::to_owned);
        self
    }

    /// The self-reported client id and mode.
    pub fn client(mut self, id: &str, mode: &str) -> Self {
        self.0.client_id = Some(id.to_owned());
        self.0.client_mode = Some(mode.to_owned());
        self
    }

    /// The trusted-proxy user the device is bound to.
    pub fn proxy_user<'a>(mut self, user: impl Into<Option<&'a str>>) -> Self {
        self.0.proxy_user = user.into().map(str::to_owned);
        self
    }

    pub fn build(self) -> PairedDevice {
        self.0
    }
}

/// A live device token issued at t=1, never rotated or used.
pub fn token_info<S: AsRef<str>>(device_id: impl Into<String>, role: Role, scopes: &[S]) -> TokenInfo {
    TokenInfo {
        device_id: device_id.into(),
        role,
        scopes: scopes.iter().map(|s| s.as_ref().to_owned()).collect(),
        created_at_ms: 1,
        rotated_at_ms: None,
        revoked_at_ms: None,
        last_used_at_ms: None,
    }
}

/// Typed connect params of protocol 4 from a linux client (`version`
/// 1.0.0) asking for `role` and `scopes`, nothing else set.
pub fn typed_connect_params(client_id: &str, mode: &str, role: &str, scopes: &[&str]) -> ConnectParams {
    ConnectParams {
        role: Some(role.to_owned()),
        scopes: Some(scopes.iter().map(|s| (*s).to_owned()).collect()),
        ..ConnectParams::new(4, ClientInfo::new(client_id, "1.0.0", "linux", mode))
    }
}
