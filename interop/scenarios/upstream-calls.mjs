// Scenario: calls through clawgate in upstream mode.
// Connects as gateway-client/backend with the token and the scopes of
// CLAWGATE_SCOPES (comma-separated; default operator.read), then calls each
// method of CLAWGATE_METHODS (comma-separated) with empty params.
// Expect: hello-ok, every call answered ok.
// Prints {hello:{server,auth,policy}, calls:{<method>:{ok,payload|error}}}.

import { armTimeout, createClient, errorToJSON, fail, pass, readEnv, requireEnv } from "./lib.mjs";

const { url, token } = readEnv();
const methods = requireEnv("CLAWGATE_METHODS").split(",").filter(Boolean);
const scopes = (process.env.CLAWGATE_SCOPES ?? "operator.read").split(",").filter(Boolean);

const obs = { hello: null, calls: {} };
armTimeout(() => obs);

let helloSeen = false;
const client = createClient({
  url,
  token,
  scopes,
  onHelloOk: (hello) => {
    if (helloSeen) return;
    helloSeen = true;
    obs.hello = { server: hello.server, auth: hello.auth, policy: hello.policy };
    void run();
  },
  onConnectError: (err) => {
    if (obs.connectError) return;
    obs.connectError = errorToJSON(err);
    fail(obs, `connect failed: ${err?.message ?? err}`);
    client.stop();
  },
  onClose: (code, reason) => {
    if (!helloSeen) {
      obs.close = { code, reason };
      fail(obs, `socket closed before hello-ok (${code} ${reason})`);
      client.stop();
    }
  },
});

async function run() {
  const failed = [];
  for (const method of methods) {
    try {
      obs.calls[method] = { ok: true, payload: await client.request(method, {}) };
    } catch (err) {
      obs.calls[method] = { ok: false, error: errorToJSON(err) };
      failed.push(method);
    }
  }
  client.stop();
  if (failed.length === 0) pass(obs);
  else fail(obs, `failed: ${failed.join(", ")}`);
}

client.start();
