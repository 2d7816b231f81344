//! Secrets: digests compared in constant time, and fresh random tokens.

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of a secret. Comparing digests compares fixed-length values, so
/// the time taken says nothing about the secret or its length.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    pub fn of(secret: &[u8]) -> Self {
        SecretDigest(Sha256::digest(secret).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretDigest(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time: does `presented` hash to this digest?
    pub fn matches(&self, presented: &[u8]) -> bool {
        let other = Sha256::digest(presented);
        bool::from(self.0.ct_eq(other.as_slice()))
    }
}

impl std::fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretDigest(<redacted>)")
    }
}

/// `n` random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS random source failing is unrecoverable: no secret could be made.
    getrandom::fill(&mut buf).expect("operating system random source unavailable");
    buf
}

/// A 256-bit token, base64url without padding (43 characters).
pub fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A random UUIDv4 string (challenge nonces, connection ids, request ids).
pub fn random_uuid() -> String {
    let [uuid] = random_uuids::<1>();
    uuid
}

/// `N` random UUIDv4 strings from one read of the OS random source (a
/// handshake's nonce and connection id: one syscall instead of two).
pub fn random_uuids<const N: usize>() -> [String; N] {
    let mut bytes = vec![0u8; 16 * N];
    // The OS random source failing is unrecoverable: no secret could be made.
    getrandom::fill(&mut bytes).expect("operating system random source unavailable");
    std::array::from_fn(|i| uuid_v4(bytes[16 * i..16 * (i + 1)].try_into().unwrap_or([0; 16])))
}

/// 16 random bytes as a UUIDv4 string, hex digits written straight into
/// the string (no allocation per byte).
fn uuid_v4(mut b: [u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX[usize::from(x >> 4)] as char);
        s.push(HEX[usize::from(x & 0x0f)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matching() {
        let d = SecretDigest::of(b"correct horse");
        assert!(d.matches(b"correct horse"));
        assert!(!d.matches(b"correct hors"));
        assert!(!d.matches(b""));
        assert_eq!(format!("{d:?}"), "SecretDigest(<redacted>)");
    }

    #[test]
    fn tokens_and_uuids_have_their_shape() {
        let t = random_token();
        assert_eq!(t.len(), 43);
        assert_ne!(t, random_token());
        let u = random_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn a_uuid_is_its_bytes_in_hex_with_the_version_and_variant_set() {
        let bytes = [0xff, 0, 0x12, 0x34, 0xab, 0xcd, 0xff, 0xee, 0xff, 1, 2, 3, 4, 5, 6, 0x7f];
        assert_eq!(uuid_v4(bytes), "ff001234-abcd-4fee-bf01-02030405067f");
        let [a, b] = random_uuids::<2>();
        assert_ne!(a, b);
        assert!([&a, &b].iter().all(|u| u.len() == 36 && &u[14..15] == "4"));
    }
}
