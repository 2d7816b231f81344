// Drive the real OpenClaw Control UI in Debian's Chromium and report what
// happened as one JSON document on stdout. Works against any URL that serves
// the UI: the OpenClaw gateway itself, or clawgate in front of it.
//
//   node interop/browser/control-ui.mjs --url http://127.0.0.1:P/agents \
//        [--token T | env CONTROL_UI_TOKEN] [--screenshot out.png] \
//        [--expect TEXT]... [--timeout-ms 60000] [--observe-ms 10000]
//
// The token is handed to the UI the way `openclaw dashboard` does: as the URL
// fragment `#token=…` (never sent over HTTP); the UI keeps it in
// sessionStorage. The UI then pairs its own fresh device identity.
// Exit 0 when the UI connected, shows no "refresh required", did not
// reconnect during --observe-ms and every --expect text is on the page;
// exit 1 otherwise (the JSON says why); exit 2 on bad arguments.
// Secrets never appear in the output: the token and device tokens are
// replaced by <token>/<deviceToken>.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const { chromium } = createRequire(path.join(here, 'package.json'))('playwright-core');

function parseArgs(argv) {
  const opts = { expect: [], timeoutMs: 60000, observeMs: 10000, token: process.env.CONTROL_UI_TOKEN };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) usage(`${k} needs a value`);
    if (k === '--url') opts.url = v;
    else if (k === '--token') opts.token = v;
    else if (k === '--screenshot') opts.screenshot = v;
    else if (k === '--expect') opts.expect.push(v);
    else if (k === '--timeout-ms') opts.timeoutMs = Number(v);
    else if (k === '--observe-ms') opts.observeMs = Number(v);
    else usage(`unknown argument ${k}`);
  }
  if (!opts.url || !opts.token) usage('--url and a token are required');
  return opts;
}
function usage(why) {
  console.error(`control-ui.mjs: ${why}\nusage: node control-ui.mjs --url URL [--token T] [--screenshot PNG] [--expect TEXT]... [--timeout-ms N] [--observe-ms N]`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
const secrets = new Set([opts.token]);
const redact = (s) => {
  let out = String(s);
  for (const t of secrets) if (t) out = out.split(t).join(t === opts.token ? '<token>' : '<deviceToken>');
  return out;
};

const result = {
  url: opts.url, connected: false, statusText: null, refreshRequired: false, loginFailure: null,
  wsOpens: 0, reconnects: 0, websockets: [], connect: null, hello: null, connectErrors: [], closes: [],
  expect: {}, http: [], consoleErrors: [], pageErrors: [], finalUrl: null, screenshot: opts.screenshot ?? null, elapsedMs: 0,
};
const started = Date.now();

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('request', (req) => {
    const u = new URL(req.url());
    const auth = req.headers()['authorization'];
    const kind = !auth ? 'none' : auth === `Bearer ${opts.token}` ? 'bearer-token' : auth.startsWith('Bearer ') ? 'bearer-other' : 'other';
    result.http.push({ method: req.method(), path: u.pathname, auth: kind });
  });
  page.on('response', (res) => {
    const u = new URL(res.url()).pathname;
    const entry = result.http.findLast((h) => h.path === u && h.status === undefined);
    if (entry) entry.status = res.status();
  });
  page.on('console', (m) => { if (m.type() === 'error') result.consoleErrors.push(redact(m.text()).slice(0, 300)); });
  page.on('pageerror', (e) => result.pageErrors.push(redact(e).slice(0, 300)));
  page.on('websocket', (ws) => {
    result.wsOpens += 1;
    result.websockets.push(ws.url());
    ws.on('framesent', (f) => {
      let frame; try { frame = JSON.parse(String(f.payload)); } catch { return; }
      if (frame.method === 'connect' && !result.connect) {
        const p = frame.params;
        result.connect = { client: p.client, role: p.role, scopes: p.scopes, caps: p.caps, authFields: Object.keys(p.auth ?? {}), device: p.device ? { id: p.device.id, publicKey: p.device.publicKey } : null, locale: p.locale };
      }
    });
    ws.on('framereceived', (f) => {
      let frame; try { frame = JSON.parse(String(f.payload)); } catch { return; }
      if (frame.type !== 'res') return;
      if (frame.payload?.type === 'hello-ok') {
        const h = frame.payload;
        if (h.auth?.deviceToken) secrets.add(h.auth.deviceToken);
        result.hello = {
          server: { version: h.server?.version, buildId: h.server?.buildId, controlUiBuildSource: h.server?.controlUiBuildSource },
          auth: { method: h.auth?.method, role: h.auth?.role, scopes: h.auth?.scopes, deviceToken: Boolean(h.auth?.deviceToken) },
          authMode: h.snapshot?.authMode, tickIntervalMs: h.policy?.tickIntervalMs, methods: h.features?.methods?.length,
        };
      } else if (frame.ok === false && String(frame.id).startsWith('1:')) {
        result.connectErrors.push(JSON.parse(redact(JSON.stringify(frame.error))));
      }
    });
    ws.on('close', () => result.closes.push(Date.now() - started));
  });

  const target = new URL(opts.url);
  target.hash = `token=${encodeURIComponent(opts.token)}`;
  await page.goto(target.href, { timeout: opts.timeoutMs });

  // The UI's own markers: a visually hidden live region says "Connected" /
  // "Refresh required"; a failed login shows the login gate's failure title.
  const readState = () => page.evaluate(() => {
    const text = (sel) => document.querySelector(sel)?.textContent?.trim() ?? null;
    return {
      status: text('.sr-only[role="status"]'),
      refresh: Boolean(document.querySelector('.sidebar-update-card__title')) || text('.gateway-status__label') === 'Refresh required',
      login: text('.login-gate__failure-title'),
    };
  });
  const deadline = started + opts.timeoutMs;
  let state = await readState();
  while (Date.now() < deadline && state.status !== 'Connected' && !state.refresh && !state.login) {
    await page.waitForTimeout(250);
    state = await readState();
  }
  const opensAtConnect = result.wsOpens;
  if (state.status === 'Connected') await page.waitForTimeout(Math.min(opts.observeMs, Math.max(0, deadline - Date.now())));
  state = await readState();
  result.statusText = state.status;
  result.refreshRequired = state.refresh;
  result.loginFailure = state.login;
  result.connected = state.status === 'Connected' && result.hello !== null;
  result.reconnects = result.wsOpens - Math.min(1, result.wsOpens);
  result.reconnectsWhileObserved = result.wsOpens - opensAtConnect;

  for (const text of opts.expect) {
    let found = false;
    while (!found) {
      found = await page.evaluate((t) => document.body.innerText.includes(t), text);
      if (found || Date.now() >= deadline) break;
      await page.waitForTimeout(250);
    }
    result.expect[text] = found;
  }
  result.finalUrl = redact(page.url());
  if (opts.screenshot) await page.screenshot({ path: opts.screenshot });
} catch (e) {
  result.error = redact(e?.message ?? e).slice(0, 500);
} finally {
  await browser.close();
}
result.elapsedMs = Date.now() - started;
// One line per distinct request: asset, font and icon files folded into a pattern.
const folded = {};
for (const h of result.http) {
  const p = h.path.replace(/^\/(assets|fonts|provider-icons)\/.*/, '/$1/*');
  const key = `${h.method} ${p} auth=${h.auth} status=${h.status ?? 'none'}`;
  folded[key] = (folded[key] ?? 0) + 1;
}
result.http = folded;
const ok = result.connected && !result.refreshRequired && result.reconnectsWhileObserved === 0 && !result.error &&
  Object.values(result.expect).every(Boolean);
result.ok = ok;
console.log(redact(JSON.stringify(result, null, 1)));
process.exit(ok ? 0 : 1);
