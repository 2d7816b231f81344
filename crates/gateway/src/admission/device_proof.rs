//! Device proof: does the `device` block of a `connect` prove possession of
//! the key it names, for this socket's challenge? (docs/admission.md, device-proof)
//!
//! [`verify`] is pure: the caller passes the socket's challenge nonce and the
//! clock. Checks run in OpenClaw's order and the first failure wins:
//!
//! 1. `device.id` is the lowercase hex SHA-256 of the raw public key (a key
//!    that does not decode counts as a mismatch; one whose bytes match the id
//!    but are not a 32-byte key is an invalid key, not a mismatch);
//! 2. `|now − signedAt| ≤ 120 000 ms`;
//! 3. the trimmed `device.nonce` is non-empty;
//! 4. the trimmed nonce equals the challenge nonce;
//! 5. the signature verifies over the v3 payload, else over the v2 payload;
//! 6. the public key normalizes (cannot fail once 1 passed; kept so every
//!    OpenClaw detail code has a variant).
//!
//! Text encodings are decoded leniently, like OpenClaw (base64url or standard
//! base64, padded or not, PEM SPKI for the key); the cryptography is strict:
//! [`VerifyingKey::verify_strict`] rejects non-canonical `S`, small-order `R`
//! and weak (small-order) public keys.

pub use clawgate_protocol::device_auth::signature_token;
use clawgate_protocol::device_auth::{payload_v2, payload_v3, DeviceAuthFields};
use clawgate_protocol::device_key::{self, encode_public_key};
use clawgate_protocol::ConnectParams;
use ed25519_dalek::{Signature, VerifyingKey};

/// The device id and key codecs are the protocol crate's: the client and
/// the CLI derive and encode through the same functions.
pub use clawgate_protocol::device_key::{decode_public_key, derive_device_id, MAX_ENCODED_LEN};

/// Maximum allowed distance between the server clock and `device.signedAt`.
pub const MAX_SIGNATURE_SKEW_MS: u64 = 120_000;

/// Which payload string the signature covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadVersion {
    V3,
    V2,
}

/// A device whose proof checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDevice {
    /// `device.id` as sent (equal to the derived id).
    pub device_id: String,
    /// The raw Ed25519 public key.
    pub public_key: [u8; 32],
    /// The raw key in canonical form: base64url without padding.
    pub public_key_b64url: String,
    pub payload_version: PayloadVersion,
}

/// Why a device proof was refused. Each maps to OpenClaw's
/// `details.code`, `details.reason` and message (OpenClaw's codes, kept as they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("device identity mismatch")]
    DeviceIdMismatch,
    #[error("device signature expired")]
    SignatureExpired,
    #[error("device nonce required")]
    NonceRequired,
    #[error("device nonce mismatch")]
    NonceMismatch,
    #[error("device signature invalid")]
    SignatureInvalid,
    #[error("device public key invalid")]
    PublicKeyInvalid,
    /// `verify` was called on params without a `device` block. Callers decide
    /// the missing-identity case first (docs/admission.md), so this signals a
    /// caller bug; it maps to OpenClaw's catch-all `DEVICE_AUTH_INVALID`.
    #[error("device identity required")]
    DeviceMissing,
}

impl ProofError {
    /// `error.details.code`.
    pub fn details_code(self) -> &'static str {
        match self {
            ProofError::DeviceIdMismatch => "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            ProofError::SignatureExpired => "DEVICE_AUTH_SIGNATURE_EXPIRED",
            ProofError::NonceRequired => "DEVICE_AUTH_NONCE_REQUIRED",
            ProofError::NonceMismatch => "DEVICE_AUTH_NONCE_MISMATCH",
            ProofError::SignatureInvalid => "DEVICE_AUTH_SIGNATURE_INVALID",
            ProofError::PublicKeyInvalid => "DEVICE_AUTH_PUBLIC_KEY_INVALID",
            ProofError::DeviceMissing => "DEVICE_AUTH_INVALID",
        }
    }

    /// `error.details.reason`.
    pub fn reason(self) -> &'static str {
        match self {
            ProofError::DeviceIdMismatch => "device-id-mismatch",
            ProofError::SignatureExpired => "device-signature-stale",
            ProofError::NonceRequired => "device-nonce-missing",
            ProofError::NonceMismatch => "device-nonce-mismatch",
            ProofError::SignatureInvalid => "device-signature",
            ProofError::PublicKeyInvalid => "device-public-key",
            ProofError::DeviceMissing => "device-missing",
        }
    }

    /// `error.message` and the close reason.
    pub fn message(self) -> &'static str {
        match self {
            ProofError::DeviceIdMismatch => "device identity mismatch",
            ProofError::SignatureExpired => "device signature expired",
            ProofError::NonceRequired => "device nonce required",
            ProofError::NonceMismatch => "device nonce mismatch",
            ProofError::SignatureInvalid => "device signature invalid",
            ProofError::PublicKeyInvalid => "device public key invalid",
            ProofError::DeviceMissing => "device identity required",
        }
    }
}

