// Scenario: a remote device (behind a trusted proxy) waits for approval.
//
// Run twice with the same CLAWGATE_IDENTITY_FILE (created 0600 on the first
// run, a JSON DeviceIdentity {deviceId, publicKeyPem, privateKeyPem}):
//   CLAWGATE_EXPECT=pairing-required  the client, with the gateway token and
//     the device identity, asks operator.read; the gateway refuses with
//     details.code PAIRING_REQUIRED and a requestId; the client pauses its
//     reconnect loop and is stopped.
//   CLAWGATE_EXPECT=admitted  after the owner approved: the same connect is
//     admitted (rule device-paired) and hello-ok carries a device token.
// Prints {deviceId, expect, hello, status, connectError, reconnectPaused, close}.

import { existsSync, readFileSync, writeFileSync } from "node:fs";

import { armTimeout, createClient, errorToJSON, fail, pass, readEnv, requireEnv } from "./lib.mjs";
import { createDeviceIdentity, hostDeps } from "./device.mjs";

const { url, token } = readEnv();
const identityFile = requireEnv("CLAWGATE_IDENTITY_FILE");
const expect = requireEnv("CLAWGATE_EXPECT");
if (expect !== "pairing-required" && expect !== "admitted") {
  fail({ error: `bad CLAWGATE_EXPECT ${expect}` }, "CLAWGATE_EXPECT must be pairing-required or admitted");
}

let identity;
if (existsSync(identityFile)) {
  identity = JSON.parse(readFileSync(identityFile, "utf8"));
} else {
  identity = createDeviceIdentity();
  writeFileSync(identityFile, JSON.stringify(identity), { mode: 0o600, flag: "wx" });
}

const obs = {
  deviceId: identity.deviceId,
  expect,
  hello: null,
  status: null,
  connectError: null,
  reconnectPaused: null,
  close: null,
};
armTimeout(() => obs);

const debug = process.env.CLAWGATE_INTEROP_DEBUG === "1";
const log = (level) => (message) => {
  if (debug) process.stderr.write(`[gateway-client ${level}] ${message}\n`);
};

let concluded = false;
function conclude() {
  if (concluded) return;
  concluded = true;
  client.stop();
  if (expect === "pairing-required") {
    if (obs.hello) return fail(obs, "admitted before any approval");
    const d = obs.connectError?.details;
    if (d?.code !== "PAIRING_REQUIRED") return fail(obs, `details.code ${JSON.stringify(d?.code)}, expected PAIRING_REQUIRED`);
    if (typeof d?.requestId !== "string" || d.requestId === "") return fail(obs, "no requestId in the refusal");
    return pass(obs);
  }
  if (!obs.hello) return fail(obs, `not admitted: ${JSON.stringify(obs.connectError)}`);
  if (obs.status?.you?.rule !== "device-paired") return fail(obs, `rule ${obs.status?.you?.rule}, expected device-paired`);
  return pass(obs);
}

const client = createClient({
  url,
  token,
  scopes: ["operator.read"],
  clientDisplayName: "interop remote device",
  deviceIdentity: identity,
  hostDeps: {
    ...hostDeps,
    logDebug: log("debug"),
    logError: log("error"),
    loadDeviceAuthToken: () => null,
    storeDeviceAuthToken: () => {},
    clearDeviceAuthToken: () => {},
  },
  onHelloOk: async (hello) => {
    if (concluded || obs.hello) return;
    const auth = { ...hello.auth };
    if (typeof auth.deviceToken === "string") auth.deviceToken = `<${auth.deviceToken.length} chars>`;
    obs.hello = { protocol: hello.protocol, auth };
    try {
      obs.status = await client.request("status", {});
    } catch (err) {
      obs.statusError = errorToJSON(err);
    }
    conclude();
  },
  onConnectError: (err) => {
    if (!obs.connectError) obs.connectError = errorToJSON(err);
  },
  onReconnectPaused: (info) => {
    if (!obs.reconnectPaused) obs.reconnectPaused = info;
  },
  onClose: (code, reason) => {
    if (!obs.close) obs.close = { code, reason };
    // A refused connect reports its error (and any pause) before the close.
    if (!obs.hello) conclude();
  },
});

client.start();
