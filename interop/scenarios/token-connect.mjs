// Scenario: shared-token connect without device identity.
// Connects as gateway-client/backend, role operator, scopes read+write, then
// calls `health` and `status`.
// Expect: hello-ok protocol 4, auth.scopes exactly ["operator.read","operator.write"],
// both requests answered ok.
// Prints {hello:{protocol,server,auth,policy}, health, status}.

import { armTimeout, createClient, errorToJSON, fail, pass, readEnv, sameJSON } from "./lib.mjs";

const EXPECTED_SCOPES = ["operator.read", "operator.write"];
const { url, token } = readEnv();

const obs = { hello: null, health: null, status: null };
armTimeout(() => obs);

let helloSeen = false;
const client = createClient({
  url,
  token,
  scopes: EXPECTED_SCOPES,
  onHelloOk: (hello) => {
    if (helloSeen) return; // a reconnect would re-fire this; only the first counts
    helloSeen = true;
    obs.hello = {
      protocol: hello.protocol,
      server: hello.server,
      auth: hello.auth,
      policy: hello.policy,
    };
    void runRequests();
  },
  onConnectError: (err) => {
    // Report the first error; stop() below re-enters here with "gateway client stopped".
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

async function call(method) {
  try {
    return { ok: true, payload: await client.request(method, {}) };
  } catch (err) {
    return { ok: false, error: errorToJSON(err) };
  }
}

async function runRequests() {
  const health = await call("health");
  const status = await call("status");
  obs.health = health.ok ? health.payload : { error: health.error };
  obs.status = status.ok ? status.payload : { error: status.error };
  client.stop();

  const problems = [];
  if (obs.hello.protocol !== 4) problems.push(`hello-ok protocol ${obs.hello.protocol}, expected 4`);
  const scopes = obs.hello.auth?.scopes;
  if (!sameJSON(scopes, EXPECTED_SCOPES)) {
    problems.push(`auth.scopes ${JSON.stringify(scopes)}, expected ${JSON.stringify(EXPECTED_SCOPES)}`);
  }
  if (!health.ok) problems.push(`health failed: ${health.error?.message}`);
  if (!status.ok) problems.push(`status failed: ${status.error?.message}`);

  if (problems.length === 0) pass(obs);
  else fail(obs, problems.join("; "));
}

client.start();
