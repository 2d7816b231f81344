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
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
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
}
