//! Device proof: every check in order, the lenient encodings, the strict cryptography.

use super::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use clawgate_protocol::device_key::ED25519_SPKI_PREFIX;
use clawgate_protocol::AuthParams;
use ed25519_dalek::{Signer, SigningKey, Verifier};
use serde_json::{json, Value};

const NOW: u64 = 1_760_000_000_000;
const NONCE: &str = "7f0c1a4e-2b9d-4c51-9a7e-0e1d2c3b4a59";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn raw_b64url(k: &SigningKey) -> String {
    URL_SAFE_NO_PAD.encode(k.verifying_key().to_bytes())
}

fn id_of(k: &SigningKey) -> String {
    derive_device_id(&k.verifying_key().to_bytes())
}

/// Connect params as the reference client sends them, signed over v3.
struct Case {
    signer: SigningKey,
    id: String,
    public_key: String,
    signed_at: u64,
    nonce: String,
    scopes: Vec<String>,
    auth: Value,
    version: PayloadVersion,
    signature: Option<String>,
}

impl Case {
    fn new() -> Case {
        let signer = key(7);
        Case {
            id: id_of(&signer),
            public_key: raw_b64url(&signer),
            signer,
            signed_at: NOW,
            nonce: NONCE.to_owned(),
            scopes: vec!["operator.read".into(), "operator.write".into()],
            auth: json!({"token": "shared-secret"}),
            version: PayloadVersion::V3,
            signature: None,
        }
    }

    fn token(&self) -> String {
        let auth: Option<AuthParams> = serde_json::from_value(self.auth.clone()).unwrap();
        signature_token(auth.as_ref()).to_owned()
    }

    fn payload(&self) -> String {
        let token = self.token();
        let f = DeviceAuthFields {
            device_id: &self.id,
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes: &self.scopes,
            signed_at_ms: self.signed_at,
            token: &token,
            nonce: self.nonce.trim(),
            platform: Some(" Linux "),
            device_family: Some("Desktop"),
        };
        match self.version {
            PayloadVersion::V3 => payload_v3(&f),
            PayloadVersion::V2 => payload_v2(&f),
        }
    }

    fn signature(&self) -> String {
        self.signature
            .clone()
            .unwrap_or_else(|| URL_SAFE_NO_PAD.encode(self.signer.sign(self.payload().as_bytes()).to_bytes()))
    }

    fn params(&self) -> ConnectParams {
        let v = json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "cli", "version": "1.0.0", "platform": " Linux ",
                       "deviceFamily": "Desktop", "mode": "cli"},
            "role": "operator",
            "scopes": self.scopes,
            "auth": self.auth,
            "device": {"id": self.id, "publicKey": self.public_key,
                       "signature": self.signature(), "signedAt": self.signed_at,
                       "nonce": self.nonce}
        });
        ConnectParams::parse(Some(&v)).unwrap()
    }

    fn verify_at(&self, now: u64) -> Result<VerifiedDevice, ProofError> {
        verify(&self.params(), NONCE, now)
    }

    fn verify(&self) -> Result<VerifiedDevice, ProofError> {
        self.verify_at(NOW)
    }
}

#[test]
fn v3_proof_is_accepted() {
    let case = Case::new();
    let ok = case.verify().unwrap();
    assert_eq!(ok.device_id, case.id);
    assert_eq!(ok.public_key, case.signer.verifying_key().to_bytes());
    assert_eq!(ok.public_key_b64url, raw_b64url(&case.signer));
    assert_eq!(ok.payload_version, PayloadVersion::V3);
    assert_eq!(ok.device_id.len(), 64);
}

#[test]
fn v2_proof_is_accepted() {
    let mut case = Case::new();
    case.version = PayloadVersion::V2;
    assert_eq!(case.verify().unwrap().payload_version, PayloadVersion::V2);
}

#[test]
fn token_source_order() {
    let t = |v: Value| {
        let a: AuthParams = serde_json::from_value(v).unwrap();
        signature_token(Some(&a)).to_owned()
    };
    assert_eq!(signature_token(None), "");
    assert_eq!(t(json!({})), "");
    assert_eq!(t(json!({"password": "pw"})), "");
    assert_eq!(t(json!({"bootstrapToken": "b"})), "b");
    assert_eq!(t(json!({"deviceToken": "d", "bootstrapToken": "b"})), "d");
    assert_eq!(t(json!({"token": " t ", "deviceToken": "d"})), " t ");
    assert_eq!(t(json!({"token": "", "deviceToken": "d"})), "");

    for auth in [
        json!({"deviceToken": "dev-tok"}),
        json!({"bootstrapToken": "boot"}),
        json!({"token": " spaced "}),
        Value::Null,
    ] {
        let mut case = Case::new();
        case.auth = auth;
        assert!(case.verify().is_ok(), "{:?}", case.auth);
    }
}

