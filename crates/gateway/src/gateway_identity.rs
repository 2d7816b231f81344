//! The gateway's identity key (`gateway.identity` in the state directory,
//! 0600, created on first start beside the generated token). The gateway
//! signs every challenge nonce with it; the CLI, reading the same state
//! directory, checks that signature before it sends the owner's secret, so a
//! process squatting the port while the gateway is down learns nothing
//! (docs/threat-model.md, "port squatting").

use std::path::PathBuf;
use std::sync::Arc;

use clawgate_client::DeviceIdentity;
use clawgate_protocol::device_key;
use clawgate_protocol::gateway_identity::proof_message;

use crate::config::ConfigError;
use crate::state::{check_private, StateDir};

pub const IDENTITY_FILE: &str = "gateway.identity";

/// The signing half, held by the running gateway.
#[derive(Clone)]
pub struct GatewayIdentity {
    key: Arc<DeviceIdentity>,
}

impl std::fmt::Debug for GatewayIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GatewayIdentity({})", self.key.public_key_b64url())
    }
}

pub fn identity_path(state: &StateDir) -> PathBuf {
    state.path.join(IDENTITY_FILE)
}

impl GatewayIdentity {
    /// The key of this state directory, created (0600) when missing; refused
    /// when others could read it.
    pub fn load_or_create(state: &StateDir) -> Result<GatewayIdentity, ConfigError> {
        let path = identity_path(state);
        if path.exists() {
            check_private(&path, false)?;
        }
        let key = DeviceIdentity::load_or_create(&path)
            .map_err(|e| ConfigError::Other(format!("cannot load or create {}: {e}", path.display())))?;
        Ok(GatewayIdentity { key: Arc::new(key) })
    }

    pub fn from_identity(key: DeviceIdentity) -> GatewayIdentity {
        GatewayIdentity { key: Arc::new(key) }
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key_raw()
    }

    /// The proof for one socket's challenge (base64url signature).
    pub fn prove(&self, nonce: &str) -> String {
        self.key.sign(&proof_message(nonce))
    }
}

/// The public half, for a client of this state directory: `None` when the
/// directory holds no identity (no gateway ever started from it).
pub fn read_public_key(state: &StateDir) -> Result<Option<[u8; 32]>, String> {
    let path = identity_path(state);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let seed: [u8; 32] = device_key::decode(text.trim())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{} does not hold a 32-byte key", path.display()))?;
    Ok(Some(DeviceIdentity::from_seed(seed).public_key_raw()))
}
