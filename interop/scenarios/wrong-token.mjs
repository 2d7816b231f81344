// Scenario: connect with a wrong shared token (no device identity).
// Observes how the reference client surfaces the rejection: onConnectError
// (GatewayClientRequestError: code/details/...), onReconnectPaused, onClose.
// The client is stopped after the first failure so it can never retry forever.
// Expect: connect error details.code === "AUTH_TOKEN_MISMATCH".
// Prints {connectError, reconnectPaused, close, helloReceived, attempts}.
//
// The wrong token is CLAWGATE_WRONG_TOKEN if set, else CLAWGATE_TOKEN + "-wrong".

import { armTimeout, createClient, errorToJSON, fail, pass, readEnv } from "./lib.mjs";

const EXPECTED_DETAIL_CODE = "AUTH_TOKEN_MISMATCH";
const { url, token } = readEnv();
const wrongToken = process.env.CLAWGATE_WRONG_TOKEN || `${token}-wrong`;

const obs = {
  connectError: null,
  reconnectPaused: null,
  close: null,
  helloReceived: false,
  attempts: 0,
};
armTimeout(() => obs);

let concluded = false;
function conclude() {
  if (concluded) return;
  concluded = true;
  client.stop();
  const detailCode = obs.connectError?.details?.code;
  if (obs.helloReceived) return fail(obs, "connect unexpectedly succeeded with a wrong token");
  if (!obs.connectError) return fail(obs, "no connect error surfaced");
  if (detailCode !== EXPECTED_DETAIL_CODE) {
    return fail(obs, `details.code ${JSON.stringify(detailCode)}, expected ${EXPECTED_DETAIL_CODE}`);
  }
  pass(obs);
}

const client = createClient({
  url,
  token: wrongToken,
  scopes: ["operator.read", "operator.write"],
  onHelloOk: (hello) => {
    obs.helloReceived = true;
    obs.hello = { protocol: hello.protocol, auth: hello.auth };
    conclude();
  },
  onConnectError: (err) => {
    obs.attempts += 1;
    // Keep the first failure; a second one means the client retried.
    if (!obs.connectError) obs.connectError = errorToJSON(err);
    if (obs.attempts > 1) conclude();
  },
  onReconnectPaused: (info) => {
    if (!obs.reconnectPaused) obs.reconnectPaused = info;
  },
  onClose: (code, reason, info) => {
    if (!obs.close) {
      obs.close = {
        code,
        reason,
        info: info ? { ...info, connectError: errorToJSON(info.connectError) } : null,
      };
    }
    // onConnectError and onReconnectPaused always fire before onClose for a
    // rejected connect, so the first close ends the scenario.
    conclude();
  },
});

client.start();
