// Scenario: device identity from loopback, then device-token-only reconnects.
//
// 1. The reference client with a fresh Ed25519 device identity (hostDeps
//    from device.mjs) connects from loopback with the gateway token, asking
//    operator.read + operator.write: it is paired silently and hello-ok
//    carries auth.deviceToken (the client hands it to storeDeviceAuthToken).
// 2. A second client with the same identity and ONLY that device token (the
//    client's `deviceToken` option, no shared token) asks operator.read: admitted.
// 3. A third asks operator.read + operator.admin with only the device token:
//    refused with details.code AUTH_SCOPE_MISMATCH.
// Every client is stopped after its first outcome, so none keeps reconnecting.
// Prints {deviceId, first, second, third, stored}.

import { armTimeout, connectOnce, errorToJSON, fail, pass, readEnv } from "./lib.mjs";
import { createDeviceIdentity, hostDeps } from "./device.mjs";

const READ = "operator.read";
const WRITE = "operator.write";
const { url, token } = readEnv();
const identity = createDeviceIdentity();

const obs = { deviceId: identity.deviceId, first: null, second: null, third: null, stored: [] };
armTimeout(() => obs);

const debug = process.env.CLAWGATE_INTEROP_DEBUG === "1";
const log = (level) => (message) => {
  if (debug) process.stderr.write(`[gateway-client ${level}] ${message}\n`);
};

/**
 * Connect once with `options`; resolves with {hello, status} when admitted
 * (after calling `status`) or {error, close} when refused. The client is
 * stopped either way.
 */
function attempt(options) {
  return connectOnce({
    url,
    deviceIdentity: identity,
    hostDeps: {
      ...hostDeps,
      logDebug: log("debug"),
      logError: log("error"),
      loadDeviceAuthToken: () => null,
      storeDeviceAuthToken: ({ deviceId, role, token: stored, scopes }) => {
        obs.stored.push({ deviceId, role, tokenLength: stored?.length ?? 0, scopes });
      },
      clearDeviceAuthToken: () => {},
    },
    ...options,
  });
}

function summary(outcome) {
  return {
    admitted: outcome.hello !== null,
    auth: outcome.hello?.auth ?? null,
    rule: outcome.status?.you?.rule ?? null,
    scopes: outcome.status?.you?.scopes ?? null,
    error: outcome.error,
    close: outcome.close,
    reconnectPaused: outcome.reconnectPaused,
  };
}

async function main() {
  const first = await attempt({ token, scopes: [READ, WRITE] });
  obs.first = summary(first);
  const deviceToken = first.hello?.auth?.deviceToken;
  if (typeof deviceToken !== "string" || deviceToken.length === 0) {
    return fail(obs, "the first connect did not receive hello.auth.deviceToken");
  }
  // The token itself is a secret: keep only that it was there.
  obs.first.auth = { ...obs.first.auth, deviceToken: `<${deviceToken.length} chars>` };

  const second = await attempt({ token: undefined, deviceToken, scopes: [READ] });
  obs.second = summary(second);
  const third = await attempt({ token: undefined, deviceToken, scopes: [READ, "operator.admin"] });
  obs.third = summary(third);

  const problems = [];
  if (obs.first.rule !== "silent-local-pairing") problems.push(`first rule ${obs.first.rule}`);
  if (!obs.second.admitted) problems.push(`second refused: ${JSON.stringify(obs.second.error)}`);
  if (obs.second.rule !== "device-paired") problems.push(`second rule ${obs.second.rule}`);
  if (obs.third.admitted) problems.push("third admitted with more scopes than its token grants");
  if (obs.third.error?.details?.code !== "AUTH_SCOPE_MISMATCH") {
    problems.push(`third details.code ${JSON.stringify(obs.third.error?.details?.code)}`);
  }
  if (problems.length === 0) pass(obs);
  else fail(obs, problems.join("; "));
}

main().catch((err) => fail({ ...obs, error: errorToJSON(err) }, `scenario threw: ${err?.message ?? err}`));
