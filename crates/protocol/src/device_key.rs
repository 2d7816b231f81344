//! A device's key on the wire: the device id derived from its Ed25519
//! public key, and the text forms of that key and of its signatures. The
//! gateway, the client and the CLI all derive and encode through here, so
//! they cannot disagree.
//!
//! Encoding is always base64url without padding. Decoding is lenient, like
//! OpenClaw's: base64url or standard base64, padded or not, and a PEM SPKI
//! block for a public key.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Longest encoded key or signature the lenient decoder looks at.
pub const MAX_ENCODED_LEN: usize = 4096;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw key follows it.
pub const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// Standard alphabet, padding optional, non-zero trailing bits tolerated
/// (Node's decoder ignores them too; the decoded bytes are what is checked).
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// The device id: lowercase hex SHA-256 of the raw public key (64 characters).
pub fn derive_device_id(public_key: &[u8; 32]) -> String {
    fingerprint(public_key)
}

/// Lowercase hex SHA-256 of any bytes: the device id a key of these bytes
/// would have. A verifier uses it on a key of the wrong length to tell "the
/// id matches, the key is unusable" from "the id does not match".
pub fn fingerprint(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0x0f)] as char);
    }
    out
}

/// The raw public key as `device.publicKey` carries it: base64url, no padding.
pub fn encode_public_key(public_key: &[u8; 32]) -> String {
    encode(public_key)
}

/// A signature as `device.signature` carries it: base64url, no padding.
pub fn encode_signature(signature: &[u8; 64]) -> String {
    encode(signature)
}

/// Any bytes as base64url without padding (the encoding of keys and signatures).
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decode `device.publicKey`: a PEM SPKI Ed25519 key, or the raw 32 bytes
/// in base64url / standard base64, padded or not.
pub fn decode_public_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() > MAX_ENCODED_LEN {
        return None;
    }
    if text.contains("-----BEGIN") {
        return decode_pem_spki(text);
    }
    decode(text)?.try_into().ok()
}

/// The raw bytes of a base64 `device.publicKey`, whatever their length
/// (`None` for PEM or text that is not base64).
pub fn decode_public_key_bytes(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.contains("-----BEGIN") {
        return None;
    }
    decode(text)
}

/// Decode `device.signature` leniently; it must be 64 bytes.
pub fn decode_signature(text: &str) -> Option<[u8; 64]> {
    decode(text.trim())?.try_into().ok()
}

/// base64url or standard base64, with or without padding, at most
/// [`MAX_ENCODED_LEN`] characters. Never empty: text that is nothing but
/// padding (`=`, found by fuzzing) is refused like empty text, so that
/// `decode(encode(decode(t)))` holds for every `t`.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || text.len() > MAX_ENCODED_LEN {
        return None;
    }
    let mapped: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let unpadded = mapped.trim_end_matches('=');
    if unpadded.is_empty() {
        return None;
    }
    LENIENT_B64.decode(unpadded).ok()
}

/// `-----BEGIN PUBLIC KEY-----` … `-----END PUBLIC KEY-----` holding an
/// Ed25519 SubjectPublicKeyInfo.
fn decode_pem_spki(text: &str) -> Option<[u8; 32]> {
    let body = text.strip_prefix("-----BEGIN PUBLIC KEY-----")?.trim_end().strip_suffix("-----END PUBLIC KEY-----")?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = decode(&b64)?;
    if der.len() != ED25519_SPKI_PREFIX.len() + 32 || !der.starts_with(&ED25519_SPKI_PREFIX) {
        return None;
    }
    der[ED25519_SPKI_PREFIX.len()..].try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};

    #[test]
    fn device_id_is_lowercase_hex_sha256() {
        // SHA-256 of 32 zero bytes.
        assert_eq!(derive_device_id(&[0u8; 32]), "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925");
    }

    #[test]
    fn every_base64_spelling_decodes_to_the_same_key() {
        let raw = [7u8; 32];
        for text in [
            STANDARD.encode(raw),
            URL_SAFE.encode(raw),
            URL_SAFE_NO_PAD.encode(raw),
            STANDARD.encode(raw).trim_end_matches('=').to_owned(),
        ] {
            assert_eq!(decode_public_key(&text), Some(raw), "{text}");
        }
        assert_eq!(encode_public_key(&raw), URL_SAFE_NO_PAD.encode(raw));
    }

    #[test]
    fn pem_spki_decodes_only_for_ed25519() {
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&[9u8; 32]);
        let pem =
            |der: &[u8]| format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der));
        assert_eq!(decode_public_key(&pem(&der)), Some([9u8; 32]));
        der[8] = 0x6e; // X25519
        assert_eq!(decode_public_key(&pem(&der)), None);
    }

    #[test]
    fn wrong_lengths_and_oversized_text_are_refused() {
        assert!(decode_public_key(&encode(&[1u8; 31])).is_none());
        assert!(decode_public_key(&encode(&[1u8; 33])).is_none());
        assert!(decode_signature(&encode(&[1u8; 63])).is_none());
        assert_eq!(decode_signature(&encode_signature(&[3u8; 64])), Some([3u8; 64]));
        assert!(decode(&"A".repeat(MAX_ENCODED_LEN + 4)).is_none());
        assert!(decode("").is_none());
    }

    #[test]
    fn padding_alone_decodes_to_nothing_like_empty_text() {
        // Found by fuzzing (fuzz/corpus/device_key/crash-padding-only): "="
        // decoded to zero bytes while "" and encode(&[]) decoded to None.
        for text in ["=", "==", "===", "===="] {
            assert_eq!(decode(text), None, "{text:?}");
            assert_eq!(decode_public_key_bytes(text), None, "{text:?}");
            assert_eq!(decode_signature(text), None, "{text:?}");
        }
        assert_eq!(decode(&encode(&[])), None);
    }
}
