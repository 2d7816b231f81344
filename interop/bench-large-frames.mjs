// RSS of a clawgate gateway before, during and after sessions sending large
// frames (docs/benchmarks.md, "Memory after large frames"). Rerunnable:
//   node interop/bench-large-frames.mjs <path to clawgate binary> [sessions] [MiB per frame] [scopes]
// It starts its own gateway on a free port with a throwaway state directory.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";

const [bin, sessions = "30", mib = "20", scopes = "operator.write"] = process.argv.slice(2);
if (!bin) throw new Error("usage: bench-large-frames.mjs <clawgate binary> [sessions] [MiB] [scopes]");
const TOKEN = "bench-large-frames-token-0123456789abcdef";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024;
const port = await new Promise((r) => { const s = createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => r(p)); }); });

const home = mkdtempSync(join(tmpdir(), "clawgate-bench-frames-"));
const env = { ...process.env, CLAWGATE_STATE_DIR: join(home, "state"), HOME: home, OPENCLAW_GATEWAY_TOKEN: TOKEN };
const gw = spawn(bin, ["gateway", "run", "--port", String(port)], { env, stdio: "ignore" });
await sleep(1500);

function session() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { maxPayload: 64 * 1024 * 1024 });
    ws.on("error", reject);
    ws.on("message", (data) => {
      const f = JSON.parse(data.toString());
      if (f.event === "connect.challenge") {
        ws.send(JSON.stringify({ type: "req", id: "c1", method: "connect", params: {
          minProtocol: 4, maxProtocol: 4, role: "operator", scopes: scopes ? scopes.split(",") : [],
          client: { id: "gateway-client", version: "1.0.0", platform: "linux", mode: "backend" },
          auth: { token: TOKEN } } }));
      } else if (f.id === "c1") {
        if (!f.ok) reject(new Error(JSON.stringify(f.error)));
        const pad = "x".repeat(Number(mib) * 1024 * 1024);
        ws.send(JSON.stringify({ type: "req", id: "big", method: "health", params: { pad } }));
      } else if (f.id === "big") {
        resolve(ws);
      }
    });
    ws.on("close", (code) => resolve(ws));
  });
}

const before = rssMb(gw.pid);
const open = await Promise.all(Array.from({ length: Number(sessions) }, session));
const during = rssMb(gw.pid);
for (const ws of open) ws.close();
await sleep(2000);
const after = rssMb(gw.pid);
await sleep(5000);
const later = rssMb(gw.pid);
console.log(JSON.stringify({ sessions: Number(sessions), mibPerFrame: Number(mib), scopes,
  rssMb: { before: before.toFixed(1), afterFrames: during.toFixed(1), closed2s: after.toFixed(1), closed7s: later.toFixed(1) } }));
gw.kill("SIGTERM");
await sleep(300);
rmSync(home, { recursive: true, force: true });
