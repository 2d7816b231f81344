// Scenario: a device behind a trusted (SSO) reverse proxy.
//
// The proxy, not the client, says who the user is, so the client sends no
// gateway token. With the device identity in CLAWGATE_IDENTITY_FILE (created
// 0600 on the first run, a JSON DeviceIdentity {deviceId, publicKeyPem,
// privateKeyPem}), it asks for CLAWGATE_SCOPES (comma-separated):
//   first   the connect with the device and no token: admitted (hello-ok with
//           a device token), or refused (PAIRING_REQUIRED and the like).
//   second  only when the first was admitted with a device token: a connect
//           with ONLY that device token (the client's `deviceToken` option).
// Every client is stopped after its first outcome. The Rust test asserts on
// the observation; the scenario itself only fails when it cannot run.
// Prints {deviceId, first, second}.

import { existsSync, readFileSync, writeFileSync } from "node:fs";

import { armTimeout, connectOnce, errorToJSON, fail, pass, requireEnv } from "./lib.mjs";
import { createDeviceIdentity, hostDeps } from "./device.mjs";

const url = requireEnv("CLAWGATE_URL");
const identityFile = requireEnv("CLAWGATE_IDENTITY_FILE");
const scopes = requireEnv("CLAWGATE_SCOPES").split(",").filter((s) => s !== "");

let identity;
if (existsSync(identityFile)) {
  identity = JSON.parse(readFileSync(identityFile, "utf8"));
} else {
  identity = createDeviceIdentity();
  writeFileSync(identityFile, JSON.stringify(identity), { mode: 0o600, flag: "wx" });
}

const obs = { deviceId: identity.deviceId, first: null, second: null };
armTimeout(() => obs);

const debug = process.env.CLAWGATE_INTEROP_DEBUG === "1";
const log = (level) => (message) => {
  if (debug) process.stderr.write(`[gateway-client ${level}] ${message}\n`);
};

/** Connect once with `options`; resolves with what happened. */
function attempt(options) {
  return connectOnce({
    url,
    clientName: "openclaw-control-ui",
    mode: "webchat",
    clientDisplayName: "interop SSO device",
    scopes,
    deviceIdentity: identity,
    hostDeps: {
      ...hostDeps,
      logDebug: log("debug"),
      logError: log("error"),
      loadDeviceAuthToken: () => null,
      storeDeviceAuthToken: () => {},
      clearDeviceAuthToken: () => {},
    },
    ...options,
  });
}

function summary(outcome) {
  const auth = outcome.hello ? { ...outcome.hello.auth } : null;
  if (typeof auth?.deviceToken === "string") auth.deviceToken = `<${auth.deviceToken.length} chars>`;
  return {
    admitted: outcome.hello !== null,
    auth,
    rule: outcome.status?.you?.rule ?? null,
    scopes: outcome.status?.you?.scopes ?? null,
    error: outcome.error,
    close: outcome.close,
    reconnectPaused: outcome.reconnectPaused,
  };
}

async function main() {
  const first = await attempt({ token: undefined });
  obs.first = summary(first);
  const deviceToken = first.hello?.auth?.deviceToken;
  if (typeof deviceToken === "string" && deviceToken.length > 0) {
    obs.second = summary(await attempt({ token: undefined, deviceToken }));
  }
  pass(obs);
}

main().catch((err) => fail({ ...obs, error: errorToJSON(err) }, `scenario threw: ${err?.message ?? err}`));
