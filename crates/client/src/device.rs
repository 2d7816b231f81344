//! A device identity: an Ed25519 key whose SHA-256 is the device id, and the
//! signature over the device-auth payload that proves it on `connect`.

use std::path::Path;

use clawgate_protocol::device_auth::{payload_v3, signature_token, DeviceAuthFields};
use clawgate_protocol::device_key::{self, derive_device_id, encode_public_key, encode_signature};
use clawgate_protocol::{ConnectParams, DeviceParams};
use ed25519_dalek::{Signer, SigningKey};

#[derive(Clone)]
pub struct DeviceIdentity {
    key: SigningKey,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceIdentity({})", self.device_id())
    }
}

impl DeviceIdentity {
    /// A fresh key from the OS random source.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("operating system random source unavailable");
        Self::from_seed(seed)
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        DeviceIdentity { key: SigningKey::from_bytes(&seed) }
    }

    /// Load the identity stored at `path` (32-byte seed, base64url), creating it
    /// (mode 0600) when missing.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = device_key::decode(text.trim()).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: not base64url", path.display()))
                })?;
                let seed: [u8; 32] = bytes.try_into().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: not a 32-byte key", path.display()),
                    )
                })?;
                Ok(Self::from_seed(seed))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = Self::generate();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
                f.write_all(device_key::encode(&id.key.to_bytes()).as_bytes())?;
                f.sync_all()?;
                Ok(id)
            }
            Err(e) => Err(e),
        }
    }

    pub fn public_key_raw(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The public key as sent on the wire: raw 32 bytes, base64url without padding.
    pub fn public_key_b64url(&self) -> String {
        encode_public_key(&self.public_key_raw())
    }

    /// Lowercase hex SHA-256 of the raw public key.
    pub fn device_id(&self) -> String {
        derive_device_id(&self.public_key_raw())
    }

    /// Sign any payload string; base64url signature.
    pub fn sign(&self, payload: &str) -> String {
        encode_signature(&self.key.sign(payload.as_bytes()).to_bytes())
    }

    /// The `device` block for these connect params over this challenge, signed
    /// (v3) over the token the params carry, as the reference client does.
    pub fn device_params(&self, params: &ConnectParams, nonce: &str, signed_at_ms: u64) -> DeviceParams {
        let auth = params.auth.as_ref();
        let token = signature_token(auth);
        let device_id = self.device_id();
        let payload = payload_v3(&DeviceAuthFields {
            device_id: &device_id,
            client_id: &params.client.id,
            client_mode: &params.client.mode,
            role: params.role(),
            scopes: params.scopes(),
            signed_at_ms,
            token,
            nonce,
            platform: Some(&params.client.platform),
            device_family: params.client.device_family.as_deref(),
        });
        DeviceParams {
            id: device_id,
            public_key: self.public_key_b64url(),
            signature: self.sign(&payload),
            signed_at: signed_at_ms,
            nonce: nonce.to_owned(),
        }
    }
}
