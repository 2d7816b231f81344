//! Builders for the admission unit tests: a paired device, its device
//! tokens and typed connect params, each from plain defaults (approved by
//! the owner at t=1, nothing self-reported) so a test names only what it is
//! about. The integration tests have their own in `tests/it/common/records.rs`.

use clawgate_protocol::{ClientInfo, ConnectParams};

use crate::store::{ApprovedVia, PairedDevice, Role, TokenInfo};

/// A device paired by the owner at t=1 for `roles` and `scopes`, nothing
/// self-reported: set the rest with struct-update syntax.
pub(crate) fn paired_device(device_id: &str, public_key: &str, roles: &[Role], scopes: &[&str]) -> PairedDevice {
    PairedDevice {
        device_id: device_id.to_owned(),
        public_key: public_key.to_owned(),
        display_name: None,
        label: None,
        platform: None,
        device_family: None,
        client_id: None,
        client_mode: None,
        roles: roles.to_vec(),
        approved_scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        approved_via: ApprovedVia::Owner,
        created_at_ms: 1,
        approved_at_ms: 1,
        last_seen_at_ms: None,
        remote_ip: None,
        proxy_user: None,
    }
}

/// A live device token issued at t=1, never rotated or used.
pub(crate) fn token_info(device_id: &str, role: Role, scopes: &[&str]) -> TokenInfo {
    TokenInfo {
        device_id: device_id.to_owned(),
        role,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        created_at_ms: 1,
        rotated_at_ms: None,
        revoked_at_ms: None,
        last_used_at_ms: None,
    }
}

/// Protocol-4 params from a linux client asking for `role` and `scopes`.
pub(crate) fn connect_params(client_id: &str, mode: &str, role: &str, scopes: &[&str]) -> ConnectParams {
    ConnectParams {
        role: Some(role.to_owned()),
        scopes: Some(scopes.iter().map(|s| (*s).to_owned()).collect()),
        ..ConnectParams::new(4, ClientInfo::new(client_id, "1", "linux", mode))
    }
}
