//! A device's proof in `connect.params.device`, and the text forms of its
//! key and signature.

use base64::Engine;
use clawgate_client::DeviceIdentity;
use clawgate_protocol::device_key;
use clawgate_protocol::ConnectParams;

use crate::admission::device_proof::{self, PayloadVersion, ProofError};

/// The challenge nonce and clock every proof is checked against.
const NONCE: &str = "4f1c2b7e-0a9d-4c3e-9b61-2d8e5f7a1c30";
const NOW_MS: u64 = 1_790_000_000_000;

/// Connect params (JSON) with a device block, verified as the handshake
/// verifies it. Then the same params signed by a real key over this
/// challenge must verify, whatever their fields hold, and must not verify
/// over another challenge.
pub fn device_proof(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(mut params) = ConnectParams::parse(Some(&value)) else { return };
    if params.device.is_some() {
        let verified = device_proof::verify(&params, NONCE, NOW_MS);
        assert_eq!(verified, device_proof::verify(&params, NONCE, NOW_MS), "verify is not deterministic");
        if let Ok(device) = verified {
            let sent = params.device.as_ref().map(|d| d.id.as_str());
            assert_eq!(Some(device.device_id.as_str()), sent);
            assert_eq!(device.device_id, device_key::derive_device_id(&device.public_key));
        }
    }

    let identity = DeviceIdentity::from_seed([7; 32]);
    params.device = Some(identity.device_params(&params, NONCE, NOW_MS));
    let verified = device_proof::verify(&params, NONCE, NOW_MS).expect("a correctly signed proof verifies");
    assert_eq!(verified.device_id, identity.device_id());
    assert_eq!(verified.payload_version, PayloadVersion::V3);
    assert_eq!(verified.public_key_b64url, identity.public_key_b64url());
    let elsewhere = device_proof::verify(&params, "another-challenge", NOW_MS);
    assert_eq!(elsewhere, Err(ProofError::NonceMismatch));
}

/// A `device.publicKey` or `device.signature` string: decoded as the
/// verifier decodes them, and re-encoded (the input bytes are also taken
/// as raw key material and must survive encode → decode).
pub fn device_key(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        decode_text(text);
    }
    if !data.is_empty() && data.len() * 4 / 3 + 4 <= device_key::MAX_ENCODED_LEN {
        assert_eq!(device_key::decode(&device_key::encode(data)).as_deref(), Some(data), "base64url round trip");
        let standard = base64::engine::general_purpose::STANDARD.encode(data);
        assert_eq!(device_key::decode(&standard).as_deref(), Some(data), "padded standard base64 is accepted");
    }
    let id = device_key::fingerprint(data);
    assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
}

fn decode_text(text: &str) {
    if let Some(key) = device_key::decode_public_key(text) {
        let encoded = device_key::encode_public_key(&key);
        assert_eq!(device_key::decode_public_key(&encoded), Some(key), "public key round trip");
        if !text.contains("-----BEGIN") {
            assert_eq!(device_key::decode_public_key_bytes(text).as_deref(), Some(&key[..]));
        }
    }
    let signature = device_key::decode_signature(text);
    assert_eq!(signature.is_some(), device_proof::decode_signature(text).is_some());
    if let Some(signature) = signature {
        let encoded = device_key::encode_signature(&signature);
        assert_eq!(device_key::decode_signature(&encoded), Some(signature), "signature round trip");
    }
    if let Some(bytes) = device_key::decode(text) {
        let encoded = device_key::encode(&bytes);
        assert_eq!(device_key::decode(&encoded), Some(bytes), "decode → encode → decode");
    }
}
