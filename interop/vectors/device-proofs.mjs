// Device-proof vectors: the judge for clawgate's device-proof verifier.
//
// Run: <node22> interop/vectors/device-proofs.mjs
// Prints ONE JSON document on stdout:
//   { "nowMs": <server clock for every case>,
//     "nonce": "<this socket's challenge nonce>",
//     "cases": [ { "name", "connectParams", "expected": "ok" | "<DEVICE_AUTH_* code>",
//                  "expectedDeviceId"? , "note"? } ] }
//
// Connect params of the "real" cases are assembled by @openclaw/gateway-client's
// own GatewayClient (the code path its connect handshake runs, fed the
// challenge nonce and ts), signed with node:crypto Ed25519. Every signature is
// then re-checked here against the package's exported
// buildDeviceAuthPayloadV3 / buildDeviceAuthPayload, so the vectors fail loudly
// if the client and the payload builders ever disagree. Variants (v2, tampered
// fields, other encodings) are derived from those params by hand.
// Key material and the nonce are fresh on every run. Exit 1 on any self-check failure.

import { createPublicKey, randomBytes, randomUUID, verify } from "node:crypto";
import { GatewayClient, buildDeviceAuthPayload, buildDeviceAuthPayloadV3 } from "@openclaw/gateway-client";
import {
  createDeviceIdentity,
  hostDeps,
  publicKeyRawBase64UrlFromPem,
  publicKeyRawFromPem,
  signDevicePayload,
} from "../scenarios/device.mjs";

const SKEW_MS = 120_000;
const nowMs = Date.now();
const nonce = randomUUID();
const identity = createDeviceIdentity();
const otherIdentity = createDeviceIdentity();

/** Plain JSON, as the params go on the wire (undefined members dropped). */
const wire = (value) => JSON.parse(JSON.stringify(value));

/**
 * Connect params exactly as GatewayClient builds them when the challenge
 * carries `challengeNonce` and `challengeTs` (GatewayClient.buildConnectPlan
 * → assembleConnectParams).
 */
function realClientParams(options, { challengeNonce = nonce, challengeTs = nowMs, device = identity } = {}) {
  const client = new GatewayClient({
    url: "ws://127.0.0.1:9",
    clientName: "cli",
    mode: "cli",
    clientVersion: "2026.9.1",
    platform: "linux",
    minProtocol: 4,
    maxProtocol: 4,
    deviceIdentity: device,
    hostDeps,
    ...options,
  });
  if (typeof client.assembleConnectParams !== "function") {
    throw new Error("GatewayClient.assembleConnectParams is gone: update realClientParams for this client version");
  }
  const role = options.role ?? "operator";
  return wire(client.assembleConnectParams({ role, nonce: challengeNonce, signedAtMs: challengeTs }).params);
}

/** The fields of a payload, read back from connect params like the server does. */
function payloadFields(params) {
  const auth = params.auth ?? {};
  return {
    deviceId: params.device.id,
    clientId: params.client.id,
    clientMode: params.client.mode,
    role: params.role ?? "operator",
    scopes: params.scopes ?? [],
    signedAtMs: params.device.signedAt,
    token: auth.token ?? auth.deviceToken ?? auth.bootstrapToken ?? "",
    nonce: params.device.nonce.trim(),
    platform: params.client.platform,
    deviceFamily: params.client.deviceFamily,
  };
}

function verifies(publicKeyPem, payload, signatureB64) {
  return verify(null, Buffer.from(payload, "utf8"), createPublicKey(publicKeyPem), Buffer.from(signatureB64, "base64url"));
}

/** Self-check: which payload version, if any, the params' signature covers. */
function signedVersion(params, publicKeyPem) {
  const fields = payloadFields(params);
  if (verifies(publicKeyPem, buildDeviceAuthPayloadV3(fields), params.device.signature)) return "v3";
  if (verifies(publicKeyPem, buildDeviceAuthPayload(fields), params.device.signature)) return "v2";
  return null;
}

/** Re-sign params (after edits) over the payload of `version`, with `device`'s key. */
function resign(params, { version = "v3", device = identity, fields = {} } = {}) {
  const f = { ...payloadFields(params), ...fields };
  const payload = version === "v3" ? buildDeviceAuthPayloadV3(f) : buildDeviceAuthPayload(f);
  params.device.signature = signDevicePayload(device.privateKeyPem, payload);
  return params;
}

const cases = [];
const problems = [];

