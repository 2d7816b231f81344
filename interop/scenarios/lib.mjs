// Shared helpers for the interop scenarios.
//
// Every scenario is run as `<node22> interop/scenarios/<name>.mjs`, reads
// CLAWGATE_URL / CLAWGATE_TOKEN, drives the real @openclaw/gateway-client,
// prints exactly one line of JSON on stdout and exits 0 (expectation met) or
// 1 (not met, reason on stderr).
//
// Optional env:
//   CLAWGATE_TIMEOUT_MS    hard timeout for the whole scenario (default 20000)
//   CLAWGATE_INTEROP_DEBUG set to 1 to forward the client's debug/error logs to stderr

import { GatewayClient } from "@openclaw/gateway-client";

export const DEFAULT_TIMEOUT_MS = 20_000;

/** Reads a required env var; finishes with exit 1 when it is missing. */
export function requireEnv(name) {
  const value = process.env[name];
  if (value === undefined || value === "") {
    fail({ error: `missing env ${name}` }, `missing required environment variable ${name}`);
  }
  return value;
}

/** Reads CLAWGATE_URL and CLAWGATE_TOKEN. */
export function readEnv() {
  return {
    url: requireEnv("CLAWGATE_URL"),
    token: requireEnv("CLAWGATE_TOKEN"),
  };
}

let finished = false;

/**
 * Prints the observation as one JSON line and exits.
 * ok=true -> exit 0; ok=false -> reason on stderr, exit 1.
 * Only the first call has any effect.
 */
export function finish(ok, observation, reason) {
  if (finished) return;
  finished = true;
  let line;
  try {
    line = JSON.stringify(observation ?? null);
  } catch (err) {
    line = JSON.stringify({ error: `observation not serialisable: ${String(err)}` });
    ok = false;
  }
  if (!ok) process.stderr.write(`FAIL: ${reason ?? "expectation not met"}\n`);
  process.stdout.write(`${line}\n`, () => process.exit(ok ? 0 : 1));
  // Safety net in case the write callback never fires.
  setTimeout(() => process.exit(ok ? 0 : 1), 1000).unref();
}

export function pass(observation) {
  finish(true, observation);
}

export function fail(observation, reason) {
  finish(false, observation, reason);
}

/**
 * Arms the hard timeout. `snapshot` is called on expiry to get the partial
 * observation to print.
 */
export function armTimeout(snapshot, ms) {
  const raw = Number(process.env.CLAWGATE_TIMEOUT_MS);
  const timeoutMs = ms ?? (Number.isFinite(raw) && raw > 0 ? raw : DEFAULT_TIMEOUT_MS);
  const timer = setTimeout(() => {
    let partial;
    try {
      partial = snapshot?.();
    } catch (err) {
      partial = { error: String(err) };
    }
    fail({ ...(partial ?? {}), timedOut: true }, `scenario timed out after ${timeoutMs} ms`);
  }, timeoutMs);
  return timer;
}

/** Plain-JSON view of an Error thrown/surfaced by the client. */
export function errorToJSON(err) {
  if (err === undefined || err === null) return null;
  if (!(err instanceof Error)) return { message: String(err) };
  const out = { name: err.name, message: err.message };
  for (const key of ["code", "gatewayCode", "details", "retryable", "retryAfterMs", "method", "timeoutMs", "requestSent"]) {
    if (err[key] !== undefined) out[key] = err[key];
  }
  return out;
}

export function sameJSON(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Builds a GatewayClient with the interop defaults:
 *   client id `gateway-client`, mode `backend`, role `operator`,
 *   NO device identity (deviceIdentity: null), protocol v4..v4.
 * Anything in `overrides` (GatewayClientOptions) wins.
 */
export function createClient(overrides = {}) {
  const debug = process.env.CLAWGATE_INTEROP_DEBUG === "1";
  const log = (level) => (message) => {
    if (debug) process.stderr.write(`[gateway-client ${level}] ${message}\n`);
  };
  return new GatewayClient({
    clientName: "gateway-client",
    mode: "backend",
    role: "operator",
    clientVersion: "clawgate-interop",
    platform: "linux",
    minProtocol: 4,
    maxProtocol: 4,
    // null (not undefined) = never load or create a device identity: the
    // connect params then carry no `device` block at all.
    deviceIdentity: null,
    hostDeps: { logDebug: log("debug"), logError: log("error") },
    ...overrides,
  });
}

/**
 * Connect once with `overrides` (GatewayClientOptions, as for createClient)
 * and stop the client after its first outcome, so it never keeps
 * reconnecting. Resolves {hello: {protocol, auth}, status} when admitted
 * (after calling `status`), or {error, close, reconnectPaused} when refused.
 */
export function connectOnce(overrides) {
  return new Promise((resolve) => {
    let done = false;
    const outcome = { hello: null, status: null, error: null, close: null, reconnectPaused: null };
    const finishWith = () => {
      if (done) return;
      done = true;
      client.stop();
      resolve(outcome);
    };
    const client = createClient({
      ...overrides,
      onHelloOk: async (hello) => {
        if (done) return;
        outcome.hello = { protocol: hello.protocol, auth: hello.auth };
        try {
          outcome.status = await client.request("status", {});
        } catch (err) {
          outcome.statusError = errorToJSON(err);
        }
        finishWith();
      },
      onConnectError: (err) => {
        if (done || outcome.error) return;
        outcome.error = errorToJSON(err);
      },
      onReconnectPaused: (info) => {
        if (!outcome.reconnectPaused) outcome.reconnectPaused = info;
      },
      onClose: (code, reason) => {
        if (done) return;
        if (!outcome.close) outcome.close = { code, reason };
        if (!outcome.hello) finishWith();
      },
    });
    client.start();
  });
}