/// Check the device proof in `params` against this socket's challenge nonce
/// at time `now_ms` (epoch milliseconds).
///
/// Expects `params.device` to be present; without it returns
/// [`ProofError::DeviceMissing`].
pub fn verify(params: &ConnectParams, expected_nonce: &str, now_ms: u64) -> Result<VerifiedDevice, ProofError> {
    let device = params.device.as_ref().ok_or(ProofError::DeviceMissing)?;

    // 1. The id is the fingerprint of the key.
    let Some(public_key) = decode_public_key(&device.public_key) else {
        // The id may still be the fingerprint of what was sent: then the id
        // is right and the key is what is wrong (e.g. 31 bytes).
        let id_matches = device_key::decode_public_key_bytes(&device.public_key)
            .is_some_and(|bytes| device_key::fingerprint(&bytes) == device.id);
        return Err(if id_matches { ProofError::PublicKeyInvalid } else { ProofError::DeviceIdMismatch });
    };
    if derive_device_id(&public_key) != device.id {
        return Err(ProofError::DeviceIdMismatch);
    }

    // 2. Fresh enough, in either direction.
    if now_ms.abs_diff(device.signed_at) > MAX_SIGNATURE_SKEW_MS {
        return Err(ProofError::SignatureExpired);
    }

    // 3./4. Bound to this socket's challenge. Like OpenClaw, the trimmed
    // nonce is compared and signed.
    let nonce = device.nonce.trim();
    if nonce.is_empty() {
        return Err(ProofError::NonceRequired);
    }
    if nonce != expected_nonce {
        return Err(ProofError::NonceMismatch);
    }

    // 5. The signature covers v3, else v2.
    let signature = decode_signature(&device.signature).ok_or(ProofError::SignatureInvalid)?;
    let key = VerifyingKey::from_bytes(&public_key).map_err(|_| ProofError::SignatureInvalid)?;
    let fields = DeviceAuthFields {
        device_id: &device.id,
        client_id: &params.client.id,
        client_mode: &params.client.mode,
        role: params.role(),
        scopes: params.scopes(),
        signed_at_ms: device.signed_at,
        token: signature_token(params.auth.as_ref()),
        nonce,
        platform: Some(&params.client.platform),
        device_family: params.client.device_family.as_deref(),
    };
    let payload_version = if key.verify_strict(payload_v3(&fields).as_bytes(), &signature).is_ok() {
        PayloadVersion::V3
    } else if key.verify_strict(payload_v2(&fields).as_bytes(), &signature).is_ok() {
        PayloadVersion::V2
    } else {
        return Err(ProofError::SignatureInvalid);
    };

    // 6. Canonical form of the key. OpenClaw re-normalizes the key here and
    // can refuse with `PublicKeyInvalid`; a key of the wrong length was
    // already refused so in step 1, so this cannot fail.
    Ok(VerifiedDevice {
        device_id: device.id.clone(),
        public_key,
        public_key_b64url: encode_public_key(&public_key),
        payload_version,
    })
}

/// Decode `device.signature` leniently; it must be 64 bytes.
pub fn decode_signature(text: &str) -> Option<Signature> {
    device_key::decode_signature(text).map(|bytes| Signature::from_bytes(&bytes))
}

#[cfg(test)]
#[path = "device_proof_tests.rs"]
mod tests;