/**
 * Adds a case. `selfCheck` is the payload version the signature must cover
 * ("v3" / "v2") or null when it must not verify at all; undefined skips the
 * check (the case fails before the signature matters).
 */
function add(name, connectParams, expected, { selfCheck, note, deviceId } = {}) {
  if (selfCheck !== undefined) {
    const got = signedVersion(connectParams, identity.publicKeyPem);
    if (got !== selfCheck) problems.push(`${name}: signature covers ${got}, expected ${selfCheck}`);
  }
  const entry = { name, connectParams, expected };
  if (expected === "ok") entry.expectedDeviceId = deviceId ?? identity.deviceId;
  if (note) entry.note = note;
  cases.push(entry);
}

const SCOPES = ["operator.read", "operator.write"];
const base = () =>
  realClientParams({
    role: "operator",
    scopes: SCOPES,
    token: "shared-token-123",
    platform: "Linux ",
    deviceFamily: " Desktop",
  });

// --- accepted -------------------------------------------------------------

add("v3-ok", base(), "ok", {
  selfCheck: "v3",
  note: "real client; platform 'Linux ' and deviceFamily ' Desktop' are signed normalized ('linux', 'desktop')",
});

add("v2-ok", resign(base(), { version: "v2" }), "ok", {
  selfCheck: "v2",
  note: "same params, signature over the legacy v2 payload (no platform/deviceFamily)",
});

add("no-token-ok", realClientParams({ role: "operator", scopes: SCOPES }), "ok", {
  selfCheck: "v3",
  note: "no auth block at all; the signed token is ''",
});

add("default-scopes-ok", realClientParams({ token: "shared-token-123" }), "ok", {
  selfCheck: "v3",
  note: "client sends its default scopes ['operator.admin'] and role 'operator'",
});

add("device-token-option-ok", realClientParams({ role: "operator", scopes: SCOPES, deviceToken: "dev-token-xyz" }), "ok", {
  selfCheck: "v3",
  note: "real client with a deviceToken: it sends auth.token AND auth.deviceToken, both the device token",
});

{
  const p = base();
  p.auth = { deviceToken: "dev-token-only" };
  add("device-token-only-ok", resign(p), "ok", {
    selfCheck: "v3",
    note: "auth carries only deviceToken; the server must fall back to it as the signed token",
  });
}

add("bootstrap-token-ok", realClientParams({ role: "operator", scopes: SCOPES, bootstrapToken: "boot-token-1" }), "ok", {
  selfCheck: "v3",
  note: "real client with only a bootstrap token: auth.bootstrapToken is the signed token",
});

add(
  "node-role-ok",
  realClientParams({ clientName: "node-host", mode: "node", role: "node", scopes: [], platform: "darwin", deviceFamily: "Mac" }),
  "ok",
  { selfCheck: "v3", note: "role node, empty scopes" },
);

add("skew-boundary-past-ok", realClientParams({ role: "operator", scopes: SCOPES }, { challengeTs: nowMs - SKEW_MS }), "ok", {
  selfCheck: "v3",
  note: "signedAt = now - 120000 exactly",
});

add("skew-boundary-future-ok", realClientParams({ role: "operator", scopes: SCOPES }, { challengeTs: nowMs + SKEW_MS }), "ok", {
  selfCheck: "v3",
  note: "signedAt = now + 120000 exactly",
});

{
  const p = base();
  p.device.publicKey = identity.publicKeyPem;
  add("pem-public-key-ok", p, "ok", { selfCheck: "v3", note: "device.publicKey as an SPKI PEM string" });
}

{
  const p = base();
  p.device.publicKey = publicKeyRawFromPem(identity.publicKeyPem).toString("base64");
  add("standard-base64-public-key-ok", p, "ok", { selfCheck: "v3", note: "device.publicKey in padded standard base64" });
}

// --- refused, in the server's check order ------------------------------------

{
  const p = base();
  p.device.id = otherIdentity.deviceId;
  add("wrong-device-id", resign(p), "DEVICE_AUTH_DEVICE_ID_MISMATCH", {
    note: "device.id is another key's fingerprint (signature covers that id)",
  });
}

{
  const p = base();
  p.device.publicKey = "not-a-key";
  add("undecodable-public-key", p, "DEVICE_AUTH_DEVICE_ID_MISMATCH", { note: "a key that does not decode counts as an id mismatch" });
}