#[test]
fn signing_a_different_token_fails() {
    let mut case = Case::new();
    case.signature = Some(case.signature());
    case.auth = json!({"token": "other"});
    assert_eq!(case.verify(), Err(ProofError::SignatureInvalid));
}

#[test]
fn errors_come_in_reference_order() {
    // Everything wrong at once: each fix reveals the next check.
    let mut case = Case::new();
    let good_sig = case.signature();
    case.id = "0".repeat(64);
    case.signed_at = NOW - MAX_SIGNATURE_SKEW_MS - 1;
    case.nonce = "   ".into();
    case.signature = Some(URL_SAFE_NO_PAD.encode([0u8; 64]));
    assert_eq!(case.verify(), Err(ProofError::DeviceIdMismatch));

    case.id = id_of(&case.signer);
    assert_eq!(case.verify(), Err(ProofError::SignatureExpired));

    case.signed_at = NOW;
    assert_eq!(case.verify(), Err(ProofError::NonceRequired));

    case.nonce = "another-nonce".into();
    assert_eq!(case.verify(), Err(ProofError::NonceMismatch));

    case.nonce = NONCE.into();
    assert_eq!(case.verify(), Err(ProofError::SignatureInvalid));

    case.signature = Some(good_sig);
    assert!(case.verify().is_ok());
}

#[test]
fn undecodable_key_is_an_id_mismatch() {
    for bad in ["not base64!", "AAAA", &"A".repeat(5000)] {
        let mut case = Case::new();
        case.public_key = bad.to_owned();
        assert_eq!(case.verify(), Err(ProofError::DeviceIdMismatch), "{bad}");
    }
}

#[test]
fn a_short_key_whose_id_matches_is_an_invalid_key() {
    let mut case = Case::new();
    let short = [7u8; 31];
    case.public_key = URL_SAFE_NO_PAD.encode(short);
    case.id = clawgate_protocol::device_key::fingerprint(&short);
    assert_eq!(case.verify(), Err(ProofError::PublicKeyInvalid));
    // The same key under another id is still a mismatch.
    case.id = "0".repeat(64);
    assert_eq!(case.verify(), Err(ProofError::DeviceIdMismatch));
}

#[test]
fn skew_boundary() {
    let mut case = Case::new();
    case.signed_at = NOW - MAX_SIGNATURE_SKEW_MS;
    assert!(case.verify().is_ok());
    case.signed_at = NOW + MAX_SIGNATURE_SKEW_MS;
    assert!(case.verify().is_ok());
    case.signed_at = NOW - MAX_SIGNATURE_SKEW_MS - 1;
    assert_eq!(case.verify(), Err(ProofError::SignatureExpired));
    case.signed_at = NOW + MAX_SIGNATURE_SKEW_MS + 1;
    assert_eq!(case.verify(), Err(ProofError::SignatureExpired));
    // Near the epoch, the subtraction must not underflow.
    case.signed_at = 0;
    assert!(case.verify_at(MAX_SIGNATURE_SKEW_MS).is_ok());
    assert_eq!(case.verify_at(MAX_SIGNATURE_SKEW_MS + 1), Err(ProofError::SignatureExpired));
}

#[test]
fn nonce_is_trimmed_like_openclaw() {
    let mut case = Case::new();
    case.nonce = format!(" {NONCE}\t");
    assert!(case.verify().is_ok());
}

#[test]
fn pem_public_key_is_accepted() {
    let mut case = Case::new();
    let mut der = ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(&case.signer.verifying_key().to_bytes());
    let b64 = STANDARD.encode(&der);
    case.public_key = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
    let ok = case.verify().unwrap();
    assert_eq!(ok.public_key_b64url, raw_b64url(&case.signer));

    // Wrong algorithm prefix (X25519 is 1.3.101.110) is refused.
    der[8] = 0x6e;
    case.public_key = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----", STANDARD.encode(&der));
    assert_eq!(case.verify(), Err(ProofError::DeviceIdMismatch));
}

