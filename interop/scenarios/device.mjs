// Device identity helpers for the interop scenarios and vector generators.
//
// OpenClaw clients keep an Ed25519 key pair as PEM (SPKI public, PKCS#8
// private). On the wire the public key is the raw 32 bytes in base64url
// without padding, the device id is the lowercase hex SHA-256 of those raw
// bytes, and signatures are base64url (reference §3).
//
// `hostDeps` has the shape of @openclaw/gateway-client's
// `GatewayClientHostDeps` signing members, so a scenario connects with a
// device identity like this:
//
//   import { createDeviceIdentity, hostDeps } from "./device.mjs";
//   const client = createClient({ deviceIdentity: createDeviceIdentity(), hostDeps: { ...hostDeps, logDebug } });
//
// Only node:crypto is used; key material is fresh on every call.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from "node:crypto";

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows. */
export const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** Raw 32-byte Ed25519 public key from an SPKI PEM string (or KeyObject). */
export function publicKeyRawFromPem(publicKeyPem) {
  const der = createPublicKey(publicKeyPem).export({ type: "spki", format: "der" });
  if (der.length !== ED25519_SPKI_PREFIX.length + 32 || !der.subarray(0, ED25519_SPKI_PREFIX.length).equals(ED25519_SPKI_PREFIX)) {
    throw new Error("not an Ed25519 SPKI public key");
  }
  return der.subarray(ED25519_SPKI_PREFIX.length);
}

/** `GatewayClientHostDeps.publicKeyRawBase64UrlFromPem`: raw key, base64url, no padding. */
export function publicKeyRawBase64UrlFromPem(publicKeyPem) {
  return publicKeyRawFromPem(publicKeyPem).toString("base64url");
}

/** Lowercase hex SHA-256 of the raw public key. */
export function deviceIdFromPublicKeyPem(publicKeyPem) {
  return createHash("sha256").update(publicKeyRawFromPem(publicKeyPem)).digest("hex");
}

/** `GatewayClientHostDeps.signDevicePayload`: Ed25519 over the UTF-8 payload, base64url. */
export function signDevicePayload(privateKeyPem, payload) {
  return sign(null, Buffer.from(payload, "utf8"), createPrivateKey(privateKeyPem)).toString("base64url");
}

/** A fresh `DeviceIdentity` ({deviceId, publicKeyPem, privateKeyPem}). */
export function createDeviceIdentity() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const publicKeyPem = publicKey.export({ type: "spki", format: "pem" });
  const privateKeyPem = privateKey.export({ type: "pkcs8", format: "pem" });
  return { deviceId: deviceIdFromPublicKeyPem(publicKeyPem), publicKeyPem, privateKeyPem };
}

/** The device-signing members of `GatewayClientHostDeps`. */
export const hostDeps = Object.freeze({ signDevicePayload, publicKeyRawBase64UrlFromPem });
