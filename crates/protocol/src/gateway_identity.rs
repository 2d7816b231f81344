//! The gateway's own proof of identity, so a local client can tell its
//! gateway from another process listening on the same port before it sends
//! a secret. The gateway keeps an Ed25519 key in its state directory and
//! signs each socket's challenge nonce; the signature rides in the
//! `connect.challenge` payload (an extra field, which the event's open
//! payload allows and other clients ignore). A client that can read the
//! state directory checks it against the public half; see
//! docs/threat-model.md ("port squatting").

/// The `connect.challenge` payload field carrying the signature (base64url).
pub const PROOF_FIELD: &str = "gatewayProof";

/// Domain-separated bytes the gateway signs for a challenge nonce: never a
/// valid device-proof payload, so neither signature can stand for the other.
pub fn proof_message(nonce: &str) -> String {
    format!("clawgate-gateway-identity/v1\n{nonce}")
}