{
  const p = realClientParams({ role: "operator", scopes: SCOPES }, { challengeTs: nowMs - SKEW_MS - 1000 });
  p.device.id = otherIdentity.deviceId;
  add("order-id-before-skew", p, "DEVICE_AUTH_DEVICE_ID_MISMATCH", { note: "wrong id and stale: the id check comes first" });
}

add("stale-signed-at", realClientParams({ role: "operator", scopes: SCOPES }, { challengeTs: nowMs - 121_000 }), "DEVICE_AUTH_SIGNATURE_EXPIRED", {
  selfCheck: "v3",
  note: "signedAt = now - 121 s, validly signed",
});

add("future-signed-at", realClientParams({ role: "operator", scopes: SCOPES }, { challengeTs: nowMs + 121_000 }), "DEVICE_AUTH_SIGNATURE_EXPIRED", {
  selfCheck: "v3",
  note: "signedAt = now + 121 s, validly signed",
});

add(
  "skew-boundary-past-plus-one",
  realClientParams({ role: "operator", scopes: SCOPES }, { challengeTs: nowMs - SKEW_MS - 1 }),
  "DEVICE_AUTH_SIGNATURE_EXPIRED",
  { selfCheck: "v3", note: "signedAt = now - 120001" },
);

add(
  "order-skew-before-nonce",
  realClientParams({ role: "operator", scopes: SCOPES }, { challengeTs: nowMs - 121_000, challengeNonce: randomUUID() }),
  "DEVICE_AUTH_SIGNATURE_EXPIRED",
  { selfCheck: "v3", note: "stale and validly signed for another challenge: the skew check comes first" },
);

{
  const p = base();
  p.device.nonce = "   ";
  add("blank-nonce", resign(p), "DEVICE_AUTH_NONCE_REQUIRED", { note: "schema-valid but blank after trim" });
}

add("nonce-mismatch", realClientParams({ role: "operator", scopes: SCOPES }, { challengeNonce: randomUUID() }), "DEVICE_AUTH_NONCE_MISMATCH", {
  selfCheck: "v3",
  note: "validly signed for another socket's challenge",
});

{
  const p = base();
  p.scopes = [...SCOPES, "operator.admin"];
  add("scopes-differ-from-signed", p, "DEVICE_AUTH_SIGNATURE_INVALID", {
    selfCheck: null,
    note: "signed for read+write, sends read+write+admin",
  });
}

{
  const p = base();
  p.scopes = [...SCOPES].reverse();
  add("scopes-reordered", p, "DEVICE_AUTH_SIGNATURE_INVALID", { selfCheck: null, note: "scopes are signed in the order sent" });
}

{
  const p = base();
  p.auth.token = "another-token";
  add("token-differs-from-signed", p, "DEVICE_AUTH_SIGNATURE_INVALID", { selfCheck: null });
}

{
  const p = base();
  p.client.platform = "darwin";
  add("platform-differs-from-signed", p, "DEVICE_AUTH_SIGNATURE_INVALID", {
    selfCheck: null,
    note: "v3 covers platform; v2 fallback does not match a v3 signature",
  });
}

{
  const p = base();
  p.role = "node";
  add("role-differs-from-signed", p, "DEVICE_AUTH_SIGNATURE_INVALID", { selfCheck: null });
}

{
  const p = base();
  p.device.signature = randomBytes(64).toString("base64url");
  add("garbage-signature", p, "DEVICE_AUTH_SIGNATURE_INVALID", { selfCheck: null, note: "64 random bytes" });
}

{
  const p = base();
  p.device.signature = "not a signature";
  add("undecodable-signature", p, "DEVICE_AUTH_SIGNATURE_INVALID", {});
}

add(
  "signature-by-another-key",
  resign(base(), { device: otherIdentity }),
  "DEVICE_AUTH_SIGNATURE_INVALID",
  { selfCheck: null, note: "id and publicKey of one key, signature by another over the same payload" },
);

// Sanity: the helper's wire key is what the client put on the wire.
if (base().device.publicKey !== publicKeyRawBase64UrlFromPem(identity.publicKeyPem)) {
  problems.push("device.publicKey is not the raw base64url key");
}

if (problems.length > 0) {
  process.stderr.write(`device-proofs self-check failed:\n  ${problems.join("\n  ")}\n`);
  process.exit(1);
}

process.stdout.write(`${JSON.stringify({ nowMs, nonce, cases }, null, 2)}\n`);