#[test]
fn standard_and_padded_base64_are_accepted() {
    let raw = key(7).verifying_key().to_bytes();
    for text in [
        STANDARD.encode(raw),
        URL_SAFE.encode(raw),
        URL_SAFE_NO_PAD.encode(raw),
        STANDARD.encode(raw).trim_end_matches('=').to_owned(),
    ] {
        let mut case = Case::new();
        case.public_key = text.clone();
        let ok = case.verify().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(ok.public_key_b64url, URL_SAFE_NO_PAD.encode(raw));
    }

    let mut case = Case::new();
    let sig = case.signer.sign(case.payload().as_bytes()).to_bytes();
    case.signature = Some(STANDARD.encode(sig));
    assert!(case.verify().is_ok());
}

#[test]
fn wrong_length_key_or_signature() {
    assert!(decode_public_key(&URL_SAFE_NO_PAD.encode([1u8; 31])).is_none());
    assert!(decode_public_key(&URL_SAFE_NO_PAD.encode([1u8; 33])).is_none());
    assert!(decode_signature(&URL_SAFE_NO_PAD.encode([1u8; 63])).is_none());
    let mut case = Case::new();
    case.signature = Some(URL_SAFE_NO_PAD.encode([1u8; 65]));
    assert_eq!(case.verify(), Err(ProofError::SignatureInvalid));
}

#[test]
fn signature_by_another_key_fails() {
    let mut case = Case::new();
    let other = key(9);
    case.signature = Some(URL_SAFE_NO_PAD.encode(other.sign(case.payload().as_bytes()).to_bytes()));
    assert_eq!(case.verify(), Err(ProofError::SignatureInvalid));
}

#[test]
fn non_canonical_signature_is_rejected() {
    // L, the order of the Ed25519 base point, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
    ];
    let mut case = Case::new();
    let mut sig = case.signer.sign(case.payload().as_bytes()).to_bytes();
    // S + L still satisfies the group equation, but S ≥ L is non-canonical.
    let mut carry = 0u16;
    for (s, l) in sig[32..].iter_mut().zip(L) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 256 bits");
    case.signature = Some(URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(case.verify(), Err(ProofError::SignatureInvalid));
}

#[test]
fn weak_public_key_is_rejected() {
    // The identity point (y = 1) has small order; with R = identity and
    // S = 0 the plain Ed25519 equation holds for every message.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut case = Case::new();
    case.public_key = URL_SAFE_NO_PAD.encode(identity);
    case.id = derive_device_id(&identity);
    let mut sig = [0u8; 64];
    sig[0] = 1;
    case.signature = Some(URL_SAFE_NO_PAD.encode(sig));
    // The lax check would take it for any message; the strict one refuses.
    let weak = VerifyingKey::from_bytes(&identity).unwrap();
    assert!(weak.verify(case.payload().as_bytes(), &Signature::from_bytes(&sig)).is_ok());
    assert_eq!(case.verify(), Err(ProofError::SignatureInvalid));
}

#[test]
fn missing_device_block() {
    let mut params = Case::new().params();
    params.device = None;
    assert_eq!(verify(&params, NONCE, NOW), Err(ProofError::DeviceMissing));
}

#[test]
fn error_codes_reasons_messages() {
    use ProofError::*;
    let table = [
        (DeviceIdMismatch, "DEVICE_AUTH_DEVICE_ID_MISMATCH", "device-id-mismatch", "device identity mismatch"),
        (SignatureExpired, "DEVICE_AUTH_SIGNATURE_EXPIRED", "device-signature-stale", "device signature expired"),
        (NonceRequired, "DEVICE_AUTH_NONCE_REQUIRED", "device-nonce-missing", "device nonce required"),
        (NonceMismatch, "DEVICE_AUTH_NONCE_MISMATCH", "device-nonce-mismatch", "device nonce mismatch"),
        (SignatureInvalid, "DEVICE_AUTH_SIGNATURE_INVALID", "device-signature", "device signature invalid"),
        (PublicKeyInvalid, "DEVICE_AUTH_PUBLIC_KEY_INVALID", "device-public-key", "device public key invalid"),
    ];
    for (e, code, reason, message) in table {
        assert_eq!(e.details_code(), code);
        assert_eq!(e.reason(), reason);
        assert_eq!(e.message(), message);
        assert_eq!(e.to_string(), message);
    }
}
