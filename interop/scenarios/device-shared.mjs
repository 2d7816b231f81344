// Scenario: two installs of one device identity, reconnecting alternately.
//
// Installs A and B share one Ed25519 identity but each keeps its own device
// token (its own hostDeps token store, as two processes or machines would).
// They take turns connecting from loopback, CLAWGATE_ROUNDS times (default
// 20). Every third pair of turns both connect with the gateway token, which
// mints a new device token for that install; every other turn the install
// connects with only its stored device token. A token minted for one
// install must never knock out the other's: no turn may see
// AUTH_DEVICE_TOKEN_MISMATCH (the reference client stops reconnecting for
// good on it), every turn is admitted, and a device-token turn gets its own
// token echoed in hello-ok with auth.method "device-token".
// Prints {deviceId, rounds, turns: [...]}.

import { armTimeout, connectOnce, errorToJSON, fail, pass, readEnv } from "./lib.mjs";
import { createDeviceIdentity, hostDeps } from "./device.mjs";

const READ = "operator.read";
const { url, token } = readEnv();
const ROUNDS = Number(process.env.CLAWGATE_ROUNDS ?? 20);
const identity = createDeviceIdentity();
const installs = { A: { stored: null }, B: { stored: null } };

const obs = { deviceId: identity.deviceId, rounds: ROUNDS, turns: [] };
armTimeout(() => obs, 60_000);

/** Connect once as `install`; resolves {hello, status, error, close}. */
function attempt(install, useGatewayToken) {
  return connectOnce({
    url,
    token: useGatewayToken ? token : undefined,
    scopes: [READ],
    deviceIdentity: identity,
    hostDeps: {
      ...hostDeps,
      loadDeviceAuthToken: () => install.stored,
      storeDeviceAuthToken: ({ token: minted, scopes }) => {
        install.stored = { token: minted, scopes };
      },
      clearDeviceAuthToken: () => {
        install.stored = null;
      },
    },
  });
}

async function main() {
  const problems = [];
  for (let round = 0; round < ROUNDS; round++) {
    const name = round % 2 === 0 ? "A" : "B";
    const install = installs[name];
    const useGatewayToken = install.stored === null || round % 6 < 2;
    const presented = useGatewayToken ? null : install.stored.token;
    const outcome = await attempt(install, useGatewayToken);
    const auth = outcome.hello?.auth ?? null;
    const turn = {
      round,
      install: name,
      with: useGatewayToken ? "gateway-token" : "device-token",
      admitted: outcome.hello !== null,
      method: auth?.method ?? null,
      echoed: presented !== null && auth?.deviceToken === presented,
      rule: outcome.status?.you?.rule ?? null,
      code: outcome.error?.details?.code ?? null,
    };
    obs.turns.push(turn);
    if (turn.code === "AUTH_DEVICE_TOKEN_MISMATCH") problems.push(`round ${round} (${name}): AUTH_DEVICE_TOKEN_MISMATCH`);
    if (!turn.admitted) problems.push(`round ${round} (${name}) refused: ${JSON.stringify(outcome.error ?? outcome.close)}`);
    if (turn.with === "device-token" && turn.admitted && (!turn.echoed || turn.method !== "device-token")) {
      problems.push(`round ${round} (${name}): device-token turn got method ${turn.method}, echoed ${turn.echoed}`);
    }
    if (turn.with === "gateway-token" && turn.admitted && turn.method !== "token") {
      problems.push(`round ${round} (${name}): gateway-token turn got method ${turn.method}`);
    }
  }
  if (problems.length === 0) pass(obs);
  else fail(obs, problems.join("; "));
}

main().catch((err) => fail({ ...obs, error: errorToJSON(err) }, `scenario threw: ${err?.message ?? err}`));
