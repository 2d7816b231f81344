// Wait until an OpenClaw gateway on loopback answers `health`, then print its
// payload as one JSON line and exit 0 (exit 1 at the deadline).
//
//   OPENCLAW_GATEWAY_TOKEN=T node interop/openclaw/health.mjs --port P [--timeout-ms 90000]
//
// Connects as OpenClaw's local backend client (gateway-client/backend, token,
// no device, scopes ["operator.read"]). Refused TCP connects and the
// "gateway starting" refusal (close 1013) are retried every 500 ms.
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, 'cli/node_modules/openclaw/package.json'));
const { WebSocket } = require('ws');

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const port = Number(arg('--port'));
const deadline = Date.now() + Number(arg('--timeout-ms', '90000'));
const token = process.env.OPENCLAW_GATEWAY_TOKEN;
if (!port || !token) {
  console.error('usage: OPENCLAW_GATEWAY_TOKEN=T node health.mjs --port P [--timeout-ms N]');
  process.exit(2);
}

function attempt() {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
    const done = (result) => {
      try { ws.terminate(); } catch {}
      resolve(result);
    };
    const timer = setTimeout(() => done({ ok: false, why: 'timeout' }), 10000);
    ws.on('error', (e) => { clearTimeout(timer); done({ ok: false, why: String(e.code || e) }); });
    ws.on('close', (code, reason) => { clearTimeout(timer); done({ ok: false, why: `close ${code} ${reason}` }); });
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      if (frame.type === 'event' && frame.event === 'connect.challenge') {
        ws.send(JSON.stringify({
          type: 'req', id: 'connect', method: 'connect',
          params: {
            minProtocol: 4, maxProtocol: 4,
            client: { id: 'gateway-client', version: 'clawgate-test', platform: process.platform, mode: 'backend', instanceId: randomUUID() },
            role: 'operator', scopes: ['operator.read'], caps: [], auth: { token },
          },
        }));
      } else if (frame.type === 'res' && frame.id === 'connect') {
        if (!frame.ok) { clearTimeout(timer); done({ ok: false, why: JSON.stringify(frame.error) }); return; }
        ws.send(JSON.stringify({ type: 'req', id: 'health', method: 'health', params: {} }));
      } else if (frame.type === 'res' && frame.id === 'health') {
        clearTimeout(timer);
        done(frame.ok ? { ok: true, payload: frame.payload } : { ok: false, why: JSON.stringify(frame.error) });
      }
    });
  });
}

let last = '';
while (Date.now() < deadline) {
  const r = await attempt();
  if (r.ok) {
    console.log(JSON.stringify(r.payload));
    process.exit(0);
  }
  last = r.why;
  await new Promise((res) => setTimeout(res, 500));
}
console.error(`health.mjs: no health answer from 127.0.0.1:${port} before the deadline (last: ${last})`);
process.exit(1);
